"""Exception types shared by every robustcv module.

All errors caused by what a user passed in derive from :class:`InputError`, which is a
``ValueError``: the CLI turns them into a one-line message and exit code 2.
"""

from __future__ import annotations

import traceback
from pathlib import Path

__all__ = [
    "DataNotFoundError",
    "GradientUnavailableError",
    "InputError",
    "ModelDataMismatchError",
    "RobustcvError",
    "UserCodeError",
    "user_code_error",
]

_PACKAGE_DIR = Path(__file__).resolve().parents[1]


class RobustcvError(Exception):
    """Base class of every error robustcv raises on purpose."""


class InputError(RobustcvError, ValueError):
    """A user-supplied value is invalid; the message names the problem and the fix.

    Example:
        >>> try:
        ...     raise InputError("x has 3 dims; pass a (B,C,H,W) batch")
        ... except ValueError as err:
        ...     print(err)
        x has 3 dims; pass a (B,C,H,W) batch
    """


class DataNotFoundError(InputError, FileNotFoundError):
    """A dataset or file could not be found; the message says how to get it."""


class GradientUnavailableError(InputError):
    """The model cannot provide input gradients (e.g. an ONNX model run by onnxruntime)."""


class ModelDataMismatchError(InputError):
    """The model cannot take the images it was given (channels, size, mean/std length).

    Raised by :func:`robustcv.core.check_model_fits` and by :meth:`robustcv.Model.logits` when
    preprocessing or the network's forward pass fails on the shape of its input. The message
    has one format everywhere: ``the model takes <what it takes>; <the data> has <what it has>:
    <how to fix>``.

    Example:
        >>> err = ModelDataMismatchError("the model takes 1-channel images; ...")
        >>> isinstance(err, InputError)
        True
    """

    takes: str = ""
    """What the model takes (``"1-channel 28x28 images"``)."""
    detail: str = ""
    """The first line of the error that revealed the mismatch ("" when none)."""
    exact: bool = False
    """Whether ``takes`` was read off the model's own declaration rather than guessed."""


class UserCodeError(InputError):
    """The user's own code or file failed.

    A model factory that raised or does not parse, or a weights, ONNX or TorchScript file that
    cannot be read.

    The message carries the original exception's type and message and, where the traceback
    reaches the user's code, its ``file:line``.

    Example:
        >>> print(UserCodeError("model factory 'net.py:build' raised ZeroDivisionError: ..."))
        model factory 'net.py:build' raised ZeroDivisionError: ...
    """


def _library_dirs() -> tuple[Path, ...]:
    """Folders of installed libraries and the standard library (not the user's code)."""
    import sysconfig

    dirs = {_PACKAGE_DIR}
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        try:
            dirs.add(Path(sysconfig.get_paths()[key]).resolve())
        except (KeyError, OSError):
            continue
    return tuple(dirs)


def _user_frame(err: BaseException) -> str | None:
    """``file:line`` in the user's code where ``err`` was raised.

    The innermost traceback frame outside robustcv, installed libraries and the standard
    library; failing that, the innermost one outside robustcv. For a ``SyntaxError``, the line
    that does not parse.
    """
    if isinstance(err, SyntaxError) and err.filename:
        return f"{err.filename}:{err.lineno}" if err.lineno else str(err.filename)
    libraries = _library_dirs()
    own = fallback = None
    for frame in traceback.extract_tb(err.__traceback__):
        name = frame.filename
        if name.startswith("<"):
            continue
        try:
            path = Path(name).resolve()
        except (OSError, ValueError):
            continue
        if path.is_relative_to(_PACKAGE_DIR):
            continue
        fallback = f"{name}:{frame.lineno}"
        if not any(path.is_relative_to(d) for d in libraries):
            own = fallback
    return own or fallback


def user_code_error(err: BaseException, what: str) -> UserCodeError:
    """A :class:`UserCodeError` for ``err``, raised by the user's code or file ``what``.

    The message names ``what``, the original exception's type and first line, and the
    ``file:line`` where it was raised in the user's code (for a ``SyntaxError``, the line that
    does not parse). Raise it ``from err`` so the full traceback stays attached.

    Args:
        err: the exception the user's code raised.
        what: what was being run, e.g. ``"model factory 'net.py:build'"``.

    Example:
        >>> try:
        ...     compile("def f(:", "net.py", "exec")
        ... except SyntaxError as e:
        ...     print(user_code_error(e, "model file net.py"))
        model file net.py failed: SyntaxError: invalid syntax (at net.py:1)
    """
    if isinstance(err, SyntaxError):
        first = err.msg or "invalid syntax"
    else:
        text = str(err).strip()
        first = text.splitlines()[0] if text else ""
    kind = type(err).__name__
    where = _user_frame(err)
    at = f" (at {where})" if where else ""
    detail = f"{kind}: {first}" if first else kind
    return UserCodeError(f"{what} failed: {detail}{at}")
