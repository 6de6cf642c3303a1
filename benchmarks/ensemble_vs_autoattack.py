"""The default ensemble against AutoAttack standard, side by side (issue 17, performance item 3).

Runs ``robustcv.robust_accuracy(model, x, y, eps=EPS, attacks="default")`` and the original
AutoAttack (Croce & Hein 2020; the ``pyautoattack`` package of the ``bench`` extra, which is the
authors' code: APGD-CE, APGD-T, FAB-T, Square 5000) in its ``standard`` version on the same
first ``--n`` Fashion-MNIST test images of an adversarially trained zoo model, one after the
other in one process with the same torch threads. Prints robust accuracy with exact 95%
intervals, wall time and its ratio, and the per-sample comparison: images that one side broke
and the other left robust, and the per-sample worst case of both.

Usage::

    .venv/bin/python benchmarks/ensemble_vs_autoattack.py --n 500
    .venv/bin/python benchmarks/ensemble_vs_autoattack.py --n 20 --no-write   # smoke test
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import time
from pathlib import Path

import torch
from _ensemble_setup import ensemble_args, load_model_and_images
from _sections import write_section
from torch import nn

import robustcv
from robustcv.core.stats import binomial_ci

BEGIN, END = "<!-- ensemble-vs-autoattack:begin -->", "<!-- ensemble-vs-autoattack:end -->"
DOCS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


class _Logits(nn.Module):
    """AutoAttack calls an ``nn.Module`` on [0, 1] images: the robustcv model's logits."""

    def __init__(self, model: robustcv.Model) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.logits(x, validate=False)


def run_autoattack(
    model: robustcv.Model, x: torch.Tensor, y: torch.Tensor, eps: float, batch: int
) -> tuple[torch.Tensor, float]:
    """AutoAttack standard's per-sample robustness (True: still correct) and its wall time."""
    from pyautoattack import AutoAttack

    net = _Logits(model).eval()
    aa = AutoAttack(net, norm="Linf", eps=eps, version="standard", seed=0)
    start = time.perf_counter()
    adv, _ = aa.run_standard_evaluation(x, y, batch_size=batch)
    seconds = time.perf_counter() - start
    # re-checked here, as robustcv's runner does: inside the box and the budget, then evaluated
    if not bool(((adv - x).abs() <= eps + 1e-6).all()) or adv.min() < 0 or adv.max() > 1:
        raise RuntimeError("AutoAttack returned points outside the budget or the box")
    with torch.no_grad():
        robust = model.predict(adv) == y
    return robust, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ensemble_args(parser)
    parser.add_argument("--batch", type=int, default=500, help="AutoAttack's batch size")
    args = parser.parse_args()
    model, data = load_model_and_images(args)
    x, y = data.x, data.y
    load_before = os.getloadavg()[0]

    start = time.perf_counter()
    res = robustcv.robust_accuracy(model, x, y, eps=args.eps, seed=0)
    ours_s = time.perf_counter() - start
    ours = torch.tensor([b is None for b in res.broken_by])
    print(f"robustcv default ensemble: {float(ours.float().mean()):.4f} in {ours_s:.0f} s")

    theirs, aa_s = run_autoattack(model, x, y, args.eps, args.batch)
    print(f"AutoAttack standard: {float(theirs.float().mean()):.4f} in {aa_s:.0f} s")
    load_after = os.getloadavg()[0]

    n = len(y)

    def cell(mask: torch.Tensor) -> str:
        k = int(mask.sum())
        lo, hi = binomial_ci(k, n)
        return f"{k / n:.3f} [{lo:.3f}, {hi:.3f}]"

    only_ours = int((~ours & theirs).sum())  # robustcv broke, AutoAttack did not
    only_theirs = int((ours & ~theirs).sum())
    today = datetime.date.today().isoformat()
    lines = [
        "## Default ensemble vs AutoAttack standard, side by side",
        "",
        f"torch {torch.__version__}, {platform.machine()}, {torch.get_num_threads()} torch "
        f"threads, `{args.model}`, first {n} Fashion-MNIST test images, L-inf eps {args.eps}; "
        f"AutoAttack = the authors' code (pyautoattack 0.2.0), version standard, seed 0, batch "
        f"{args.batch}; robustcv's default ensemble with its sanity checks, seed 0; one run each, "
        f"one after the other in one process (load average {load_before:.1f} before, "
        f"{load_after:.1f} after; `.venv/bin/python benchmarks/ensemble_vs_autoattack.py "
        f"--n {n}`, {today}).",
        "",
        "| evaluation | robust accuracy [95% interval] | wall time | time / AutoAttack |",
        "| --- | ---: | ---: | ---: |",
        f"| AutoAttack standard | {cell(theirs)} | {aa_s:.0f} s | 1.00x |",
        f"| robustcv default ensemble | {cell(ours)} | {ours_s:.0f} s | {ours_s / aa_s:.2f}x |",
        f"| per-sample worst case of both | {cell(ours & theirs)} | - | - |",
        "",
        f"Images robustcv broke and AutoAttack left robust: {only_ours}; the reverse: "
        f"{only_theirs}. robustcv's time includes its gradient-masking sanity checks "
        f"({sum(c['seconds'] for c in res.costs if c['name'] == 'sanity'):.0f} s).",
    ]
    section = "\n".join(lines)
    print(section)
    if not args.no_write:
        write_section(DOCS, section, BEGIN, END)


if __name__ == "__main__":
    main()
