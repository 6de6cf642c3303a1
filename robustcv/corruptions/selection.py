"""Which corruptions and severities to run: one selection grammar for every entry point.

``robustcv.corruption_accuracy``, the audit's corruption suite, :func:`write_corrupted` and the
``robustcv corrupt`` command all resolve their ``corruptions`` argument with
:func:`select_corruptions`, so a name, a group or a list means the same everywhere.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from typing import Literal

import numpy as np

from robustcv.core.errors import InputError
from robustcv.core.names import (
    BENCHMARK_CORRUPTIONS,
    HELD_OUT_CORRUPTIONS,
    IMAGENET_C_CORRUPTIONS,
)
from robustcv.corruptions.base import CORRUPTIONS

__all__ = ["CORRUPTION_GROUPS", "parse_severities", "select_corruptions"]

CORRUPTION_GROUPS: dict[str, str] = {
    "benchmark": "ImageNet-C's 15 benchmark corruptions (the ones mCE averages)",
    "held-out": "ImageNet-C's 4 held-out corruptions",
    "imagenet-c": "benchmark, then held-out: ImageNet-C's 19",
    "all": "the same as imagenet-c (the mvh- degradations are a group of their own)",
    "mvh": "every registered model-vs-human (mvh-) degradation",
}
"""Group names :func:`select_corruptions` accepts, and what each one selects. A corruption
registered outside ImageNet-C's lists (and not an ``mvh-`` one) joins ``benchmark`` or
``held-out`` by its ``benchmark`` flag, after ImageNet-C's own."""


def _flagged(benchmark: bool, listed: tuple[str, ...]) -> list[str]:
    """ImageNet-C's names, then other registered non-mvh corruptions with that flag."""
    names = [CORRUPTIONS.canonical(n) for n in listed]
    known = set(IMAGENET_C_CORRUPTIONS)
    names += [
        e.name
        for e in CORRUPTIONS
        if e.obj.family != "mvh" and e.obj.benchmark == benchmark and e.name not in known
    ]
    return names


def _group_members(group: str) -> list[str]:
    if group == "mvh":
        names = [e.name for e in CORRUPTIONS if e.obj.family == "mvh"]
        if not names:
            raise InputError(
                "no mvh- degradations are registered; import robustcv (or robustcv.corruptions) "
                "first, or name corruptions explicitly"
            )
        return names
    benchmark = _flagged(True, BENCHMARK_CORRUPTIONS)
    held_out = _flagged(False, HELD_OUT_CORRUPTIONS)
    if group == "benchmark":
        return benchmark
    if group == "held-out":
        return held_out
    return benchmark + held_out  # imagenet-c, all


def _resolve_name(token: str) -> str:
    key = token.strip().lower()
    for spelling in (key, key.replace("_", "-"), key.replace("-", "_")):
        if spelling in CORRUPTIONS:
            return CORRUPTIONS.canonical(spelling)
    known = [*CORRUPTIONS.names(), *CORRUPTION_GROUPS]
    flat = {k.replace("-", "_"): k for k in known}
    close = difflib.get_close_matches(key.replace("-", "_"), list(flat), n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(repr(flat[c]) for c in close)}?" if close else ""
    raise InputError(
        f"unknown corruption {token.strip()!r}{hint} (groups: {', '.join(CORRUPTION_GROUPS)}; "
        "see 'robustcv list corruptions' for the names)"
    )


