"""Where the default ensemble's time goes: one row per member (issue 17, performance item 3).

Runs ``robustcv.robust_accuracy(model, x, y, eps=EPS, attacks="default")`` on the first ``--n``
Fashion-MNIST test images of an adversarially trained zoo model and prints, from the result's
``costs``, per member: the images it was handed, the samples it broke first, its forward and
backward passes per evaluated image and its share of the wall time; the sanity checks are a row
of their own. Next to it, AutoAttack standard's passes on the same samples by its published
budgets (APGD-CE 100 steps on every correctly classified image, APGD-T 9 x 100 and FAB-T
9 x 100 on those APGD-CE leaves, Square 5000 queries on those still robust), and its time
estimated at robustcv's measured cost per pass (AutoAttack is not installable here; the
estimate is labelled as such).

Usage::

    .venv/bin/python benchmarks/ensemble_cost.py --n 500
"""

from __future__ import annotations

import argparse
import platform
from pathlib import Path
from typing import Any

import torch
from _ensemble_setup import ensemble_args, load_model_and_images
from _sections import write_section

import robustcv

BEGIN, END = "<!-- ensemble-cost:begin -->", "<!-- ensemble-cost:end -->"
DOCS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def autoattack_passes(broken_by: list[str | None], k: int) -> dict[str, tuple[float, float]]:
    """AutoAttack standard's (forward, backward) passes per member on the same samples.

    Samples robustcv's FMN broke count as left by APGD-CE only when APGD-CE would have had to
    break them: they are treated as broken by APGD-CE (the cheaper assumption for AutoAttack).
    """
    correct = sum(b != "clean" for b in broken_by)
    after_ce = sum(b not in ("clean", "apgd-ce", "fmn") for b in broken_by)
    robust = sum(b is None for b in broken_by)
    t = min(9, k - 1)
    return {
        "apgd-ce": (100.0 * correct, 100.0 * correct),
        "apgd-t": (100.0 * t * after_ce, 100.0 * t * after_ce),
        "fab-t": (100.0 * t * robust, 100.0 * t * robust),
        "square": (5000.0 * robust, 0.0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ensemble_args(parser)
    args = parser.parse_args()
    model, data = load_model_and_images(args)
    res = robustcv.robust_accuracy(model, data.x, data.y, eps=args.eps, seed=0)
    section = render(args, res, model.num_classes)
    print(section)
    if not args.no_write:
        write_section(DOCS, section, BEGIN, END)


def render(args: Any, res: Any, k: int) -> str:
    n = res.n
    total = sum(c["seconds"] for c in res.costs)
    # robustcv's cost per pass, from the members that spend them: a gradient step (forward +
    # backward) and a forward-only query
    grad = [c for c in res.costs if c["backward"]]
    fwd_only = [c for c in res.costs if c["name"] == "square"]
    per_step = sum(c["seconds"] for c in grad if c["name"] != "sanity") / max(
        1, sum(c["backward"] for c in grad if c["name"] != "sanity")
    )
    per_query = sum(c["seconds"] for c in fwd_only) / max(1, sum(c["forward"] for c in fwd_only))
    rows = [
        "| member | images attacked | broke first | forward / image | backward / image | "
        "seconds | share of time |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for c in res.costs:
        rows.append(
            f"| {c['name']} | {c['attacked']} | {c['broke']} | {c['forward'] / n:.0f} | "
            f"{c['backward'] / n:.0f} | {c['seconds']:.0f} | {c['seconds'] / total:.0%} |"
        )
    aa = autoattack_passes(res.broken_by, k)
    aa_rows = [
        "| AutoAttack member (published budget) | forward / image | backward / image | "
        "seconds at robustcv's cost per pass |",
        "| --- | --- | --- | --- |",
    ]
    aa_total = 0.0
    for name, (f, b) in aa.items():
        sec = b * per_step + (f - b) * per_query
        aa_total += sec
        aa_rows.append(f"| {name} | {f / n:.0f} | {b / n:.0f} | {sec:.0f} (estimate) |")
    attacks_only = sum(c["seconds"] for c in res.costs if c["name"] != "sanity")
    lines = [
        f"## Default ensemble: where the time goes ({args.model}, {n} Fashion-MNIST test "
        f"images, L-inf eps {args.eps:g})",
        "",
        f"Reproduce: `python benchmarks/ensemble_cost.py --n {n}`  ",
        f"Machine: {platform.machine()}, {torch.get_num_threads()} threads, torch "
        f"{torch.__version__}",
        "",
        f"Robust accuracy {res.accuracy[0]:.3f} (clean {res.clean_accuracy:.3f}); "
        f"{res.forward_passes / n:.0f} forward and {res.backward_passes / n:.0f} backward "
        f"passes per image; {res.seconds:.0f} s in all.",
        "",
        *rows,
        "",
        *aa_rows,
        "",
        f"AutoAttack standard, estimated: {aa_total:.0f} s; robustcv's members "
        f"{attacks_only:.0f} s ({attacks_only / aa_total:.2f}x), with the sanity checks "
        f"{total:.0f} s ({total / aa_total:.2f}x). Cost per pass measured here: "
        f"{per_step * 1e3:.2f} ms per gradient step, {per_query * 1e3:.2f} ms per query, per "
        "image.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
