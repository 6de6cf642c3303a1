"""Names shared by several layers: corruption names and norm names, with their parsers.

They live in ``core`` so that the data layer (which reads -C datasets), the attacks, the
corruption metrics, the audit configuration and the report's threshold checks use one list (and
one spelling of each alias) without importing each other.

* ImageNet-C's corruption names in their canonical order (:data:`BENCHMARK_CORRUPTIONS`,
  :data:`HELD_OUT_CORRUPTIONS`, :data:`IMAGENET_C_CORRUPTIONS`).
* Norm names (:data:`NORMS`), their aliases (:func:`canonical_norm`) and the ``V@NORM:EPS``
  threshold grammar (:func:`parse_norm_eps_threshold`).
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from robustcv.core.errors import InputError

__all__ = [
    "BENCHMARK_CORRUPTIONS",
    "HELD_OUT_CORRUPTIONS",
    "IMAGENET_C_CORRUPTIONS",
    "NORMS",
    "NORM_ALIASES",
    "NormEpsThreshold",
    "canonical_norm",
    "check_param_names",
    "parse_norm_eps_threshold",
]

BENCHMARK_CORRUPTIONS: tuple[str, ...] = (
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "defocus_blur",
    "glass_blur",
    "motion_blur",
    "zoom_blur",
    "snow",
    "frost",
    "fog",
    "brightness",
    "contrast",
    "elastic_transform",
    "pixelate",
    "jpeg_compression",
)
"""ImageNet-C's 15 benchmark corruptions (the ones mCE and mPC average over)."""

HELD_OUT_CORRUPTIONS: tuple[str, ...] = ("speckle_noise", "gaussian_blur", "spatter", "saturate")
"""ImageNet-C's 4 held-out ("validation") corruptions; they have no AlexNet baseline."""

IMAGENET_C_CORRUPTIONS: tuple[str, ...] = BENCHMARK_CORRUPTIONS + HELD_OUT_CORRUPTIONS
"""All 19 ImageNet-C corruptions: the folder/file names of the published ImageNet-C and
CIFAR-10-C."""


# ----------------------------------------------------------------------------- norms

NORMS: tuple[str, ...] = ("linf", "l2", "l1", "l0")
"""Canonical norm names, one per threat model (:func:`robustcv.attacks.get_threat`). ``l0``
counts changed coordinates."""

NORM_ALIASES: dict[str, str] = {
    "inf": "linf",
    "linfty": "linf",
    "linfinity": "linf",
    "infinity": "linf",
    "l∞": "linf",
    "∞": "linf",
    "2": "l2",
    "1": "l1",
    "0": "l0",
}
"""Other spellings of the :data:`NORMS`, after :func:`canonical_norm` has lower-cased the name
and removed spaces, ``_`` and ``-`` (so ``L_inf``, ``L-2`` and ``l_inf`` need no entry)."""


def _norm_key(name: str) -> str:
    key = re.sub(r"[\s_-]+", "", name.lower())
    return NORM_ALIASES.get(key, key)


def _spellings(allowed: Sequence[str]) -> str:
    short = {canon: alias for alias, canon in NORM_ALIASES.items() if alias.isdigit()}
    short["linf"] = "inf"
    return ", ".join(f"{n} (or {short[n]})" if n in short else n for n in allowed)


def canonical_norm(name: str, allowed: Sequence[str] = NORMS, *, what: str = "norm") -> str:
    """The canonical name of a norm: ``linf``, ``l2``, ``l1`` or ``l0``.

    Case, spaces, ``_`` and ``-`` are ignored, and the aliases of :data:`NORM_ALIASES` are
    accepted (``inf``, ``L_inf``, ``2``, ``L-2``, ``1``, ``0``, ``∞``).

    Args:
        name: the norm as the user wrote it.
        allowed: the canonical norms the caller supports (default: all of :data:`NORMS`); a
            known norm outside it is refused with the list of supported ones.
        what: what the name denotes, for the error message (``"norm"``, ``"threat model"``).

    Returns:
        The canonical name, one of ``allowed``.

    Raises:
        InputError: ``name`` is not a string, not a known norm (the message suggests close
            matches and lists the known names) or not one of ``allowed``.

    Example:
        >>> canonical_norm("L_inf"), canonical_norm("2"), canonical_norm(" L-1 ")
        ('linf', 'l2', 'l1')
        >>> canonical_norm("l3")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        robustcv.core.errors.InputError: unknown norm 'l3'; did you mean 'l2' or 'l1' or ...
        >>> canonical_norm("l1", allowed=("linf", "l2"))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        robustcv.core.errors.InputError: norm 'l1' is not supported here; use linf (or inf), ...
    """
    allowed = tuple(allowed)
    unknown = [n for n in allowed if n not in NORMS]
    if unknown:
        raise InputError(f"allowed norms {unknown} are not canonical names; use some of {NORMS}")
    if not isinstance(name, str):
        raise InputError(
            f"{what} is a {type(name).__name__} ({name!r}); pass its name: {_spellings(allowed)}"
        )
    key = _norm_key(name)
    if key in allowed:
        return key
    if key in NORMS:
        raise InputError(f"{what} {name!r} is not supported here; use {_spellings(allowed)}")
    spellings = [*allowed, *(a for a, c in NORM_ALIASES.items() if c in allowed and a.isascii())]
    close = difflib.get_close_matches(key, spellings, n=3, cutoff=0.5)
    suggestions = list(dict.fromkeys(NORM_ALIASES.get(c, c) for c in close))
    hint = f"; did you mean {' or '.join(repr(c) for c in suggestions)}?" if suggestions else ""
    raise InputError(f"unknown {what} {name!r}{hint} (known: {_spellings(allowed)})")


