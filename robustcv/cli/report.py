"""``robustcv report DIR [--out FILE.html]``: (re)write an audit's HTML report from results.json."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

NAME = "report"


def add_parser(
    sub: Any,
    *,
    common: Callable[..., None],
    model_args: Callable[[argparse.ArgumentParser], None],
) -> None:
    """Add the ``report`` command to the CLI's subparsers."""
    p = sub.add_parser(
        NAME,
        help="(re)write an audit's self-contained HTML report from its results.json",
        description="Write DIR/report.html (or --out) from DIR/results.json; runs no model.",
    )
    from robustcv.cli._common import path_arg

    p.add_argument(
        "dir", type=path_arg, metavar="DIR", help="the audit folder (holding results.json)"
    )
    p.add_argument(
        "--out",
        type=path_arg,
        default=None,
        metavar="FILE.html",
        help="default: DIR/report.html (a folder: FOLDER/report.html)",
    )
    p.add_argument("--json", action="store_true", help="print machine-readable JSON on stdout")
    p.add_argument("--quiet", action="store_true", help="no chatter")


def run(args: argparse.Namespace) -> int:
    """Run ``robustcv report``; returns the exit code."""
    from robustcv.cli._common import EXIT_OK, output_file
    from robustcv.cli._common import emit as _emit
    from robustcv.report.html import write_report

    out = None if args.out is None else output_file(args.out, "--out", "report.html")
    path = write_report(args.dir, out)
    size = path.stat().st_size
    _emit(args, {"report": str(path), "bytes": size}, f"wrote {path} ({size / 1e6:.2f} MB)")
    return EXIT_OK
