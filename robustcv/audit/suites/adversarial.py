"""Adversarial suite: robust accuracy curves for L-inf and L2 on an eps grid set by a pilot run.

Per norm, two phases:

1. **pilot** (phase 0): a minimum-norm attack on ``n`` images gives every image's minimal
   perturbation (FMN; HopSkipJump for gradient-free models). Its median over correctly
   classified images (failures count as infinite) sets the grid: ``factors x median``, plus the
   fixed **standard points** of the data (:func:`standard_eps`), plus the eps named by
   ``--eps`` and by ``check`` thresholds. The pilot part differs between two models; the
   standard points do not, so any two audits of the same data share them and ``robustcv
   compare`` (and the leaderboard) judge robust accuracy there. ``standard_eps: false`` in the
   ``adversarial`` section leaves them out.
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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

import numpy as np

from robustcv.audit import plots
from robustcv.audit.plan import Row, Unit, shards
from robustcv.audit.schema import accuracy_estimate
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
    section_of,
)
from robustcv.audit.validate import float_tuple, positive_int, str_tuple
from robustcv.core.errors import InputError
from robustcv.core.names import canonical_norm, parse_norm_eps_threshold
from robustcv.core.seeding import derive_seed
from robustcv.core.stats import Estimate, finite_or_none

if TYPE_CHECKING:
    from robustcv.audit.context import AuditContext

__all__ = [
    "AUDIT_NORMS",
    "SUITE",
    "AdversarialConfig",
    "AdversarialSection",
    "AdversarialSuite",
    "NormSection",
    "curve_estimates",
    "eps_half",
    "fallback_grid",
    "find_eps",
    "standard_eps",
]

AUDIT_NORMS: tuple[str, ...] = ("linf", "l2")
"""The norms an audit measures."""


class NormSection(TypedDict):
    """``suites.adversarial.norms.<norm>`` of results.json."""

    n: int
    n_pilot: int
    eps: list[float]
    grid_source: str
    standard_eps: list[float]
    clean_accuracy: EstimateDict
    accuracy: list[EstimateDict]
    min_norm_accuracy: list[EstimateDict]
    eps_half: float | None
    min_norms: list[float | None]
    median_min_norm: float | None
    pilot: dict[str, Any]
    ensemble: list[str]
    budgets: dict[str, dict[str, Any]]
    broken_by: dict[str, float]
    sanity: list[dict[str, Any]]
    warnings: list[str]
    attack_notes: dict[str, str]
    forward_passes: int
    backward_passes: int


class AdversarialSection(TypedDict):
    """``suites.adversarial`` of results.json."""

    strength: str
    n: int
    n_pilot: int
    gradient_free: bool
    norms: dict[str, NormSection]
    notes: list[str]


@dataclass(frozen=True)
class AdversarialConfig:
    """Robust accuracy under L-inf and L2 attacks.

    Attributes:
        norms: threat models.
        n: images of the pilot minimum-norm run (and of the whole ensemble at ``full``).
        subset: images the pilot curve is tightened on with APGD-CE and APGD-T (``fast``).
        factors: the eps grid is these factors times the pilot's median minimal perturbation.
        pilot_steps: FMN steps of the pilot.
        apgd_steps: APGD-CE / APGD-T steps (``fast``).
        apgd_targets: APGD-T target classes (``fast``).
        sanity: run the gradient-masking sanity checks.
        sanity_subset: images the sanity checks use.
        gradient_free_n: images attacked when the model is gradient-free (score/decision
            attacks are query-hungry).
        hsj_queries: query budget per image of the HopSkipJump pilot (gradient-free models).
        square_queries: Square attack queries per image (gradient-free models, ``fast``).
        standard_eps: also evaluate the data's fixed standard points (:func:`standard_eps`),
            so that every audit of the same data shares them (``compare``, leaderboard).
    """

    norms: tuple[str, ...] = AUDIT_NORMS
    n: int = 500
    subset: int = 100
    factors: tuple[float, ...] = (0.25, 0.5, 1.0, 1.5, 2.0)
    pilot_steps: int = 50
    apgd_steps: int = 25
    apgd_targets: int = 3
    sanity: bool = True
    sanity_subset: int = 50
    gradient_free_n: int = 100
    hsj_queries: int = 2000
    square_queries: int = 1000
    standard_eps: bool = True

    def __post_init__(self) -> None:
        norms = tuple(
            canonical_norm(n, AUDIT_NORMS) for n in str_tuple(self.norms, "adversarial.norms")
        )
        if not norms or len(set(norms)) != len(norms):
            raise InputError(
                f"adversarial.norms must be distinct names from {', '.join(AUDIT_NORMS)}, got "
                f"{norms}"
            )
        object.__setattr__(self, "norms", norms)
        object.__setattr__(self, "factors", float_tuple(self.factors, "adversarial.factors"))
        for name in (
            "n",
            "subset",
            "pilot_steps",
            "apgd_steps",
            "apgd_targets",
            "sanity_subset",
            "gradient_free_n",
            "hsj_queries",
            "square_queries",
        ):
            positive_int(getattr(self, name), f"adversarial.{name}")
        for name in ("sanity", "standard_eps"):
            if not isinstance(getattr(self, name), bool):
                raise InputError(
                    f"adversarial.{name} must be true or false, got {getattr(self, name)!r}"
                )


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


_NAMED_STANDARD: dict[str, dict[str, tuple[float, ...]]] = {
    # the budgets adversarial training on Fashion-MNIST is usually run and reported at
    "fashion-mnist": {"linf": (0.05, 0.1), "l2": (1.0,)},
}
_NAMED_ALIASES = {"fmnist": "fashion-mnist", "fashion-mnist": "fashion-mnist"}

_SMALL_SIDE = 32
"""Images up to this side (px) get the CIFAR convention of RobustBench; larger ones ImageNet's."""

