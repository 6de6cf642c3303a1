"""Calibration suite: ECE/MCE/Brier/NLL before and after temperature scaling, and under shift.

Units store logits (packed float32), never metrics, so the number of bins and the bootstrap can
change without running the model again. The temperature is fitted on the fit data (by default
a seeded sample of the dataset's train split), never on the evaluated images. Calibration under
shift pools, per severity, the logits of the same images under each of a few corruptions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

import numpy as np
import torch

from robustcv.audit import plots
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
    validate_corruption_names,
)
from robustcv.audit.validate import int_tuple, positive_int, str_tuple
from robustcv.core.errors import InputError
from robustcv.core.seeding import derive_seed
from robustcv.core.stats import Estimate, finite_or_none

if TYPE_CHECKING:
    from robustcv.audit.context import AuditContext

__all__ = ["SUITE", "CalibrationConfig", "CalibrationSection", "CalibrationSuite"]


class ReliabilityDict(TypedDict):
    """``...reliability``: the equal-width bins of a reliability diagram."""

    edges: list[float]
    confidence: list[float]
    accuracy: list[float]
    count: list[int]


class CalibrationMetrics(TypedDict):
    """``suites.calibration.before`` / ``.after`` of results.json."""

    n: int
    accuracy: EstimateDict
    ece: EstimateDict
    ece_equal_mass: EstimateDict
    mce: float
    brier: float
    nll: float
    mean_confidence: float
    reliability: ReliabilityDict


class CalibrationSection(TypedDict):
    """``suites.calibration`` of results.json."""

    n: int
    n_bins: int
    fit_n: int
    fit_data: str
    temperature: float
    before: CalibrationMetrics
    after: CalibrationMetrics
    under_shift: list[dict[str, Any]]
    shift_corruptions: list[str]
    shift_n: int
    shift_note: str
    convention: str
    notes: list[str]


@dataclass(frozen=True)
class CalibrationConfig:
    """Calibration before/after temperature scaling and under shift.

    Attributes:
        n: evaluated images (None: all).
        fit_n: images of the fit data the temperature is fitted on.
        n_bins: bins of the ECE and reliability tables (aggregation only).
        shift_corruptions: corruptions pooled per severity for calibration under shift.
        shift_n: images per corruption and severity for calibration under shift.
        shift_severities: severities of the shift curve (severity 0, clean, is always added).
    """

    n: int | None = None
    fit_n: int = 5000
    n_bins: int = 15
    shift_corruptions: tuple[str, ...] = ("gaussian_noise", "defocus_blur", "fog", "contrast")
    shift_n: int = 500
    shift_severities: tuple[int, ...] = (1, 2, 3, 4, 5)

    def __post_init__(self) -> None:
        positive_int(self.n, "calibration.n", allow_none=True)
        positive_int(self.fit_n, "calibration.fit_n")
        positive_int(self.n_bins, "calibration.n_bins")
        positive_int(self.shift_n, "calibration.shift_n")
        object.__setattr__(
            self, "shift_corruptions", str_tuple(self.shift_corruptions, "shift_corruptions")
        )
        object.__setattr__(
            self,
            "shift_severities",
            int_tuple(self.shift_severities, "calibration.shift_severities"),
        )


def _estimate(est: Any) -> dict[str, Any]:
    return dict(est.to_dict())


def _ece_qualifier(text: str) -> str:
    if text not in ("before", "after"):
        raise InputError(f"--max-ece qualifier must be 'before' or 'after', got '@{text}'")
    return text


def _check_ece(section: Mapping[str, Any], t: Threshold) -> list[Outcome]:
    when = t.qualifier or "before"
    est = Estimate.parse((section.get(when) or {}).get("ece"))
    if est is None:
        raise InputError(f"{t.flag}: results.json has no ECE {when} temperature scaling")
    return [Outcome.judge(t, f"ECE {when} temperature scaling", est, higher_is_better=False)]


_TEMPLATE = """{% from "_macros.html.j2" import est, figure, notes %}
<p>{% if v.n is not none %}N = {{ v.n }} evaluated images · {% endif %}temperature T = <b>{{ v.temperature }}</b>
fitted on {% if v.fit_n is not none %}{{ v.fit_n }} {% endif %}held-out images{% if v.fit_data %} (<span class="mono">{{ v.fit_data }}</span>){% endif %}, never on the evaluated ones.</p>
<table>
<tr><th>metric</th><th>before scaling</th><th>after scaling</th></tr>
{% for m in v.metrics %}<tr><td>{{ m.label }}</td><td>{{ est(m.before) }}</td><td>{{ est(m.after) }}</td></tr>{% endfor %}
</table>
{{ figure(v.reliability, "reliability diagrams before and after temperature scaling") }}
<p class="small muted">Blue bars: accuracy per confidence bin; orange hatching: the gap to the mean confidence of the bin (perfect calibration is the dotted diagonal).</p>
{% if v.shift %}
<h3>Calibration under shift (corruption severity)</h3>
{{ figure(v.shift_figure, "accuracy and ECE against corruption severity") }}
<table><tr><th>severity</th><th>accuracy</th><th>ECE</th>{% if v.has_ece_after %}<th>ECE after scaling</th>{% endif %}</tr>
{% for r in v.shift %}<tr><td class="num">{{ r.severity }}</td><td>{{ est(r.accuracy) }}</td><td>{{ est(r.ece) }}</td>{% if v.has_ece_after %}<td>{{ est(r.ece_after) }}</td>{% endif %}</tr>{% endfor %}
</table>
{% endif %}
{{ notes(v.notes) }}
"""  # noqa: E501

_CARD = """{% from "_macros.html.j2" import est %}
<div class="card"><h3>Calibration gap (ECE)</h3>
<p>before {{ est(v.before) }}</p>
<p>after temperature T = {{ v.temperature }}: {{ est(v.after) }}</p>
{% if v.gap %}<p class="small muted">temperature scaling removes {{ v.gap }} of ECE</p>{% endif %}
</div>
"""


class CalibrationSuite(Suite):
    """Logit units for the evaluated images, the fit data and the shifted images."""

    name = "calibration"
    title = "Calibration"
    description = "ECE/MCE/Brier/NLL before and after temperature scaling, and under shift"
    config_class = CalibrationConfig
    section_type = CalibrationSection
    order = 40
    aggregation_only = ("n_bins",)
    report_template = _TEMPLATE
    card_template = _CARD
    checks = (
        CheckSpec(
            "max-ece",
            "ECE <= V (V or V@before / V@after)",
            "V[@after]",
            "0.05",
            lambda r, s, t: _check_ece(s, t),
            qualifier=_ece_qualifier,
            fraction=True,
        ),
    )

    def validate(self, config: Any, shape: tuple[int, ...]) -> None:
        """Shift corruptions must be registered names with valid severities."""
        cfg = config.calibration
        validate_corruption_names(
            cfg.shift_corruptions,
            cfg.shift_severities,
            "calibration.shift_corruptions",
            "calibration.shift_severities",
        )

    def needs(self, config: Any) -> Needs:
        """Held-out fit data for the temperature."""
        return Needs(fit_data=True)

    def subsample(self, ctx: AuditContext, units: Sequence[Unit]) -> tuple[str, dict[str, Any]]:
        """Evaluated, fit and shift sizes."""
        cfg = ctx.config.calibration
        k = len(self._eval_positions(ctx))
        fit = min(cfg.fit_n, len(ctx.fit_data()))
        shift = len(self._shift_positions(ctx))
        text = (
            f"calibration {k} images, temperature fitted on {fit} of {len(ctx.fit_data())} "
            f"fit images ({ctx.fit_spec}), shift {shift} images per corruption and severity"
        )
        return text, {"calibration": k, "calibration_fit": fit, "calibration_shift": shift}

    def _eval_positions(self, ctx: AuditContext) -> np.ndarray:
        return ctx.subset("calibration", ctx.config.calibration.n)

    def _shift_positions(self, ctx: AuditContext) -> np.ndarray:
        return ctx.subset("calibration-shift", ctx.config.calibration.shift_n)

    def _shift_corruptions(self, ctx: AuditContext) -> tuple[list, dict]:
        return ctx.usable_corruptions(ctx.config.calibration.shift_corruptions)

    def plan(self, ctx: AuditContext) -> list[Unit]:
        """Eval and fit shards, then one unit per shift (corruption, severity) and clean."""
        cfg = ctx.config.calibration
        size = ctx.config.shard_size
        units = [
            Unit(self.name, "eval", i, {"start": a, "stop": b}, cost=float(b - a))
            for i, (a, b) in enumerate(shards(len(self._eval_positions(ctx)), size))
        ]
        n_fit = min(cfg.fit_n, len(ctx.fit_data()))
        units += [
            Unit(self.name, "fit", i, {"start": a, "stop": b}, cost=float(b - a))
            for i, (a, b) in enumerate(shards(n_fit, size))
        ]
        n_shift = len(self._shift_positions(ctx))
        conds = [("clean", 0)] + [
            (c, s) for c in self._shift_corruptions(ctx)[0] for s in cfg.shift_severities
        ]
        for c, s in conds:
            units += [
                Unit(
                    self.name,
                    f"shift/{c}/{s}",
                    i,
                    {"corruption": c, "severity": s, "start": a, "stop": b},
                    cost=2.0 * (b - a),
                )
                for i, (a, b) in enumerate(shards(n_shift, size))
            ]
        return units

    def run(self, ctx: AuditContext, unit: Unit, deps: Mapping[str, Row]) -> Row:
        """Logits and labels of one shard."""
        from robustcv.corruptions import corrupt

        p = unit.params
        if unit.condition == "fit":
            fit = ctx.fit_subset(ctx.config.calibration.fit_n)
            x, y = fit.x[p["start"] : p["stop"]], fit.y[p["start"] : p["stop"]]
        elif unit.condition == "eval":
            x, y = ctx.images(self._eval_positions(ctx)[p["start"] : p["stop"]])
        else:
            x, y = ctx.images(self._shift_positions(ctx)[p["start"] : p["stop"]])
            if p["corruption"] != "clean":
                seed = derive_seed(ctx.seed, p["corruption"], p["severity"])
                x = corrupt(x, p["corruption"], p["severity"], seed=seed)
        return {"logits": pack(ctx.logits(x)), "labels": pack(y, "int64")}

    def aggregate(
        self, ctx: AuditContext, rows: Mapping[str, Row], notes: dict[str, Any]
    ) -> dict[str, Any]:
        """Temperature, before/after metrics with intervals, reliability tables, shift curve."""
        from robustcv.diagnostics.calibration import calibration, fit_temperature

        cfg = ctx.config.calibration
        boot_seed = derive_seed(ctx.seed, "audit", "calibration", "bootstrap")

        def gather(cond: str) -> tuple[torch.Tensor, torch.Tensor]:
            prefix = f"{self.name}:{cond}#"
            keys = sorted(
                (k for k in rows if k.startswith(prefix)), key=lambda k: int(k[len(prefix) :])
            )
            z = np.concatenate([unpack(rows[k]["logits"]) for k in keys])
            y = np.concatenate([unpack(rows[k]["labels"]) for k in keys])
            return torch.from_numpy(z), torch.from_numpy(y)

        z, y = gather("eval")
        fz, fy = gather("fit")
        temperature = fit_temperature(fz, fy)

        def summary(logits: torch.Tensor, labels: torch.Tensor, t: float) -> dict[str, Any]:
            res = calibration(logits, labels, n_bins=cfg.n_bins, temperature=t, seed=boot_seed)
            mass = _equal_mass_interval(logits, labels, cfg.n_bins, t, boot_seed)
            return {
                "n": res.n,
                "accuracy": _estimate(res.accuracy_ci),
                "ece": _estimate(res.ece_ci),
                "ece_equal_mass": {
                    "value": res.ece_equal_mass,
                    "low": mass[0],
                    "high": mass[1],
                    "n": res.n,
                    "method": "percentile bootstrap, 200 resamples",
                    "level": 0.95,
                },
                "mce": res.mce,
                "brier": res.brier,
                "nll": res.nll,
                "mean_confidence": res.mean_confidence,
                "reliability": res.reliability.to_dict(),
            }

        before = summary(z, y, 1.0)
        after = summary(z, y, temperature)
        used, why = self._shift_corruptions(ctx)
        for name, reason in why.items():
            notes.setdefault("skipped", {})[f"calibration/shift/{name}"] = reason
        shift = []
        for sev in (0, *cfg.shift_severities):
            conds = ["clean/0"] if sev == 0 else [f"{c}/{sev}" for c in used]
            if not conds:
                continue
            parts = [gather(f"shift/{c}") for c in conds]
            sz = torch.cat([p[0] for p in parts])
            sy = torch.cat([p[1] for p in parts])
            b = calibration(sz, sy, n_bins=cfg.n_bins, seed=boot_seed)
            a = calibration(sz, sy, n_bins=cfg.n_bins, temperature=temperature, seed=boot_seed)
            shift.append(
                {
                    "severity": sev,
                    "n": b.n,
                    "accuracy": _estimate(b.accuracy_ci),
                    "ece": _estimate(b.ece_ci),
                    "ece_after": _estimate(a.ece_ci),
                    "mean_confidence": b.mean_confidence,
                }
            )
        res = calibration(z[:1], y[:1], n_bins=cfg.n_bins, n_boot=0)
        cal_notes = []
        if after["ece"]["value"] > before["ece"]["value"] and ctx.config.fit_data is None:
            cal_notes.append(
                f"temperature scaling raised the ECE (T = {temperature:.3g}, fitted on the train "
                "split): a model is usually more confident and accurate on the data it was "
                "trained on, so a temperature fitted there is biased; pass --fit-data with "
                "held-out validation images for a fair 'after'"
            )
        return {
            "n": len(y),
            "n_bins": cfg.n_bins,
            "fit_n": len(fy),
            "fit_data": ctx.fit_spec,
            "temperature": temperature,
            "before": before,
            "after": after,
            "under_shift": shift,
            "shift_corruptions": used,
            "shift_n": len(self._shift_positions(ctx)),
            "shift_note": (
                f"each severity pools the same {len(self._shift_positions(ctx))} images under "
                f"{', '.join(used) or 'no corruption'}; severity 0 is the clean images; "
                "ece_after uses the temperature fitted on the fit data"
            ),
            "convention": res.convention.replace("T = 1", "T as stated"),
            "notes": cal_notes,
        }

    # -------------------------------------------------------------- words and report
    def summary_lines(self, section: Any) -> list[str]:
        """ECE before and after temperature scaling, and notes."""
        before = Estimate.parse((section.get("before") or {}).get("ece"))
        after = Estimate.parse((section.get("after") or {}).get("ece"))
        lines = [
            f"ECE {before.text(4) if before else '-'} -> "
            f"{f'{after.value:.4f}' if after else '-'} after T={fmt(section.get('temperature'), 4)}"
            f" (fitted on {section.get('fit_n')} images)"
        ]
        lines += [f"note: {n}" for n in section.get("notes", [])]
        return lines

    def view(
        self, results: Mapping[str, Any], section: Any, folder: Path | None
    ) -> dict[str, Any] | None:
        """Metrics table, reliability diagrams and the shift curve."""
        cal = section
        before, after = cal.get("before") or {}, cal.get("after") or {}
        metrics = []
        for key, label, is_est in (
            ("accuracy", "accuracy", True),
            ("ece", f"ECE (equal-width, {cal.get('n_bins', '?')} bins)", True),
            ("ece_equal_mass", f"ECE (equal-mass, {cal.get('n_bins', '?')} bins)", True),
            ("mce", "MCE (max bin gap)", False),
            ("brier", "Brier score", False),
            ("nll", "NLL", False),
        ):
            if key not in before and key not in after:
                continue
            digits = 3 if is_est else 4
            metrics.append(
                {
                    "label": label,
                    "before": est_view(before.get(key), digits),
                    "after": est_view(after.get(key), digits),
                }
            )
        panels = {}
        t = finite_or_none(cal.get("temperature"))
        for title, part in (
            ("before temperature scaling", before),
            (f"after (T = {fmt(t, 3)})", after),
        ):
            rel = part.get("reliability")
            if isinstance(rel, Mapping) and rel.get("edges"):
                panels[title] = dict(rel)
        shift_rows: list[tuple[float, dict[str, Estimate | None]]] = []
        for row in cal.get("under_shift") or []:
            sev = finite_or_none(row.get("severity")) if isinstance(row, Mapping) else None
            if sev is not None:
                keys = ("accuracy", "ece", "ece_after")
                shift_rows.append((sev, {k: Estimate.parse(row.get(k)) for k in keys}))
        shift_rows.sort(key=lambda r: r[0])
        shift_fig = None
        if len(shift_rows) > 1:
            series = {}
            for key, label in (
                ("accuracy", "accuracy"),
                ("ece", "ECE"),
                ("ece_after", "ECE after scaling"),
            ):
                ests = [r[1][key] for r in shift_rows]
                if any(e is not None for e in ests):
                    series[label] = {
                        "value": [e.value if e else None for e in ests],
                        "low": [e.low if e and e.has_interval else None for e in ests],
                        "high": [e.high if e and e.has_interval else None for e in ests],
                    }
            shift_fig = plots.shift_curves([r[0] for r in shift_rows], series)
        fit_data = cal.get("fit_data") or (results.get("config") or {}).get("fit_data") or ""
        return {
            "n": cal.get("n"),
            "n_bins": cal.get("n_bins"),
            "fit_n": cal.get("fit_n"),
            "fit_data": str(fit_data),
            "temperature": fmt(t, 4),
            "metrics": metrics,
            "reliability": plots.reliability_diagrams(panels) if panels else None,
            "shift": [
                {
                    "severity": f"{sev:g}",
                    "accuracy": est_view(e["accuracy"]),
                    "ece": est_view(e["ece"]),
                    "ece_after": est_view(e["ece_after"]),
                }
                for sev, e in shift_rows
            ],
            "has_ece_after": any(e["ece_after"] is not None for _, e in shift_rows),
            "notes": notes_list(cal.get("convention"), cal.get("shift_note"), cal.get("notes")),
            "shift_figure": shift_fig,
        }

    def card(self, results: Mapping[str, Any], section: Any) -> dict[str, Any] | None:
        """ECE before/after and the gap temperature scaling removes."""
        b = Estimate.parse((section.get("before") or {}).get("ece"))
        a = Estimate.parse((section.get("after") or {}).get("ece"))
        return {
            "before": est_view(b),
            "after": est_view(a),
            "temperature": fmt(section.get("temperature"), 3),
            "gap": None if (a is None or b is None) else f"{b.value - a.value:.3f}",
        }

    def metrics(self, results: Mapping[str, Any], section: Any) -> list[Metric]:
        """ECE before/after and the temperature."""
        out = []
        for when in ("before", "after"):
            est = Estimate.parse((section.get(when) or {}).get("ece"))
            if est is not None:
                out.append(
                    Metric(f"calibration/ece_{when}", f"ECE {when} temperature scaling", est, False)
                )
        t = Estimate.parse(section.get("temperature"))
        if t is not None:
            out.append(Metric("calibration/temperature", "temperature", t, None))
        return out

    def leaderboard_columns(self, results: Mapping[str, Any], section: Any) -> list[Metric]:
        """ECE before and after temperature scaling (``calibration/ece_before``, ``_after``)."""
        return [m for m in self.metrics(results, section) if m.key != "calibration/temperature"]


SUITE = CalibrationSuite()


def _equal_mass_interval(
    logits: torch.Tensor, labels: torch.Tensor, n_bins: int, t: float, seed: int, n_boot: int = 200
) -> tuple[float, float]:
    """Percentile-bootstrap interval of the equal-mass ECE (resampling images)."""
    from robustcv.core.stats import bootstrap_indices, percentile_interval
    from robustcv.diagnostics.calibration import calibration

    n = int(labels.shape[0])
    if n < 2:
        return math.nan, math.nan
    gen = torch.Generator().manual_seed(derive_seed(seed, "equal-mass"))
    idx = bootstrap_indices(n, n_boot, gen)
    reps = torch.tensor(
        [
            calibration(logits[i], labels[i], n_bins=n_bins, temperature=t, n_boot=0).ece_equal_mass
            for i in idx
        ],
        dtype=torch.float64,
    )
    return percentile_interval(reps)
