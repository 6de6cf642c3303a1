"""What every ``robustcv`` command shares: exit codes, the parser class, common options, output.

Command modules (``robustcv/cli/<command>.py``) import from here, never from
:mod:`robustcv.cli.main`, which only builds the parser and dispatches to them.

Exit codes, the same for every command: 0 ok, 1 a check or threshold failed, 2 bad usage or
input (a one-line message, no traceback), 3 internal error, 141 stdout was closed early (a
reader such as ``head`` stopped reading; nothing is printed).
"""

from __future__ import annotations

import argparse
import errno
import json
import math
import os
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from robustcv.audit.config import MAX_WORKERS
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
    "check_device",
    "check_numbers",
    "emit",
    "load_model_and_data",
    "os_error_message",
    "output_dir",
    "output_file",
    "parse_preprocess",
    "parse_size",
    "path_arg",
    "size_arg",
    "spec_arg",
    "table",
]

EXIT_OK, EXIT_CHECK_FAILED, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3
EXIT_BROKEN_PIPE = 141
"""Exit code when stdout is closed before the output is written (``robustcv list | head``):
128 + SIGPIPE, what a shell reports for a command that a closed pipe stopped, so scripts with
``set -o pipefail`` see the same status as for any other Unix tool."""


class Parser(argparse.ArgumentParser):
    """argparse that exits with code 2 and a one-line message (with a "did you mean")."""

    def error(self, message: str) -> None:  # type: ignore[override]
        """Print a one-line usage error and exit with :data:`EXIT_USAGE`."""
        hint = self._suggestion(message)
        self.exit(EXIT_USAGE, f"robustcv: error: {message}{hint} (see '{self.prog} --help')\n")

    _argv: Sequence[str] = ()

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        """argparse's, remembering the arguments (to suggest an option of the command used)."""
        self._argv = list(sys.argv[1:] if args is None else args)
        return super().parse_known_args(args, namespace)

    def _options(self, argv: Sequence[str]) -> list[str]:
        """The long options of this parser, or of the sub-command that ``argv`` names."""
        out = [o for a in self._actions for o in a.option_strings if o.startswith("--")]
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                for i, word in enumerate(argv):
                    sub = action.choices.get(word)
                    if isinstance(sub, Parser):
                        return sorted(set(out + sub._options(argv[i + 1 :])))
        return sorted(set(out))

    def _suggestion(self, message: str) -> str:
        """``"; did you mean ..."`` for an invalid choice or an unknown option, else ``""``."""
        import difflib

        choice = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if choice:
            known = re.findall(r"'([^']*)'", choice.group(2))
            wrong, cutoff = choice.group(1), 0.6
        else:
            unknown = re.search(r"unrecognized arguments: (\S+)", message)
            if not unknown or not unknown.group(1).startswith("--"):
                return ""
            known = self._options(self._argv)
            wrong, cutoff = unknown.group(1).split("=", 1)[0], 0.7
        close = difflib.get_close_matches(wrong, known, n=2, cutoff=cutoff)
        return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


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
    g.add_argument(
        "--device", type=spec_arg, default=None, help="cpu, cuda or cuda:N (default: cpu)"
    )
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
    p.add_argument(
        "--model",
        type=spec_arg,
        required=True,
        help="zoo:NAME, model.onnx, model.pt, file.py:factory",
    )
    p.add_argument(
        "--weights",
        type=path_arg,
        default=None,
        help="weights for a factory (.safetensors or state_dict)",
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
        type=spec_arg,
        required=True,
        help="fashion-mnist, npz:F, idx:DIR, folder:DIR, cifar10:DIR, imagenet-c:DIR#fog/3, "
        "cifar-c:DIR#fog/3",
    )
    p.add_argument("--split", type=spec_arg, default="test")


def load_model_and_data(args: argparse.Namespace) -> tuple[Any, Any]:
    """The model and dataset that :func:`add_model_args` options (and ``--limit``) name."""
    from robustcv.data.loading import load_dataset
    from robustcv.models.loading import load_model

    pre = parse_preprocess(args.preprocess)
    model = load_model(
        args.model, weights=args.weights, num_classes=args.num_classes, device=args.device, **pre
    )
    data = load_dataset(args.data, split=args.split, limit=args.limit)
    if len(data) == 0:
        raise InputError(
            f"--data {args.data} holds no images (split '{args.split}'); give a dataset with at "
            "least one image"
        )
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


# ----------------------------------------------------------------------------- user input checks