def check_param_names(owner: str, params: Iterable[str], known: Sequence[str]) -> None:
    """Refuse parameter names not in ``known``, with a "did you mean" hint for each.

    Example:
        >>> check_param_names("recipe 'x'", ["sigmaa"], ["sigma"])
        Traceback (most recent call last):
        ...
        robustcv.core.errors.InputError: recipe 'x' has no parameter 'sigmaa' (did you mean 'sigma'?); its parameters are sigma
    """  # noqa: E501
    unknown = sorted(set(params) - set(known))
    if not unknown:
        return
    hints = []
    for name in unknown:
        close = difflib.get_close_matches(name, list(known), n=1)
        hints.append(f"'{name}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
    raise InputError(
        f"{owner} has no parameter {', '.join(hints)}; its parameters are "
        f"{', '.join(known) or 'none'}"
    )


class NormEpsThreshold(NamedTuple):
    """A parsed ``V@NORM:EPS`` threshold: the least robust accuracy ``value`` at ``eps``."""

    value: float
    norm: str
    eps: float


_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_THRESHOLD = re.compile(rf"\s*({_NUMBER})\s*@\s*([^:@\s]+)\s*:\s*({_NUMBER})\s*")


def parse_norm_eps_threshold(
    text: str | float,
    allowed: Sequence[str] = NORMS,
    *,
    what: str = "threshold",
) -> NormEpsThreshold:
    """Parse the ``V@NORM:EPS`` grammar of robust-accuracy thresholds (``0.5@linf:0.1``).

    ``V`` is a robust accuracy, a fraction in [0, 1]; ``NORM`` any spelling
    :func:`canonical_norm` accepts; ``EPS`` a finite budget > 0. Spaces around the parts are
    ignored.

    Args:
        text: the threshold as written (a config value or a command-line argument).
        allowed: the canonical norms the caller supports.
        what: how to name the value in error messages, e.g. ``"--min-robust-acc"`` or
            ``"check.min_robust_acc"``.

    Returns:
        ``(value, norm, eps)`` as a :class:`NormEpsThreshold`, with the canonical norm.

    Raises:
        InputError: malformed text, an unknown or unsupported norm, a value outside [0, 1] or
            a non-positive eps; the message shows the expected form.

    Example:
        >>> parse_norm_eps_threshold("0.5@linf:0.1")
        NormEpsThreshold(value=0.5, norm='linf', eps=0.1)
        >>> value, norm, eps = parse_norm_eps_threshold(" 0.3 @ L2 : 1.5 ")
        >>> value, norm, eps
        (0.3, 'l2', 1.5)
        >>> parse_norm_eps_threshold("0.5", what="--min-robust-acc")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        robustcv.core.errors.InputError: --min-robust-acc needs V@NORM:EPS, got '0.5'; e.g. ...
    """
    raw = str(text).strip()
    m = _THRESHOLD.fullmatch(raw)
    if m is None:
        raise InputError(f"{what} needs V@NORM:EPS, got '{raw}'; e.g. {what} 0.5@linf:0.1")
    value, eps = float(m.group(1)), float(m.group(3))
    if not 0.0 <= value <= 1.0:
        raise InputError(
            f"{what} '{raw}': the robust accuracy V is a fraction in [0, 1], got {value:g}"
        )
    if not (math.isfinite(eps) and eps > 0):
        raise InputError(f"{what} '{raw}': eps must be a positive number, got {m.group(3)}")
    try:
        norm = canonical_norm(m.group(2), allowed)
    except InputError as err:
        raise InputError(f"{what} '{raw}': {err}") from None
    return NormEpsThreshold(value, norm, eps)
