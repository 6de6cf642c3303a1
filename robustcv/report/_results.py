"""Read an audit's ``results.json`` and pull out the numbers the report, compare and check use.

The reader is tolerant on purpose: a suite that was not run is simply absent, an estimate may be
a dict (``{"value", "low", "high", "n", "method"}``), a bare number, or ``None``. Nothing here runs
a model.
"""

from __future__ import annotations

import itertools
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robustcv.core.errors import InputError

__all__ = [
    "SUITES",
    "Estimate",
    "Metric",
    "curve_eps_half",
    "find_eps",
    "headline_metrics",
    "load_results",
]

SUITES = ("clean", "corruption", "adversarial", "calibration", "ood")
"""The audit's suites, in report order."""

_SCHEMA_FAMILY = "robustcv.audit/"
_KNOWN_MAJOR = 1


def _num(value: Any) -> float | None:
    """``value`` as a finite float, or None."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


@dataclass(frozen=True)
class Estimate:
    """A measured value with its sample size and 95% interval (either may be unknown).

    Attributes:
        value: the point estimate.
        low: lower end of the 95% interval (None when not given).
        high: upper end of the 95% interval (None when not given).
        n: number of samples behind the value (None when not given).
        method: how the interval was computed (e.g. "clopper-pearson", "bootstrap").

    Example:
        >>> e = Estimate.parse({"value": 0.9, "low": 0.82, "high": 0.95, "n": 100})
        >>> e.text()
        '0.900 [0.820, 0.950] N=100'
        >>> Estimate.parse(0.5).text(), Estimate.parse(None)
        ('0.500', None)
    """

    value: float
    low: float | None = None
    high: float | None = None
    n: int | None = None
    method: str | None = None

    @classmethod
    def parse(cls, obj: Any) -> Estimate | None:
        """Build an estimate from a results.json value; None when there is no finite value."""
        if isinstance(obj, Estimate):
            return obj
        if isinstance(obj, Mapping):
            value = _num(obj.get("value"))
            if value is None:
                return None
            low, high = _num(obj.get("low")), _num(obj.get("high"))
            ci = obj.get("ci95")
            if (low is None or high is None) and isinstance(ci, (list, tuple)) and len(ci) == 2:
                low, high = _num(ci[0]), _num(ci[1])
            n_raw = obj.get("n")
            n = (
                int(n_raw)
                if isinstance(n_raw, (int, float)) and not isinstance(n_raw, bool)
                else None
            )
            method = obj.get("method")
            return cls(value, low, high, n, str(method) if method is not None else None)
        value = _num(obj)
        return None if value is None else cls(value)

    @property
    def has_interval(self) -> bool:
        """True when both ends of the 95% interval are known."""
        return self.low is not None and self.high is not None

    def interval_text(self, digits: int = 3) -> str:
        """The interval as ``[low, high]``, or an empty string when unknown."""
        if self.low is None or self.high is None:
            return ""
        return f"[{self.low:.{digits}f}, {self.high:.{digits}f}]"

    def text(self, digits: int = 3) -> str:
        """``value [low, high] N=n`` with the parts that are known."""
        parts = [f"{self.value:.{digits}f}"]
        if self.has_interval:
            parts.append(self.interval_text(digits))
        if self.n is not None:
            parts.append(f"N={self.n}")
        return " ".join(parts)


def load_results(
    source: str | os.PathLike[str] | Mapping[str, Any],
) -> tuple[dict[str, Any], Path | None]:
    """Load an audit's results from a folder, a ``results.json`` file or an already-loaded dict.

    Args:
        source: the audit folder (holding ``results.json``), the JSON file itself, or a dict.

    Returns:
        ``(results, folder)``; ``folder`` is where example images are looked up (None for a dict).

    Raises:
        InputError: the folder or file is missing, is not valid JSON, or is not an audit result.

    Example:
        >>> res, folder = load_results({"schema": "robustcv.audit/1", "suites": {}})
        >>> sorted(res), folder
        (['schema', 'suites'], None)
    """
    if isinstance(source, Mapping):
        results = dict(source)
        folder = None
    else:
        path = Path(source)
        if not path.exists():
            raise InputError(
                f"{path} does not exist; pass the folder given to 'robustcv audit --out'"
            )
        if path.is_dir():
            folder, file = path, path / "results.json"
        elif path.suffix == ".json":
            folder, file = path.parent, path
        else:
            raise InputError(
                f"{path} is not an audit folder; pass the folder given to 'robustcv audit --out'"
            )
        if not file.is_file():
            raise InputError(
                f"no results.json in {folder}; run 'robustcv audit ... --out {folder}' first"
            )
        try:
            results = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise InputError(f"cannot read {file}: {err}; re-run the audit to rewrite it") from err
        if not isinstance(results, dict):
            raise InputError(f"{file} does not hold a JSON object; is it an audit's results.json?")
    schema = results.get("schema")
    if schema is not None:
        major = str(schema).removeprefix(_SCHEMA_FAMILY).split(".")[0]
        if not str(schema).startswith(_SCHEMA_FAMILY) or not major.isdigit():
            raise InputError(
                f"results schema '{schema}' is not a robustcv audit result ({_SCHEMA_FAMILY}N)"
            )
        if int(major) > _KNOWN_MAJOR:
            raise InputError(
                f"results schema '{schema}' is newer than this robustcv understands "
                f"({_SCHEMA_FAMILY}{_KNOWN_MAJOR}); upgrade robustcv"
            )
    if not isinstance(results.get("suites", {}), dict):
        raise InputError("results.json: 'suites' must be an object mapping suite name to results")
    return results, folder


def suite(results: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    """The results of one suite, or None when it was not run."""
    value = (results.get("suites") or {}).get(name)
    return value if isinstance(value, dict) else None


def curve_estimates(norm_res: Mapping[str, Any]) -> list[tuple[float, Estimate]]:
    """The ``(eps, accuracy)`` points of one norm's curve, sorted by eps, skipping bad entries."""
    eps = norm_res.get("eps") or []
    acc = norm_res.get("accuracy") or []
    out = []
    for e, a in zip(eps, acc, strict=False):
        ev, est = _num(e), Estimate.parse(a)
        if ev is not None and est is not None:
            out.append((ev, est))
    return sorted(out, key=lambda p: p[0])