def path_arg(text: str) -> str:
    """An argparse ``type=`` for a path: refuses an empty one (``--out ''``).

    Example:
        >>> path_arg("out")
        'out'
        >>> path_arg("  ")
        Traceback (most recent call last):
        ...
        argparse.ArgumentTypeError: empty path; give a file or folder name
    """
    if not text.strip():
        raise argparse.ArgumentTypeError("empty path; give a file or folder name")
    if "\x00" in text:
        raise argparse.ArgumentTypeError(f"{text!r} holds a NUL byte; give a plain path")
    return text


def spec_arg(text: str) -> str:
    """An argparse ``type=`` for a name or spec (``--model``, ``--data``): refuses an empty one.

    Example:
        >>> spec_arg("zoo:fmnist-cnn")
        'zoo:fmnist-cnn'
    """
    if not text.strip():
        raise argparse.ArgumentTypeError("empty value; see --help for what it takes")
    if "\x00" in text:
        raise argparse.ArgumentTypeError(f"{text!r} holds a NUL byte")
    return text


_MINIMA: tuple[tuple[str, str, int], ...] = (
    ("limit", "--limit", 1),
    ("batch_size", "--batch-size", 1),
    ("workers", "--workers", 1),
    ("epochs", "--epochs", 1),
    ("eval_limit", "--eval-limit", 1),
    ("num_classes", "--num-classes", 1),
    ("steps", "--steps", 1),
    ("seed", "--seed", 0),
)
"""Integer options every command shares the meaning of: (dest, flag, smallest allowed)."""

_FLOATS: tuple[tuple[str, str], ...] = (("lr", "--lr"), ("eps", "--eps"))
"""Float options (where they are floats: ``train --eps``): they must be finite."""


def check_numbers(args: argparse.Namespace) -> None:
    """Refuse out-of-range numeric options of any command (``--limit 0``, ``--seed -1``, ...).

    argparse already refuses what is not an int (``--limit 2.5``).

    Raises:
        InputError: naming the flag and the allowed range.

    Example:
        >>> check_numbers(argparse.Namespace(limit=0))
        Traceback (most recent call last):
        ...
        robustcv.core.errors.InputError: --limit must be >= 1, got 0
    """
    for dest, flag, low in _MINIMA:
        value = getattr(args, dest, None)
        if isinstance(value, bool) or not isinstance(value, int):
            continue
        if value < low:
            raise InputError(f"{flag} must be >= {low}, got {value}")
        if dest == "workers" and value > MAX_WORKERS:
            raise InputError(
                f"--workers {value} is too many; use at most {MAX_WORKERS} (one per CPU is the "
                "useful maximum)"
            )
        if value >= 2**63:
            raise InputError(f"{flag} is too large ({value}); use a value below 2**63")
    for dest, flag in _FLOATS:
        value = getattr(args, dest, None)
        if isinstance(value, float) and not math.isfinite(value):
            raise InputError(f"{flag} must be a finite number, got {value}")


def check_device(spec: str | None) -> str | None:
    """Check ``--device`` before any work: an unavailable device is an :class:`InputError`.

    Uses :func:`robustcv.core.devices.resolve_device`, which names the devices there are.

    Example:
        >>> check_device(None), check_device("cpu")
        (None, 'cpu')
    """
    if spec is None:
        return None
    from robustcv.core.devices import resolve_device

    resolve_device(spec, name="--device")
    return spec


def _nearest_existing(path: Path) -> Path:
    probe = path
    while not os.path.lexists(probe) and probe.parent != probe:
        probe = probe.parent
    return probe


def _check_creatable(path: Path, flag: str, what: str, given: Path) -> None:
    """The nearest existing folder at or above ``path`` must be a writable folder."""
    base = _nearest_existing(path)
    if not base.is_dir():
        raise InputError(
            f"{flag} {given}: {base} is a file, so the {what} cannot be created under it; "
            "choose another path"
        )
    if not os.access(base, os.W_OK | os.X_OK):
        raise InputError(
            f"{flag} {given}: no permission to write in {base}; choose a folder you can write to"
        )


def output_dir(path: str | os.PathLike[str], flag: str) -> Path:
    """Check an output folder before any work: not empty, not a file, creatable and writable.

    Raises:
        InputError: naming ``flag``, the path and the fix.

    Example:
        >>> import tempfile
        >>> output_dir(tempfile.mkdtemp(), "--out").is_dir()
        True
    """
    text = os.fspath(path)
    if not str(text).strip():
        raise InputError(f"{flag} is empty; give a folder name, e.g. {flag} out")
    out = Path(text).expanduser()
    if os.path.lexists(out) and not out.exists():
        raise InputError(f"{flag} {out} is a broken symbolic link; give a folder path")
    if out.exists() and not out.is_dir():
        raise InputError(
            f"{flag} {out} is a file, not a folder; give a folder path (new or existing) or "
            "move the file away"
        )
    _check_creatable(out, flag, "folder", out)
    return out


