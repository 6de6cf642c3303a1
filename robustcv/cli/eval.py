"""``robustcv eval --model M --data D``: clean accuracy with its 95% interval, per class."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from robustcv.cli._common import EXIT_OK, emit, load_model_and_data, table

__all__ = ["NAME", "add_parser", "run"]

NAME = "eval"


def add_parser(
    sub: Any,
    *,
    common: Callable[..., None],
    model_args: Callable[[argparse.ArgumentParser], None],
) -> None:
    """Add the ``eval`` command to the ``robustcv`` sub-parsers."""
    p = sub.add_parser(NAME, help="clean accuracy of a model on a dataset")
    model_args(p)
    p.add_argument("--limit", type=int, default=None, help="evaluate only N images")
    common(p)


def run(args: argparse.Namespace) -> int:
    """Run ``robustcv eval``; returns the exit code."""
    from robustcv.diagnostics.accuracy import accuracy

    model, data = load_model_and_data(args)
    res = accuracy(model, data, batch_size=args.batch_size, progress=False if args.quiet else None)
    payload = {
        "model": args.model,
        "data": args.data,
        "split": args.split,
        **res.to_dict(),
        "classes": data.classes,
    }
    per_class = table(
        [
            [str(c), data.classes[c] if c < len(data.classes) else str(c), f"{a:.4f}"]
            for c, a in sorted(res.per_class.items())
        ],
        ["class", "name", "accuracy"],
    )
    text = (
        f"{args.model} on {data.name}/{args.split} (N={res.n}): accuracy {res.accuracy:.4f} "
        f"(95% CI {res.ci95[0]:.4f}-{res.ci95[1]:.4f}), {res.seconds:.1f} s\n{per_class}"
    )
    emit(args, payload, text)
    return EXIT_OK