def find_eps(norm_res: Mapping[str, Any], eps: float) -> Estimate | None:
    """The accuracy at ``eps`` in a norm's grid (relative tolerance 1e-6), or None.

    Example:
        >>> find_eps({"eps": [0.05, 0.1], "accuracy": [0.7, 0.4]}, 0.1).value
        0.4
    """
    for e, est in curve_estimates(norm_res):
        if math.isclose(e, eps, rel_tol=1e-6, abs_tol=1e-12):
            return est
    return None


def curve_eps_half(points: list[tuple[float, float]], reference: float) -> float | None:
    """Smallest eps where accuracy falls to ``reference / 2``, linearly interpolated.

    The curve starts at ``(0, reference)`` unless it already holds eps 0.

    Example:
        >>> curve_eps_half([(0.1, 0.6), (0.2, 0.2)], 0.8)
        0.15
        >>> curve_eps_half([(0.1, 0.6)], 0.8) is None
        True
    """
    target = reference / 2
    pts = sorted(points)
    if not pts or pts[0][0] > 0:
        pts = [(0.0, reference), *pts]
    for (e0, a0), (e1, a1) in itertools.pairwise(pts):
        if a0 <= target:
            return e0
        if a1 <= target:
            return round(e0 + (e1 - e0) * (a0 - target) / (a0 - a1), 12)
    return pts[-1][0] if pts[-1][1] <= target else None