_BY_SIZE: dict[str, dict[str, tuple[float, ...]]] = {
    # RobustBench CIFAR-10/100 leaderboards: L-inf 8/255, L2 0.5 (32x32 RGB)
    "small": {"linf": (8 / 255,), "l2": (0.5,)},
    # RobustBench ImageNet leaderboard: L-inf 4/255 (224x224 RGB); it has no L2 track, and 3.0
    # is the L2 radius of the common robust ImageNet models (Engstrom et al.'s robustness
    # library; Salman et al. 2020)
    "large": {"linf": (4 / 255,), "l2": (3.0,)},
}


def _standard_family(data_name: str) -> str | None:
    """The named data family ``data_name`` belongs to (a variant counts), or None."""
    name = str(data_name).strip().lower().replace("_", "-")
    for alias, family in _NAMED_ALIASES.items():
        if name == alias or name.startswith(alias + "-"):
            return family
    return None


def _image_side(image_shape: Sequence[int]) -> int:
    shape = tuple(image_shape)
    if len(shape) < 2 or not all(
        isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0 for s in shape
    ):
        raise InputError(
            f"image_shape must be (C, H, W) or (H, W) with positive integer sizes, got {shape!r}"
        )
    return int(max(shape[-2:]))


def standard_eps(data_name: str, image_shape: Sequence[int]) -> dict[str, tuple[float, ...]]:
    """The fixed eps points every audit of this data evaluates, per norm.

    The rest of the grid scales with each model's pilot, so two models share only these points
    (and any eps both were given): ``robustcv compare`` judges robust accuracy there, and the
    leaderboard ranks on them.

    * Fashion-MNIST and its variants (``fashion-mnist``, ``fmnist``, ``fashion-mnist-shortcut``,
      any ``fashion-mnist-*``): L-inf 0.05 and 0.1, L2 1.0.
    * other data, by the larger image side: up to 32 px, the CIFAR convention of RobustBench
      (L-inf 8/255, L2 0.5); larger, ImageNet's (L-inf 4/255, from RobustBench; L2 3.0, the
      radius of the common L2-robust ImageNet models, as RobustBench has no ImageNet L2 track).
      These are conventions for 32 px and 224 px images; for sizes far from both, add the
      budgets that matter with ``--eps``.

    Args:
        data_name: the dataset's name (:attr:`robustcv.data.Dataset.name`).
        image_shape: the shape of one image, ``(C, H, W)`` (or ``(H, W)``).

    Returns:
        ``{norm: eps values}`` for ``linf`` and ``l2``, ascending.

    Raises:
        InputError: ``image_shape`` is not a shape.

    Example:
        >>> standard_eps("fashion-mnist-shortcut", (1, 28, 28))
        {'linf': (0.05, 0.1), 'l2': (1.0,)}
        >>> {k: [round(e * 255, 3) if k == "linf" else e for e in v]
        ...  for k, v in standard_eps("cifar-10", (3, 32, 32)).items()}
        {'linf': [8.0], 'l2': [0.5]}
        >>> standard_eps("photos", (3, 224, 224))["l2"]
        (3.0,)
    """
    side = _image_side(image_shape)
    family = _standard_family(data_name)
    if family is not None:
        table = _NAMED_STANDARD[family]
    else:
        table = _BY_SIZE["small" if side <= _SMALL_SIDE else "large"]
    return {norm: tuple(table[norm]) for norm in AUDIT_NORMS}


