"""Attack engine vs Foolbox 3: cost, strength and minimum norms, side by side in one run.

Usage (needs the bench extra: ``pip install -e '.[bench]'``)::

    python benchmarks/attacks_vs_foolbox.py            # 1000 images, writes docs/benchmarks.md
    python benchmarks/attacks_vs_foolbox.py --n 200    # quicker

All numbers come from this run on this machine: times are wall-clock medians of 3 repeats;
ratios are what to compare across machines.
"""

from __future__ import annotations

import argparse
import math
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

import robustcv
from robustcv.attacks import attack, get_threat, robust_accuracy

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
BEGIN, END = "<!-- attacks:begin -->", "<!-- attacks:end -->"


def median_time(fn: Callable[[], object], repeats: int = 3) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def bare_passes(model: robustcv.Model, x: torch.Tensor, y: torch.Tensor, steps: int) -> None:
    """``steps`` plain forward + input-gradient passes of the raw network, nothing else."""
    net = model.net
    for _ in range(steps):
        xr = x.detach().requires_grad_(True)
        loss = F.cross_entropy(net(model.preprocess(xr)), y, reduction="sum")
        torch.autograd.grad(loss, xr)


def median_norm(norms: torch.Tensor) -> float:
    return float(norms.median())


def _keep_other_rows(old_block: str, new_block: str, sections: set[str]) -> str:
    """``new_block`` with the previous run's rows for the sections that were not re-run."""
    if sections >= {"cost", "strength", "min-norm"}:
        return new_block
    rerun = {"cost": {"cost"}, "strength": {"strength", "ensemble cost"}, "min-norm": {"min-norm"}}
    fresh = set().union(*(rerun[s] for s in sections))
    order = ["cost", "strength", "min-norm", "ensemble cost"]

    def rows(text: str) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {k: [] for k in order}
        for line in text.splitlines():
            what = line.split("|")[1].strip() if line.startswith("| ") else ""
            if what in out:
                out[what].append(line)
        return out

    old_rows, new_rows = rows(old_block), rows(new_block)
    merged = [row for k in order for row in (new_rows[k] if k in fresh else old_rows[k])]
    lines = new_block.splitlines()
    table_start = next(i for i, line in enumerate(lines) if line.startswith("| what"))
    note = f"(this run: {', '.join(sorted(sections))}; other rows from the previous run)"
    return "\n".join(
        [*lines[:table_start], note, "", *lines[table_start : table_start + 2], *merged, END]
    )