def eps_half(results: Mapping[str, Any], norm: str) -> float | None:
    """The eps at which a norm's robust accuracy halves: the stored value, else interpolated."""
    adv = suite(results, "adversarial") or {}
    norm_res = (adv.get("norms") or {}).get(norm)
    if not isinstance(norm_res, dict):
        return None
    if "eps_half" in norm_res:
        return _num(norm_res.get("eps_half"))
    ref = Estimate.parse(norm_res.get("clean_accuracy")) or Estimate.parse(
        (suite(results, "clean") or {}).get("accuracy")
    )
    if ref is None:
        return None
    return curve_eps_half([(e, a.value) for e, a in curve_estimates(norm_res)], ref.value)


@dataclass(frozen=True)
class Metric:
    """One headline number of an audit, as compared by ``compare`` and shown in summaries.

    Attributes:
        key: a stable identifier such as ``clean/accuracy`` or ``adversarial/linf/acc@0.1``.
        label: a human-readable name.
        estimate: the value with its N and interval when known.
        higher_is_better: True, False, or None when the direction has no meaning.
        proportion: True when the value is a fraction of N samples (accuracies).
    """

    key: str
    label: str
    estimate: Estimate
    higher_is_better: bool | None
    proportion: bool = False


def headline_metrics(results: Mapping[str, Any]) -> list[Metric]:
    """The headline numbers of an audit, in a stable order, for ``compare`` and summaries.

    Example:
        >>> res = {"suites": {"clean": {"accuracy": {"value": 0.9, "n": 100}}}}
        >>> [(m.key, m.estimate.value) for m in headline_metrics(res)]
        [('clean/accuracy', 0.9)]
    """
    out: list[Metric] = []

    def add(key: str, label: str, obj: Any, better: bool | None, proportion: bool = False) -> None:
        est = Estimate.parse(obj)
        if est is not None:
            out.append(Metric(key, label, est, better, proportion))

    clean = suite(results, "clean")
    if clean:
        add("clean/accuracy", "clean accuracy", clean.get("accuracy"), True, True)
    corr = suite(results, "corruption")
    if corr:
        add(
            "corruption/mean_accuracy",
            "mean corruption accuracy",
            corr.get("mean_accuracy"),
            True,
            True,
        )
        add("corruption/mce", "mCE", corr.get("mce"), False)
        for name, est in sorted((corr.get("per_corruption_mean") or {}).items()):
            add(
                f"corruption/{name}",
                f"accuracy under {name} (mean over severities)",
                est,
                True,
                True,
            )
    adv = suite(results, "adversarial")
    if adv:
        for norm, norm_res in (adv.get("norms") or {}).items():
            if not isinstance(norm_res, dict):
                continue
            add(
                f"adversarial/{norm}/eps_half",
                f"{norm} eps at half accuracy",
                eps_half(results, norm),
                True,
            )
            add(
                f"adversarial/{norm}/median_min_norm",
                f"{norm} median minimal perturbation",
                norm_res.get("median_min_norm"),
                True,
            )
            for e, est in curve_estimates(norm_res):
                out.append(
                    Metric(
                        f"adversarial/{norm}/acc@{e:g}",
                        f"{norm} robust accuracy at eps {e:g}",
                        est,
                        True,
                        True,
                    )
                )
    cal = suite(results, "calibration")
    if cal:
        for when in ("before", "after"):
            part = cal.get(when) or {}
            tag = "before temperature scaling" if when == "before" else "after temperature scaling"
            add(f"calibration/ece_{when}", f"ECE {tag}", part.get("ece"), False)
        add("calibration/temperature", "temperature", cal.get("temperature"), None)
    ood = suite(results, "ood")
    if ood:
        for set_name, set_res in sorted((ood.get("sets") or {}).items()):
            for method, mres in sorted(((set_res or {}).get("methods") or {}).items()):
                if isinstance(mres, dict):
                    add(
                        f"ood/{set_name}/{method}/auroc",
                        f"AUROC {set_name} ({method})",
                        mres.get("auroc"),
                        True,
                    )
    return out