def _standard_source(data_name: str, image_shape: Sequence[int]) -> str:
    """Where :func:`standard_eps` took its points from, in words."""
    family = _standard_family(data_name)
    if family is not None:
        return f"the {family} standard points"
    side = _image_side(image_shape)
    if side <= _SMALL_SIDE:
        return f"the default for images up to {_SMALL_SIDE} px (RobustBench CIFAR convention)"
    return f"the default for images over {_SMALL_SIDE} px (ImageNet convention)"


def _sig(value: float, digits: int = 4) -> float:
    return float(f"{value:.{digits}g}")


def eps_half(eps: Sequence[float], accuracy: Sequence[float], clean: float) -> float | None:
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


def _correct_min_norms(min_norms: Any) -> tuple[float, ...]:
    """The minimal perturbations of the correctly classified pilot images (None -> inf).

    ``min_norms`` marks an image misclassified without attack with 0 (no image the model gets
    right is broken by a zero perturbation); the median minimal perturbation is over the rest.
    Entries that are not numbers are skipped.
    """
    out: list[float] = []
    for v in min_norms if isinstance(min_norms, list) else []:
        if v is None:
            out.append(math.inf)
        else:
            f = finite_or_none(v)
            if f is not None and f > 0:
                out.append(f)
    return tuple(out)


def curve_estimates(norm_res: Mapping[str, Any]) -> list[tuple[float, Estimate]]:
    """The ``(eps, accuracy)`` points of one norm's curve, sorted by eps, skipping bad entries.

    Example:
        >>> [(e, a.value) for e, a in curve_estimates({"eps": [0.2, 0.1], "accuracy": [0.4, 0.7]})]
        [(0.1, 0.7), (0.2, 0.4)]
    """
    eps = norm_res.get("eps") or []
    acc = norm_res.get("accuracy") or []
    out = []
    for e, a in zip(eps, acc, strict=False):
        ev, est = finite_or_none(e), Estimate.parse(a)
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


def _is_standard(nr: Mapping[str, Any], eps: float) -> bool:
    """Whether ``eps`` is one of the norm's recorded standard points."""
    std = nr.get("standard_eps")
    return any(
        (v := finite_or_none(s)) is not None and math.isclose(v, eps, rel_tol=1e-6, abs_tol=1e-12)
        for s in (std if isinstance(std, list) else [])
    )


