"""robustcv.explain side by side with Captum 0.9: parity of the maps, then speed and peak memory.

Captum is a bench-only peer (``pip install captum``); it is imported here and nowhere in robustcv.

Parity: the zoo's Fashion-MNIST CNN rebuilt with *functional* relu (``F.relu``, ``torch.relu``,
``Tensor.relu``) and the zoo's weights; targets as a (B,) tensor; Captum gets the same module
(for guided backprop and deconvolution: the zoo's own twin with ``nn.ReLU`` modules, since
Captum's hooks see only modules). Metric per image: max |robustcv - Captum| / max |Captum|; the
table shows the largest over the images (pass: <= 1e-4).

Speed: integrated gradients (50 steps, Gauss-Legendre, zero baseline) and SmoothGrad (50
samples, noise 0.15) on the first N Fashion-MNIST test images for ``zoo:fmnist-cnn``,
robustcv at its defaults against Captum at internal batch sizes 1000/5000/25000 (for
NoiseTunnel: ``nt_samples_batch_size`` = 1/5/25 per image over the whole batch, the same rows
per pass). Every run is its own subprocess (so peak memory is that run's), torch uses
``--threads`` threads, runs are paired and their order rotates each repetition; the table gives
medians over ``--reps`` and compares robustcv with Captum's best median.

Usage::

    .venv/bin/python benchmarks/explanations_vs_captum.py            # parity + speed, N=1000
    .venv/bin/python benchmarks/explanations_vs_captum.py --parity-only
    .venv/bin/python benchmarks/explanations_vs_captum.py --n 200 --reps 1 --out /tmp/b.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

import torch
from _sections import write_section as write_marked_section
from torch import nn
from torch.nn import functional as F

ROOT = Path(__file__).resolve().parents[1]
CAPTUM_ROWS = (1000, 5000, 25000)
STEPS = SAMPLES = 50
NOISE = 0.15


class Normalized(nn.Module):
    """``net((x - mean) / std)``: the zoo model's preprocessing as a module Captum can take."""

    def __init__(self, net: nn.Module, mean: float, std: float) -> None:
        super().__init__()
        self.net, self.mean, self.std = net, mean, std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)


class FunctionalCNN(nn.Module):
    """The zoo's SmallCNN with every ReLU written as a function call (three spellings)."""

    def __init__(self, zoo_net: nn.Module) -> None:
        super().__init__()
        self.conv1 = zoo_net.features[0]
        self.conv2 = zoo_net.features[3]
        self.fc = zoo_net.embed[0]
        self.head = zoo_net.head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(torch.relu(self.conv2(x)), 2)
        return self.head(self.fc(x.flatten(1)).relu())


def load(n: int):  # type: ignore[no-untyped-def]
    import robustcv

    model = robustcv.load_model("zoo:fmnist-cnn")
    data = robustcv.load_dataset("fashion-mnist", split="test", limit=n)
    return model, data


def nets(model):  # type: ignore[no-untyped-def]
    mean, std = float(model._mean.flatten()[0]), float(model._std.flatten()[0])
    functional = Normalized(FunctionalCNN(model.net), mean, std).eval()
    twin = Normalized(model.net, mean, std).eval()
    return functional, twin


def rel_diff(ours: torch.Tensor, ref: torch.Tensor) -> float:
    """Largest over images of max |ours - ref| / max |ref|."""
    scale = ref.flatten(1).abs().amax(1).clamp_min(1e-12)
    return float(((ours - ref).flatten(1).abs().amax(1) / scale).max())


# ---------------------------------------------------------------------- parity


