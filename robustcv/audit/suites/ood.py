"""OOD suite: MSP, max-logit, energy, ODIN and Mahalanobis against each OOD set.

OOD sets come from ``--ood-data`` (dataset specs, or ``derived:NAME``) or, by default, the
far-OOD sets derived from the in-distribution images (uniform noise, pixel-permuted, inverted;
labelled ``derived``). Units store per-image scores (higher = more in-distribution); metrics
(AUROC with a bootstrap interval, AUPR-in/out, FPR at 95% TPR) are computed when aggregating.
Scores a model cannot give (ODIN without gradients, Mahalanobis without features) are skipped
with the reason in ``skipped``. Mahalanobis is fitted on the fit data, never on evaluated images.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

import numpy as np
import torch

from robustcv.audit.plan import AuditContext, Row, Unit, pack, shards, unpack
from robustcv.audit.suites.calibration import fit_subset
from robustcv.core.seeding import derive_seed

__all__ = ["OODSuite", "derived_name", "ood_sets"]


def derived_name(spec: str) -> str | None:
    """The derived-set name of a spec (``derived:NAME`` or a bare derived name), else None."""
    from robustcv.diagnostics.ood import DERIVED_OOD_SETS

    head, sep, rest = spec.partition(":")
    if sep and head == "derived":
        return rest
    return spec if spec in DERIVED_OOD_SETS else None


def ood_sets(config: Any) -> list[str]:
    """The OOD set specs of an audit (``derived:NAME`` for derived sets)."""
    from robustcv.diagnostics.ood import DEFAULT_DERIVED_OOD

    if not config.ood_data:
        return [f"derived:{k}" for k in DEFAULT_DERIVED_OOD]
    out = []
    for spec in config.ood_data:
        d = derived_name(spec)
        out.append(f"derived:{d}" if d is not None else spec)
    return out


class OODSuite:
    """Score units for the ID images and for each OOD set."""

    name = "ood"

    def methods(self, ctx: AuditContext) -> tuple[list[str], dict[str, str]]:
        """(usable canonical method names, {method: why skipped})."""
        from robustcv.diagnostics.ood import OOD_SCORES

        ok, why = [], {}
        for m in ctx.config.ood.methods:
            spec = OOD_SCORES.get(m)
            reason = spec.unavailable_reason(ctx.model)
            if reason is None and spec.needs_fit and ctx.fit_loader is None:
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
        return min(ctx.config.ood.n, len(ctx.ood_loaders[spec]()))

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
        sub = ctx.cached(f"ood-set-{spec}", lambda: ctx.ood_loaders[spec]().limit(n, seed=seed))
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
        fit = fit_subset(ctx, ctx.config.ood.fit_n)
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
