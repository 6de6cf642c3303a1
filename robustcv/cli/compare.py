"""``robustcv compare DIR_A DIR_B [--out FILE.html] [--json]``: two audits side by side."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

NAME = "compare"


def add_parser(
    sub: Any,
    *,
    common: Callable[..., None],
    model_args: Callable[[argparse.ArgumentParser], None],
) -> None:
    """Add the ``compare`` command to the CLI's subparsers."""
    p = sub.add_parser(
        NAME,
        help="compare two audits: headline metrics, deltas, what is within the noise",
        description="Print the headline metrics of two audits side by side with B - A deltas, "
        "marking differences that are within the noise; optionally write an HTML version.",
    )
    from robustcv.cli._common import path_arg

    p.add_argument(
        "dir_a", type=path_arg, metavar="DIR_A", help="audit A (folder holding results.json)"
    )
    p.add_argument("dir_b", type=path_arg, metavar="DIR_B", help="audit B")
    p.add_argument(
        "--out",
        type=path_arg,
        default=None,
        metavar="FILE.html",
        help="also write an HTML page (a folder: FOLDER/comparison.html)",
    )
    p.add_argument("--json", action="store_true", help="print machine-readable JSON on stdout")
    p.add_argument("--quiet", action="store_true", help="print only the table")


def run(args: argparse.Namespace) -> int:
    """Run ``robustcv compare``; returns the exit code."""
    from robustcv.cli._common import EXIT_OK, output_file
    from robustcv.cli._common import emit as _emit
    from robustcv.cli._common import table as _table
    from robustcv.report.compare import (
        RANK_TEST,
        compare,
        comparison_table,
        write_comparison_html,
    )

    out = None if args.out is None else output_file(args.out, "--out", "comparison.html")
    res = compare(args.dir_a, args.dir_b)
    header, rows = comparison_table(res)
    text = f"A: {res.a_label}\nB: {res.b_label}\n" + _table(rows, header)
    if not args.quiet:
        for r in res.rows:
            if r.test == RANK_TEST and r.p_value is not None:
                sizes = [str((e or {}).get("n") or "?") for e in (r.a, r.b)]
                text += (
                    f"\n{r.label}: {RANK_TEST} on the per-image values "
                    f"(N = {sizes[0]} vs {sizes[1]}), p = {r.p_value:.3g}"
                )
        text += f"\n{res.rule}"
        if res.only_a or res.only_b:
            text += f"\nin one audit only: A {len(res.only_a)}, B {len(res.only_b)} metrics"
    payload = res.to_dict()
    if out is not None:
        path = write_comparison_html(res, out)
        payload["html"] = str(path)
        if not args.quiet:
            text += f"\nwrote {path}"
    _emit(args, payload, text)
    return EXIT_OK