def select_corruptions(
    which: str | Sequence[str], *, on_repeat: Literal["drop", "error"] = "drop"
) -> list[str]:
    """Resolve a corruption selection to registered canonical names.

    Groups expand in their canonical order (ImageNet-C's order for ``benchmark``,
    ``held-out``, ``imagenet-c`` and ``all``, then any other registered corruption of the group,
    see :data:`CORRUPTION_GROUPS`; registration order for ``mvh``); the result keeps the order
    in which names and groups were given. Case is ignored, and ``-`` and ``_`` are
    interchangeable in names and groups.

    Args:
        which: a corruption name, a group, a comma-separated string of them, or a list of them.
            Groups (:data:`CORRUPTION_GROUPS`): ``benchmark`` (ImageNet-C's 15), ``held-out``
            (its other 4), ``imagenet-c`` and ``all`` (the 19), ``mvh`` (every ``mvh-``
            degradation).
        on_repeat: what to do with a corruption selected twice: ``"drop"`` keeps the first
            (overlapping groups are fine), ``"error"`` refuses the selection.

    Returns:
        Canonical names, each once.

    Raises:
        InputError: an unknown name (with close matches), a name that is not a string, an
            empty selection, or (``on_repeat="error"``) a corruption selected twice.

    Example:
        >>> select_corruptions("mvh-contrast, MVH_Rotation")
        ['mvh-contrast', 'mvh-rotation']
        >>> select_corruptions(["held-out", "fog"])
        ['speckle_noise', 'gaussian_blur', 'spatter', 'saturate', 'fog']
        >>> len(select_corruptions("benchmark,all")), len(select_corruptions("mvh"))
        (19, 10)
        >>> select_corruptions("fgo")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        robustcv.core.errors.InputError: unknown corruption 'fgo'; did you mean 'fog'? ...
    """
    if on_repeat not in ("drop", "error"):
        raise InputError(f"on_repeat={on_repeat!r}; use 'drop' or 'error'")
    if isinstance(which, str):
        items: list[object] = [which]
    elif isinstance(which, Sequence):
        items = list(which)
    else:
        raise InputError(
            f"corruptions must be a name, a group ({', '.join(CORRUPTION_GROUPS)}) or a list of "
            f"them, got {type(which).__name__}"
        )
    tokens: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise InputError(f"corruption names must be strings, got {item!r}")
        tokens += [t.strip() for t in item.split(",") if t.strip()]
    if not tokens:
        raise InputError(
            "no corruptions selected (the selection is empty); name at least one, or use a "
            f"group: {', '.join(CORRUPTION_GROUPS)}"
        )
    out: list[str] = []
    for token in tokens:
        group = token.lower().replace("_", "-")
        picked = _group_members(group) if group in CORRUPTION_GROUPS else [_resolve_name(token)]
        for name in picked:
            if name not in out:
                out.append(name)
            elif on_repeat == "error":
                raise InputError(
                    f"the selection {which!r} lists the corruption '{name}' twice; name each "
                    "corruption once"
                )
    return out


def parse_severities(text: str | int | Sequence[int] | None) -> tuple[int, ...] | None:
    """Parse severities: ``"1-5"``, ``"1,3,5"``, ``"all"``/``None`` (every severity) or ints.

    Returns:
        Sorted unique severities, or ``None`` for "all of each corruption's severities".

    Raises:
        InputError: text that is not a list of ranges, or a severity below 1.

    Example:
        >>> parse_severities("1-3,5"), parse_severities([3, 1]), parse_severities("all")
        ((1, 2, 3, 5), (1, 3), None)
    """
    if text is None:
        return None
    if isinstance(text, bool):
        raise InputError(f"severities must be ints, got {text!r}; use e.g. 1-5 or 1,3,5")
    if isinstance(text, int):
        values: list[object] = [text]
    elif isinstance(text, str):
        if text.strip().lower() == "all":
            return None
        values = []
        for part in text.split(","):
            part = part.strip()
            m = re.fullmatch(r"(\d+)\s*-\s*(\d+)|(\d+)", part)
            if m is None:
                raise InputError(f"cannot parse severities '{text}'; use e.g. 1-5, 1,3,5 or all")
            if m.group(3) is not None:
                values.append(int(m.group(3)))
            else:
                lo, hi = int(m.group(1)), int(m.group(2))
                if lo > hi:
                    raise InputError(f"severity range '{part}' is empty; write it low-high (1-5)")
                values.extend(range(lo, hi + 1))
    else:
        values = list(text)
    ints: list[int] = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise InputError(f"severities must be ints >= 1, got {v!r}; use e.g. 1-5 or 1,3,5")
        ints.append(int(v))
    if not ints:
        raise InputError("no severities given; use e.g. 1-5 or 1,3,5")
    return tuple(sorted(set(ints)))
