"""Corruption-robustness metrics as pure functions over plain dicts, keyed by corruption name.

Tables are ``{corruption: {severity: value}}`` dicts (for example ``{"fog": {1: 0.71, 2: 0.65,
...}}``): accuracies in [0, 1] for :func:`corruption_errors` and :func:`mean_accuracy`, errors
in [0, 1] for :func:`ce` / :func:`mce`, and any non-negative performance number (AP, mAP,
in the unit you like) for :func:`mpc` / :func:`rpc`. Severity keys may be ints or digit strings
(as after a JSON round trip). Corruption names are matched by name, never by position;
ImageNet-C names accept ``-`` for ``_`` (``"gaussian-noise"``) and ``mvh-`` names ``_`` for
``-``.

Definitions (Hendrycks & Dietterich 2019; Michaelis et al. 2019):

* ``CE_c = 100 * sum_s E_{s,c} / sum_s E^{base}_{s,c}`` and ``mCE`` = mean of ``CE_c`` over the
  15 benchmark corruptions (:data:`BENCHMARK_CORRUPTIONS`), in percent: the baseline itself
  scores 100. The ImageNet-C baseline is AlexNet (:data:`ALEXNET_ERRORS`).
* ``relative CE_c = 100 * sum_s (E_{s,c} - E_clean) / sum_s (E^{base}_{s,c} - E^{base}_clean)``
  and relative mCE is its mean over the 15. It needs the baseline's clean error; no verified
  code constant exists for AlexNet's (the paper's is believed to be about 43.5% top-1 error,
  unconfirmed), so :func:`relative_mce` makes you pass it.
* ``mPC`` = mean of the performance ``P_{c,s}`` over the 15 corruptions and severities 1..5;
  ``rPC = mPC / P_clean`` (a ratio; papers often print it in percent).
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Mapping, Sequence
from numbers import Real
from types import MappingProxyType
from typing import Any

from robustcv.core.errors import InputError
from robustcv.core.names import (
    BENCHMARK_CORRUPTIONS,
    HELD_OUT_CORRUPTIONS,
    IMAGENET_C_CORRUPTIONS,
)

__all__ = [
    "ALEXNET_ERRORS",
    "BENCHMARK_CORRUPTIONS",
    "HELD_OUT_CORRUPTIONS",
    "IMAGENET_C_CORRUPTIONS",
    "canonical_name",
    "ce",
    "corruption_errors",
    "mce",
    "mean_accuracy",
    "mpc",
    "per_corruption_mean",
    "relative_ce",
    "relative_mce",
    "rpc",
]


ALEXNET_ERRORS: Mapping[str, float] = MappingProxyType(
    {
        "gaussian_noise": 0.886428,
        "shot_noise": 0.894468,
        "impulse_noise": 0.922640,
        "defocus_blur": 0.819880,
        "glass_blur": 0.826268,
        "motion_blur": 0.785948,
        "zoom_blur": 0.798360,
        "snow": 0.866816,
        "frost": 0.826572,
        "fog": 0.819324,
        "brightness": 0.564592,
        "contrast": 0.853204,
        "elastic_transform": 0.646056,
        "pixelate": 0.717840,
        "jpeg_compression": 0.606500,
    }
)
"""AlexNet's ImageNet-C top-1 error per benchmark corruption, mean over severities 1..5.

