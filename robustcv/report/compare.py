"""Compare two audits: headline metrics side by side, with deltas marked when within the noise.

The rule for "within the noise" (stated in every output):

* accuracies (a count out of N on both sides): a two-sided, pooled two-proportion z-test; the
  difference is within the noise when p >= 0.05. Both audits usually evaluate the same images, so
  the unpaired test is conservative (it over-states the noise of a paired difference);
* distributions (the median minimal perturbation per norm, which summarises each image's
  minimal perturbation): a two-sided Mann-Whitney U (Wilcoxon rank-sum) test on the two sets of
  per-image values (correctly classified pilot images; none found counts as infinite), normal
  approximation with tie and continuity corrections (:func:`robustcv.core.stats.mann_whitney`);
  within the noise when p >= 0.05. Like the z-test it ignores the pairing of shared images;
* other estimates with a 95% interval on both sides (AUROC, ECE): within the noise when the two
  intervals overlap;
* numbers without an interval (mCE, temperature, eps at half accuracy): no judgement, shown as
  ``n/a``.

Robust accuracy is compared wherever both audits measured the same eps. Every audit of the same
data evaluates its standard points (:func:`robustcv.audit.suites.adversarial.standard_eps`), so
two models always share those, while the pilot-scaled rest of each grid is listed as "in one
audit only".
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from robustcv.audit.registry import ordered_suites
from robustcv.audit.schema import load_results
from robustcv.audit.suite import Metric, section_of
from robustcv.core.errors import InputError
from robustcv.core.results import Result
from robustcv.core.stats import Estimate, mann_whitney

__all__ = [
    "ALPHA",
    "NOISE_RULE",
    "PROPORTION_TEST",
    "RANK_TEST",
    "ComparisonResult",
    "ComparisonRow",
    "compare",
    "comparison_table",
    "headline_metrics",
    "two_proportion_p",
    "write_comparison_html",
]

ALPHA = 0.05
"""Significance level of the two-proportion and rank tests."""

PROPORTION_TEST = "two-proportion z-test"
"""The test of accuracies (a count out of N on both sides), as named in each row."""

RANK_TEST = "Mann-Whitney U test"
"""The test of per-image distributions (minimal perturbations), as named in each row."""

NOISE_RULE = (
    "within the noise: accuracies (k of N on both sides, robust accuracy at the eps both audits "
    f"share included) when a two-sided pooled {PROPORTION_TEST} gives p >= {ALPHA} "
    "(conservative for audits on the same images); minimal-perturbation distributions (the "
    f"median minimal perturbation rows) when a two-sided {RANK_TEST} (Wilcoxon rank-sum, normal "
    f"approximation with tie correction; none found = infinite) gives p >= {ALPHA}; other "
    "estimates when their 95% intervals overlap; numbers without an interval are not judged (n/a)"
)


def two_proportion_p(p1: float, n1: int, p2: float, n2: int) -> float:
    """Two-sided p-value of the pooled two-proportion z-test of ``p1`` (of ``n1``) vs ``p2``.

    Example:
        >>> round(two_proportion_p(0.90, 1000, 0.92, 1000), 3)
        0.118
        >>> two_proportion_p(0.5, 10, 0.5, 10)
        1.0
    """
    for n in (n1, n2):
        if not (isinstance(n, (int, float)) and math.isfinite(n) and 0 < n < 2**63):
            raise InputError(f"two_proportion_p needs positive sample sizes, got {n1} and {n2}")
    for p in (p1, p2):
        if not (isinstance(p, (int, float)) and 0.0 <= p <= 1.0):
            raise InputError(f"two_proportion_p needs proportions in [0, 1], got {p1} and {p2}")
    k1, k2 = round(p1 * n1), round(p2 * n2)
    pooled = (k1 + k2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    diff = k1 / n1 - k2 / n2
    if se == 0.0:
        return 1.0 if diff == 0 else 0.0
    return math.erfc(abs(diff) / se / math.sqrt(2))


@dataclass
class ComparisonRow(Result):
    """One metric of both audits.

    Attributes:
        key: stable metric id, e.g. ``clean/accuracy``.
        label: human-readable name.
        a: the estimate in audit A (value, low, high, n, method), None when absent.
        b: the same in audit B.
        delta: ``b - a`` (None when either is absent).
        within_noise: True/False by the rule in :data:`NOISE_RULE`; None when not judged.
        test: :data:`PROPORTION_TEST`, :data:`RANK_TEST`, "interval overlap" or "none".
        p_value: the p-value of the test, when it has one.
        better: "a", "b" or None (equal, within the noise, or no direction).
    """

    key: str
    label: str
    a: dict[str, Any] | None
    b: dict[str, Any] | None
    delta: float | None
    within_noise: bool | None
    test: str
    p_value: float | None = None
    better: str | None = None


@dataclass
class ComparisonResult(Result):
    """Headline metrics of two audits side by side.

    Attributes:
        a_label: a name for audit A (its model spec, plus its folder when both specs match).
        b_label: the same for B.
        a_source: where A was read from.
        b_source: where B was read from.
        rule: how "within the noise" is decided.
        rows: metrics present in both audits, in report order.
        only_a: metric keys present in A only (e.g. eps values in A's grid only).
        only_b: metric keys present in B only.
        curves: robust-accuracy curves per norm for both, ``{norm: {"a": {...}, "b": {...}}}``.
    """

    a_label: str
    b_label: str
    a_source: str
    b_source: str
    rule: str
    rows: list[ComparisonRow]
    only_a: list[str] = field(default_factory=list)
    only_b: list[str] = field(default_factory=list)
    curves: dict[str, dict[str, dict[str, list[float | None]]]] = field(default_factory=dict)

    @property
    def significant(self) -> list[ComparisonRow]:
        """Rows whose difference is outside the noise."""
        return [r for r in self.rows if r.within_noise is False]


def _est_dict(e: Estimate) -> dict[str, Any]:
    low = e.low if e.has_interval else None
    high = e.high if e.has_interval else None
    return {"value": e.value, "low": low, "high": high, "n": e.n, "method": e.method or None}


def _judge(ma: Metric, mb: Metric) -> tuple[bool | None, str, float | None, float | None]:
    """``(within the noise, test, p-value, direction)``; direction > 0: B tends higher."""
    a, b = ma.estimate, mb.estimate
    if ma.samples and mb.samples:
        try:
            t = mann_whitney(ma.samples, mb.samples)
        except InputError as err:
            raise InputError(f"results.json: {ma.key}: {err}; re-run the audit") from err
        # U counts pairs where A is larger: below half of all pairs, B tends higher
        return t.p_value >= ALPHA, RANK_TEST, t.p_value, 0.5 - t.effect
    if ma.proportion and mb.proportion and a.n and b.n:
        try:
            p = two_proportion_p(a.value, a.n, b.value, b.n)
        except InputError as err:
            raise InputError(
                f"results.json: {ma.key} is not an accuracy with a count ({err}); re-run the "
                "audit to rewrite it"
            ) from err
        return p >= ALPHA, PROPORTION_TEST, p, None
    if a.has_interval and b.has_interval:
        return a.low <= b.high and b.low <= a.high, "interval overlap", None, None
    return None, "none", None, None


def _section(results: Mapping[str, Any], suite: Any) -> Any:
    return results.get(suite.results_key) if suite.results_key else section_of(results, suite.name)


def headline_metrics(results: Mapping[str, Any]) -> list[Metric]:
    """The headline numbers of an audit from every registered suite, in a stable order.

    Example:
        >>> res = {"suites": {"clean": {"accuracy": {"value": 0.9, "n": 100}}}}
        >>> [(m.key, m.estimate.value) for m in headline_metrics(res)]
        [('clean/accuracy', 0.9)]
    """
    from robustcv.report.html import reading

    out: list[Metric] = []
    for suite in ordered_suites():
        section = _section(results, suite)
        if section is not None:
            out += reading(results, suite, suite.metrics, results, section)
    return out


def _label(results: Mapping[str, Any], source: str) -> str:
    model = results.get("model")
    config = results.get("config")
    spec = (model.get("spec") if isinstance(model, Mapping) else None) or (
        config.get("model") if isinstance(config, Mapping) else None
    )
    return str(spec or source)


def _curves(results: Mapping[str, Any]) -> dict[str, dict[str, list[float | None]]]:
    from robustcv.report.html import reading

    out: dict[str, dict[str, list[float | None]]] = {}
    for suite in ordered_suites():
        section = _section(results, suite)
        if section is not None:
            out.update(reading(results, suite, suite.comparison_curves, section))
    return out


def compare(
    dir_a: str | os.PathLike[str] | Mapping[str, Any],
    dir_b: str | os.PathLike[str] | Mapping[str, Any],
) -> ComparisonResult:
    """Compare the headline metrics of two audits (B relative to A).

    Args:
        dir_a: audit A: its folder, its ``results.json``, or the results dict.
        dir_b: audit B, the same.

    Returns:
        A :class:`ComparisonResult`; ``delta = B - A`` and each row says whether the difference
        is within the noise (see :data:`NOISE_RULE`).

    Raises:
        InputError: either audit cannot be read.

    Example:
        >>> a = {"suites": {"clean": {"accuracy": {"value": 0.90, "n": 1000}}}}
        >>> b = {"suites": {"clean": {"accuracy": {"value": 0.92, "n": 1000}}}}
        >>> row = compare(a, b).rows[0]
        >>> row.key, round(row.delta, 3), row.within_noise
        ('clean/accuracy', 0.02, True)
    """
    ra, _ = load_results(dir_a)
    rb, _ = load_results(dir_b)
    src_a = "A" if isinstance(dir_a, Mapping) else str(dir_a)
    src_b = "B" if isinstance(dir_b, Mapping) else str(dir_b)
    la, lb = _label(ra, src_a), _label(rb, src_b)
    if la == lb:
        la, lb = f"{la} ({src_a})", f"{lb} ({src_b})"
    ma = {m.key: m for m in headline_metrics(ra)}
    mb = {m.key: m for m in headline_metrics(rb)}
    rows = []
    for key, m_a in ma.items():
        m_b = mb.get(key)
        if m_b is None:
            continue
        within, test, p, direction = _judge(m_a, m_b)
        delta = m_b.estimate.value - m_a.estimate.value
        if direction is None:
            direction = delta
        better = None
        if within is not True and direction != 0 and m_a.higher_is_better is not None:
            better = "b" if (direction > 0) == m_a.higher_is_better else "a"
        rows.append(
            ComparisonRow(
                key=key,
                label=m_a.label,
                a=_est_dict(m_a.estimate),
                b=_est_dict(m_b.estimate),
                delta=delta,
                within_noise=within,
                test=test,
                p_value=p,
                better=better,
            )
        )
    curves_a, curves_b = _curves(ra), _curves(rb)
    curves = {
        norm: {"a": curves_a.get(norm, {}), "b": curves_b.get(norm, {})}
        for norm in dict.fromkeys([*curves_a, *curves_b])
    }
    return ComparisonResult(
        a_label=la,
        b_label=lb,
        a_source=src_a,
        b_source=src_b,
        rule=NOISE_RULE,
        rows=rows,
        only_a=[k for k in ma if k not in mb],
        only_b=[k for k in mb if k not in ma],
        curves=curves,
    )


def _cell(e: Mapping[str, Any] | None) -> str:
    if e is None:
        return "-"
    est = Estimate.parse(e)
    return "-" if est is None else (f"{est.value:.3f} {est.interval_text()}").strip()


def _verdict(row: ComparisonRow) -> str:
    if row.within_noise is None:
        return "n/a"
    if row.within_noise:
        return "within noise"
    return {"a": "A better", "b": "B better"}.get(row.better or "", "differs")


def comparison_table(result: ComparisonResult) -> tuple[list[str], list[list[str]]]:
    """The comparison as a header and string rows (metric, A, B, delta, verdict).

    Example:
        >>> a = {"suites": {"clean": {"accuracy": {"value": 0.5, "n": 1000}}}}
        >>> b = {"suites": {"clean": {"accuracy": {"value": 0.6, "n": 1000}}}}
        >>> comparison_table(compare(a, b))[1][0][-1]
        'B better'
    """
    header = ["metric", "A", "B", "delta (B-A)", "verdict"]
    rows = [
        [
            r.label,
            _cell(r.a),
            _cell(r.b),
            "-" if r.delta is None else f"{r.delta:+.3f}",
            _verdict(r),
        ]
        for r in result.rows
    ]
    return header, rows


def write_comparison_html(result: ComparisonResult, out_path: str | os.PathLike[str]) -> Path:
    """Write the comparison as one self-contained HTML file (inline CSS, embedded plot, no script).

    Args:
        result: from :func:`compare`.
        out_path: the file to write (an existing folder: ``folder/comparison.html``).

    Returns:
        The path written.

    Example:
        >>> import tempfile, pathlib
        >>> a = {"suites": {"clean": {"accuracy": {"value": 0.5, "n": 100}}}}
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "cmp.html"
        >>> write_comparison_html(compare(a, a), out).is_file()
        True
    """
    from robustcv.audit import plots
    from robustcv.report.html import _CSP, _environment, write_html

    header, table = comparison_table(result)
    figure = None
    panels = {norm: c for norm, c in result.curves.items() if c.get("a") and c.get("b")}
    if panels:
        figure = plots.compare_curves(panels, result.a_label, result.b_label)
    html = (
        _environment()
        .get_template("compare.html.j2")
        .render(
            csp=_CSP,
            a_label=result.a_label,
            b_label=result.b_label,
            a_source=result.a_source,
            b_source=result.b_source,
            rule=result.rule,
            header=header,
            rows=[
                {
                    "cells": cells,
                    "verdict": _verdict(r),
                    "better": r.better,
                    "within": r.within_noise,
                    "test": r.test,
                    "p": r.p_value,
                }
                for cells, r in zip(table, result.rows, strict=True)
            ],
            only_a=result.only_a,
            only_b=result.only_b,
            figure=figure,
        )
    )
    return write_html(html, out_path, default_name="comparison.html", what="comparison")