def parity(n_images: int) -> list[tuple[str, str, float, str]]:
    from captum.attr import (
        Deconvolution,
        GuidedBackprop,
        InputXGradient,
        IntegratedGradients,
        LayerAttribution,
        LayerGradCam,
        Occlusion,
        Saliency,
    )

    from robustcv.explanations import explain

    model, data = load(n_images)
    functional, twin = nets(model)
    x, t = data.x, data.y.clone()
    rows: list[tuple[str, str, float, str]] = []

    def add(name: str, params: str, diff: float, note: str = "") -> None:
        rows.append((name, params, diff, note))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = explain(functional, x, t, "saliency").maps
        add("saliency", "abs=True", rel_diff(ours, Saliency(functional).attribute(x, target=t)))
        ours = explain(functional, x, t, "input-x-gradient").maps
        ref = InputXGradient(functional).attribute(x, target=t)
        add("input-x-gradient", "", rel_diff(ours, ref))
        ig = IntegratedGradients(functional)
        for rule, theirs in (("gauss-legendre", "gausslegendre"), ("riemann-trapezoid", None)):
            e = explain(functional, x, t, "integrated-gradients", steps=STEPS, rule=rule)
            ref, delta = ig.attribute(
                x,
                target=t,
                n_steps=STEPS,
                method=theirs or "riemann_trapezoid",
                return_convergence_delta=True,
            )
            gap = (e.maps.flatten(1).sum(1) - e.delta).abs().clamp_min(1e-12)
            ours_c = float((e.delta.abs() / gap).median())
            theirs_c = float((delta.abs() / gap).median())
            params = f"steps={STEPS}, zero baseline"
            note = (
                f"median abs(delta) / abs(f(x) - f(0)): robustcv {ours_c:.2g}, "
                f"Captum {theirs_c:.2g}"
            )
            add(f"integrated-gradients {rule}", params, rel_diff(e.maps, ref), note)
            if theirs is None:
                scaled = ref * STEPS / (STEPS - 1)
                add(
                    "integrated-gradients riemann-trapezoid",
                    params + ", Captum x n/(n-1)",
                    rel_diff(e.maps, scaled),
                    "Captum's trapezoid weights sum to (n-1)/n (1/n per step, halved at the "
                    "ends, on points 1/(n-1) apart); rescaled they agree",
                )
        ours = explain(functional, x, t, "occlusion", window=4, stride=2, baseline=0.0).maps
        ref = Occlusion(functional).attribute(
            x, target=t, sliding_window_shapes=(1, 4, 4), strides=(1, 2, 2), baselines=0.0
        )
        add("occlusion", "window=4, stride=2, baseline=0", rel_diff(ours, ref))
        for name, cls in (("guided-backprop", GuidedBackprop), ("deconvolution", Deconvolution)):
            ours = explain(functional, x, t, name).maps
            ref = cls(twin).attribute(x, target=t)
            blind = cls(functional).attribute(x, target=t)
            add(
                name,
                "robustcv: functional relu; Captum: nn.ReLU twin",
                rel_diff(ours, ref),
                f"Captum on the functional net itself: {rel_diff(blind, ref):.2g} (relu missed)",
            )
        ours = explain(functional, x, t, "grad-cam", layer="net.conv2").maps
        cam = LayerGradCam(functional, functional.net.conv2).attribute(
            x, target=t, relu_attributions=True
        )
        ref = LayerAttribution.interpolate(cam, (28, 28), "bilinear")
        add("grad-cam", "layer net.conv2, bilinear upsampling", rel_diff(ours, ref))
    return rows


# ---------------------------------------------------------------------- speed


def _rss_kb(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field):
                return int(line.split()[1])
    return 0


