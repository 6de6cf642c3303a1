"""What every ``robustcv`` command shares: exit codes, the parser class, common options, output.

Command modules (``robustcv/cli/<command>.py``) import from here, never from
:mod:`robustcv.cli.main`, which only builds the parser and dispatches to them.

Exit codes, the same for every command: 0 ok, 1 a check or threshold failed, 2 bad usage or
input (a one-line message, no traceback), 3 internal error, 141 stdout was closed early (a
reader such as ``head`` stopped reading; nothing is printed).
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Sequence
from typing import Any

from robustcv.core.errors import InputError
from robustcv.core.results import to_jsonable

__all__ = [
    "EXIT_BROKEN_PIPE",
    "EXIT_CHECK_FAILED",
    "EXIT_INTERNAL",
    "EXIT_OK",
    "EXIT_USAGE",
    "Parser",
    "add_common_options",
    "add_model_args",
    "emit",
    "load_model_and_data",
    "parse_preprocess",
    "parse_size",
    "size_arg",
    "table",
]

EXIT_OK, EXIT_CHECK_FAILED, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3
EXIT_BROKEN_PIPE = 141
"""Exit code when stdout is closed before the output is written (``robustcv list | head``):
128 + SIGPIPE, what a shell reports for a command that a closed pipe stopped, so scripts with
``set -o pipefail`` see the same status as for any other Unix tool."""


class Parser(argparse.ArgumentParser):
    """argparse that exits with code 2 and a one-line message."""

    def error(self, message: str) -> None:  # type: ignore[override]
        """Print a one-line usage error and exit with :data:`EXIT_USAGE`."""
        self.exit(EXIT_USAGE, f"robustcv: error: {message} (see '{self.prog} --help')\n")


def add_common_options(p: argparse.ArgumentParser, *, batch_size: int = 256) -> None:
    """Add ``--seed``, ``--device``, ``--batch-size``, ``--json`` and ``--quiet`` to a command.

    Example:
        >>> p = argparse.ArgumentParser()
        >>> add_common_options(p, batch_size=64)
        >>> p.parse_args(["--json"]).batch_size
        64
    """
    g = p.add_argument_group("common options")
    g.add_argument("--seed", type=int, default=0, help="seed for every random choice (default 0)")
    g.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cpu)")
    g.add_argument(
        "--batch-size",
        type=int,
        default=batch_size,
        help=f"images per batch (default {batch_size})",
    )
    g.add_argument("--json", action="store_true", help="print machine-readable JSON on stdout")
    g.add_argument("--quiet", action="store_true", help="no progress bars or chatter")


def parse_preprocess(items: Sequence[str]) -> dict[str, Any]:
    """Parse ``--preprocess`` values such as ``mean=0.5,0.4,std=0.2,0.2`` or ``range=0,255``.

    Raises:
        InputError: a value that is not ``mean=...``, ``std=...`` or ``range=LO,HI``.

    Example:
        >>> parse_preprocess(["mean=0.5,0.4,std=0.2,0.25", "range=0,255"])
        {'mean': [0.5, 0.4], 'std': [0.2, 0.25], 'input_range': (0.0, 255.0)}
    """
    out: dict[str, Any] = {}
    pattern = re.compile(r"(mean|std|range)=([^=]*?)(?=,(?:mean|std|range)=|$)")
    for item in items:
        matches = list(pattern.finditer(item))
        if not matches or "".join(m.group(0) for m in matches).replace(",", "") != item.replace(
            ",", ""
        ):
            raise InputError(
                f"cannot parse --preprocess '{item}'; use e.g. mean=0.485,0.456,0.406,"
                "std=0.229,0.224,0.225 or range=0,255"
            )
        for m in matches:
            try:
                values = [float(v) for v in m.group(2).split(",") if v.strip()]
            except ValueError as err:
                raise InputError(
                    f"--preprocess {m.group(1)} needs numbers, got '{m.group(2)}'"
                ) from err
            if not values:
                raise InputError(f"--preprocess {m.group(1)}= has no values")
            if m.group(1) == "range":
                if len(values) != 2:
                    raise InputError("--preprocess range needs two numbers, e.g. range=0,255")
                out["input_range"] = (values[0], values[1])
            else:
                out[m.group(1)] = values
    return out


def add_model_args(p: argparse.ArgumentParser) -> None:
    """Add ``--model``, ``--weights``, ``--preprocess``, ``--num-classes``, ``--data``, ``--split``.

    Example:
        >>> p = argparse.ArgumentParser()
        >>> add_model_args(p)
        >>> p.parse_args(["--model", "zoo:fmnist-cnn", "--data", "fmnist"]).split
        'test'
    """
    p.add_argument("--model", required=True, help="zoo:NAME, model.onnx, model.pt, file.py:factory")
    p.add_argument(
        "--weights", default=None, help="weights for a factory (.safetensors or state_dict)"
    )
    p.add_argument(
        "--preprocess",
        action="append",
        default=[],
        metavar="KEY=V,...",
        help="preprocessing inside the model: mean=..,std=.. and/or range=0,255",
    )
    p.add_argument("--num-classes", type=int, default=None)
    p.add_argument(
        "--data",
        required=True,
        help="fashion-mnist, npz:F, idx:DIR, folder:DIR, cifar10:DIR, imagenet-c:DIR#fog/3, "
        "cifar-c:DIR#fog/3",
    )
    p.add_argument("--split", default="test")


def load_model_and_data(args: argparse.Namespace) -> tuple[Any, Any]:
    """The model and dataset that :func:`add_model_args` options (and ``--limit``) name."""
    from robustcv.data.loading import load_dataset
    from robustcv.models.loading import load_model

    pre = parse_preprocess(args.preprocess)
    model = load_model(
        args.model, weights=args.weights, num_classes=args.num_classes, device=args.device, **pre
    )
    data = load_dataset(args.data, split=args.split, limit=args.limit)
    return model, data


def emit(args: argparse.Namespace, payload: Any, text: str) -> None:
    """Print ``payload`` as JSON when ``--json`` was given, else ``text``.

    Example:
        >>> emit(argparse.Namespace(json=True), {"n": 3}, "three")
        {
          "n": 3
        }
    """
    if args.json:
        print(json.dumps(to_jsonable(payload), indent=2))
    else:
        print(text)


def table(rows: list[list[str]], header: list[str]) -> str:
    """A plain-text table: left-aligned columns, a dashed rule under the header.

    Example:
        >>> print(table([["fog", "0.5"]], ["corruption", "acc"]))
        corruption  acc
        ----------  ---
        fog         0.5
    """
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def parse_size(text: str) -> tuple[int, int]:
    """Parse an image size ``HxW`` (or ``N`` for NxN).

    Raises:
        InputError: not ``HxW`` or ``N`` with positive integers.

    Example:
        >>> parse_size("28x32"), parse_size("224")
        ((28, 32), (224, 224))
    """
    parts = str(text).lower().replace(" ", "").split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        values = []
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or min(values) < 1:
        raise InputError(f"cannot parse size '{text}'; write HxW, e.g. 224x224, or N for NxN")
    return values[0], values[1]


def size_arg(text: str) -> tuple[int, int]:
    """:func:`parse_size` as an argparse ``type=`` (a bad size becomes a usage error)."""
    try:
        return parse_size(text)
    except InputError as err:
        raise argparse.ArgumentTypeError(str(err)) from err