def _stored_eps_half(results: Mapping[str, Any], nr: Mapping[str, Any]) -> float | None:
    """The stored ``eps_half``, else interpolated from the curve (old results)."""
    if "eps_half" in nr:
        return finite_or_none(nr.get("eps_half"))
    ref = Estimate.parse(nr.get("clean_accuracy")) or Estimate.parse(
        (section_of(results, "clean") or {}).get("accuracy")
    )
    if ref is None:
        return None
    pts = [(e, a.value) for e, a in curve_estimates(nr)]
    if pts and pts[0][0] == 0:
        pts = pts[1:]
    return eps_half([e for e, _ in pts], [a for _, a in pts], ref.value)


def _parse_robust(raw: str) -> tuple[float, str]:
    t = parse_norm_eps_threshold(raw, AUDIT_NORMS, what="--min-robust-acc")
    return t.value, f"{t.norm}:{t.eps!r}"


def _check_robust(
    results: Mapping[str, Any], adv: Mapping[str, Any], t: Threshold
) -> list[Outcome]:
    norm, eps = t.norm_eps
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
    return [Outcome.judge(t, f"{norm} robust accuracy at eps {eps:g}", est, higher_is_better=True)]


def _findings(items: Any, scope: str, *, fired_only: bool) -> list[dict[str, Any]]:
    out = []
    for f in items if isinstance(items, list) else []:
        if isinstance(f, Mapping) and (f.get("fired") or not fired_only):
            out.append(
                {
                    "scope": scope,
                    "check": str(f.get("check", "?")),
                    "fired": bool(f.get("fired")),
                    "message": str(f.get("message") or f.get("explanation") or ""),
                    "action": str(f.get("action") or ""),
                }
            )
    return out


def _pilot_text(pilot: Any) -> str:
    if not isinstance(pilot, Mapping) or not pilot.get("attack"):
        return ""
    params = pilot.get("params")
    args = ", ".join(f"{k}={v}" for k, v in params.items()) if isinstance(params, Mapping) else ""
    n = f" on N = {pilot['n']}" if pilot.get("n") is not None else ""
    return f"{pilot['attack']}({args}){n}"


_TEMPLATE = """{% from "_macros.html.j2" import est, figure, notes %}
<p>{% if v.strength %}Strength <b>{{ v.strength }}</b>. {% endif %}{% if v.n is not none %}N = {{ v.n }} images attacked. {% endif %}
Robust accuracy is the worst case per image over the attack ensemble.</p>
{% if v.gradient_free %}<p class="note">The model is gradient-free: only score- and decision-based attacks ran, which give weaker (higher) robust accuracy.</p>{% endif %}
{{ figure(v.curves, "robust accuracy against eps") }}
{{ figure(v.histogram, "minimal perturbation histogram") }}
{% for n in v.norms %}
<h3>{{ n.name }}</h3>
<p>Ensemble: {% for a in n.ensemble %}<span class="mono">{{ a }}</span>{{ ", " if not loop.last }}{% else %}<span class="muted">not recorded</span>{% endfor %}
{% if n.n is not none %} · N = {{ n.n }}{% endif %} · eps at half accuracy: <b>{{ n.eps_half or "not reached" }}</b> · median minimal perturbation {{ n.median_min_norm }}</p>
{% if n.pilot or n.grid_source %}<p class="small muted">{% if n.pilot %}eps grid from the minimum-norm pilot {{ n.pilot }}{% endif %}{% if n.grid_source %} ({{ n.grid_source }}){% endif %}</p>{% endif %}
<div style="display:flex; gap:24px; flex-wrap:wrap">
<table>
<tr><th>eps</th><th>robust accuracy</th></tr>
{% for p in n.points %}<tr><td class="num">{{ p.eps }}</td><td>{{ est(p.est) }}{% if p.standard %} <span class="small muted">standard point</span>{% endif %}</td></tr>{% endfor %}
</table>
{% if n.budgets %}
<table><tr><th>attack</th><th>budget</th></tr>
{% for b in n.budgets %}<tr><td class="mono">{{ b.attack }}</td><td class="small">{{ b.budget }}</td></tr>{% endfor %}
</table>
{% endif %}
{% if n.broken_by %}
<table><tr><th>first broken by</th><th>share</th></tr>
{% for b in n.broken_by %}<tr><td class="mono">{{ b.attack }}</td><td class="num">{{ b.share }}</td></tr>{% endfor %}
</table>
{% endif %}
</div>
{% if n.sanity %}
<details><summary>sanity checks ({{ n.sanity|selectattr("fired")|list|length }} of {{ n.sanity|length }} fired)</summary>
<table><tr><th>check</th><th>result</th><th>finding</th></tr>
{% for f in n.sanity %}<tr><td class="mono">{{ f.check }}</td><td class="{{ 'bad' if f.fired else 'ok' }}">{{ "FIRED" if f.fired else "quiet" }}</td><td>{{ f.message }}{% if f.fired and f.action %} <i>{{ f.action }}</i>{% endif %}</td></tr>{% endfor %}
</table></details>
{% endif %}
{{ notes(n.notes) }}
{% endfor %}
{% if v.sanity %}
<details><summary>model-level sanity checks</summary>
<table><tr><th>check</th><th>result</th><th>finding</th></tr>
{% for f in v.sanity %}<tr><td class="mono">{{ f.check }}</td><td class="{{ 'bad' if f.fired else 'ok' }}">{{ "FIRED" if f.fired else "quiet" }}</td><td>{{ f.message }}</td></tr>{% endfor %}
</table></details>
{% endif %}
{{ notes(v.notes) }}
"""  # noqa: E501

