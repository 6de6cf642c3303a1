"""Gate CI on an audit: compare its results with thresholds and name every violation.

Thresholds (the CLI flags of ``robustcv check``; each compares the point estimate):

* ``--min-acc V``: clean accuracy >= V;
* ``--min-robust-acc V@NORM:EPS`` (repeatable): robust accuracy at EPS >= V; EPS must be in the
  audit's grid (re-run the audit with ``--eps NORM:EPS`` to add it);
* ``--max-mce V``: mean corruption error (percent of the baseline's error, 100 = as good as
  the baseline) <= V (needs an audit with a baseline model);
* ``--max-ece V[@before|@after]``: ECE (equal-width bins) <= V, before temperature scaling by
  default (the model as shipped);
* ``--min-auroc V[@SET/METHOD]`` (repeatable): OOD AUROC >= V for every (set, method) pair that
  matches; ``SET`` and ``METHOD`` default to every one (``*``), a lone name selects a method
  when it is a method name and a set otherwise;
* ``--max-corruption-drop V[@CORRUPTION]`` (repeatable): clean accuracy minus the mean
  corruption accuracy (or one corruption's mean over severities) <= V; the clean accuracy is
  the corruption suite's own (same images) when recorded, else the clean suite's.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from robustcv.core.errors import InputError
from robustcv.core.results import Result
from robustcv.report._results import Estimate, find_eps, load_results, suite

__all__ = [
    "METRICS",
    "CheckResult",
    "Outcome",
    "Threshold",
    "check",
    "parse_threshold",
    "parse_thresholds",
    "required_eps",
]

METRICS: dict[str, str] = {
    "min-acc": "clean accuracy >= V",
    "min-robust-acc": "robust accuracy at NORM:EPS >= V (V@NORM:EPS)",
    "max-mce": "mean corruption error in percent of the baseline's <= V",
    "max-ece": "ECE <= V (V or V@before / V@after)",
    "min-auroc": "OOD AUROC >= V (V, V@METHOD, V@SET or V@SET/METHOD)",
    "max-corruption-drop": "clean minus corruption accuracy <= V (V or V@CORRUPTION)",
}
"""Threshold names (the CLI flag without ``--``) and what each one checks."""

_NORMS = ("linf", "l2", "l1")
_NORM_ALIASES = {"inf": "linf", "linfty": "linf", "l_inf": "linf", "2": "l2", "1": "l1"}
_QUALIFIED = {"min-robust-acc", "max-ece", "min-auroc", "max-corruption-drop"}
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"


@dataclass(frozen=True)
class Threshold:
    """One threshold: a metric name, a limit and an optional qualifier.

    Attributes:
        metric: one of :data:`METRICS`.
        limit: the bound (a fraction for accuracies, AUROC and ECE).
        qualifier: the part after ``@`` (``linf:0.1``, ``after``, ``SET/METHOD``, ...), if any.

    Example:
        >>> parse_threshold("min-robust-acc", "0.5@linf:0.1").flag
        '--min-robust-acc 0.5@linf:0.1'
    """

    metric: str
    limit: float
    qualifier: str | None = None

    @property
    def flag(self) -> str:
        """The threshold as the command-line flag that sets it."""
        q = f"@{self.qualifier}" if self.qualifier else ""
        return f"--{self.metric} {self.limit:g}{q}"

    @property
    def norm_eps(self) -> tuple[str, float]:
        """``(norm, eps)`` of a ``min-robust-acc`` threshold."""
        if self.metric != "min-robust-acc" or not self.qualifier:
            raise InputError(f"{self.flag} has no NORM:EPS")
        norm, eps = self.qualifier.split(":")
        return norm, float(eps)


def parse_threshold(metric: str, text: str | float) -> Threshold:
    """Parse one threshold value such as ``0.9``, ``0.5@linf:0.1`` or ``0.05@after``.

    Args:
        metric: the threshold name (a key of :data:`METRICS`; ``_`` is accepted for ``-``).
        text: the value as given on the command line (or a number).

    Raises:
        InputError: unknown metric, malformed value or qualifier.

    Example:
        >>> parse_threshold("max_ece", "0.05@after")
        Threshold(metric='max-ece', limit=0.05, qualifier='after')
        >>> parse_threshold("min-acc", 0.9)
        Threshold(metric='min-acc', limit=0.9, qualifier=None)
    """
    name = metric.strip().lstrip("-").replace("_", "-")
    if name not in METRICS:
        known = ", ".join(f"--{m}" for m in METRICS)
        raise InputError(f"unknown threshold '{metric}'; known thresholds: {known}")
    raw = str(text).strip()
    value, sep, qualifier = raw.partition("@")
    if not re.fullmatch(_NUMBER, value.strip()):
        raise InputError(
            f"--{name} needs a number{' (optionally @QUALIFIER)' if name in _QUALIFIED else ''}, "
            f"got '{raw}'; e.g. --{name} {_example(name)}"
        )
    limit = float(value)
    if not math.isfinite(limit):
        raise InputError(f"--{name} needs a finite number, got '{raw}'")
    q = qualifier.strip() if sep else None
    if sep and not q:
        raise InputError(f"--{name} '{raw}' has an empty qualifier after '@'")
    if name in ("min-acc", "max-mce") and q is not None:
        raise InputError(
            f"--{name} takes a plain number, got '{raw}'; e.g. --{name} {_example(name)}"
        )
    if name == "min-robust-acc":
        m = re.fullmatch(rf"([\w-]+)\s*:\s*({_NUMBER})", q or "")
        if not m:
            raise InputError(
                f"--min-robust-acc needs V@NORM:EPS, got '{raw}'; "
                "e.g. --min-robust-acc 0.5@linf:0.1"
            )
        norm = m.group(1).lower().replace("-", "")
        norm = _NORM_ALIASES.get(norm, norm)
        if norm not in _NORMS:
            raise InputError(
                f"--min-robust-acc: unknown norm '{m.group(1)}' in '{raw}'; use one of "
                f"{', '.join(_NORMS)}"
            )
        if float(m.group(2)) <= 0:
            raise InputError(f"--min-robust-acc: eps must be positive, got '{raw}'")
        q = f"{norm}:{m.group(2)}"
    if name == "max-ece" and q is not None and q not in ("before", "after"):
        raise InputError(f"--max-ece qualifier must be 'before' or 'after', got '{raw}'")
    if name in ("min-acc", "min-robust-acc", "max-ece", "min-auroc") and not 0.0 <= limit <= 1.0:
        raise InputError(f"--{name} is a fraction in [0, 1], got {limit:g}")
    return Threshold(name, limit, q)


def _example(name: str) -> str:
    return {
        "min-acc": "0.9",
        "min-robust-acc": "0.5@linf:0.1",
        "max-mce": "100",
        "max-ece": "0.05",
        "min-auroc": "0.9",
        "max-corruption-drop": "0.1",
    }[name]


def parse_thresholds(
    spec: Mapping[str, Any] | Iterable[Threshold],
) -> list[Threshold]:
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
        out += [parse_threshold(name, v) for v in values]
    return out


def required_eps(thresholds: Mapping[str, Any] | Iterable[Threshold]) -> dict[str, list[float]]:
    """The eps values that ``min-robust-acc`` thresholds need in an audit's grid, per norm.

    Example:
        >>> required_eps({"min_robust_acc": ["0.5@linf:0.1", "0.3@l2:1.5", "0.4@linf:0.1"]})
        {'linf': [0.1], 'l2': [1.5]}
    """
    out: dict[str, list[float]] = {}
    for t in parse_thresholds(thresholds):
        if t.metric == "min-robust-acc":
            norm, eps = t.norm_eps
            if eps not in out.setdefault(norm, []):
                out[norm].append(eps)
    return out


@dataclass
class Outcome(Result):
    """The verdict on one threshold (one per OOD set/method for ``min-auroc``).

    Attributes:
        threshold: the flag, e.g. ``--min-acc 0.9``.
        metric: what was measured, in words.
        value: the measured point estimate.
        limit: the threshold.
        passed: True when the value is on the right side of the limit.
        low: lower end of the value's 95% interval, when known.
        high: upper end, when known.
        n: samples behind the value, when known.
    """

    threshold: str
    metric: str
    value: float
    limit: float
    passed: bool
    low: float | None = None
    high: float | None = None
    n: int | None = None

    @property
    def text(self) -> str:
        """One line: PASS/FAIL, the metric, value vs threshold, and the flag."""
        op = ">=" if self.threshold.startswith("--min") else "<="
        ci = (
            f" [95% {self.low:.3f}-{self.high:.3f}]"
            if self.low is not None and self.high is not None
            else ""
        )
        n = f" N={self.n}" if self.n is not None else ""
        verdict = "PASS" if self.passed else "FAIL"
        return (
            f"{verdict} {self.metric}: {self.value:.4f}{ci}{n} "
            f"{'is' if self.passed else 'is not'} {op} {self.limit:g} ({self.threshold})"
        )


@dataclass
class CheckResult(Result):
    """All threshold verdicts for one audit.

    Attributes:
        source: the audit folder (or "results" for a dict).
        passed: True when every outcome passed.
        outcomes: one :class:`Outcome` per checked value.
    """

    source: str
    passed: bool
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def failures(self) -> list[Outcome]:
        """The outcomes that failed."""
        return [o for o in self.outcomes if not o.passed]


def _outcome(t: Threshold, metric: str, est: Estimate, *, higher_is_better: bool) -> Outcome:
    passed = est.value >= t.limit if higher_is_better else est.value <= t.limit
    return Outcome(t.flag, metric, est.value, t.limit, passed, est.low, est.high, est.n)


def _need(results: Mapping[str, Any], name: str, t: Threshold) -> dict[str, Any]:
    res = suite(results, name)
    if res is None:
        raise InputError(
            f"{t.flag}: the audit has no '{name}' suite; re-run 'robustcv audit' with "
            f"--suites including {name}"
        )
    return res


def _clean_accuracy(results: Mapping[str, Any], t: Threshold) -> Estimate:
    est = Estimate.parse(_need(results, "clean", t).get("accuracy"))
    if est is None:
        raise InputError(f"{t.flag}: results.json has no clean accuracy; re-run the audit")
    return est


def _evaluate(results: Mapping[str, Any], t: Threshold) -> list[Outcome]:
    if t.metric == "min-acc":
        return [_outcome(t, "clean accuracy", _clean_accuracy(results, t), higher_is_better=True)]
    if t.metric == "min-robust-acc":
        norm, eps = t.norm_eps
        adv = _need(results, "adversarial", t)
        nr = (adv.get("norms") or {}).get(norm)
        if not isinstance(nr, Mapping):
            raise InputError(
                f"{t.flag}: the audit measured no {norm} robustness; re-run 'robustcv audit' "
                f"with --eps {norm}:{eps:g}"
            )
        est = find_eps(nr, eps)
        if est is None:
            grid = ", ".join(f"{e:g}" for e in (nr.get("eps") or []))
            raise InputError(
                f"{t.flag}: eps {eps:g} is not in the audit's {norm} grid ({grid}); re-run "
                f"'robustcv audit' with --eps {norm}:{eps:g}"
            )
        return [_outcome(t, f"{norm} robust accuracy at eps {eps:g}", est, higher_is_better=True)]
    if t.metric == "max-mce":
        est = Estimate.parse(_need(results, "corruption", t).get("mce"))
        if est is None:
            raise InputError(
                f"{t.flag}: the audit has no mCE (it needs a baseline model); re-run the audit "
                "with a baseline or gate on --max-corruption-drop instead"
            )
        return [_outcome(t, "mean corruption error (mCE, %)", est, higher_is_better=False)]
    if t.metric == "max-ece":
        when = t.qualifier or "before"
        est = Estimate.parse((_need(results, "calibration", t).get(when) or {}).get("ece"))
        if est is None:
            raise InputError(f"{t.flag}: results.json has no ECE {when} temperature scaling")
        tag = "before" if when == "before" else "after"
        return [_outcome(t, f"ECE {tag} temperature scaling", est, higher_is_better=False)]
    if t.metric == "min-auroc":
        return _auroc(results, t)
    return _corruption_drop(results, t)


def _auroc(results: Mapping[str, Any], t: Threshold) -> list[Outcome]:
    sets = _need(results, "ood", t).get("sets") or {}
    methods = sorted({str(m) for s in sets.values() for m in ((s or {}).get("methods") or {})})
    want_set, want_method = "*", "*"
    if t.qualifier:
        if "/" in t.qualifier:
            want_set, want_method = (p.strip() or "*" for p in t.qualifier.split("/", 1))
        elif t.qualifier in methods:
            want_method = t.qualifier
        else:
            want_set = t.qualifier
    for want, known, what in (
        (want_set, list(sets), "OOD set"),
        (want_method, methods, "OOD score"),
    ):
        if want != "*" and want not in known:
            raise InputError(
                f"{t.flag}: no {what} '{want}' in the results; known: {', '.join(map(str, known))}"
            )
    out = []
    for set_name, sres in sets.items():
        if want_set not in ("*", set_name):
            continue
        for method, mres in ((sres or {}).get("methods") or {}).items():
            if want_method not in ("*", method):
                continue
            est = Estimate.parse((mres or {}).get("auroc"))
            if est is not None:
                out.append(_outcome(t, f"AUROC {set_name} ({method})", est, higher_is_better=True))
    if not out:
        raise InputError(f"{t.flag}: the results hold no AUROC to check")
    return out


def _corruption_drop(results: Mapping[str, Any], t: Threshold) -> list[Outcome]:
    corr = _need(results, "corruption", t)
    # the corruption suite's own clean accuracy (same images) when recorded, else the clean suite
    clean = Estimate.parse(corr.get("clean_accuracy")) or _clean_accuracy(results, t)
    if t.qualifier:
        means = corr.get("per_corruption_mean") or {}
        if t.qualifier not in means:
            raise InputError(
                f"{t.flag}: no corruption '{t.qualifier}' in the results; known: "
                f"{', '.join(map(str, means))}"
            )
        est, what = Estimate.parse(means[t.qualifier]), f"accuracy drop under {t.qualifier}"
    else:
        est, what = Estimate.parse(corr.get("mean_accuracy")), "accuracy drop under corruptions"
    if est is None:
        raise InputError(f"{t.flag}: results.json has no corruption accuracy to compare")
    drop = Estimate(clean.value - est.value)
    return [
        _outcome(
            t, f"{what} (clean {clean.value:.4f} - {est.value:.4f})", drop, higher_is_better=False
        )
    ]


def check(
    results_dir: str | os.PathLike[str] | Mapping[str, Any],
    thresholds: Mapping[str, Any] | Iterable[Threshold],
) -> CheckResult:
    """Check an audit's results against thresholds.

    Args:
        results_dir: the audit folder, its ``results.json``, or the results dict.
        thresholds: :class:`Threshold` objects or a mapping such as
            ``{"min_acc": 0.9, "min_robust_acc": ["0.5@linf:0.1"], "max_ece": 0.05}``
            (names and formats as in :data:`METRICS`).

    Returns:
        A :class:`CheckResult`; ``passed`` is False when any threshold is violated.

    Raises:
        InputError: no thresholds, a malformed one, or one that the results cannot answer
            (a suite not run, an eps not in the grid, ...).

    Example:
        >>> res = {"suites": {"clean": {"accuracy": {"value": 0.88, "n": 1000}}}}
        >>> out = check(res, {"min_acc": 0.9})
        >>> out.passed, out.failures[0].text
        (False, 'FAIL clean accuracy: 0.8800 N=1000 is not >= 0.9 (--min-acc 0.9)')
    """
    parsed = parse_thresholds(thresholds)
    if not parsed:
        raise InputError(
            "no thresholds given; pass at least one, e.g. --min-acc 0.9 or "
            "--min-robust-acc 0.5@linf:0.1"
        )
    results, _ = load_results(results_dir)
    outcomes = [o for t in parsed for o in _evaluate(results, t)]
    source = "results" if isinstance(results_dir, Mapping) else str(results_dir)
    return CheckResult(source=source, passed=all(o.passed for o in outcomes), outcomes=outcomes)
