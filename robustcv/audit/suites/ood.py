"""OOD suite: MSP, max-logit, energy, ODIN and Mahalanobis against each OOD set.

OOD sets come from ``--ood-data`` (dataset specs, or ``derived:NAME``) or, by default, the
far-OOD sets derived from the in-distribution images (uniform noise, pixel-permuted, inverted;
labelled ``derived``). Units store per-image scores (higher = more in-distribution); metrics
(AUROC with a bootstrap interval, AUPR-in/out, FPR at 95% TPR) are computed when aggregating.
Scores a model cannot give (ODIN without gradients, Mahalanobis without features) are skipped
with the reason in ``skipped``. Mahalanobis is fitted on the fit data, never on evaluated images.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

import numpy as np
import torch

from robustcv.audit import plots
from robustcv.audit.context import ood_specs as ood_sets
from robustcv.audit.plan import Row, Unit, pack, shards, unpack
from robustcv.audit.suite import (
    CheckSpec,
    EstimateDict,
    Metric,
    Needs,
    Outcome,
    Suite,
    Threshold,
    est_view,
    fmt,
    notes_list,
)
from robustcv.audit.validate import positive_int, str_tuple
from robustcv.core.errors import InputError
from robustcv.core.seeding import derive_seed
from robustcv.core.stats import Estimate

if TYPE_CHECKING:
    from robustcv.audit.context import AuditContext

__all__ = ["SUITE", "OODConfig", "OODSection", "OODSuite"]


class OODRoc(TypedDict):
    """``...methods.<method>.roc``: the ROC curve's points (ID = positive)."""

    fpr: list[float]
    tpr: list[float]


# "in" is a Python keyword: the functional form of TypedDict
OODHist = TypedDict("OODHist", {"edges": list[float], "in": list[float], "out": list[float]})
"""``...methods.<method>.hist``: score histogram edges and in/out counts."""


class OODMethodSection(TypedDict):
    """``suites.ood.sets.<set>.methods.<method>`` of results.json."""

    auroc: EstimateDict
    aupr_in: float
    aupr_out: float
    fpr95: float
    hist: OODHist
    roc: OODRoc


class OODSetSection(TypedDict):
    """``suites.ood.sets.<set>`` of results.json."""

    derived: bool
    spec: str
    description: str
    n: int
    methods: dict[str, OODMethodSection]


class OODSection(TypedDict):
    """``suites.ood`` of results.json."""

    convention: str
    n_in: int
    methods: list[str]
    method_params: dict[str, dict[str, Any]]
    fit_n: int | None
    sets: dict[str, OODSetSection]
    weakest: dict[str, Any] | None


_FIT_METHODS = ("mahalanobis", "mds")


@dataclass(frozen=True)
class OODConfig:
    """Out-of-distribution detection.

    Attributes:
        n: in-distribution images, and images per OOD set.
        methods: OOD scores (``robustcv.diagnostics.OOD_SCORES``).
        fit_n: fit-data images for scores that need a fit (Mahalanobis).
    """

    n: int = 1000
    methods: tuple[str, ...] = ("msp", "max-logit", "energy", "odin", "mahalanobis")
    fit_n: int = 5000

    def __post_init__(self) -> None:
        positive_int(self.n, "ood.n")
        positive_int(self.fit_n, "ood.fit_n")
        object.__setattr__(self, "methods", str_tuple(self.methods, "ood.methods"))


def _check_auroc(ood: Mapping[str, Any], t: Threshold) -> list[Outcome]:
    sets = ood.get("sets") or {}
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
                out.append(
                    Outcome.judge(t, f"AUROC {set_name} ({method})", est, higher_is_better=True)
                )
    if not out:
        raise InputError(f"{t.flag}: the results hold no AUROC to check")
    return out


def _weakest(ood: Mapping[str, Any]) -> tuple[str, str, Estimate] | None:
    weakest = None
    for set_name, sres in (ood.get("sets") or {}).items():
        for m, r in ((sres or {}).get("methods") or {}).items():
            e = Estimate.parse((r or {}).get("auroc"))
            if e is not None and (weakest is None or e.value < weakest[2].value):
                weakest = (str(set_name), str(m), e)
    return weakest


