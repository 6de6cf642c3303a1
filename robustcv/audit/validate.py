"""Small validators for audit config sections (each raises ``InputError`` naming the field).

Suites use them in their config dataclasses' ``__post_init__``.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Sequence
from typing import Any

from robustcv.core.errors import InputError

__all__ = ["float_tuple", "int_tuple", "positive_int", "str_tuple", "suggest"]


def suggest(name: str, known: Sequence[str]) -> str:
    """``"; did you mean 'x'?"`` for a close match of ``name`` in ``known``, else ``""``.

    Example:
        >>> suggest("clen", ["clean", "ood"])
        "; did you mean 'clean'?"
    """
    close = difflib.get_close_matches(name, list(known), n=2, cutoff=0.5)
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def positive_int(value: Any, name: str, *, allow_none: bool = False, minimum: int = 1) -> Any:
    """``value`` when it is an int >= ``minimum`` (or None when allowed), else raise.

    Example:
        >>> positive_int(3, "n"), positive_int(None, "n", allow_none=True)
        (3, None)
    """
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        none = " or null (all)" if allow_none else ""
        raise InputError(f"{name} must be an int >= {minimum}{none}, got {value!r}")
    return value


def str_tuple(value: Any, name: str) -> tuple[str, ...]:
    """A tuple of non-empty names from a list or a comma-separated string.

    Example:
        >>> str_tuple("a, b", "x")
        ('a', 'b')
    """
    if isinstance(value, str):
        items: list[Any] = [v.strip() for v in value.split(",") if v.strip()]
    elif isinstance(value, Sequence):
        items = list(value)
    else:
        raise InputError(f"{name} must be a list of names or a comma-separated string")
    if not all(isinstance(v, str) and v.strip() for v in items):
        raise InputError(f"{name} must hold non-empty strings, got {value!r}")
    return tuple(v.strip() for v in items)


def float_tuple(value: Any, name: str, *, positive: bool = True) -> tuple[float, ...]:
    """A non-empty tuple of finite (positive) numbers from a number or a list.

    Example:
        >>> float_tuple([1, 0.5], "factors")
        (1.0, 0.5)
    """
    items = [value] if isinstance(value, (int, float)) else value
    if isinstance(items, str) or not isinstance(items, Sequence) or not items:
        raise InputError(f"{name} must be a non-empty list of numbers, got {value!r}")
    out = []
    for v in items:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise InputError(f"{name} must hold finite numbers, got {v!r}")
        if positive and v <= 0:
            raise InputError(f"{name} must hold numbers > 0, got {v!r}")
        out.append(float(v))
    return tuple(out)


def int_tuple(value: Any, name: str) -> tuple[int, ...]:
    """A non-empty tuple of distinct ints >= 1 from an int or a list.

    Example:
        >>> int_tuple([1, 3], "severities")
        (1, 3)
    """
    items = [value] if isinstance(value, int) else value
    if isinstance(items, str) or not isinstance(items, Sequence) or not items:
        raise InputError(f"{name} must be a non-empty list of ints, got {value!r}")
    for v in items:
        positive_int(v, name)
    if len(set(items)) != len(items):
        raise InputError(f"{name} lists a value twice: {list(items)}")
    return tuple(int(v) for v in items)
