"""The bad-input corpus harness: cases a real user gets wrong, each with the error it must get.

Every corpus file (``tests/test_bad_input_*.py``) lists :class:`ApiCase` and :class:`CliCase`
objects and parametrizes :func:`check_api` / :func:`check_cli` over them. A case asserts:

* API: the call raises ``error`` (default :class:`robustcv.core.errors.InputError`), and the
  message names every string of ``mentions`` (case-insensitive): the argument and, where there
  is one, the fix;
* CLI (run in-process through ``robustcv.cli.main.main(argv)``): exit code ``code`` (2 for a
  user's mistake), no Python traceback and no "internal error" on stderr, the one-line message
  names ``mentions``.

``argv`` and API callables receive the test's temporary folder, so cases can point at files a
fixture made (see :func:`bad_files`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from robustcv.core.errors import InputError


@dataclass(frozen=True)
class ApiCase:
    """A Python-API mistake: ``call(files)`` must raise ``error`` naming ``mentions``."""

    id: str
    call: Callable[[dict[str, Path]], Any]
    mentions: tuple[str, ...] = ()
    error: type[BaseException] = InputError
    warns: type[Warning] | None = None


@dataclass(frozen=True)
class CliCase:
    """A command-line mistake: ``robustcv ARGV`` must exit ``code`` with a clean message.

    ``argv`` items may hold ``{name}`` placeholders for the paths of :func:`bad_files` and
    ``{tmp}`` for the test's temporary folder.
    """

    id: str
    argv: Sequence[str]
    mentions: tuple[str, ...] = ()
    code: int = 2
    env: dict[str, str] = field(default_factory=dict)


def check_api(case: ApiCase, files: dict[str, Path]) -> None:
    """Run one API case."""
    with pytest.raises(case.error) as info:
        if case.warns is not None:
            with pytest.warns(case.warns):
                case.call(files)
        else:
            case.call(files)
    message = str(info.value).lower()
    for word in case.mentions:
        assert word.lower() in message, f"{case.id}: message does not name {word!r}: {message}"


def check_cli(case: CliCase, files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    """Run one CLI case in-process."""
    from robustcv.cli.main import main

    argv = [a.format(**{k: str(v) for k, v in files.items()}) for a in case.argv]
    old = {k: os.environ.get(k) for k in case.env}
    os.environ.update(case.env)
    try:
        code = main(argv)
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    out, err = capsys.readouterr()
    assert code == case.code, f"{case.id}: exit {code}, expected {case.code}; stderr: {err}"
    assert "Traceback" not in err, f"{case.id}: traceback on stderr:\n{err}"
    assert "internal error" not in err, f"{case.id}: blamed on robustcv:\n{err}"
    text = (err + out).lower()
    for word in case.mentions:
        assert word.lower() in text, f"{case.id}: output does not name {word!r}: {err}"


def bad_files(tmp: Path) -> dict[str, Path]:
    """Common good and bad input files under ``tmp`` (made once per test)."""
    rng = np.random.default_rng(0)
    out: dict[str, Path] = {"tmp": tmp}
    good = tmp / "good.npz"
    np.savez(good, x=rng.integers(0, 256, (16, 28, 28), dtype=np.uint8), y=np.arange(16) % 10)
    out["good"] = good
    rgb = tmp / "rgb32.npz"
    np.savez(rgb, x=rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8), y=np.arange(8) % 10)
    out["rgb32"] = rgb
    empty = tmp / "empty.npz"
    np.savez(empty, x=np.zeros((0, 28, 28), np.uint8), y=np.zeros((0,), np.int64))
    out["empty"] = empty
    nolabels = tmp / "nolabels.npz"
    np.savez(nolabels, x=rng.integers(0, 256, (4, 28, 28), dtype=np.uint8))
    out["nolabels"] = nolabels
    garbage = tmp / "garbage.npz"
    garbage.write_bytes(b"this is not a zip file")
    out["garbage"] = garbage
    text = tmp / "file.txt"
    text.write_text("hello")
    out["file"] = text
    folder = tmp / "folder"
    folder.mkdir(exist_ok=True)
    out["folder"] = folder
    factory = tmp / "factory.py"
    factory.write_text(
        "from torch import nn\n"
        "def build(num_classes=10):\n"
        "    return nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, num_classes))\n"
        "def broken(num_classes=10):\n"
        "    raise RuntimeError('my factory is broken')\n"
    )
    out["factory"] = factory
    syntax = tmp / "syntax_error.py"
    syntax.write_text("def build(:\n    pass\n")
    out["syntax"] = syntax
    return out