_CARD = """{% from "_macros.html.j2" import est %}
<div class="card"><h3>Eps at which accuracy halves</h3>
<table>
{% for r in v.eps_half %}
<tr><td>{{ r.norm }}</td><td class="big">{{ r.eps_half if r.eps_half else "not reached" }}</td>
<td class="small muted">{% if not r.eps_half and r.max_eps %}accuracy still {{ est(r.last) }} at eps {{ r.max_eps }}{% endif %}</td></tr>
{% endfor %}
</table>
<p class="small muted">interpolated on the eps grid; half of the clean accuracy of the attacked images</p></div>
"""  # noqa: E501


class AdversarialSuite(Suite):
    """Pilot minimum-norm units, then ensemble units on the pilot-derived grid."""

    name = "adversarial"
    title = "Adversarial robustness"
    description = "robust accuracy curves (L-inf, L2) on a pilot-derived eps grid, sanity checks"
    config_class = AdversarialConfig
    section_type = AdversarialSection
    order = 30
    report_template = _TEMPLATE
    card_template = _CARD
    checks = (
        CheckSpec(
            "min-robust-acc",
            "robust accuracy at NORM:EPS >= V (V@NORM:EPS)",
            "V@NORM:EPS",
            "0.5@linf:0.1",
            _check_robust,
            fraction=True,
            eps=lambda t: t.norm_eps,
            parse=_parse_robust,
        ),
    )

    def needs(self, config: Any) -> Needs:
        """Input gradients for the white-box attacks (gradient-free models fall back)."""
        return Needs(gradients=True)

    def validate(self, config: Any, shape: tuple[int, ...]) -> None:
        """Every eps given (``--eps``, check thresholds) must be for a measured norm."""
        if "adversarial" not in config.suites:
            return
        norms = config.adversarial.norms
        extra = [n for n in config.eps if n not in norms]
        if extra:
            raise InputError(
                f"eps given for {extra} but adversarial.norms is {list(norms)}; add the norm "
                "there or drop those eps"
            )

    def subsample(self, ctx: AuditContext, units: Sequence[Unit]) -> tuple[str, dict[str, Any]]:
        """Pilot and ensemble sizes and the attacks."""
        cfg = ctx.config
        pilot = len(self._pilot_positions(ctx))
        ens = len(self._ensemble_positions(ctx))
        names = "+".join(m[0] for m in self.ensemble(ctx))
        text = (
            f"adversarial {'/'.join(cfg.adversarial.norms)}: pilot {self.pilot_attack(ctx)[0]} "
            f"on {pilot}, ensemble {names} on {ens} images ({cfg.strength})"
        )
        return text, {"adversarial_pilot": pilot, "adversarial": ens}

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
        """The eps grid of ``norm``: pilot-scaled points, standard points and requested eps.

        Returns ``{"eps", "median", "source", "standard"}``: the sorted grid, the pilot median,
        where each part came from in words, and the standard points (:func:`standard_eps`;
        empty when ``adversarial.standard_eps`` is off).
        """
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
        standard: list[float] = []
        if cfg.standard_eps:
            shape = tuple(ctx.data.x.shape[1:])
            standard = list(standard_eps(ctx.data.name, shape).get(norm, ()))
            points = ", ".join(f"{e:g}" for e in standard)
            source += f", plus {points}: {_standard_source(ctx.data.name, shape)}"
        grid = sorted({e for e in base + standard + extra if e > 0})
        if extra:
            source += f", plus {extra} from --eps / check thresholds"
        return {"eps": grid, "median": med, "source": source, "standard": standard}

    def run(self, ctx: AuditContext, unit: Unit, deps: Mapping[str, Row]) -> Row:
        """A pilot shard (minimal norms) or an ensemble shard (robust_accuracy on the grid)."""
        from robustcv.attacks import attack, robust_accuracy
        from robustcv.attacks.adaptive import auto_eot

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
        # a stochastic forward pass makes plain gradients overestimate robustness: the audit's
        # ensemble switches to EOT as the default ensemble of robust_accuracy does
        switch = auto_eot(ctx.model, x)
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
            eot=None if switch is None else switch[0],
            eot_eval=None if switch is None else switch[1],
        )
        notes = dict(res.notes)
        if switch is not None:
            notes["eot"] = switch[2]
        return {
            "eps": res.eps,
            "grid_source": grid["source"],
            "standard_eps": grid["standard"],
            "pilot_median": grid["median"],
            "attacks": res.attacks,
            "broken_by": res.broken_by,
            "broken_at": res.broken_at,
            "min_norm": res.min_norm,
            "clean_correct": [b != "clean" for b in res.broken_by],
            "notes": notes,
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
                "standard_eps": [float(e) for e in ens[0].get("standard_eps", [])],
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

    # -------------------------------------------------------------- words and report
    def summary_lines(self, section: Any) -> list[str]:
        """Per norm: median minimal perturbation, eps_half, accuracy at the top and standard eps."""
        out = []
        for norm, r in (section.get("norms") or {}).items():
            half = "n/a" if r.get("eps_half") is None else f"{r['eps_half']:.4g}"
            med = "n/a" if r.get("median_min_norm") is None else f"{r['median_min_norm']:.4g}"
            warn = f"; sanity warnings: {', '.join(r['warnings'])}" if r.get("warnings") else ""
            last = Estimate.parse((r.get("accuracy") or [None])[-1])
            at = f"; at eps {r['eps'][-1]:g}: {last.text(4)}" if last and r.get("eps") else ""
            std = []
            for e in r.get("standard_eps") or []:
                est = find_eps(r, e)
                if est is not None:
                    std.append(f"{e:g}: {est.value:.4g}")
            shared = f"; at the standard eps {', '.join(std)}" if std else ""
            out.append(
                f"{norm}: median min-norm {med}, accuracy halves at eps {half}{at}{shared}{warn}"
            )
        return out

    def view(
        self, results: Mapping[str, Any], section: Any, folder: Path | None
    ) -> dict[str, Any] | None:
        """Curves, the minimal-perturbation histogram, per-norm tables and sanity checks."""
        adv = section
        norms = []
        curves: dict[str, dict[str, Any]] = {}
        hists: dict[str, dict[str, Any]] = {}
        for norm, nr in (adv.get("norms") or {}).items():
            if not isinstance(nr, Mapping):
                continue
            norm = str(norm)
            pts = curve_estimates(nr)
            ref = Estimate.parse(nr.get("clean_accuracy")) or Estimate.parse(
                (section_of(results, "clean") or {}).get("accuracy")
            )
            half = _stored_eps_half(results, nr)
            if pts:
                curves[norm] = {
                    "eps": [e for e, _ in pts],
                    "value": [a.value for _, a in pts],
                    "low": [a.low if a.has_interval else None for _, a in pts],
                    "high": [a.high if a.has_interval else None for _, a in pts],
                    "clean": None if ref is None else ref.value,
                    "eps_half": half,
                }
                upper = [Estimate.parse(a) for a in (nr.get("min_norm_accuracy") or [])]
                if len(upper) == len(nr.get("eps") or []) and all(u is not None for u in upper):
                    by_eps = dict(zip((finite_or_none(e) for e in nr["eps"]), upper, strict=True))
                    curves[norm]["upper"] = [by_eps[e].value for e, _ in pts]  # type: ignore[union-attr]
            min_norms = nr.get("min_norms") or []
            finite = [v for v in (finite_or_none(m) for m in min_norms) if v is not None]
            positive = [v for v in finite if v > 0]  # 0 marks an image misclassified unattacked
            if positive:
                hists[norm] = {
                    "values": positive,
                    "not_found": len(min_norms) - len(finite),
                    "misclassified": len(finite) - len(positive),
                    "median": finite_or_none(nr.get("median_min_norm")),
                }
            budgets = nr.get("budgets") or {}
            ensemble = [str(a) for a in (nr.get("ensemble") or adv.get("ensemble") or [])]
            attack_notes = nr.get("attack_notes")
            norms.append(
                {
                    "name": norm,
                    "n": nr.get("n", adv.get("n")),
                    "points": [
                        {"eps": f"{e:g}", "est": est_view(a), "standard": _is_standard(nr, e)}
                        for e, a in pts
                    ],
                    "eps_half": None if half is None else f"{half:.4g}",
                    "median_min_norm": fmt(nr.get("median_min_norm")),
                    "ensemble": ensemble,
                    "budgets": [
                        {
                            "attack": str(k),
                            "budget": ", ".join(f"{a}={b}" for a, b in v.items())
                            if isinstance(v, Mapping)
                            else str(v),
                        }
                        for k, v in (budgets.items() if isinstance(budgets, Mapping) else [])
                    ],
                    "broken_by": [
                        {"attack": str(k), "share": fmt(v, 3)}
                        for k, v in (nr.get("broken_by") or {}).items()
                    ],
                    "sanity": _findings(nr.get("sanity"), norm, fired_only=False),
                    "grid_source": str(nr.get("grid_source") or ""),
                    "pilot": _pilot_text(nr.get("pilot")),
                    "notes": notes_list(
                        [f"{k}: {v}" for k, v in attack_notes.items()]
                        if isinstance(attack_notes, Mapping)
                        else None
                    ),
                }
            )
        return {
            "strength": str(adv.get("strength", "")),
            "gradient_free": bool(adv.get("gradient_free")),
            "notes": notes_list(adv.get("notes")),
            "n": adv.get("n"),
            "norms": norms,
            "sanity": _findings(adv.get("sanity"), "model", fired_only=False),
            "curves": plots.accuracy_vs_eps(curves) if curves else None,
            "histogram": plots.min_norm_histogram(hists) if hists else None,
        }

    def card(self, results: Mapping[str, Any], section: Any) -> dict[str, Any] | None:
        """Eps at which accuracy halves, per norm."""
        rows = []
        for norm, nr in (section.get("norms") or {}).items():
            if not isinstance(nr, Mapping):
                continue
            pts = curve_estimates(nr)
            half = _stored_eps_half(results, nr)
            rows.append(
                {
                    "norm": str(norm),
                    "eps_half": None if half is None else f"{half:.4g}",
                    "max_eps": f"{pts[-1][0]:g}" if pts else None,
                    "last": est_view(pts[-1][1]) if pts else None,
                }
            )
        return {"eps_half": rows} if rows else None

    def warnings(self, results: Mapping[str, Any], section: Any) -> list[dict[str, str]]:
        """Fired gradient-masking sanity checks (model-level and per norm)."""
        found = _findings(section.get("sanity"), "adversarial", fired_only=True)
        for norm, nr in (section.get("norms") or {}).items():
            if isinstance(nr, Mapping):
                found += _findings(nr.get("sanity"), f"adversarial {norm}", fired_only=True)
        return [{k: str(v) for k, v in f.items() if k != "fired"} for f in found]

    def metrics(self, results: Mapping[str, Any], section: Any) -> list[Metric]:
        """Per norm: eps_half, median minimal perturbation, robust accuracy at every eps."""
        out: list[Metric] = []
        for norm, nr in (section.get("norms") or {}).items():
            if not isinstance(nr, Mapping):
                continue
            half = _stored_eps_half(results, nr)
            if half is not None:
                out.append(
                    Metric(
                        f"adversarial/{norm}/eps_half",
                        f"{norm} eps at half accuracy",
                        Estimate(half),
                        True,
                    )
                )
            med = finite_or_none(nr.get("median_min_norm"))
            if med is not None:
                samples = _correct_min_norms(nr.get("min_norms"))
                out.append(
                    Metric(
                        f"adversarial/{norm}/median_min_norm",
                        f"{norm} median minimal perturbation",
                        Estimate(med, n=len(samples) or None),
                        True,
                        samples=samples or None,
                    )
                )
            for e, est in curve_estimates(nr):
                out.append(
                    Metric(
                        f"adversarial/{norm}/acc@{e:g}",
                        f"{norm} robust accuracy at eps {e:g}",
                        est,
                        True,
                        True,
                    )
                )
        return out

    def comparison_curves(self, section: Any) -> dict[str, dict[str, list[float | None]]]:
        """Robust accuracy against eps per norm, for the comparison plot."""
        out: dict[str, dict[str, list[float | None]]] = {}
        for norm, nr in (section.get("norms") or {}).items():
            if isinstance(nr, Mapping):
                pts = curve_estimates(nr)
                if pts:
                    out[str(norm)] = {
                        "eps": [e for e, _ in pts],
                        "value": [a.value for _, a in pts],
                        "low": [a.low if a.has_interval else None for _, a in pts],
                        "high": [a.high if a.has_interval else None for _, a in pts],
                    }
        return out

    def leaderboard_columns(self, results: Mapping[str, Any], section: Any) -> list[Metric]:
        """Robust accuracy at the points every audit of the leaderboard shares, per norm.

        The shared points are the norm's recorded standard points (``standard_eps``) and the
        eps the audit was explicitly given (``config.eps``: the leaderboard passes the same to
        every audit); the pilot-scaled points differ between models and are left out. Keys:
        ``adversarial/<norm>/acc@<eps>``, as in :meth:`metrics`.
        """
        requested = (results.get("config") or {}).get("eps") or {}
        out: list[Metric] = []
        for norm, nr in (section.get("norms") or {}).items():
            if not isinstance(nr, Mapping):
                continue
            given = requested.get(norm) if isinstance(requested, Mapping) else None
            points: set[float] = set()
            for raw in [*(nr.get("standard_eps") or []), *(given or [])]:
                value = finite_or_none(raw)
                if value is not None and value > 0:
                    points.add(value)
            keys: set[str] = set()
            for e in sorted(points):
                est = find_eps(nr, e)
                if est is not None and f"{e:g}" not in keys:
                    keys.add(f"{e:g}")
                    out.append(
                        Metric(
                            f"adversarial/{norm}/acc@{e:g}",
                            f"{norm} robust accuracy at eps {e:g}",
                            est,
                            True,
                            True,
                        )
                    )
        return out


SUITE = AdversarialSuite()