def output_file(path: str | os.PathLike[str], flag: str, default_name: str) -> Path:
    """Check an output file: not empty; an existing folder means ``folder/default_name``.

    Raises:
        InputError: naming ``flag``, the path and the fix.

    Example:
        >>> import tempfile
        >>> d = tempfile.mkdtemp()
        >>> output_file(d, "--out", "report.html").name
        'report.html'
    """
    text = os.fspath(path)
    if not str(text).strip():
        raise InputError(f"{flag} is empty; give a file name, e.g. {flag} {default_name}")
    out = Path(text).expanduser()
    if out.is_dir():
        out = out / default_name
        if out.is_dir():
            raise InputError(f"{flag} {out} is a folder; give a file name")
    if os.path.lexists(out) and not out.exists():
        raise InputError(f"{flag} {out} is a broken symbolic link; give a file path")
    if out.exists() and not os.access(out, os.W_OK):
        raise InputError(f"{flag} {out}: no permission to overwrite it; choose another file")
    _check_creatable(out.parent, flag, "file", out)
    return out


_PATH_ARGS: tuple[tuple[str, str], ...] = (
    ("out", "--out"),
    ("dest", "--dest"),
    ("dir", "DIR"),
    ("dir_a", "DIR_A"),
    ("dir_b", "DIR_B"),
    ("config", "--config"),
    ("weights", "--weights"),
    ("model", "--model"),
    ("data", "--data"),
    ("fit_data", "--fit-data"),
    ("ood_data", "--ood-data"),
)
"""Options naming the user's files and folders (a path, or a spec such as ``npz:FILE#x``)."""

_ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EROFS, getattr(errno, "EDQUOT", errno.ENOSPC)}


def _path_candidates(value: str) -> Iterator[str]:
    """Paths a spec may name: itself, after ``kind:``, without ``#fragment`` or ``:factory``."""
    _, sep, rest = value.partition(":")
    for text in (value, rest) if sep and rest else (value,):
        yield text
        base = text.split("#", 1)[0]
        yield base
        if ":" in base:
            yield base.rsplit(":", 1)[0]


def _related(a: str, b: str) -> bool:
    """``a`` and ``b`` are the same path, or one holds the other."""
    return (
        a == b or a.startswith(b.rstrip(os.sep) + os.sep) or b.startswith(a.rstrip(os.sep) + os.sep)
    )


def os_error_message(err: OSError, args: argparse.Namespace) -> str | None:
    """A one-line message for an OS error on a path the user named, else None (a robustcv bug).

    The error's file must be a path an option names (``--out``, ``--dest``, ``DIR``, the file of
    ``--data npz:FILE`` or ``--model file.py:factory``, ...), one inside it, or a folder above it;
    a full or read-only disk is always the environment's.

    Example:
        >>> import argparse, errno
        >>> err = PermissionError(errno.EACCES, "Permission denied", "/data/out/x.png")
        >>> print(os_error_message(err, argparse.Namespace(out="/data/out")))
        --out /data/out: cannot access /data/out/x.png: Permission denied; check its permissions
        >>> os_error_message(err, argparse.Namespace(out="/elsewhere")) is None
        True
    """
    names = [f for f in (err.filename, err.filename2) if f is not None]
    where = os.fsdecode(names[0]) if names else None
    reason = err.strerror or type(err).__name__
    if err.errno in _ENVIRONMENT_ERRNOS:
        return (
            f"cannot write {where or 'the output'}: {reason}; free some space or choose a "
            "writable disk"
        )
    for name in names:
        target = os.path.abspath(os.path.expanduser(os.fsdecode(name)))
        for dest, flag in _PATH_ARGS:
            values = getattr(args, dest, None)
            for value in values if isinstance(values, list) else [values]:
                if not isinstance(value, str) or not value.strip():
                    continue
                for cand in _path_candidates(value):
                    user = os.path.abspath(os.path.expanduser(cand))
                    exact = user == target
                    if not (exact or _related(user, target)):
                        continue
                    if isinstance(err, FileNotFoundError) and not exact:
                        continue
                    return f"{flag} {value}: {_os_fix(err, target, reason)}"
    return None


def _os_fix(err: OSError, target: str, reason: str) -> str:
    if isinstance(err, PermissionError):
        return f"cannot access {target}: {reason}; check its permissions"
    if isinstance(err, (FileExistsError, NotADirectoryError)):
        return (
            f"cannot use {target}: {reason} (a file is where a folder is needed); choose "
            "another path or move the file away"
        )
    if isinstance(err, IsADirectoryError):
        return f"cannot use {target}: {reason} (a folder where a file is needed); give a file"
    if isinstance(err, FileNotFoundError):
        return f"{target} does not exist ({reason}); check the path"
    return f"cannot use {target}: {reason}; check the path"
