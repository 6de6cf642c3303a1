"""Calibration suite: ECE/MCE/Brier/NLL before and after temperature scaling, and under shift.

Units store logits (packed float32), never metrics, so the number of bins and the bootstrap can
change without running the model again. The temperature is fitted on the fit data (by default
a seeded sample of the dataset's train split), never on the evaluated images. Calibration under
shift pools, per severity, the logits of the same images under each of a few corruptions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from robustcv.audit.plan import AuditContext, Row, Unit, pack, shards, unpack
from robustcv.core.seeding import derive_seed
from robustcv.data.dataset import Dataset

__all__ = ["CalibrationSuite", "available_corruptions", "fit_subset"]


def fit_subset(ctx: AuditContext, n: int) -> Dataset:
    """A seeded sample of ``n`` fit-data images (the same for calibration and OOD fits)."""

    def make() -> Dataset:
        data = ctx.fit_data()
        return data.limit(n, seed=derive_seed(ctx.seed, "audit-fit"))

    out: Dataset = ctx.cached(f"fit-subset-{n}", make)
    return out


def available_corruptions(names: tuple[str, ...], shape: tuple[int, ...]) -> tuple[list, dict]:
    """(usable canonical names, {name: why not}) for images of ``shape`` (C, H, W)."""
    from robustcv.corruptions import CORRUPTIONS

    ok, why = [], {}
    for name in names:
        spellings = (name, name.replace("_", "-"), name.replace("-", "_"))
        key = next((k for k in spellings if k in CORRUPTIONS), None)
        if key is None:
            why[name] = "not a registered corruption"
            continue
        defn = CORRUPTIONS.get(key)
        if min(shape[1], shape[2]) < defn.min_size:
            why[name] = f"needs images of at least {defn.min_size}x{defn.min_size} pixels"
            continue
        ok.append(CORRUPTIONS.canonical(key))
    return ok, why


def _estimate(est: Any) -> dict[str, Any]:
    return dict(est.to_dict())


class CalibrationSuite:
    """Logit units for the evaluated images, the fit data and the shifted images."""

    name = "calibration"

    def _eval_positions(self, ctx: AuditContext) -> np.ndarray:
        return ctx.subset("calibration", ctx.config.calibration.n)

    def _shift_positions(self, ctx: AuditContext) -> np.ndarray:
        return ctx.subset("calibration-shift", ctx.config.calibration.shift_n)

    def _shift_corruptions(self, ctx: AuditContext) -> tuple[list, dict]:
        return available_corruptions(
            ctx.config.calibration.shift_corruptions, tuple(ctx.data.x.shape[1:])
        )

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
            fit = fit_subset(ctx, ctx.config.calibration.fit_n)
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
