"""``robustcv data fetch NAME``: download a dataset, checking every file's checksum."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from robustcv.cli._common import EXIT_OK, Parser, emit, output_dir, path_arg, spec_arg
from robustcv.core.errors import InputError

__all__ = ["NAME", "add_parser", "run"]

NAME = "data"


def add_parser(
    sub: Any,
    *,
    common: Callable[..., None],
    model_args: Callable[[argparse.ArgumentParser], None],
) -> None:
    """Add the ``data`` command (and its ``fetch`` action) to the ``robustcv`` sub-parsers."""
    p = sub.add_parser(NAME, help="dataset tools")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION", parser_class=Parser)
    f = dsub.add_parser("fetch", help="download a dataset with checksums")
    f.add_argument("name", choices=["fashion-mnist"])
    f.add_argument(
        "--dest", type=path_arg, default=None, help="folder (default: ~/.cache/robustcv/NAME)"
    )
    f.add_argument("--url", type=spec_arg, default=None, help="mirror base URL")
    common(f)


def run(args: argparse.Namespace) -> int:
    """Run ``robustcv data ACTION``; returns the exit code."""
    from robustcv.data.fashion_mnist import FASHION_MNIST_URL, fetch_fashion_mnist

    if getattr(args, "data_command", None) != "fetch":
        raise InputError(
            "'data' needs an action, e.g. 'robustcv data fetch fashion-mnist' "
            "(see 'robustcv data --help')"
        )
    if args.dest is not None:
        output_dir(args.dest, "--dest")
    folder = fetch_fashion_mnist(
        args.dest, base_url=args.url or FASHION_MNIST_URL, quiet=args.quiet
    )
    hint = "" if args.dest is None else f"; set ROBUSTCV_DATA={folder} to use it"
    emit(args, {"name": args.name, "folder": str(folder)}, f"{args.name} is in {folder}{hint}")
    return EXIT_OK