_TEMPLATE = """{% from "_macros.html.j2" import est, figure, notes %}
{% if v.convention %}<p class="note small"><b>Convention:</b> {{ v.convention }}</p>{% endif %}
{% for s in v.sets %}
<h3>{{ s.name }} {% if s.derived %}<span class="muted small">(derived from the in-distribution data)</span>{% endif %}</h3>
{% if s.description %}<p class="small muted">{{ s.description }}</p>{% endif %}
<p class="small">{% if s.n is not none %}N OOD = {{ s.n }}{% endif %}{% if s.n_in is not none %} · N in-distribution = {{ s.n_in }}{% endif %}</p>
<table><tr><th>score</th><th>AUROC</th><th class="num">AUPR-in</th><th class="num">AUPR-out</th><th class="num">FPR@95%TPR</th></tr>
{% for m in s.methods %}<tr><td class="mono">{{ m.name }}</td><td>{{ est(m.auroc) }}</td><td class="num">{{ m.aupr_in }}</td><td class="num">{{ m.aupr_out }}</td><td class="num">{{ m.fpr95 }}</td></tr>{% endfor %}
</table>
{{ figure(s.figure, "ROC curves and score histograms") }}
{% else %}<p class="muted">no OOD sets in the results</p>
{% endfor %}
{% if v.method_params %}
<details><summary>score settings{% if v.fit_n is not none %} (feature statistics fitted on {{ v.fit_n }} training images){% endif %}</summary>
<table>{% for m, p in v.method_params %}<tr><td class="mono">{{ m }}</td><td class="small">{{ p or "no parameters" }}</td></tr>{% endfor %}</table>
</details>
{% endif %}
{{ notes(v.notes) }}
"""  # noqa: E501

_CARD = """{% from "_macros.html.j2" import est %}
<div class="card"><h3>Weakest OOD case</h3>
<p>{{ v.set }} with {{ v.method }}</p>
<p>AUROC <span class="big">{{ est(v.est) }}</span></p></div>
"""