Keyed by name (the published list is positional; augmix ``imagenet.py``, also mmcls). There
are no values for the 4 held-out corruptions, and no per-severity values here.
"""

_ALL_SEVERITIES = (1, 2, 3, 4, 5)
_KNOWN = IMAGENET_C_CORRUPTIONS

Table = Mapping[str, Mapping[Any, float]]
"""``{corruption: {severity: value}}``; severities are ints (digit strings are accepted)."""
ErrorTable = Mapping[str, float | Mapping[Any, float]]
"""Errors per severity, or one mean error (over severities 1..5) per corruption."""
Selection = str | Sequence[str]


# ---------------------------------------------------------------------------- validation


def _canonical(name: object, what: str) -> str:
    if not isinstance(name, str) or not name.strip():
        raise InputError(f"{what}: corruption names must be non-empty strings, got {name!r}")
    key = name.strip().lower()
    if key.replace("-", "_") in _KNOWN:
        return key.replace("-", "_")
    if key.startswith("mvh"):
        return key.replace("_", "-")
    return key


def canonical_name(name: str) -> str:
    """The name metrics key a corruption by: ImageNet-C names with ``_``, ``mvh-`` with ``-``.

    Example:
        >>> canonical_name("Gaussian-Noise"), canonical_name("mvh_low_pass")
        ('gaussian_noise', 'mvh-low-pass')
    """
    return _canonical(name, "canonical_name")


def _suggest(name: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, sorted(set(candidates)), n=2, cutoff=0.6)
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def _severity(key: object, what: str, corruption: str) -> int:
    if isinstance(key, bool):
        raise InputError(f"{what}: severity {key!r} of '{corruption}' is a bool; use 1, 2, ...")
    if isinstance(key, int):
        value = key
    elif isinstance(key, str) and key.strip().isdigit():
        value = int(key.strip())
    else:
        raise InputError(
            f"{what}: severity key {key!r} of '{corruption}' is not an integer; key each "
            "corruption's values by severity, e.g. {'fog': {1: 0.7, 2: 0.6}}"
        )
    if value < 1:
        raise InputError(
            f"{what}: severity {value} of '{corruption}' is below 1; severities start at 1 "
            "(pass clean values separately)"
        )
    return value


def _number(value: object, what: str, where: str, *, unit: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise InputError(f"{what}: {where} is {value!r}, not a number")
    v = float(value)
    if not math.isfinite(v):
        raise InputError(f"{what}: {where} is {v}; pass finite values")
    if unit and not 0.0 <= v <= 1.0:
        fix = "divide percentages by 100" if 1.0 < v <= 100.0 else "pass values in [0, 1]"
        raise InputError(f"{what}: {where} is {v}, outside [0, 1]; {fix}")
    if not unit and v < 0:
        raise InputError(f"{what}: {where} is {v}; performance values must be >= 0")
    return v


def _check_row(row: object, what: str, name: str, *, unit: bool) -> dict[int, float]:
    if not isinstance(row, Mapping):
        raise InputError(
            f"{what}: the value of '{name}' is {type(row).__name__}, not a dict "
            "{severity: value}; e.g. {'fog': {1: 0.7, 2: 0.6}}"
        )
    if not row:
        raise InputError(f"{what}: '{name}' has no severities; give at least one")
    values: dict[int, float] = {}
    for key, v in row.items():
        s = _severity(key, what, name)
        if s in values:
            raise InputError(f"{what}: severity {s} of '{name}' appears twice")
        values[s] = _number(v, what, f"'{name}' severity {s}", unit=unit)
    return dict(sorted(values.items()))


def _names(table: object, what: str) -> list[tuple[str, object]]:
    if not isinstance(table, Mapping):
        raise InputError(
            f"{what} must be a dict {{corruption: {{severity: value}}}}, got {type(table).__name__}"
        )
    if not table:
        raise InputError(f"{what} is empty; pass at least one corruption")
    seen: dict[str, object] = {}
    for raw_name, row in table.items():
        name = _canonical(raw_name, what)
        if name in seen:
            raise InputError(
                f"{what}: corruption '{name}' appears twice (as {raw_name!r} and another "
                "spelling); keep one"
            )
        seen[name] = row
    return list(seen.items())


def _check_table(table: object, what: str, *, unit: bool = True) -> dict[str, dict[int, float]]:
    """Validate ``{corruption: {severity: value}}``; canonical names, int severities."""
    return {name: _check_row(row, what, name, unit=unit) for name, row in _names(table, what)}


def _check_errors(table: object, what: str) -> dict[str, dict[int, float] | float]:
    """Validate errors given per severity or as one mean value per corruption."""
    out: dict[str, dict[int, float] | float] = {}
    for name, row in _names(table, what):
        if isinstance(row, Mapping):
            out[name] = _check_row(row, what, name, unit=True)
        else:
            out[name] = _number(row, what, f"the value of '{name}'", unit=True)
    return out


def _selection(corruptions: Selection | None, available: Iterable[str], what: str) -> list[str]:
    if corruptions is None:
        return list(available)
    if isinstance(corruptions, str):
        groups = {
            "benchmark": BENCHMARK_CORRUPTIONS,
            "held-out": HELD_OUT_CORRUPTIONS,
            "all": IMAGENET_C_CORRUPTIONS,
        }
        if corruptions not in groups:
            raise InputError(
                f"{what}: corruptions={corruptions!r} is not a group; use 'benchmark', "
                "'held-out', 'all' or a list of names"
            )
        return list(groups[corruptions])
    names = [_canonical(c, what) for c in corruptions]
    if not names:
        raise InputError(f"{what}: corruptions is empty; name at least one")
    if len(set(names)) != len(names):
        raise InputError(f"{what}: corruptions lists a name twice: {names}")
    return names


def _require(names: Sequence[str], table: Mapping[str, object], what: str, role: str) -> None:
    missing = [n for n in names if n not in table]
    if missing:
        extra = [k for k in table if k not in names]
        hints = "".join(
            f" ('{m}' is missing{_suggest(m, extra)})" for m in missing if _suggest(m, extra)
        )
        raise InputError(
            f"{what}: {role} has no value for {', '.join(repr(m) for m in missing)}{hints}; "
            "evaluate those corruptions or pass corruptions=[...] naming the ones you have"
        )


def _require_severities(
    name: str, row: Mapping[int, float], severities: Sequence[int], what: str
) -> None:
    missing = [s for s in severities if s not in row]
    extra = [s for s in row if s not in severities]
    if missing:
        raise InputError(
            f"{what}: '{name}' is missing severity {', '.join(map(str, missing))} (has "
            f"{sorted(row)}); evaluate every severity in {list(severities)} or pass "
            "severities=... naming the ones you have"
        )
    if extra:
        raise InputError(
            f"{what}: '{name}' has unexpected severity {', '.join(map(str, extra))}; expected "
            f"exactly {list(severities)} (pass severities=... to change that)"
        )


def _check_severities(severities: Sequence[int], what: str) -> tuple[int, ...]:
    if isinstance(severities, (str, bytes)) or not isinstance(severities, Sequence):
        raise InputError(f"{what}: severities must be a sequence of ints, e.g. (1, 2, 3, 4, 5)")
    out = tuple(_severity(s, what, "severities") for s in severities)
    if not out or len(set(out)) != len(out):
        raise InputError(f"{what}: severities must be distinct ints >= 1, got {severities!r}")
    return out


def _mean_errors(
    errors_model: ErrorTable, errors_baseline: ErrorTable, names: Sequence[str], what: str
) -> dict[str, tuple[float, float]]:
    """(model mean error, baseline mean error) per corruption, with severity checks."""
    model = _check_errors(errors_model, f"{what} errors_model")
    base = _check_errors(errors_baseline, f"{what} errors_baseline")
    _require(names, model, what, "errors_model")
    missing = [n for n in names if n not in base]
    if missing:
        hints = "".join(_suggest(m, base) for m in missing if m not in _KNOWN)
        raise InputError(
            f"{what}: the baseline has no value for {', '.join(repr(m) for m in missing)}"
            f"{hints}; ALEXNET_ERRORS covers only the 15 benchmark corruptions: leave the "
            "others out (corruptions=[...]) or pass a baseline that has them"
        )
    out: dict[str, tuple[float, float]] = {}
    for n in names:
        m, b = model[n], base[n]
        if isinstance(m, dict) and isinstance(b, dict):
            if sorted(m) != sorted(b):
                raise InputError(
                    f"{what}: '{n}' has severities {sorted(m)} for the model but {sorted(b)} "
                    "for the baseline; compare the same severities"
                )
        elif isinstance(m, dict):
            _require_severities(n, m, _ALL_SEVERITIES, f"{what} (baseline is a mean over 1-5)")
        elif isinstance(b, dict):
            _require_severities(n, b, _ALL_SEVERITIES, f"{what} (model is a mean over 1-5)")
        mm = sum(m.values()) / len(m) if isinstance(m, dict) else m
        bb = sum(b.values()) / len(b) if isinstance(b, dict) else b
        out[n] = (mm, bb)
    return out


def _clean(value: object, what: str, name: str) -> float:
    return _number(value, what, name, unit=True)


# ---------------------------------------------------------------------------- metrics


def corruption_errors(accuracies: Table) -> dict[str, dict[int, float]]:
    """Turn an accuracy table into an error table (``1 - accuracy``), validating it.

    Args:
        accuracies: ``{corruption: {severity: accuracy in [0, 1]}}``.

    Returns:
        ``{corruption: {severity: error}}`` with canonical names and int severities.

    Example:
        >>> corruption_errors({"fog": {1: 0.75, 2: 0.5}})
        {'fog': {1: 0.25, 2: 0.5}}
    """
    table = _check_table(accuracies, "corruption_errors accuracies")
    return {name: {s: 1.0 - a for s, a in row.items()} for name, row in table.items()}


def per_corruption_mean(table: Table) -> dict[str, float]:
    """Mean over severities of each corruption's values (accuracies or errors in [0, 1]).

    Example:
        >>> per_corruption_mean({"fog": {1: 0.8, 2: 0.6}, "snow": {1: 0.5}})
        {'fog': 0.7, 'snow': 0.5}
    """
    checked = _check_table(table, "per_corruption_mean table")
    return {name: sum(row.values()) / len(row) for name, row in checked.items()}


def mean_accuracy(table: Table, *, corruptions: Selection | None = None) -> float:
    """Mean accuracy: the mean over corruptions of each one's mean over severities.

    Every corruption weighs the same even when they have different numbers of severities.

    Args:
        table: ``{corruption: {severity: accuracy}}``.
        corruptions: None (every corruption in the table), ``"benchmark"``, ``"held-out"``,
            ``"all"`` or a list of names, each of which must be in the table.

    Example:
        >>> mean_accuracy({"fog": {1: 0.8, 2: 0.6}, "snow": {1: 0.4, 2: 0.2}})
        0.5
    """
    what = "mean_accuracy"
    means = per_corruption_mean(table)
    names = _selection(corruptions, means, what)
    _require(names, means, what, "the table")
    return sum(means[n] for n in names) / len(names)


def ce(errors_model: ErrorTable, errors_baseline: ErrorTable) -> dict[str, float]:
    """Corruption error of each corruption in ``errors_model``, in percent of the baseline's.

    ``CE_c = 100 * sum_s E_{s,c} / sum_s E^{base}_{s,c}``.

    Args:
        errors_model: ``{corruption: {severity: error}}``, or ``{corruption: mean error}``.
        errors_baseline: the same for the baseline, e.g. :data:`ALEXNET_ERRORS` (mean errors
            over severities 1..5). When one side is a mean over severities, the other side's
            per-severity errors must cover exactly 1..5; when both are per severity, they must
            have the same severities.

    Returns:
        ``{corruption: CE in percent}``; 100 means "as bad as the baseline".

    Raises:
        InputError: a corruption has no baseline value, a severity is missing, bad values.

    Example:
        >>> ce({"fog": {1: 0.2, 2: 0.4}}, {"fog": {1: 0.4, 2: 0.8}})
        {'fog': 50.0}
        >>> round(ce({"fog": 0.819324}, ALEXNET_ERRORS)["fog"], 6)
        100.0
    """
    names = list(_check_errors(errors_model, "ce errors_model"))
    pairs = _mean_errors(errors_model, errors_baseline, names, "ce")
    out = {}
    for n, (m, b) in pairs.items():
        if b <= 0:
            raise InputError(f"ce: the baseline error of '{n}' is {b}; CE needs a positive one")
        out[n] = 100.0 * m / b
    return out


def mce(
    errors_model: ErrorTable,
    errors_baseline: ErrorTable,
    *,
    corruptions: Selection = "benchmark",
) -> float:
    """Mean corruption error (percent) over ``corruptions`` (default: the 15 benchmark ones).

    Args:
        errors_model: model errors, as for :func:`ce`; extra corruptions are ignored.
        errors_baseline: baseline errors, e.g. :data:`ALEXNET_ERRORS`.
        corruptions: ``"benchmark"`` (ImageNet-C's definition), ``"held-out"``, ``"all"`` or a
            list of names. Every one needs a model and a baseline value.

    Raises:
        InputError: a corruption lacks a model or baseline value (the message names it).

    Example:
        >>> round(mce(ALEXNET_ERRORS, ALEXNET_ERRORS), 10)
        100.0
    """
    names = _selection(corruptions, (), "mce")
    pairs = _mean_errors(errors_model, errors_baseline, names, "mce")
    cs = ce({n: pairs[n][0] for n in names}, {n: pairs[n][1] for n in names})
    return sum(cs.values()) / len(cs)


def relative_ce(
    errors_model: ErrorTable,
    clean_error_model: float,
    errors_baseline: ErrorTable,
    clean_error_baseline: float,
) -> dict[str, float]:
    """Relative corruption error (percent) of each corruption in ``errors_model``.

    ``rCE_c = 100 * sum_s (E_{s,c} - E_clean) / sum_s (E^{base}_{s,c} - E^{base}_clean)``:
    how much accuracy the corruption costs, relative to what it costs the baseline.

    Args:
        errors_model: model errors, as for :func:`ce`.
        clean_error_model: the model's clean error in [0, 1].
        errors_baseline: baseline errors (e.g. :data:`ALEXNET_ERRORS`).
        clean_error_baseline: the baseline's clean error. For AlexNet there is no verified code
            constant (the paper's value is believed to be about 0.435): measure it or take
            it from a source you trust.

    Raises:
        InputError: a baseline's corruption error is not above its clean error.

    Example:
        >>> relative_ce({"fog": {1: 0.25, 2: 0.75}}, 0.25, {"fog": {1: 0.5, 2: 1.0}}, 0.25)
        {'fog': 50.0}
    """
    names = list(_check_errors(errors_model, "relative_ce errors_model"))
    return _relative(
        errors_model, clean_error_model, errors_baseline, clean_error_baseline, names, "relative_ce"
    )


def _relative(
    errors_model: ErrorTable,
    clean_error_model: float,
    errors_baseline: ErrorTable,
    clean_error_baseline: float,
    names: Sequence[str],
    what: str,
) -> dict[str, float]:
    cm = _clean(clean_error_model, what, "clean_error_model")
    cb = _clean(clean_error_baseline, what, "clean_error_baseline")
    pairs = _mean_errors(errors_model, errors_baseline, names, what)
    out = {}
    for n, (m, b) in pairs.items():
        if b - cb <= 0:
            raise InputError(
                f"{what}: the baseline's error on '{n}' ({b:.4g}) is not above its clean error "
                f"({cb:.4g}); relative CE is undefined - check clean_error_baseline"
            )
        out[n] = 100.0 * (m - cm) / (b - cb)
    return out


def relative_mce(
    errors_model: ErrorTable,
    clean_error_model: float,
    errors_baseline: ErrorTable,
    *,
    clean_error_baseline: float,
    corruptions: Selection = "benchmark",
) -> float:
    """Relative mCE (percent): the mean of :func:`relative_ce` over ``corruptions``.

    ``clean_error_baseline`` is required (keyword-only, no default) because no verified
    AlexNet clean error exists in any reference code; the paper's is believed to be about
    43.5% but is unconfirmed.

    Example:
        >>> errs = {name: err + 0.05 for name, err in ALEXNET_ERRORS.items()}
        >>> round(relative_mce(errs, 0.45, ALEXNET_ERRORS, clean_error_baseline=0.4), 10)
        100.0
    """
    names = _selection(corruptions, (), "relative_mce")
    rel = _relative(
        errors_model, clean_error_model, errors_baseline, clean_error_baseline, names, "rmce"
    )
    return sum(rel.values()) / len(rel)


def mpc(
    table: Table,
    *,
    corruptions: Selection = "benchmark",
    severities: Sequence[int] = _ALL_SEVERITIES,
) -> float:
    """Mean performance under corruption: the mean of ``P_{c,s}`` over corruptions x severities.

    For detection results (robust-detection-benchmark): ``P`` is AP50 on VOC, box or mask AP
    on COCO / Cityscapes. Any non-negative performance number works, in any unit.

    Args:
        table: ``{corruption: {severity: P}}``; extra corruptions or severities are ignored.
        corruptions: ``"benchmark"`` (the published definition: the 15), ``"held-out"``,
            ``"all"`` or a list of names.
        severities: the severities to average over (1..5 by default).

    Raises:
        InputError: a corruption or severity is missing.

    Example:
        >>> mpc({"fog": {1: 40.0, 2: 30.0}}, corruptions=["fog"], severities=(1, 2))
        35.0
    """
    what = "mpc"
    sev = _check_severities(severities, what)
    checked = _check_table(table, f"{what} table", unit=False)
    names = _selection(corruptions, checked, what)
    _require(names, checked, what, "the table")
    total, count = 0.0, 0
    for n in names:
        row = checked[n]
        missing = [s for s in sev if s not in row]
        if missing:
            raise InputError(
                f"{what}: '{n}' is missing severity {', '.join(map(str, missing))}; evaluate "
                "it or pass severities=... naming the ones you have"
            )
        total += sum(row[s] for s in sev)
        count += len(sev)
    return total / count


def rpc(
    table: Table,
    clean: float,
    *,
    corruptions: Selection = "benchmark",
    severities: Sequence[int] = _ALL_SEVERITIES,
) -> float:
    """Relative performance under corruption: ``mPC / P_clean`` (a ratio, not percent).

    Args:
        table: ``{corruption: {severity: P}}``, as for :func:`mpc`.
        clean: the clean performance ``P`` in the same unit as the table; must be > 0.
        corruptions: as for :func:`mpc`.
        severities: as for :func:`mpc`.

    Example:
        >>> rpc({"fog": {1: 40.0, 2: 30.0}}, 50.0, corruptions=["fog"], severities=(1, 2))
        0.7
    """
    p = _number(clean, "rpc", "clean", unit=False)
    if p <= 0:
        raise InputError(f"rpc: clean performance is {p}; rPC = mPC / clean needs clean > 0")
    return mpc(table, corruptions=corruptions, severities=severities) / p
