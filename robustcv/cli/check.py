"""``robustcv check DIR --min-acc ... --min-robust-acc V@NORM:EPS ...``: gate CI on an audit.

Exit codes: 0 every threshold holds, 1 at least one is violated (each is named, value vs
threshold), 2 bad usage or input (missing DIR, no results.json, unknown metric, malformed
threshold, an eps not in the audit's grid), 3 internal error.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

NAME = "check"


def add_parser(
    sub: Any,
    *,
    common: Callable[..., None],
    model_args: Callable[[argparse.ArgumentParser], None],
) -> None:
    """Add the ``check`` command to the CLI's subparsers."""
    p = sub.add_parser(
        NAME,
        help="check an audit against thresholds (exit 1 naming each violation)",
        description="Check an audit's results.json against thresholds; exit 0 when all hold, "
        "1 naming each violated one, 2 on bad usage or input. Point estimates are compared.",
    )
    from robustcv.cli._common import path_arg

    p.add_argument(
        "dir", type=path_arg, metavar="DIR", help="the audit folder (holding results.json)"
    )
    from robustcv.audit.checks import all_checks

    g = p.add_argument_group("thresholds (offered by the registered suites)")
    for name, (suite, spec) in all_checks().items():
        g.add_argument(
            f"--{name}",
            action="append",
            default=[],
            metavar=spec.metavar,
            help=f"{spec.description}, e.g. {spec.example} ({suite} suite; repeatable)",
        )
    p.add_argument("--json", action="store_true", help="print machine-readable JSON on stdout")
    p.add_argument("--quiet", action="store_true", help="print only the violations")


def run(args: argparse.Namespace) -> int:
    """Run ``robustcv check``; returns the exit code."""
    from robustcv.audit.checks import all_checks
    from robustcv.cli._common import EXIT_CHECK_FAILED, EXIT_OK, emit
    from robustcv.report.check import check, parse_threshold

    thresholds = [
        parse_threshold(name, value)
        for name in all_checks()
        for value in getattr(args, name.replace("-", "_"), [])
    ]
    res = check(args.dir, thresholds)
    shown = res.failures if args.quiet else res.outcomes
    lines = [o.text for o in shown]
    failed = len(res.failures)
    lines.append(
        f"all {len(res.outcomes)} checks passed"
        if res.passed
        else f"{failed} of {len(res.outcomes)} checks failed"
    )
    emit(args, res.to_dict(), "\n".join(lines))
    return EXIT_OK if res.passed else EXIT_CHECK_FAILED
