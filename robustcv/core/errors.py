"""Exception types shared by every robustcv module.

All errors caused by what a user passed in derive from :class:`InputError`, which is a
``ValueError``: the CLI turns them into a one-line message and exit code 2.
"""

from __future__ import annotations

__all__ = ["DataNotFoundError", "GradientUnavailableError", "InputError", "RobustcvError"]


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