class OODSuite(Suite):
    """Score units for the ID images and for each OOD set."""

    name = "ood"
    title = "Out-of-distribution detection"
    description = "MSP, max-logit, energy, ODIN and Mahalanobis AUROC against each OOD set"
    config_class = OODConfig
    section_type = OODSection
    order = 50
    report_template = _TEMPLATE
    card_template = _CARD
    checks = (
        CheckSpec(
            "min-auroc",
            "OOD AUROC >= V (V, V@METHOD, V@SET or V@SET/METHOD)",
            "V[@SET/METHOD]",
            "0.9",
            lambda r, s, t: _check_auroc(s, t),
            qualifier=str.strip,
            fraction=True,
        ),
    )

    def needs(self, config: Any) -> Needs:
        """OOD data always; fit data for Mahalanobis."""
        fit = any(m.lower() in _FIT_METHODS for m in config.ood.methods)
        return Needs(fit_data=fit, ood_data=True, features=fit)

    def validate(self, config: Any, shape: tuple[int, ...]) -> None:
        """Every score name must be registered."""
        from robustcv.diagnostics.ood import OOD_SCORES

        for m in config.ood.methods:
            OOD_SCORES.get(m)

    def subsample(self, ctx: AuditContext, units: Sequence[Unit]) -> tuple[str, dict[str, Any]]:
        """In-distribution images and images per OOD set."""
        k = len(self._in_positions(ctx))
        return f"ood {k} in-distribution images and up to {k} per OOD set", {"ood": k}

    def methods(self, ctx: AuditContext) -> tuple[list[str], dict[str, str]]:
        """(usable canonical method names, {method: why skipped})."""
        from robustcv.diagnostics.ood import OOD_SCORES

        ok, why = [], {}
        for m in ctx.config.ood.methods:
            spec = OOD_SCORES.get(m)
            reason = spec.unavailable_reason(ctx.model)
            if reason is None and spec.needs_fit and ctx.fit is None:
                reason = f"{spec.name} needs fit data (--fit-data) and none is available"
            if reason is None:
                ok.append(spec.name)
            else:
                why[spec.name] = reason
        return ok, why

    def _in_positions(self, ctx: AuditContext) -> np.ndarray:
        return ctx.subset("ood", ctx.config.ood.n)

    def _n_out(self, ctx: AuditContext, spec: str) -> int:
        if spec.startswith("derived:"):
            return len(self._in_positions(ctx))
        return min(ctx.config.ood.n, len(ctx.ood_data(spec)))

    def plan(self, ctx: AuditContext) -> list[Unit]:
        """ID shards and shards of every OOD set."""
        size = ctx.config.shard_size
        weight = 1.0 + 3.0 * ("odin" in self.methods(ctx)[0])
        units = [
            Unit(self.name, "in", i, {"start": a, "stop": b}, cost=weight * (b - a))
            for i, (a, b) in enumerate(shards(len(self._in_positions(ctx)), size))
        ]
        for spec in ood_sets(ctx.config):
            units += [
                Unit(
                    self.name,
                    f"out/{spec}",
                    i,
                    {"set": spec, "start": a, "stop": b},
                    cost=weight * (b - a),
                )
                for i, (a, b) in enumerate(shards(self._n_out(ctx, spec), size))
            ]
        return units

    def _images(self, ctx: AuditContext, unit: Unit) -> torch.Tensor:
        from robustcv.diagnostics.ood import derived_ood_sets

        p = unit.params
        if unit.condition == "in":
            return ctx.images(self._in_positions(ctx)[p["start"] : p["stop"]])[0]
        spec = p["set"]
        if spec.startswith("derived:"):
            kind = spec.partition(":")[2]
            x = ctx.images(self._in_positions(ctx)[p["start"] : p["stop"]])[0]
            seed = derive_seed(ctx.seed, "audit", "ood", "derived")
            return derived_ood_sets(x, seed=seed, kinds=(kind,))[kind]
        n = self._n_out(ctx, spec)
        seed = derive_seed(ctx.seed, "audit-subset", "ood", spec)
        sub = ctx.cached(f"ood-set-{spec}", lambda: ctx.ood_data(spec).limit(n, seed=seed))
        return sub.x[p["start"] : p["stop"]]

    def run(self, ctx: AuditContext, unit: Unit, deps: Mapping[str, Row]) -> Row:
        """Scores of every usable method on one shard (higher = more in-distribution)."""
        from robustcv.diagnostics.ood import OOD_SCORES

        x = self._images(ctx, unit)
        methods, _ = self.methods(ctx)
        bs = int(ctx.config.batch_size)
        scores: dict[str, Any] = {}
        logits = ctx.logits(x) if any(OOD_SCORES.get(m).from_logits for m in methods) else None
        for m in methods:
            spec = OOD_SCORES.get(m)
            if spec.from_logits is not None and logits is not None:
                s = spec.from_logits(logits)
            elif spec.needs_fit:
                scorer = ctx.cached(f"ood-fit-{m}", partial(self._fit, ctx, spec))
                s = scorer.score(ctx.model, x, batch_size=bs)
            else:
                s = spec.create().score(ctx.model, x, batch_size=bs)
            scores[m] = pack(s, "float64")
        return {"n": int(x.shape[0]), "scores": scores}

    def _fit(self, ctx: AuditContext, spec: Any) -> Any:
        fit = ctx.fit_subset(ctx.config.ood.fit_n)
        return spec.create().fit(ctx.model, fit.x, fit.y, batch_size=int(ctx.config.batch_size))

    def aggregate(
        self, ctx: AuditContext, rows: Mapping[str, Row], notes: dict[str, Any]
    ) -> dict[str, Any]:
        """AUROC (with interval), AUPR-in/out, FPR@95TPR, histograms and ROC per set/method."""
        from robustcv.diagnostics.ood import CONVENTION, OOD_SCORES, ood_metrics

        methods, why = self.methods(ctx)
        for m, reason in why.items():
            notes.setdefault("skipped", {})[f"ood/{m}"] = reason

        def gather(cond: str) -> dict[str, np.ndarray]:
            prefix = f"{self.name}:{cond}#"
            keys = sorted(
                (k for k in rows if k.startswith(prefix)), key=lambda k: int(k[len(prefix) :])
            )
            return {
                m: np.concatenate([unpack(rows[k]["scores"][m]) for k in keys]) for m in methods
            }

        scores_in = gather("in")
        sets: dict[str, Any] = {}
        for spec in ood_sets(ctx.config):
            scores_out = gather(f"out/{spec}")
            derived = spec.startswith("derived:")
            name = spec.partition(":")[2] if derived else spec
            per_method = {}
            for m in methods:
                res = ood_metrics(
                    scores_in[m],
                    scores_out[m],
                    seed=derive_seed(ctx.seed, "audit", "ood", "bootstrap", spec, m),
                )
                per_method[m] = {
                    "auroc": res.auroc_ci.to_dict(),
                    "aupr_in": res.aupr_in,
                    "aupr_out": res.aupr_out,
                    "fpr95": res.fpr_at_95_tpr,
                    "hist": {"edges": res.hist_edges, "in": res.hist_in, "out": res.hist_out},
                    "roc": {"fpr": res.roc_fpr, "tpr": res.roc_tpr},
                }
            n_out = len(next(iter(scores_out.values()))) if scores_out else 0
            sets[name] = {
                "derived": derived,
                "spec": spec,
                "description": (
                    f"derived from the {len(self._in_positions(ctx))} in-distribution images "
                    f"({name})"
                    if derived
                    else f"dataset {spec}"
                ),
                "n": n_out,
                "methods": per_method,
            }
        weakest = None
        for set_name, s in sets.items():
            for m, r in s["methods"].items():
                if weakest is None or r["auroc"]["value"] < weakest[2]:
                    weakest = (set_name, m, r["auroc"]["value"])
        return {
            "convention": CONVENTION,
            "n_in": len(self._in_positions(ctx)),
            "methods": methods,
            "method_params": {m: dict(OOD_SCORES.get(m).defaults) for m in methods},
            "fit_n": min(ctx.config.ood.fit_n, len(ctx.fit_data()))
            if any(OOD_SCORES.get(m).needs_fit for m in methods)
            else None,
            "sets": sets,
            "weakest": None
            if weakest is None
            else {"set": weakest[0], "method": weakest[1], "auroc": weakest[2]},
        }

    # -------------------------------------------------------------- words and report
    def summary_lines(self, section: Any) -> list[str]:
        """The weakest (set, score) pair."""
        w = section.get("weakest")
        if not w:
            return []
        return [f"weakest: {w['set']} with {w['method']}, AUROC {w['auroc']:.4f}"]

    def view(
        self, results: Mapping[str, Any], section: Any, folder: Path | None
    ) -> dict[str, Any] | None:
        """Per set: a table of scores and the ROC/histogram figure."""
        ood = section
        sets = []
        for name, sres in (ood.get("sets") or {}).items():
            if not isinstance(sres, Mapping):
                continue
            methods = {
                str(m): r for m, r in (sres.get("methods") or {}).items() if isinstance(r, Mapping)
            }
            fig_input = {}
            rows = []
            for m, r in methods.items():
                auroc = Estimate.parse(r.get("auroc"))
                fig_input[m] = {
                    "roc": r.get("roc"),
                    "hist": r.get("hist"),
                    "auroc": None if auroc is None else auroc.value,
                }
                row: dict[str, Any] = {"name": m, "auroc": est_view(auroc)}
                for key in ("aupr_in", "aupr_out", "fpr95"):
                    e = Estimate.parse(r.get(key))
                    row[key] = fmt(None if e is None else e.value, 3)
                rows.append(row)
            sets.append(
                {
                    "name": str(name),
                    "derived": bool(sres.get("derived")),
                    "description": str(sres.get("description") or sres.get("spec") or ""),
                    "n": sres.get("n"),
                    "n_in": sres.get("n_in", ood.get("n_in")),
                    "methods": rows,
                    "figure": plots.ood_figure(fig_input) if methods else None,
                }
            )
        params = ood.get("method_params")
        return {
            "convention": str(ood.get("convention") or ""),
            "sets": sets,
            "fit_n": ood.get("fit_n"),
            "method_params": [
                (
                    str(m),
                    ", ".join(f"{k}={v}" for k, v in p.items()) if isinstance(p, Mapping) else "",
                )
                for m, p in (params.items() if isinstance(params, Mapping) else [])
            ],
            "notes": notes_list(ood.get("notes")),
        }

    def card(self, results: Mapping[str, Any], section: Any) -> dict[str, Any] | None:
        """The weakest (set, score) pair."""
        w = _weakest(section)
        return None if w is None else {"set": w[0], "method": w[1], "est": est_view(w[2])}

    def metrics(self, results: Mapping[str, Any], section: Any) -> list[Metric]:
        """AUROC per (set, score)."""
        out = []
        for set_name, set_res in sorted((section.get("sets") or {}).items()):
            for method, mres in sorted(((set_res or {}).get("methods") or {}).items()):
                est = Estimate.parse((mres or {}).get("auroc")) if isinstance(mres, dict) else None
                if est is not None:
                    out.append(
                        Metric(
                            f"ood/{set_name}/{method}/auroc",
                            f"AUROC {set_name} ({method})",
                            est,
                            True,
                        )
                    )
        return out

    def leaderboard_columns(self, results: Mapping[str, Any], section: Any) -> list[Metric]:
        """Energy-score AUROC, the mean over the derived OOD sets (``ood/energy/auroc``).

        The interval is the mean of the sets' interval ends, which is at least as wide as the
        mean's own interval whatever the correlation between the sets; N is the sum of the
        sets' N. Absent when no derived set has an energy AUROC.
        """
        found = [
            e
            for s in (section.get("sets") or {}).values()
            if isinstance(s, Mapping) and s.get("derived")
            for e in [Estimate.parse(((s.get("methods") or {}).get("energy") or {}).get("auroc"))]
            if e is not None
        ]
        if not found:
            return []
        k = len(found)
        value = sum(e.value for e in found) / k
        low, high = math.nan, math.nan
        if all(e.has_interval for e in found):
            low = sum(e.low for e in found) / k
            high = sum(e.high for e in found) / k
        ns = [e.n for e in found]
        n = sum(x for x in ns if x is not None) if all(x is not None for x in ns) else None
        est = Estimate(value, low, high, n, f"mean over {k} derived set(s) of their intervals")
        return [Metric("ood/energy/auroc", "OOD AUROC (energy, mean over derived sets)", est, True)]


SUITE = OODSuite()