def worker(method: str, impl: str, rows: int, n: int, threads: int) -> None:
    """One timed run in this process; prints JSON (seconds, peak extra memory in MiB)."""
    torch.set_num_threads(threads)
    warnings.simplefilter("ignore")
    model, data = load(n)
    x = data.x
    t = model.predict(x)
    if impl == "captum":
        from captum.attr import IntegratedGradients, NoiseTunnel, Saliency

        def forward(z: torch.Tensor) -> torch.Tensor:
            return model.logits(z, validate=False)

    from robustcv.explanations import explain

    base = _rss_kb("VmRSS")
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to now
        hwm = "VmHWM"
    except OSError:
        hwm = ""
    start = time.perf_counter()
    if impl == "robustcv" and method == "ig":
        explain(model, x, t, "integrated-gradients", steps=STEPS)
    elif impl == "robustcv":
        explain(model, x, t, "smoothgrad", samples=SAMPLES, noise=NOISE)
    elif method == "ig":
        IntegratedGradients(forward).attribute(
            x, target=t, n_steps=STEPS, method="gausslegendre", internal_batch_size=rows
        )
    else:
        NoiseTunnel(Saliency(forward)).attribute(
            x,
            nt_type="smoothgrad",
            nt_samples=SAMPLES,
            nt_samples_batch_size=max(1, rows // len(x)),
            stdevs=NOISE,
            target=t,
            abs=False,
        )
    seconds = time.perf_counter() - start
    peak = _rss_kb(hwm) if hwm else 0
    print(json.dumps({"seconds": seconds, "peak_mib": max(0, peak - base) / 1024}))


def run_worker(method: str, impl: str, rows: int, n: int, threads: int) -> dict[str, float]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    cmd = [sys.executable, __file__, "--worker", method, impl, str(rows), "--n", str(n)]
    cmd += ["--threads", str(threads)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{out.stderr}")
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def speed(n: int, reps: int, threads: int) -> list[dict[str, object]]:
    configs = [("robustcv", 0)] + [("captum", r) for r in CAPTUM_ROWS]
    table = []
    for method in ("ig", "smoothgrad"):
        runs: dict[tuple[str, int], list[dict[str, float]]] = {c: [] for c in configs}
        for rep in range(reps):
            order = configs[rep % len(configs) :] + configs[: rep % len(configs)]
            for impl, rows in order:
                res = run_worker(method, impl, rows, n, threads)
                runs[(impl, rows)].append(res)
                print(f"  {method} {impl} {rows or 'default'} rep {rep}: {res}", flush=True)
        med = {c: statistics.median(r["seconds"] for r in runs[c]) for c in configs}
        best = min((c for c in configs if c[0] == "captum"), key=lambda c: med[c])
        ours = runs[("robustcv", 0)]
        paired = [o["seconds"] / b["seconds"] for o, b in zip(ours, runs[best], strict=True)]
        table.append(
            {
                "method": method,
                "robustcv_s": med[("robustcv", 0)],
                "captum_s": {rows: med[("captum", rows)] for _, rows in configs[1:]},
                "best_rows": best[1],
                "ratio": med[("robustcv", 0)] / med[best],
                "paired": paired,
                "robustcv_mib": max(r["peak_mib"] for r in ours),
                "captum_mib": {
                    rows: max(r["peak_mib"] for r in runs[("captum", rows)])
                    for _, rows in configs[1:]
                },
            }
        )
    return table


# ---------------------------------------------------------------------- report


BEGIN, END = "<!-- explanations:begin -->", "<!-- explanations:end -->"


def markdown(
    par: list[tuple[str, str, float, str]] | None,
    spd: list[dict[str, object]] | None,
    args: argparse.Namespace,
) -> str:
    import captum

    lines = [
        "## Explanations: robustcv.explain vs Captum",
        "",
        f"torch {torch.__version__}, Captum {captum.__version__}, {platform.machine()}, "
        f"{args.threads} torch threads, `{' '.join(['.venv/bin/python', *sys.argv])}` "
        f"({time.strftime('%Y-%m-%d')}).",
        "",
    ]
    if par is not None:
        lines += [
            f"### Parity (first {args.parity_n} Fashion-MNIST test images, zoo:fmnist-cnn "
            "weights in a net with functional relu, targets as a (B,) tensor)",
            "",
            "max over images of max\\|robustcv - Captum\\| / max\\|Captum\\| (pass: <= 1e-4)",
            "",
            "| method | parameters | max rel. diff | pass | note |",
            "|---|---|---|---|---|",
        ]
        for name, params, diff, note in par:
            ok = "yes" if diff <= 1e-4 else "**no**"
            lines.append(f"| {name} | {params} | {diff:.2e} | {ok} | {note} |")
        lines.append("")
    if spd is not None:
        lines += [
            f"### Speed ({args.n} Fashion-MNIST test images, zoo:fmnist-cnn, medians of "
            f"{args.reps} paired runs, each in its own process)",
            "",
            "| method | robustcv (defaults) | Captum rows/pass 1000 / 5000 / 25000 | ratio to "
            "Captum's best | paired ratios | peak extra memory robustcv / Captum |",
            "|---|---|---|---|---|---|",
        ]
        label = {"ig": "integrated gradients, 50 steps", "smoothgrad": "SmoothGrad, 50 samples"}
        for row in spd:
            cap = row["captum_s"]
            mib = row["captum_mib"]
            assert isinstance(cap, dict) and isinstance(mib, dict)
            times = " / ".join(
                f"**{cap[r]:.1f} s**" if r == row["best_rows"] else f"{cap[r]:.1f} s"
                for r in CAPTUM_ROWS
            )
            paired = ", ".join(f"{p:.2f}" for p in row["paired"])  # type: ignore[attr-defined]
            mems = " / ".join(f"{mib[r]:.0f}" for r in CAPTUM_ROWS)
            lines.append(
                f"| {label[str(row['method'])]} | {row['robustcv_s']:.1f} s | {times} | "
                f"{row['ratio']:.2f}x | {paired} | {row['robustcv_mib']:.0f} MiB / {mems} MiB |"
            )
        lines += [
            "",
            "Peak extra memory: the process's peak resident memory during the call minus its "
            "resident memory before (Linux VmHWM after a reset). The machine is shared: other "
            "processes ran during the measurement, so single runs vary by +-20%; the paired "
            "ratios show the spread.",
            "",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="images for the speed runs")
    parser.add_argument("--parity-n", type=int, default=16, help="images for parity")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--parity-only", action="store_true")
    parser.add_argument("--speed-only", action="store_true")
    parser.add_argument(
        "--out",
        default=str(ROOT / "docs" / "benchmarks.md"),
        help="markdown file: its explanations section (between the markers) is replaced, or "
        "the section is appended; default docs/benchmarks.md",
    )
    parser.add_argument("--worker", nargs=3, metavar=("METHOD", "IMPL", "ROWS"))
    args = parser.parse_args()
    if args.worker:
        method, impl, rows = args.worker
        worker(method, impl, int(rows), args.n, args.threads)
        return
    torch.set_num_threads(args.threads)
    par = None if args.speed_only else parity(args.parity_n)
    if par is not None:
        for row in par:
            print(f"parity {row[0]:40s} {row[2]:.2e}  {row[3]}")
    spd = None if args.parity_only else speed(args.n, args.reps, args.threads)
    text = markdown(par, spd, args)
    print(text)
    write_section(Path(args.out), text)
    print(f"wrote {args.out}")


def write_section(path: Path, section: str) -> None:
    """Replace the text between the explanations markers of ``path`` (or append it)."""
    write_marked_section(path, section, BEGIN, END)


if __name__ == "__main__":
    main()
