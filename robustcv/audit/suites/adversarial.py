"""Adversarial suite: robust accuracy curves for L-inf and L2 on an eps grid set by a pilot run.

Per norm, two phases:

1. **pilot** (phase 0): a minimum-norm attack on ``n`` images gives every image's minimal
   perturbation (FMN; HopSkipJump for gradient-free models). Its median over correctly
   classified images (failures count as infinite) sets the grid: ``factors x median`` plus the
   eps named by ``--eps`` and by ``check`` thresholds. Two models get two different grids.
2. **ensemble** (phase 1): :func:`robustcv.attacks.robust_accuracy` on the grid.
   ``fast``: FMN + APGD-CE + APGD-T (reduced budgets) on a random ``subset`` of the pilot
   images; ``full``: the default ensemble on every pilot image. Gradient-free models get Square
   (score-based) + HopSkipJump (decision-based) only; white-box attacks are skipped and the
   result says why.

The headline curve (``accuracy``) is the ensemble's; ``min_norm_accuracy`` is the pilot's curve
over all ``n_pilot`` images (an upper bound: a weaker attack on more images).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from robustcv.audit.plan import AuditContext, Row, Unit, shards
from robustcv.audit.schema import accuracy_estimate
from robustcv.core.seeding import derive_seed

__all__ = ["AdversarialSuite", "eps_half", "fallback_grid"]

_SHARD = 250  # images per adversarial unit (attacks are ~100x the cost of a forward pass)

_FALLBACK = {
    "linf": (1 / 255, 2 / 255, 4 / 255, 8 / 255, 16 / 255),
    "l2": (0.1, 0.25, 0.5, 1.0, 2.0),
}


def fallback_grid(norm: str) -> tuple[float, ...]:
    """The grid used when the pilot found no minimal perturbation to scale.

    Example:
        >>> fallback_grid("l2")
        (0.1, 0.25, 0.5, 1.0, 2.0)
    """
    return _FALLBACK[norm]


def _sig(value: float, digits: int = 4) -> float:
    return float(f"{value:.{digits}g}")


def eps_half(eps: list[float], accuracy: list[float], clean: float) -> float | None:
    """Smallest eps where accuracy falls to half of ``clean``, linearly interpolated.

    The curve starts at ``(0, clean)``. None when accuracy stays above half on the grid.

    Example:
        >>> eps_half([0.1, 0.2], [0.6, 0.2], 0.8)
        0.15
        >>> eps_half([0.1], [0.6], 0.8) is None
        True
    """
    target = clean / 2
    pts = [(0.0, clean), *sorted(zip(eps, accuracy, strict=True))]
    for (e0, a0), (e1, a1) in itertools.pairwise(pts):
        if a0 <= target:
            return e0
        if a1 <= target:
            return round(e0 + (e1 - e0) * (a0 - target) / (a0 - a1), 12)
    return None


def _median(values: list[float]) -> float | None:
    if not values:
        return None
    med = sorted(values)[(len(values) - 1) // 2]
    return med if math.isfinite(med) else None


class AdversarialSuite:
    """Pilot minimum-norm units, then ensemble units on the pilot-derived grid."""

    name = "adversarial"

    # -------------------------------------------------------------- sampling and budgets
    def _pilot_positions(self, ctx: AuditContext) -> np.ndarray:
        cfg = ctx.config.adversarial
        n = cfg.n if ctx.model.differentiable else min(cfg.n, cfg.gradient_free_n)
        return ctx.subset("adversarial", n)

    def _ensemble_positions(self, ctx: AuditContext) -> np.ndarray:
        pilot = self._pilot_positions(ctx)
        cfg = ctx.config.adversarial
        if ctx.config.strength == "full" or cfg.subset >= len(pilot):
            return pilot
        rng = np.random.default_rng(derive_seed(ctx.seed, "audit-subset", "adversarial-tighten"))
        return np.sort(rng.choice(pilot, size=cfg.subset, replace=False))

    def pilot_attack(self, ctx: AuditContext) -> tuple[str, dict[str, Any]]:
        """The minimum-norm attack of the pilot and its budget."""
        cfg = ctx.config.adversarial
        if ctx.model.differentiable:
            return "fmn", {"steps": cfg.pilot_steps}
        return "hsj", {"max_queries": cfg.hsj_queries}

    def ensemble(self, ctx: AuditContext) -> list[tuple[str, dict[str, Any]]]:
        """The attacks of the ensemble, in report order, with their budgets."""
        from robustcv.attacks.ensemble import DEFAULT_ENSEMBLE

        cfg = ctx.config.adversarial
        pilot = self.pilot_attack(ctx)
        if not ctx.model.differentiable:
            queries = cfg.square_queries if ctx.config.strength == "fast" else 5000
            hsj = pilot if ctx.config.strength == "fast" else ("hsj", {})
            return [hsj, ("square", {"queries": queries})]
        classes = ctx.model.num_classes
        if ctx.config.strength == "full":
            # the audit's norms are L-inf and L2: leave out the L1/L0-only members
            only_for = ("pgd", "noise-uniform", "noise-gaussian")
            full = [(n, dict(p)) for n, p in DEFAULT_ENSEMBLE if n not in only_for]
            for _name, params in full:
                if "n_targets" in params:
                    params["n_targets"] = max(1, min(int(params["n_targets"]), classes - 1))
            return full
        k = max(1, min(cfg.apgd_targets, classes - 1))
        return [
            pilot,
            ("apgd-ce", {"steps": cfg.apgd_steps}),
            ("apgd-t", {"steps": cfg.apgd_steps, "n_targets": k}),
        ]

    def _attack_seed(self, ctx: AuditContext, norm: str) -> int:
        # pilot and ensemble share it, so the ensemble's minimum-norm member repeats the pilot
        return derive_seed(ctx.seed, "audit", "adversarial", norm)

    # -------------------------------------------------------------- plan / run
    def plan(self, ctx: AuditContext) -> list[Unit]:
        """Pilot shards (phase 0) and ensemble shards (phase 1) per norm."""
        cfg = ctx.config.adversarial
        n_pilot = len(self._pilot_positions(ctx))
        n_ens = len(self._ensemble_positions(ctx))
        per_image = cfg.pilot_steps * 3.0
        ens_cost = (cfg.pilot_steps + 2.5 * cfg.apgd_steps * (1 + cfg.apgd_targets)) * 3.0
        if ctx.config.strength == "full":
            ens_cost = (100 + 2.5 * 100 * 10) * 3.0 + 5000
        if not ctx.model.differentiable:
            per_image = float(cfg.hsj_queries)
            ens_cost = float(cfg.hsj_queries + 2.5 * cfg.square_queries)
        units = []
        for norm in cfg.norms:
            for i, (a, b) in enumerate(shards(n_pilot, _SHARD)):
                units.append(
                    Unit(
                        self.name,
                        f"{norm}/pilot",
                        i,
                        {"norm": norm, "start": a, "stop": b},
                        cost=per_image * (b - a),
                    )
                )
            for i, (a, b) in enumerate(shards(n_ens, _SHARD)):
                units.append(
                    Unit(
                        self.name,
                        f"{norm}/ensemble",
                        i,
                        {"norm": norm, "start": a, "stop": b},
                        cost=ens_cost * (b - a),
                        phase=1,
                    )
                )
        return units

    def grid(self, ctx: AuditContext, norm: str, deps: Mapping[str, Row]) -> dict[str, Any]:
        """The eps grid of ``norm`` from the pilot rows (and where it came from)."""
        cfg = ctx.config.adversarial
        norms: list[float] = []
        for key in sorted(k for k in deps if k.startswith(f"{self.name}:{norm}/pilot#")):
            row = deps[key]
            for v, ok in zip(row["min_norm"], row["clean_correct"], strict=True):
                if ok:
                    norms.append(math.inf if v is None else float(v))
        med = _median(norms)
        extra = [float(e) for e in ctx.config.eps.get(norm, ())]
        if med is not None and med > 0:
            base = [_sig(f * med) for f in cfg.factors]
            source = f"{list(cfg.factors)} x pilot median {_sig(med)}"
        else:
            base = list(fallback_grid(norm))
            source = "fallback grid: the pilot found no minimal perturbation to scale"
        grid = sorted({e for e in base + extra if e > 0})
        if extra:
            source += f", plus {extra} from --eps / check thresholds"
        return {"eps": grid, "median": med, "source": source}

    def run(self, ctx: AuditContext, unit: Unit, deps: Mapping[str, Row]) -> Row:
        """A pilot shard (minimal norms) or an ensemble shard (robust_accuracy on the grid)."""
        from robustcv.attacks import attack, robust_accuracy

        p = unit.params
        norm = p["norm"]
        seed = self._attack_seed(ctx, norm)
        if unit.condition.endswith("/pilot"):
            pos = self._pilot_positions(ctx)[p["start"] : p["stop"]]
            x, y = ctx.images(pos)
            name, params = self.pilot_attack(ctx)
            pilot = attack(ctx.model, x, y, name, norm=norm, seed=seed, **params)
            ok = pilot.clean_correct.tolist()
            norms = [
                (None if not math.isfinite(v) else float(v)) if c else 0.0
                for v, c in zip(pilot.norms.tolist(), ok, strict=True)
            ]
            return {
                "attack": name,
                "params": params,
                "min_norm": norms,
                "clean_correct": ok,
                "forward": pilot.forward_passes,
                "backward": pilot.backward_passes,
            }
        pos = self._ensemble_positions(ctx)[p["start"] : p["stop"]]
        x, y = ctx.images(pos)
        grid = self.grid(ctx, norm, deps)
        members = self.ensemble(ctx)
        # the sanity checks re-run the first member of the list: the strongest iterative
        # white-box attack (or Square for gradient-free models), not the minimum-norm pilot
        order: list[str | tuple[str, dict[str, Any]]] = []
        order += [m for m in members if m[0] not in ("fmn", "hsj")]
        order += [m for m in members if m[0] in ("fmn", "hsj")]
        cfg = ctx.config.adversarial
        res = robust_accuracy(
            ctx.model,
            x,
            y,
            eps=grid["eps"],
            norm=norm,
            attacks=order,
            seed=seed,
            sanity=cfg.sanity and unit.shard == 0,
            sanity_subset=cfg.sanity_subset,
        )
        return {
            "eps": res.eps,
            "grid_source": grid["source"],
            "pilot_median": grid["median"],
            "attacks": res.attacks,
            "broken_by": res.broken_by,
            "broken_at": res.broken_at,
            "min_norm": res.min_norm,
            "clean_correct": [b != "clean" for b in res.broken_by],
            "notes": res.notes,
            "sanity": [
                {
                    "check": f.check,
                    "fired": f.fired,
                    "message": f.explanation,
                    "action": f.action,
                    "detail": f.detail,
                }
                for f in res.sanity
            ],
            "forward": res.forward_passes,
            "backward": res.backward_passes,
        }

    # -------------------------------------------------------------- aggregate
    def aggregate(
        self, ctx: AuditContext, rows: Mapping[str, Row], notes: dict[str, Any]
    ) -> dict[str, Any]:
        """Per norm: the ensemble curve with intervals, the pilot's curve and norms, eps_half."""
        cfg = ctx.config.adversarial
        out_norms: dict[str, Any] = {}
        members = self.ensemble(ctx)
        pilot_name, pilot_params = self.pilot_attack(ctx)
        for norm in cfg.norms:

            def ordered(kind: str, norm: str = norm) -> list[Row]:
                prefix = f"{self.name}:{norm}/{kind}#"
                keys = sorted(
                    (k for k in rows if k.startswith(prefix)), key=lambda k: int(k[len(prefix) :])
                )
                return [rows[k] for k in keys]

            pilot = ordered("pilot")
            ens = ordered("ensemble")
            min_norms = [v for r in pilot for v in r["min_norm"]]
            pilot_ok = [c for r in pilot for c in r["clean_correct"]]
            eps = [float(e) for e in ens[0]["eps"]]
            broken_by = [b for r in ens for b in r["broken_by"]]
            broken_at = [a for r in ens for a in r["broken_at"]]
            clean_ok = [c for r in ens for c in r["clean_correct"]]
            n = len(broken_by)
            acc = []
            for e in eps:
                robust = sum(
                    1
                    for b, at in zip(broken_by, broken_at, strict=True)
                    if b is None or (at is not None and at > e)
                )
                acc.append(accuracy_estimate(robust, n))
            clean = accuracy_estimate(sum(clean_ok), n)
            n_pilot = len(min_norms)
            pilot_curve = [
                accuracy_estimate(
                    sum(
                        1
                        for v, ok in zip(min_norms, pilot_ok, strict=True)
                        if ok and (v is None or v > e)
                    ),
                    n_pilot,
                )
                for e in eps
            ]
            shares = {"clean": 0.0, **{m[0]: 0.0 for m in members}, "robust": 0.0}
            for b in broken_by:
                key = "robust" if b is None else b
                shares[key] = shares.get(key, 0.0) + 1.0 / n
            correct_norms = [
                math.inf if v is None else v
                for v, ok in zip(min_norms, pilot_ok, strict=True)
                if ok
            ]
            sanity = ens[0]["sanity"]
            out_norms[norm] = {
                "n": n,
                "n_pilot": n_pilot,
                "eps": eps,
                "grid_source": ens[0]["grid_source"],
                "clean_accuracy": clean,
                "accuracy": acc,
                "min_norm_accuracy": pilot_curve,
                "eps_half": eps_half(eps, [a["value"] for a in acc], clean["value"]),
                "min_norms": min_norms,
                "median_min_norm": _median(correct_norms),
                "pilot": {"attack": pilot_name, "params": pilot_params, "n": n_pilot},
                "ensemble": [m[0] for m in members],
                "budgets": {m[0]: m[1] for m in members},
                "broken_by": shares,
                "sanity": sanity,
                "warnings": [f["check"] for f in sanity if f["fired"]],
                "attack_notes": {k: v for r in ens for k, v in r["notes"].items()},
                "forward_passes": sum(r["forward"] for r in pilot + ens),
                "backward_passes": sum(r["backward"] for r in pilot + ens),
            }
        result: dict[str, Any] = {
            "strength": ctx.config.strength,
            "n": next(iter(out_norms.values()))["n"] if out_norms else 0,
            "n_pilot": len(self._pilot_positions(ctx)),
            "gradient_free": not ctx.model.differentiable,
            "norms": out_norms,
            "notes": [
                "accuracy: per-image worst case over the ensemble (robustcv.robust_accuracy); "
                "min_norm_accuracy: images whose pilot minimal perturbation exceeds eps (an upper "
                "bound on robust accuracy); median_min_norm: over correctly classified pilot "
                "images, failures count as infinite"
            ],
        }
        if not ctx.model.differentiable:
            reason = (
                f"model '{ctx.model.name}' is gradient-free (e.g. ONNX): white-box attacks (FMN, "
                "APGD-CE, APGD-T) need input gradients; ran score-based Square and decision-based "
                "HopSkipJump only, which give weaker (higher) robust accuracy"
            )
            notes.setdefault("skipped", {})["adversarial/white-box"] = reason
            result["notes"].append(reason)
        return result