def main() -> None:
    import foolbox as fb

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--model", default="zoo:fmnist-cnn-at")
    parser.add_argument("--eps", type=float, default=0.1)
    parser.add_argument("--no-write", action="store_true", help="do not update docs/benchmarks.md")
    parser.add_argument(
        "--only",
        default="cost,strength,min-norm",
        help="comma-separated sections to run (cost, strength, min-norm); the table keeps the "
        "other sections' rows from the previous run",
    )
    args = parser.parse_args()
    sections = {s.strip() for s in args.only.split(",") if s.strip()}
    unknown = sections - {"cost", "strength", "min-norm"}
    if unknown:
        parser.error(f"unknown section(s) {sorted(unknown)}; use cost, strength, min-norm")

    model = robustcv.load_model(args.model)
    data = robustcv.load_dataset("fashion-mnist", split="test", limit=args.n)
    x, y = data.x, data.y
    net = model.net.eval()
    fmodel = fb.PyTorchModel(
        net, bounds=(0, 1), preprocessing={"mean": [0.286], "std": [0.353], "axis": -3}
    )
    rows: list[tuple[str, str, str, str]] = []
    n = len(y)
    pgd_fb = fb.attacks.LinfPGD(steps=40, rel_stepsize=2.5 / 40)

    # ---------------------------------------------------------------- cost of 40-step PGD
    if "cost" in sections:
        t_bare, _ = median_time(lambda: bare_passes(model, x, y, 40))
        t_ours, _ = median_time(
            lambda: attack(model, x, y, "pgd", eps=args.eps, steps=40, early_stop=False)
        )
        t_es, _ = median_time(lambda: attack(model, x, y, "pgd", eps=args.eps, steps=40))
        t_fb, _ = median_time(lambda: pgd_fb(fmodel, x, y, epsilons=args.eps))
        rows += [
            ("cost", "40 bare forward+backward passes", f"{t_bare:.2f} s", "1.00x"),
            (
                "cost",
                "robustcv pgd, 40 steps, early stop off",
                f"{t_ours:.2f} s",
                f"{t_ours / t_bare:.3f}x",
            ),
            ("cost", "Foolbox LinfPGD, 40 steps", f"{t_fb:.2f} s", f"{t_fb / t_bare:.3f}x"),
            (
                "cost",
                "robustcv pgd, 40 steps, early stop on",
                f"{t_es:.2f} s",
                f"{t_es / t_bare:.3f}x (saves {1 - t_es / t_ours:.0%})",
            ),
        ]

    if "strength" in sections:
        # ---------------------------------------------------------------- strength at eps
        start = time.perf_counter()
        ens = robust_accuracy(model, x, y, eps=args.eps, sanity=False)
        t_ens = time.perf_counter() - start
        ens_robust = torch.tensor([b is None for b in ens.broken_by])
        fb_robust = torch.ones(len(y), dtype=torch.bool)
        start = time.perf_counter()
        for restart in range(10):
            torch.manual_seed(restart)  # Foolbox draws its random start from the global RNG
            _, _, is_adv = pgd_fb(fmodel, x, y, epsilons=args.eps)
            fb_robust &= ~is_adv.cpu()
        t_fb10 = time.perf_counter() - start
        fb_acc = float(fb_robust.float().mean())
        missed = float((ens_robust & ~fb_robust).float().mean())
        rows += [
            (
                "strength",
                f"robustcv robust_accuracy(default), eps {args.eps}",
                f"{ens.accuracy[0]:.4f}",
                f"{t_ens:.0f} s",
            ),
            (
                "strength",
                f"Foolbox LinfPGD 40 steps x 10 restarts, eps {args.eps}",
                f"{fb_acc:.4f}",
                f"{t_fb10:.0f} s",
            ),
            ("strength", "share Foolbox breaks that robustcv leaves robust", f"{missed:.4f}", "-"),
        ]

        # ---------------------------------------------------------------- ensemble cost
        k = model.num_classes
        after_ce = [b not in ("clean", "apgd-ce") for b in ens.broken_by]
        after_t = [b is None for b in ens.broken_by]
        not_clean = [b != "clean" for b in ens.broken_by]
        # AutoAttack standard by its published budgets, spending them on the same samples: APGD-CE
        # 100 fwd+bwd on every correct sample, APGD-T 9 x 100 on those APGD-CE leaves, FAB-T 9 x 100
        # (>= 1 fwd + 1 bwd each) and Square 5000 forwards on those still robust.
        aa_bwd = (
            100 * sum(not_clean) + min(9, k - 1) * 100 * sum(after_ce) + 9 * 100 * sum(after_t)
        ) / n
        aa_fwd = aa_bwd + 5000 * sum(after_t) / n
        rows += [
            (
                "ensemble cost",
                "robustcv default: forward / backward per sample",
                f"{ens.forward_passes / n:.0f} / {ens.backward_passes / n:.0f}",
                "measured",
            ),
            (
                "ensemble cost",
                "AutoAttack standard: forward / backward per sample",
                f"{aa_fwd:.0f} / {aa_bwd:.0f}",
                "by published budgets",
            ),
        ]

    if "min-norm" in sections:
        # ---------------------------------------------------------------- minimum norms
        correct = model.predict(x) == y
        xc, yc = x[correct], y[correct]

        def fb_norms(atk: object, p: float) -> torch.Tensor:
            raw, _, is_adv = atk(fmodel, xc, yc, epsilons=None)  # type: ignore[operator]
            d = (raw - xc).flatten(1)
            norms = torch.linalg.vector_norm(d, ord=p, dim=1)
            return torch.where(is_adv.cpu(), norms, torch.full_like(norms, math.inf))

        for norm, p in (("l2", 2.0), ("linf", math.inf)):
            start = time.perf_counter()
            ours = attack(model, xc, yc, "fmn", norm=norm, steps=100)
            rows.append(
                (
                    "min-norm",
                    f"robustcv fmn {norm}, 100 steps",
                    f"{median_norm(ours.norms):.4f}",
                    f"{time.perf_counter() - start:.0f} s",
                )
            )
            peers = (
                [
                    ("Foolbox L2FMNAttack", fb.attacks.L2FMNAttack(steps=100)),
                    ("Foolbox DDNAttack", fb.attacks.DDNAttack(steps=100)),
                ]
                if norm == "l2"
                else [("Foolbox LInfFMNAttack", fb.attacks.LInfFMNAttack(steps=100))]
            )
            for label, atk in peers:
                start = time.perf_counter()
                norms = fb_norms(atk, p)
                rows.append(
                    (
                        "min-norm",
                        f"{label} {norm}, 100 steps",
                        f"{median_norm(norms):.4f}",
                        f"{time.perf_counter() - start:.0f} s",
                    )
                )
            assert get_threat(norm).p == p

    header = ("what", "setting", "value", "time / ratio")
    table = [" | ".join(header), " | ".join("---" for _ in header)]
    table += [" | ".join(r) for r in rows]
    text = "\n".join(f"| {line} |" for line in table)
    machine = (
        f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
        f"foolbox {fb.__version__}"
    )
    print(text)
    print(machine)
    if not args.no_write:
        block = (
            f"{BEGIN}\n## Attacks vs Foolbox 3 ({args.model}, {n} Fashion-MNIST test images, "
            f"L-inf eps {args.eps})\n\n"
            f"Reproduce: `python benchmarks/attacks_vs_foolbox.py --n {n}`  \n"
            f"Machine: {machine}\n\n{text}\n{END}"
        )
        old = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
        if BEGIN in old:
            head, tail = old[: old.index(BEGIN)], old[old.index(END) + len(END) :]
            block = _keep_other_rows(old[old.index(BEGIN) : old.index(END)], block, sections)
            DOC.write_text(head + block + tail)
        else:
            DOC.parent.mkdir(exist_ok=True)
            DOC.write_text(old.rstrip() + "\n\n" + block + "\n")
        print(f"wrote {DOC}")


if __name__ == "__main__":
    main()
