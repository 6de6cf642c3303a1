"""robustcv ``bb`` vs Foolbox's Brendel-Bethge attacks (issue 17 item 1), side by side in one run.

On the first ``--n`` correctly classified Fashion-MNIST test images of ``--model`` and for each of
L2 and L-inf, at ``--steps`` boundary steps each:

* robustcv ``fmn`` (the reference minimum-norm attack),
* robustcv ``bb`` from its internal start (a 20-step ``fmn`` run, included in its time),
* robustcv ``bb`` and Foolbox ``L2BrendelBethgeAttack`` / ``LinfinityBrendelBethgeAttack``
  from the *same* starting points (that 20-step ``fmn`` run's output, computed once and not
  timed), after a warm-up call that compiles Foolbox's numba solvers (not timed either),
* the per-sample best of ``fmn`` and ``bb``.

Medians are over all the images (failures count as infinite). Times are wall-clock seconds of
one run each, with one torch thread, next to ``--steps`` bare forward + input-gradient passes of
the network (the floor any gradient attack at that many steps pays); compare ratios, not
seconds, across machines.

Usage (needs the bench extra, which brings numba: ``pip install -e '.[bench]'``)::

    python benchmarks/bb_vs_foolbox.py                 # 100 images, 200 steps, writes the docs
    python benchmarks/bb_vs_foolbox.py --n 20 --no-write
"""

from __future__ import annotations

import argparse
import math
import platform
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import robustcv
from robustcv.attacks import attack, get_threat

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
BEGIN, END = "<!-- bb:begin -->", "<!-- bb:end -->"
INIT_STEPS = 20


def _median(norms: torch.Tensor) -> float:
    return float(norms.median())


def main() -> None:
    import foolbox as fb

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--model", default="zoo:fmnist-cnn-at")
    parser.add_argument("--norms", default="l2,linf")
    parser.add_argument("--no-write", action="store_true", help="do not update docs/benchmarks.md")
    parser.add_argument(
        "--channels-last",
        action="store_true",
        help="load the model with channels_last=True (both sides then share its channels-last "
        "weights; robustcv also hands the network channels-last batches)",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)

    model = robustcv.load_model(args.model, channels_last=args.channels_last)
    data = robustcv.load_dataset("fashion-mnist", split="test", limit=4 * args.n)
    correct = model.predict(data.x) == data.y
    x, y = data.x[correct][: args.n], data.y[correct][: args.n]
    n = len(y)
    fmodel = fb.PyTorchModel(
        model.net.eval(), bounds=(0, 1), preprocessing={"mean": [0.286], "std": [0.353], "axis": -3}
    )
    peers = {
        "l2": fb.attacks.L2BrendelBethgeAttack,
        "linf": fb.attacks.LinfinityBrendelBethgeAttack,
    }
    rows: list[tuple[str, str, str, str]] = []
    summary: list[str] = []
    start = time.perf_counter()
    for _ in range(args.steps):  # the floor: the network's own forward + input-gradient passes
        xr = x.detach().requires_grad_(True)
        loss = F.cross_entropy(model.net(model.preprocess(xr)), y, reduction="sum")
        torch.autograd.grad(loss, xr)
    t_bare = time.perf_counter() - start
    rows.append(("-", f"{args.steps} bare forward+backward passes", "-", f"{t_bare:.1f}"))
    for norm in [s.strip() for s in args.norms.split(",") if s.strip()]:
        threat = get_threat(norm)
        steps = args.steps

        def timed(name: str, **kw: object) -> tuple[torch.Tensor, float]:
            start = time.perf_counter()
            res = attack(model, x, y, name, norm=norm, steps=steps, **kw)  # type: ignore[arg-type]  # noqa: B023
            return res.norms, time.perf_counter() - start

        fmn_norms, t_fmn = timed("fmn")
        bb_norms, t_bb = timed("bb")
        starts = attack(model, x, y, "fmn", norm=norm, steps=INIT_STEPS)
        shared, t_shared = timed("bb", starts=starts.x_adv)

        fb_attack = peers[norm](steps=steps)
        ok = starts.success
        fb_attack(fmodel, x[ok][:2], y[ok][:2], epsilons=None, starting_points=starts.x_adv[ok][:2])
        start = time.perf_counter()
        _, clipped, is_adv = fb_attack(
            fmodel, x[ok], y[ok], epsilons=None, starting_points=starts.x_adv[ok]
        )
        t_fb = time.perf_counter() - start
        fb_norms = torch.full((n,), math.inf)
        fb_norms[ok] = torch.where(
            is_adv.cpu(), threat.norm(clipped.cpu() - x[ok]), torch.tensor(math.inf)
        )
        best = torch.minimum(fmn_norms, bb_norms)
        label = f"{norm}, {steps} steps"
        rows += [
            (label, "robustcv fmn", f"{_median(fmn_norms):.4f}", f"{t_fmn:.1f}"),
            (label, f"robustcv bb (internal {INIT_STEPS}-step fmn start)",
             f"{_median(bb_norms):.4f}", f"{t_bb:.1f}"),
            (label, "robustcv bb (shared starts)", f"{_median(shared):.4f}", f"{t_shared:.1f}"),
            (label, "Foolbox BB (shared starts)", f"{_median(fb_norms):.4f}", f"{t_fb:.1f}"),
            (label, "per-sample best of robustcv fmn and bb", f"{_median(best):.4f}", "-"),
        ]  # fmt: skip
        summary.append(
            f"{norm}: bb / fmn median {_median(bb_norms) / _median(fmn_norms):.3f}; shared starts: "
            f"bb / Foolbox median {_median(shared) / _median(fb_norms):.3f}, time "
            f"{t_shared / t_fb:.2f}x (time above the bare passes: bb {t_shared - t_bare:.1f} s, "
            f"Foolbox {t_fb - t_bare:.1f} s); bb beats Foolbox on "
            f"{float((shared < fb_norms - 1e-6).float().mean()):.0%} of the images, "
            f"Foolbox beats bb on {float((fb_norms < shared - 1e-6).float().mean()):.0%}"
        )

    header = ("norm, steps", "attack", "median distance", "seconds")
    table = [" | ".join(header), " | ".join("---" for _ in header)]
    table += [" | ".join(r) for r in rows]
    text = "\n".join(f"| {line} |" for line in table)
    import numba

    machine = (
        f"{platform.machine()}, 1 torch thread, torch {torch.__version__}, foolbox "
        f"{fb.__version__}, numba {numba.__version__}"
        + (", channels-last weights (both sides)" if args.channels_last else "")
    )
    print(text)
    print("\n".join(summary))
    print(machine)
    if not args.no_write:
        block = (
            f"{BEGIN}\n## Brendel-Bethge: robustcv bb vs Foolbox 3 ({args.model}, {n} correctly "
            f"classified Fashion-MNIST test images)\n\n"
            f"Reproduce: `python benchmarks/bb_vs_foolbox.py --n {args.n} --steps {args.steps}`  \n"
            f"Machine: {machine}\n\n{text}\n\n"
            + "\n".join(f"- {line}" for line in summary)
            + f"\n{END}"
        )
        old = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
        if BEGIN in old:
            head, tail = old[: old.index(BEGIN)], old[old.index(END) + len(END) :]
            DOC.write_text(head + block + tail)
        else:
            DOC.write_text(old.rstrip() + "\n\n" + block + "\n")
        print(f"wrote {DOC}")


if __name__ == "__main__":
    main()
