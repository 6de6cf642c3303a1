"""Thresholds of ``robustcv check``, gathered from every registered suite's ``checks``.

A threshold is ``--NAME V`` or ``--NAME V@QUALIFIER``; the suite that offers ``NAME`` says what
it measures, which qualifiers it accepts and how to evaluate it (:class:`CheckSpec`). Thresholds
that name an eps (``--min-robust-acc 0.5@linf:0.1``) also tell the audit which eps its grid
must hold when they are given in the audit's ``check`` config.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from robustcv.audit.registry import ordered_suites
from robustcv.audit.suite import CheckSpec, Threshold
from robustcv.core.errors import InputError

__all__ = ["all_checks", "parse_threshold", "parse_thresholds", "required_eps"]

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"


def all_checks() -> dict[str, tuple[str, CheckSpec]]:
    """Check name -> (suite name, spec), over every registered suite in run order.

    Example:
        >>> all_checks()["min-acc"][0]
        'clean'
    """
    out: dict[str, tuple[str, CheckSpec]] = {}
    for suite in ordered_suites():
        for spec in suite.checks:
            if spec.name in out:
                raise InputError(
                    f"suites '{out[spec.name][0]}' and '{suite.name}' both offer the check "
                    f"'{spec.name}'; rename one"
                )
            out[spec.name] = (suite.name, spec)
    return out


def parse_threshold(metric: str, text: str | float) -> Threshold:
    """Parse one threshold value such as ``0.9``, ``0.5@linf:0.1`` or ``0.05@after``.

    Args:
        metric: the check name (``_`` is accepted for ``-``, a leading ``--`` is dropped).
        text: the value as given on the command line (or a number).

    Raises:
        InputError: unknown check, malformed value or qualifier.

    Example:
        >>> parse_threshold("max_ece", "0.05@after")
        Threshold(metric='max-ece', limit=0.05, qualifier='after')
        >>> parse_threshold("min-acc", 0.9)
        Threshold(metric='min-acc', limit=0.9, qualifier=None)
    """
    name = str(metric).strip().lstrip("-").replace("_", "-")
    checks = all_checks()
    if name not in checks:
        known = ", ".join(f"--{m}" for m in checks)
        raise InputError(f"unknown threshold '{metric}'; known thresholds: {known}")
    spec = checks[name][1]
    raw = str(text).strip()
    if spec.parse is not None:
        limit, canonical = spec.parse(raw)
        return Threshold(name, limit, canonical)
    value, sep, qualifier = raw.partition("@")
    if not re.fullmatch(_NUMBER, value.strip()):
        more = " (optionally @QUALIFIER)" if spec.qualifier is not None else ""
        raise InputError(
            f"--{name} needs a number{more}, got '{raw}'; e.g. --{name} {spec.example}"
        )
    limit = float(value)
    if not math.isfinite(limit):
        raise InputError(f"--{name} needs a finite number, got '{raw}'")
    q = qualifier.strip() if sep else None
    if sep and not q:
        raise InputError(f"--{name} '{raw}' has an empty qualifier after '@'")
    if q is None and spec.eps is not None:
        raise InputError(
            f"--{name} needs {spec.metavar}, got '{raw}'; e.g. --{name} {spec.example}"
        )
    if q is not None:
        if spec.qualifier is None:
            raise InputError(
                f"--{name} takes a plain number, got '{raw}'; e.g. --{name} {spec.example}"
            )
        q = spec.qualifier(q)
    if spec.fraction and not 0.0 <= limit <= 1.0:
        raise InputError(f"--{name} is a fraction in [0, 1], got {limit:g}")
    return Threshold(name, limit, q)


def parse_thresholds(spec: Mapping[str, Any] | Iterable[Threshold]) -> list[Threshold]:
    """Thresholds from a mapping ``{"min_acc": 0.9, "min_robust_acc": ["0.5@linf:0.1"]}``.

    Values may be a number, a string or a list of them; a list of :class:`Threshold` passes
    through.

    Example:
        >>> [t.flag for t in parse_thresholds({"min_acc": 0.9, "max_ece": [0.05, "0.02@after"]})]
        ['--min-acc 0.9', '--max-ece 0.05', '--max-ece 0.02@after']
    """
    if not isinstance(spec, Mapping):
        items = list(spec)
        for t in items:
            if not isinstance(t, Threshold):
                raise InputError(f"thresholds must be Threshold objects or a mapping, got {t!r}")
        return items
    out = []
    for name, value in spec.items():
        if value is None:
            continue
        values = value if isinstance(value, (list, tuple)) else [value]
        out += [parse_threshold(str(name), v) for v in values]
    return out


def required_eps(thresholds: Mapping[str, Any] | Iterable[Threshold]) -> dict[str, list[float]]:
    """The eps values that thresholds need in an audit's grid, per norm.

    Example:
        >>> required_eps({"min_robust_acc": ["0.5@linf:0.1", "0.3@l2:1.5", "0.4@linf:0.1"]})
        {'linf': [0.1], 'l2': [1.5]}
    """
    checks = all_checks()
    out: dict[str, list[float]] = {}
    for t in parse_thresholds(thresholds):
        eps_of = checks[t.metric][1].eps
        if eps_of is not None:
            norm, eps = eps_of(t)
            if eps not in out.setdefault(norm, []):
                out[norm].append(eps)
    return out
