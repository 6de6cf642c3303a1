"""Corruption suite: accuracy at every (corruption, severity), mean accuracy, mCE vs a baseline.

Condition (c, s) corrupts with ``robustcv.corrupt(x, c, s, seed=derive_seed(seed, c, s),
spec=spec)``, the same images :func:`robustcv.corruptions.corruption_accuracy` would produce
with the same global seed, so the table equals that function's on the same images (this is why
its seed key is (corruption, severity) and not the unit's).

Results (``suites.corruption``): ``n``, ``spec``, ``corruptions``, ``severities``,
``clean_accuracy``, ``table`` (corruption -> severity -> estimate), ``per_corruption_mean``,
``mean_accuracy`` (estimate), ``worst``, ``baseline``, ``ce``, ``mce``, ``relative_mce``,
``mce_corruptions``, ``notes``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

import numpy as np

from robustcv.audit import plots
from robustcv.audit.plan import Row, Unit, shards
from robustcv.audit.schema import accuracy_estimate, read_results
from robustcv.audit.suite import (
    CheckSpec,
    EstimateDict,
    Metric,
    Outcome,
    Suite,
    Threshold,
    est_view,
    fmt,
    notes_list,
    section_of,
)
from robustcv.audit.validate import int_tuple, positive_int, str_tuple
from robustcv.core.errors import InputError
from robustcv.core.seeding import derive_seed
from robustcv.core.stats import Estimate, finite_or_none

if TYPE_CHECKING:
    from robustcv.audit.context import AuditContext

__all__ = [
    "SUITE",
    "CorruptionConfig",
    "CorruptionSection",
    "CorruptionSuite",
    "load_baseline",
    "mce_against",
    "resolve_corruptions",
]


class CorruptionSection(TypedDict):
    """``suites.corruption`` of results.json (``table``: corruption -> severity -> estimate)."""

    spec: str
    n: int
    corruptions: list[str]
    severities: list[int]
    clean_accuracy: EstimateDict
    table: dict[str, dict[str, EstimateDict]]
    per_corruption_mean: dict[str, EstimateDict]
    mean_accuracy: EstimateDict
    worst: list[str]
    baseline: str | None
    ce: dict[str, float] | None
    mce: float | None
    relative_mce: float | None
    mce_corruptions: list[str]
    notes: list[str]


@dataclass(frozen=True)
class CorruptionConfig:
    """Accuracy under common corruptions.

    Attributes:
        n: images corrupted per (corruption, severity) (None: all).
        corruptions: ``"benchmark"`` (ImageNet-C's 15), ``"all"`` (19), or names.
        severities: severities per corruption.
        spec: corruption parameter spec (``auto``, ``imagenet-c``, ``cifar-10-c``).
        baseline: an earlier audit folder (or its results.json) whose corruption table is the
            mCE baseline (aggregation only), or ``"alexnet"`` (ImageNet-C's published errors).
    """

    n: int | None = 1000
    corruptions: tuple[str, ...] = ("benchmark",)
    severities: tuple[int, ...] = (1, 2, 3, 4, 5)
    spec: str = "auto"
    baseline: str | None = None

    def __post_init__(self) -> None:
        positive_int(self.n, "corruption.n", allow_none=True)
        object.__setattr__(self, "corruptions", str_tuple(self.corruptions, "corruptions"))
        object.__setattr__(self, "severities", int_tuple(self.severities, "corruption.severities"))
        if self.baseline is not None and not isinstance(self.baseline, str):
            raise InputError("corruption.baseline must be an audit folder path or 'alexnet'")


def resolve_corruptions(selection: tuple[str, ...]) -> list[str]:
    """Registered canonical corruption names for a selection (groups or names).

    Example:
        >>> resolve_corruptions(("fog", "benchmark"))[:3]
        ['fog', 'gaussian_noise', 'shot_noise']
    """
    from robustcv.corruptions.selection import select_corruptions

    return select_corruptions(list(selection))


def load_baseline(spec: str) -> tuple[str, dict[str, Any], float | None]:
    """(description, error table, clean error or None) of an mCE baseline.

    ``spec`` is ``"alexnet"`` or an earlier audit folder / results.json with a corruption table.
    """
    from robustcv.corruptions import metrics

    if spec.strip().lower() == "alexnet":
        return "alexnet (ImageNet-C)", dict(metrics.ALEXNET_ERRORS), None
    path = Path(spec).expanduser()
    if not path.exists():
        raise InputError(
            f"corruption.baseline {spec!r} does not exist; give an earlier audit folder (its "
            "results.json has the baseline's corruption table) or 'alexnet'"
        )
    res = read_results(path)
    corr = (res.get("suites") or {}).get("corruption")
    if not isinstance(corr, dict) or not corr.get("table"):
        raise InputError(f"{path} has no corruption results; audit the baseline with them first")
    table = {
        c: {int(s): 1.0 - float(est["value"]) for s, est in row.items()}
        for c, row in corr["table"].items()
    }
    clean = corr.get("clean_accuracy")
    clean_err = 1.0 - float(clean["value"]) if isinstance(clean, dict) else None
    model = (res.get("model") or {}).get("spec") or (res.get("config") or {}).get("model")
    return f"audit of {model} ({path})", table, clean_err


_TEMPLATE = """{% from "_macros.html.j2" import est, figure, notes %}
<p>Mean corruption accuracy {{ est(v.mean_accuracy) }}{% if v.mce %} · mCE {{ v.mce }}%{% if v.relative_mce %} (relative mCE {{ v.relative_mce }}%){% endif %}{% if v.baseline %} against baseline <span class="mono">{{ v.baseline }}</span>{% endif %}{% endif %}
{% if v.clean_accuracy %} · clean accuracy on the same images {{ est(v.clean_accuracy) }}{% endif %}
{% if v.n is not none %} · N = {{ v.n }} images per cell{% endif %}{% if v.spec %} · corruption set <span class="mono">{{ v.spec }}</span>{% endif %}</p>
{{ figure(v.heatmap, "corruption heatmap") }}
<details><summary>table with intervals (sorted by mean accuracy, worst first)</summary>
<table>
<tr><th>corruption</th><th>mean</th>{% if v.has_ce %}<th>CE %</th>{% endif %}{% for s in v.severities %}<th>severity {{ s }}</th>{% endfor %}</tr>
{% for r in v.rows %}
<tr><td>{{ r.name }}</td><td>{{ est(r.mean) }}</td>{% if v.has_ce %}<td class="num">{{ r.ce or "–" }}</td>{% endif %}{% for c in r.cells %}<td>{{ est(c) }}</td>{% endfor %}</tr>
{% endfor %}
</table></details>
{{ notes(v.notes) }}
"""  # noqa: E501

_CARD = """{% from "_macros.html.j2" import est %}
<div class="card"><h3>Worst corruptions</h3>
<table>
{% for c in v.worst %}
<tr><td>{{ c.name }}{% if c.drop %} <span class="bad small">{{ c.drop }}</span>{% endif %}</td><td>{{ est(c.est) }}</td></tr>
{% endfor %}
</table>
{% if v.worst_cell %}<p class="small muted">worst single cell: {{ v.worst_cell.name }} at severity {{ v.worst_cell.severity }}: {{ est(v.worst_cell.est) }}</p>{% endif %}
</div>
"""  # noqa: E501


def _sev_key(key: str) -> tuple[float, str]:
    v = finite_or_none(key)
    return (math.inf if v is None else v, str(key))


def _cells(corr: Mapping[str, Any]) -> tuple[list[str], list[str], dict[str, Any]]:
    table = corr.get("table") or {}
    names = [str(n) for n in table if isinstance(table[n], Mapping)]
    sevs: set[str] = set()
    for n in names:
        sevs.update(str(s) for s in table[n])
    return names, sorted(sevs, key=_sev_key), table


def _means(corr: Mapping[str, Any]) -> dict[str, Estimate]:
    means = {}
    for name, obj in (corr.get("per_corruption_mean") or {}).items():
        e = Estimate.parse(obj)
        if e is not None:
            means[str(name)] = e
    if means:
        return means
    names, sevs, table = _cells(corr)
    for n in names:
        vals = [e.value for s in sevs if (e := Estimate.parse(table[n].get(s))) is not None]
        if vals:
            means[n] = Estimate(sum(vals) / len(vals))
    return means


def _error_sums(corr: Mapping[str, Any]) -> dict[str, dict[str, tuple[float, float | None]]]:
    """Per corruption and severity: ``(error, its binomial variance or None without an N)``."""
    names, sevs, table = _cells(corr)
    out: dict[str, dict[str, tuple[float, float | None]]] = {}
    for name in names:
        row = {}
        for s in sevs:
            e = Estimate.parse(table[name].get(s))
            if e is not None:
                err = 1.0 - e.value
                row[s] = (err, err * (1.0 - err) / e.n if e.n else None)
        if row:
            out[name] = row
    return out


def mce_against(corr: Mapping[str, Any], base: Mapping[str, Any]) -> Estimate | None:
    """The mCE (percent) of a corruption section against a baseline's, with an interval.

    Hendrycks and Dietterich's definition with the baseline in AlexNet's place:
    ``CE_c = 100 * sum_s E_{s,c} / sum_s E^{base}_{s,c}`` and mCE is the mean of ``CE_c`` over
    the corruptions both sections hold with the same severities (a baseline error sum of 0
    leaves the corruption out). The interval is ``mCE +- 1.96 sd``: each ``CE_c``'s standard
    deviation by the delta method (binomial errors per cell, model and baseline independent),
    and ``sd(mCE) <= mean_c sd(CE_c)``, which holds whatever the correlation between
    corruptions. The same section on both sides gives exactly 100.

    Args:
        corr: the row's ``suites.corruption`` section (its ``table``).
        base: the baseline's section.

    Returns:
        The mCE estimate (N: images per cell), or None when no corruption is shared.

    Example:
        >>> mine = {"n": 100, "table": {"fog": {"1": {"value": 0.8, "n": 100}}}}
        >>> base = {"n": 100, "table": {"fog": {"1": {"value": 0.6, "n": 100}}}}
        >>> round(mce_against(mine, base).value, 6), mce_against(base, base).value
        (50.0, 100.0)
    """
    if corr is base or corr == base:
        n = corr.get("n") if isinstance(corr.get("n"), int) else None
        return Estimate(100.0, 100.0, 100.0, n, "the baseline itself")
    mine, theirs = _error_sums(corr), _error_sums(base)
    ces: list[float] = []
    sds: list[float] = []
    for name, row in mine.items():
        other = theirs.get(name)
        if other is None or set(other) != set(row):
            continue
        sum_m = sum(e for e, _ in row.values())
        sum_b = sum(e for e, _ in other.values())
        if sum_b <= 0:
            continue
        ce = 100.0 * sum_m / sum_b
        ces.append(ce)
        var_m = [v for _, v in row.values() if v is not None]
        var_b = [v for _, v in other.values() if v is not None]
        if len(var_m) < len(row) or len(var_b) < len(other):
            sds.append(math.nan)
            continue
        # d CE / d sum_m = 100 / sum_b; d CE / d sum_b = -CE / sum_b
        var = (100.0 / sum_b) ** 2 * sum(var_m) + (ce / sum_b) ** 2 * sum(var_b)
        sds.append(math.sqrt(var))
    if not ces:
        return None
    value = sum(ces) / len(ces)
    half = 1.96 * sum(sds) / len(sds)
    n = corr.get("n") if isinstance(corr.get("n"), int) else None
    how = (
        f"delta method over {len(ces)} corruption(s), conservative across corruptions "
        "(mean of their standard deviations)"
    )
    if math.isnan(half):
        return Estimate(value, n=n, method=f"mean over {len(ces)} corruption(s), no interval")
    return Estimate(value, max(0.0, value - half), value + half, n, how)


def _check_mce(section: Mapping[str, Any], t: Threshold) -> list[Outcome]:
    est = Estimate.parse(section.get("mce"))
    if est is None:
        raise InputError(
            f"{t.flag}: the audit has no mCE (it needs a baseline model); re-run the audit "
            "with a baseline or gate on --max-corruption-drop instead"
        )
    return [Outcome.judge(t, "mean corruption error (mCE, %)", est, higher_is_better=False)]


def _check_drop(results: Mapping[str, Any], corr: Mapping[str, Any], t: Threshold) -> list[Outcome]:
    # the corruption suite's own clean accuracy (same images) when recorded, else the clean suite
    clean = Estimate.parse(corr.get("clean_accuracy")) or Estimate.parse(
        (section_of(results, "clean") or {}).get("accuracy")
    )
    if clean is None:
        raise InputError(f"{t.flag}: results.json has no clean accuracy to compare with")
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
    return [Outcome.judge(t, what, Estimate(clean.value - est.value), higher_is_better=False)]


class CorruptionSuite(Suite):
    """One unit per (corruption, severity, shard), plus the clean accuracy of the same images."""

    name = "corruption"
    title = "Common corruptions"
    description = "accuracy under ImageNet-C corruptions at every severity; mCE vs a baseline"
    config_class = CorruptionConfig
    section_type = CorruptionSection
    order = 20
    aggregation_only = ("baseline",)
    report_template = _TEMPLATE
    card_template = _CARD
    checks = (
        CheckSpec(
            "max-mce",
            "mean corruption error in percent of the baseline's <= V",
            "V",
            "100",
            lambda r, s, t: _check_mce(s, t),
        ),
        CheckSpec(
            "max-corruption-drop",
            "clean minus corruption accuracy <= V (V or V@CORRUPTION)",
            "V[@CORRUPTION]",
            "0.1",
            lambda r, s, t: _check_drop(r, s, t),
            qualifier=str.strip,
        ),
    )

    def validate(self, config: Any, shape: tuple[int, ...]) -> None:
        """Spec, names, severities and image sizes; the baseline must be readable."""
        from robustcv.corruptions import CORRUPTIONS, SPECS

        cfg = config.corruption
        if cfg.spec not in SPECS:
            raise InputError(f"unknown corruption spec '{cfg.spec}'; use one of {', '.join(SPECS)}")
        for n in resolve_corruptions(cfg.corruptions):
            top = CORRUPTIONS.get(n).severities
            bad = [s for s in cfg.severities if not 1 <= s <= top]
            if bad:
                raise InputError(f"severity {bad} is outside 1..{top} for corruption '{n}'")
            size = CORRUPTIONS.get(n).min_size
            if min(shape[1:]) < size:
                raise InputError(
                    f"corruption '{n}' needs images of at least {size}x{size} pixels; the "
                    f"images are {shape[1]}x{shape[2]}: leave it out (corruption.corruptions)"
                )
        if cfg.baseline:
            load_baseline(cfg.baseline)

    def subsample(self, ctx: AuditContext, units: Sequence[Unit]) -> tuple[str, dict[str, Any]]:
        """Images per condition and the number of conditions."""
        k = len(self._positions(ctx))
        conds = {u.condition for u in units} - {"clean/0"}
        return (
            f"corruption {k} of {len(ctx.data)} images x {len(conds)} conditions",
            {"corruption": k},
        )

    def _positions(self, ctx: AuditContext) -> np.ndarray:
        return ctx.subset("corruption", ctx.config.corruption.n)

    def plan(self, ctx: AuditContext) -> list[Unit]:
        """Clean + every corruption x severity, each over shards of the suite's images."""
        cfg = ctx.config.corruption
        n = len(self._positions(ctx))
        parts = shards(n, ctx.config.shard_size)
        units = [
            Unit(self.name, "clean/0", i, {"start": a, "stop": b}, cost=float(b - a))
            for i, (a, b) in enumerate(parts)
        ]
        for name in resolve_corruptions(cfg.corruptions):
            for sev in cfg.severities:
                units += [
                    Unit(
                        self.name,
                        f"{name}/{sev}",
                        i,
                        {"corruption": name, "severity": sev, "start": a, "stop": b},
                        cost=2.0 * (b - a),
                    )
                    for i, (a, b) in enumerate(parts)
                ]
        return units

    def run(self, ctx: AuditContext, unit: Unit, deps: Mapping[str, Row]) -> Row:
        """Correct predictions on one shard of corrupted (or clean) images."""
        from robustcv.corruptions import corrupt

        p = unit.params
        x, y = ctx.images(self._positions(ctx)[p["start"] : p["stop"]])
        if "corruption" in p:
            seed = derive_seed(ctx.seed, p["corruption"], p["severity"])
            x = corrupt(
                x, p["corruption"], p["severity"], seed=seed, spec=ctx.config.corruption.spec
            )
        pred = ctx.logits(x).argmax(1)
        return {"n": len(y), "correct": int((pred == y).sum())}

    def aggregate(
        self, ctx: AuditContext, rows: Mapping[str, Row], notes: dict[str, Any]
    ) -> dict[str, Any]:
        """Accuracy table with intervals, means, and mCE when a baseline is configured."""
        from robustcv.corruptions import metrics

        cfg = ctx.config.corruption
        counts: dict[str, list[int]] = {}
        for key, row in rows.items():
            cond = key.split(":", 1)[1].rsplit("#", 1)[0]
            c = counts.setdefault(cond, [0, 0])
            c[0] += int(row["correct"])
            c[1] += int(row["n"])
        clean_k, n = counts.pop("clean/0")
        table: dict[str, dict[str, Any]] = {}
        pooled: dict[str, list[int]] = {}
        for cond, (k, m) in counts.items():
            name, sev = cond.rsplit("/", 1)
            table.setdefault(name, {})[sev] = accuracy_estimate(k, m)
            p = pooled.setdefault(name, [0, 0])
            p[0] += k
            p[1] += m
        order = resolve_corruptions(cfg.corruptions)
        table = {c: dict(sorted(table[c].items(), key=lambda kv: int(kv[0]))) for c in order}
        per_mean = {c: accuracy_estimate(*pooled[c]) for c in order}
        total_k = sum(p[0] for p in pooled.values())
        total_n = sum(p[1] for p in pooled.values())
        out: dict[str, Any] = {
            "spec": cfg.spec,
            "n": n,
            "corruptions": order,
            "severities": list(cfg.severities),
            "clean_accuracy": accuracy_estimate(clean_k, n),
            "table": table,
            "per_corruption_mean": per_mean,
            "mean_accuracy": accuracy_estimate(total_k, total_n),
            "worst": sorted(order, key=lambda c: per_mean[c]["value"])[:3],
            "baseline": None,
            "ce": None,
            "mce": None,
            "relative_mce": None,
            "mce_corruptions": [],
            "notes": [
                "per-corruption and mean accuracies pool every severity's counts; their "
                "Clopper-Pearson intervals treat the pooled predictions as independent trials "
                "(the same images repeat), so they are approximate"
            ],
        }
        if cfg.baseline:
            desc, base, base_clean = load_baseline(cfg.baseline)
            acc = {c: {int(s): e["value"] for s, e in table[c].items()} for c in order}
            errs = metrics.corruption_errors(acc)
            known = {metrics.canonical_name(k) for k in base}
            covered = [c for c in order if c in known]
            if not covered:
                notes.setdefault("notes", []).append(
                    f"corruption: the baseline {desc} covers none of the evaluated corruptions; "
                    "no mCE"
                )
                return out
            bench = list(metrics.BENCHMARK_CORRUPTIONS)
            mce_names = bench if set(bench) <= set(covered) else covered
            ce = metrics.ce({c: errs[c] for c in covered}, base)
            out.update(
                baseline=desc,
                ce=ce,
                mce=sum(ce[c] for c in mce_names) / len(mce_names),
                mce_corruptions=mce_names,
            )
            if mce_names != bench:
                out["notes"].append(
                    f"mCE averages {len(mce_names)} corruption(s), not ImageNet-C's 15 benchmark "
                    "corruptions"
                )
            if base_clean is not None:
                try:
                    rel = metrics.relative_ce(
                        {c: errs[c] for c in mce_names}, 1.0 - clean_k / n, base, base_clean
                    )
                    out["relative_mce"] = sum(rel.values()) / len(rel)
                except InputError as err:
                    out["notes"].append(f"no relative mCE: {err}")
        return out

    # -------------------------------------------------------------- words and report
    def summary_lines(self, section: Any) -> list[str]:
        """Mean accuracy, the worst corruptions and the mCE."""
        means = _means(section)
        worst = ", ".join(
            f"{w} {means[w].value:.3f}" for w in section.get("worst", []) if w in means
        )
        mce = f"; mCE {section['mce']:.1f}" if section.get("mce") is not None else ""
        mean = Estimate.parse(section.get("mean_accuracy"))
        return [
            f"mean accuracy {mean.text(4) if mean else '-'} over {len(section.get('table', {}))} "
            f"corruptions x {len(section.get('severities', []))} severities; worst: {worst}{mce}"
        ]

    def view(
        self, results: Mapping[str, Any], section: Any, folder: Path | None
    ) -> dict[str, Any] | None:
        """Heatmap, the table with intervals (worst first), mCE."""
        corr = section
        names, sevs, table = _cells(corr)
        means = _means(corr)
        grid: list[list[float | None]] = []
        rows: list[dict[str, Any]] = []
        ce_all = corr.get("ce") if isinstance(corr.get("ce"), Mapping) else {}
        for n in names:
            cells = [Estimate.parse(table[n].get(s)) for s in sevs]
            grid.append([None if c is None else c.value for c in cells])
            ce = finite_or_none(ce_all.get(n))
            rows.append(
                {
                    "name": n,
                    "mean": est_view(means.get(n)),
                    "cells": [est_view(c) for c in cells],
                    "ce": None if ce is None else f"{ce:.1f}",
                }
            )
        rows.sort(key=lambda r: r["mean"]["raw"] if r["mean"] else math.inf)
        heatmap = plots.corruption_heatmap(names, sevs, grid) if names and sevs else None
        return {
            "spec": str(corr.get("spec", "")),
            "n": corr.get("n"),
            "severities": sevs,
            "rows": rows,
            "mean_accuracy": est_view(corr.get("mean_accuracy")),
            "mce": fmt(corr.get("mce")) if corr.get("mce") is not None else None,
            "relative_mce": fmt(corr.get("relative_mce"))
            if corr.get("relative_mce") is not None
            else None,
            "baseline": str(corr["baseline"]) if corr.get("baseline") else None,
            "clean_accuracy": est_view(corr.get("clean_accuracy")),
            "heatmap": heatmap,
            "has_ce": any(r["ce"] is not None for r in rows),
            "notes": notes_list(corr.get("notes")),
        }

    def card(self, results: Mapping[str, Any], section: Any) -> dict[str, Any] | None:
        """The three worst corruptions (with their drop from clean) and the worst cell."""
        means = sorted(_means(section).items(), key=lambda kv: kv[1].value)
        if not means:
            return None
        ref = Estimate.parse(section.get("clean_accuracy")) or Estimate.parse(
            (section_of(results, "clean") or {}).get("accuracy")
        )
        worst = []
        for n, e in means[:3]:
            drop = None if ref is None else ref.value - e.value
            worst.append(
                {
                    "name": n,
                    "est": est_view(e),
                    "drop": f"−{drop:.3f}" if drop is not None and drop > 0 else None,
                }
            )
        cell: tuple[str, str, Estimate] | None = None
        names, sevs, table = _cells(section)
        for n in names:
            for s in sevs:
                found = Estimate.parse(table[n].get(s))
                if found is not None and (cell is None or found.value < cell[2].value):
                    cell = (n, s, found)
        worst_cell = None
        if cell:
            worst_cell = {"name": cell[0], "severity": cell[1], "est": est_view(cell[2])}
        return {"worst": worst, "worst_cell": worst_cell}

    def metrics(self, results: Mapping[str, Any], section: Any) -> list[Metric]:
        """Mean accuracy, mCE and each corruption's mean over severities."""
        out = []
        mean = Estimate.parse(section.get("mean_accuracy"))
        if mean is not None:
            out.append(
                Metric("corruption/mean_accuracy", "mean corruption accuracy", mean, True, True)
            )
        mce = Estimate.parse(section.get("mce"))
        if mce is not None:
            out.append(Metric("corruption/mce", "mCE", mce, False))
        for name, obj in sorted((section.get("per_corruption_mean") or {}).items()):
            est = Estimate.parse(obj)
            if est is not None:
                out.append(
                    Metric(
                        f"corruption/{name}",
                        f"accuracy under {name} (mean over severities)",
                        est,
                        True,
                        True,
                    )
                )
        return out

    def leaderboard_columns(self, results: Mapping[str, Any], section: Any) -> list[Metric]:
        """Mean corruption accuracy (``corruption/mean_accuracy``)."""
        return [m for m in self.metrics(results, section) if m.key == "corruption/mean_accuracy"]

    def leaderboard_baseline_columns(
        self,
        results: Mapping[str, Any],
        section: Any,
        baseline_results: Mapping[str, Any],
        baseline_section: Any,
    ) -> list[Metric]:
        """The mCE against the baseline row (``corruption/mce_vs_baseline``)."""
        est = mce_against(section, baseline_section)
        if est is None:
            return []
        return [Metric("corruption/mce_vs_baseline", "mCE (% of the baseline's)", est, False)]


SUITE = CorruptionSuite()
