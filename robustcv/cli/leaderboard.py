"""``robustcv leaderboard [MODELS...] --data SPEC --out DIR``: many models, one comparable table.

Audits each model (default: every zoo model) into ``DIR/audits/<slug>/`` with common settings
(resumable: re-running reuses finished work), measures the headline robust accuracy (default
ensemble, L-inf 0.1, the first ``--robust-n`` test images) and writes ``DIR/leaderboard.json``,
``DIR/leaderboard.md`` and ``DIR/leaderboard.html``. See docs/leaderboard.md.
"""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Callable
from typing import Any

NAME = "leaderboard"


def add_parser(
    sub: Any,
    *,
    common: Callable[..., None],
    model_args: Callable[[argparse.ArgumentParser], None],
) -> None:
    """Add the ``leaderboard`` command to the CLI's subparsers."""
    from robustcv.cli._common import path_arg, spec_arg

    p = sub.add_parser(
        NAME,
        help="audit several models with common settings and write a comparable table",
        description="Audit each model (default: every zoo model) with the same suites, eps, "
        "corruptions, seed and limit (resumable, in DIR/audits/), measure the headline robust "
        "accuracy (default attack ensemble at L-inf 0.1), and write DIR/leaderboard.json, .md "
        "and .html (sortable, self-contained). See docs/leaderboard.md.",
    )
    p.add_argument(
        "models",
        nargs="*",
        type=spec_arg,
        metavar="MODELS",
        help="model specs (zoo:NAME, FILE.onnx, FILE.pt, file.py:factory); default: every zoo "
        "model",
    )
    p.add_argument(
        "--data",
        type=spec_arg,
        default="fashion-mnist",
        metavar="SPEC",
        help="the dataset every model is audited on (default fashion-mnist)",
    )
    p.add_argument(
        "--out",
        type=path_arg,
        required=True,
        metavar="DIR",
        help="leaderboard folder (new or to resume)",
    )
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first N images")
    p.add_argument(
        "--robust-n",
        type=int,
        default=1000,
        metavar="N",
        help="images of the headline robust accuracy (default 1000; 0: no headline column)",
    )
    from robustcv.audit.registry import selectable_suites

    p.add_argument(
        "--suites",
        default=None,
        help=f"comma-separated audit suites, from {','.join(selectable_suites())} or all "
        "(default: the default suites)",
    )
    p.add_argument(
        "--baseline",
        default=None,
        metavar="NAME",
        help="the row mCE is relative to (default: fmnist-cnn when it is a row, else the first)",
    )
    p.add_argument(
        "--eps",
        default=None,
        help="eps every audit's grid gets (default linf:0.05,0.1,l2:1.0)",
    )
    p.add_argument(
        "--config",
        type=path_arg,
        default=None,
        metavar="FILE",
        help="an audit config (YAML/JSON) shared by every audit",
    )
    p.add_argument(
        "--executor",
        choices=["in-process", "processes", "ray"],
        default=None,
        help="how audit units run (as for robustcv audit); the headline runs in this process",
    )
    p.add_argument("--workers", type=int, default=None, help="workers of --executor")
    p.add_argument(
        "--docs",
        type=path_arg,
        default=None,
        metavar="FILE.md",
        help="also replace the <!-- table:begin --> ... <!-- table:end --> section of FILE.md",
    )
    common(p)
    p.set_defaults(batch_size=None)


def run(args: argparse.Namespace) -> int:
    """Run ``robustcv leaderboard``; returns the exit code."""
    from robustcv.cli._common import EXIT_OK, emit, output_dir, table
    from robustcv.core.errors import InputError
    from robustcv.leaderboard import leaderboard
    from robustcv.leaderboard.render import cell_text

    if args.robust_n < 0:
        raise InputError(f"--robust-n must be >= 0, got {args.robust_n}")
    if args.workers is not None and args.executor == "in-process":
        raise InputError("--workers needs --executor processes or ray")
    output_dir(args.out, "--out")
    argv = list(getattr(args, "cli_argv", []) or [])
    shown = [a for a in argv if a not in ("--json", "--quiet")]
    res = leaderboard(
        args.models or None,
        args.data,
        out=args.out,
        limit=args.limit,
        robust_n=args.robust_n,
        suites=args.suites,
        seed=args.seed,
        executor=args.executor,
        workers=args.workers,
        progress=not args.quiet,
        baseline=args.baseline,
        eps=args.eps,
        config=args.config,
        device=args.device,
        batch_size=args.batch_size,
        command=("robustcv " + shlex.join(shown)) if shown else None,
        docs=args.docs,
    )
    header = ["model", *(c.label for c in res.columns)]
    rows = [
        [
            r.name,
            *(
                ("*" if r.cells[c.key].best else "") + cell_text(r.cells[c.key], c)
                if c.key in r.cells
                else "-"
                for c in res.columns
            ),
        ]
        for r in res.rows
    ]
    text = table(rows, header)
    if not args.quiet:
        text += f"\n* best: {res.rule}"
        text += "".join(f"\n- {n}" for n in res.notes)
        text += "".join(f"\n  {k:<5} {v}" for k, v in res.files.items())
    emit(args, res.to_dict(), text)
    return EXIT_OK
