"""Robust accuracy over a list of budgets, as the per-sample worst case over an attack ensemble.

For each budget (ascending), each attack of the ensemble runs only on the samples that are still
robust: samples broken at a smaller budget stay broken (their adversarial example lies inside
every larger ball), samples broken by an earlier attack are not attacked again. The result
records which attack broke each sample first and the smallest budget at which it broke.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from numbers import Integral, Real
from typing import Any

import torch

from robustcv.attacks.base import ATTACKS, AttackResult, attack, check_eps_value, check_params
from robustcv.attacks.sanity import Finding, run_sanity_checks
from robustcv.attacks.threat import get_threat
from robustcv.core.contract import check_images, check_labels, check_model_fits
from robustcv.core.errors import InputError
from robustcv.core.model import Model
from robustcv.core.results import Result
from robustcv.core.seeding import check_seed
from robustcv.core.stats import binomial_ci

__all__ = ["DEFAULT_ENSEMBLE", "RobustAccuracyResult", "default_ensemble", "robust_accuracy"]

# The default ensemble: a minimum-norm attack (run once, unbounded, it gives every sample's
# minimal eps), then AutoAttack's standard budgets. Members that do not support the requested
# norm are left out (for L1: FMN, then PGD with 5 restarts; for L0: FMN, then the two noise
# baselines, which at L0 are random sparse pixel changes that occasionally beat FMN's 100 steps;
# being members, they then no longer count as a black box beating the white box).
DEFAULT_ENSEMBLE: tuple[tuple[str, dict[str, Any]], ...] = (
    ("fmn", {"steps": 100}),
    ("apgd-ce", {"steps": 100}),
    ("apgd-t", {"steps": 100, "n_targets": 9}),
    ("square", {"queries": 5000}),
    ("pgd", {"steps": 100, "restarts": 5}),
    ("noise-uniform", {"repeats": 20}),
    ("noise-gaussian", {"repeats": 20}),
)
_ONLY_FOR = {"pgd": "l1", "noise-uniform": "l0", "noise-gaussian": "l0"}


@dataclass
class RobustAccuracyResult(Result):
    """Robust accuracy per budget and per-sample outcomes.

    Attributes:
        norm: the threat model.
        eps: budgets, ascending.
        accuracy: robust accuracy per budget (aligned with ``eps``).
        ci95: exact 95% interval per budget.
        clean_accuracy: accuracy without attack.
        n: number of samples.
        attacks: the ensemble, in order, with its parameters.
        broken_by: per sample, the attack that first broke it ("clean" when misclassified
            without attack, None when robust at every budget).
        broken_at: per sample, the smallest budget at which it broke (0 for "clean", None if
            never).
        share_broken_by: attack name -> share of samples it broke first.
        forward_passes: total forward passes, in images.
        backward_passes: total input-gradient passes, in images.
        seconds: wall time.
        min_norm: per sample, the smallest adversarial perturbation found by any member (0 for
            misclassified samples, None when none was found).
        median_min_norm: median of ``min_norm`` over all samples (None counts as infinite).
        notes: anything an attack recorded (e.g. a loss switch).
        sanity: gradient-masking sanity findings (empty when ``sanity=False``).
        costs: where the work went, one entry per member in order, then ``"sanity"`` when the
            checks ran: ``{"name", "runs", "attacked" (images handed to the member, summed
            over budgets), "broke" (samples it broke first), "forward", "backward" (passes, in
            images), "seconds"}``.
    """

    norm: str
    eps: list[float]
    accuracy: list[float]
    ci95: list[tuple[float, float]]
    clean_accuracy: float
    n: int
    attacks: list[dict[str, Any]]
    broken_by: list[str | None]
    broken_at: list[float | None]
    share_broken_by: dict[str, float]
    forward_passes: int
    backward_passes: int
    seconds: float
    min_norm: list[float | None] = field(default_factory=list)
    median_min_norm: float | None = None
    notes: dict[str, Any] = field(default_factory=dict)
    sanity: list[Finding] = field(default_factory=list)
    costs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def warnings(self) -> list[Finding]:
        """The sanity checks that fired."""
        return [f for f in self.sanity if f.fired]


def default_ensemble(norm: str) -> list[tuple[str, dict[str, Any]]]:
    """The members of :data:`DEFAULT_ENSEMBLE` that run for ``norm``, in order, with parameters.

    Args:
        norm: a canonical norm name (``linf``, ``l2``, ``l1``, ``l0``).

    Example:
        >>> [name for name, _ in default_ensemble("linf")]
        ['fmn', 'apgd-ce', 'apgd-t', 'square']
    """
    return [
        (name, dict(params))
        for name, params in DEFAULT_ENSEMBLE
        if norm in ATTACKS.get(name).norms and _ONLY_FOR.get(name, norm) == norm
    ]


def _ensemble(
    attacks: str | list[str | tuple[str, dict[str, Any]]] | tuple[Any, ...],
    norm: str,
    num_classes: int | None = None,
) -> list[tuple[str, dict[str, Any]]]:
    """The members as (name, params), checked; ``num_classes`` caps the default ``n_targets``."""
    if isinstance(attacks, str) and attacks.strip().lower() == "default":
        members = default_ensemble(norm)
        if num_classes is not None:
            for _, params in members:
                if "n_targets" in params:
                    params["n_targets"] = max(1, min(int(params["n_targets"]), num_classes - 1))
        return members
    if isinstance(attacks, str):
        items: list[Any] = [t.strip() for t in attacks.split(",") if t.strip()]
    elif isinstance(attacks, (list, tuple)):
        items = list(attacks)
    else:
        raise InputError(
            f"attacks must be 'default', a comma-separated string of attack names or a list of "
            f"names and (name, params) pairs, got {type(attacks).__name__} {attacks!r}"
        )
    out: list[tuple[str, dict[str, Any]]] = []
    for item in items:
        if isinstance(item, str):
            name, params = item, {}
        elif (
            isinstance(item, (tuple, list))
            and len(item) == 2
            and isinstance(item[0], str)
            and isinstance(item[1], Mapping)
        ):
            name, params = item[0], dict(item[1])
        else:
            raise InputError(
                f"attacks: {item!r} is neither an attack name nor a (name, params) pair; pass "
                "e.g. ['fgsm', ('pgd', {'steps': 100})]"
            )
        spec = ATTACKS.get(name.strip())
        check_params(spec, params, num_classes=num_classes)
        if (spec.name, params) in out:
            raise InputError(
                f"attacks lists '{spec.name}' twice with the same parameters; name each member once"
            )
        out.append((spec.name, params))
    if not out:
        raise InputError("attacks is empty; pass 'default' or a list of attack names")
    return out


def _median_or_none(values: list[float]) -> float | None:
    med = sorted(values)[(len(values) - 1) // 2]
    return med if math.isfinite(med) else None


def robust_accuracy(
    model: Model,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float | list[float] | tuple[float, ...],
    norm: str = "linf",
    attacks: str | list[str | tuple[str, dict[str, Any]]] | tuple[Any, ...] = "default",
    seed: int = 0,
    sanity: bool = True,
    sanity_subset: int = 100,
    eot: int | None = None,
    eot_eval: int | None = None,
    bpda: Mapping[str, Any] | None = None,
) -> RobustAccuracyResult:
    """Robust accuracy at each budget: the per-sample worst case over an attack ensemble.

    Args:
        model: a :class:`robustcv.Model`.
        x: images under the image contract.
        y: labels.
        eps: one budget or a list (any order; reported ascending).
        norm: ``"linf"``, ``"l2"``, ``"l1"`` or ``"l0"`` (eps then counts changed coordinates).
        attacks: ``"default"`` (FMN 100 steps unbounded, then APGD-CE 100 steps, APGD-T with
            min(9, K-1) targets x 100 steps and Square with 5000 queries; L1: FMN then PGD with
            5 restarts x 100 steps; L0: FMN, then uniform and Gaussian noise on random
            coordinates, 20 draws each), a comma-separated string of attack names,
            or a list of names and ``(name, params)`` pairs such as ``[("pgd", {"steps": 100})]``.
            Minimum-norm members run once, unbounded, before the fixed-budget ones.
        seed: seed shared by every attack.
        sanity: run the gradient-masking sanity checks (``robustcv.attacks.sanity``) after
            the ensemble; their findings are in ``.sanity`` and ``.warnings``.
        sanity_subset: samples used by the more expensive checks.
        eot: EOT samples for the gradient members (:func:`robustcv.attacks.attack`'s ``eot``).
            None: 1, unless the default ensemble meets a stochastic model (two forward passes
            on the same images differ), when it switches to ``eot=10`` and ``eot_eval=5``
            (majority) and says so in ``.notes["eot"]``.
        eot_eval: evaluations that decide every member's success (majority); None: 1 (5 when
            switched automatically).
        bpda: BPDA substitutions for the gradient members (``{"module": "identity"}``).

    Returns:
        A :class:`RobustAccuracyResult`; its accuracy is never above any member's alone.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> m = Model(nn.Sequential(nn.Flatten(), nn.Linear(4, 3)))
        >>> x, y = torch.rand(6, 1, 2, 2), torch.tensor([0, 1, 2, 0, 1, 2])
        >>> res = robust_accuracy(m, x, y, eps=[0.05, 0.2], attacks="fgsm,pgd", sanity=False)
        >>> res.eps, res.accuracy[0] >= res.accuracy[1]
        ([0.05, 0.2], True)
    """
    if not isinstance(model, Model):
        raise InputError(f"model is a {type(model).__name__}; wrap it with robustcv.Model")
    seed = check_seed(seed)
    if not isinstance(sanity, bool):
        raise InputError(f"sanity must be True or False, got {sanity!r}")
    if (
        isinstance(sanity_subset, bool)
        or not isinstance(sanity_subset, Integral)
        or sanity_subset < 1
    ):
        raise InputError(
            f"sanity_subset must be an int >= 1 (samples the sanity checks use), got "
            f"{sanity_subset!r}; e.g. sanity_subset=100"
        )
    sanity_subset = int(sanity_subset)
    threat = get_threat(norm)
    if isinstance(eps, Real) and not isinstance(eps, bool):
        budgets: list[Any] = [eps]
    elif isinstance(eps, (list, tuple)):
        budgets = list(eps)
    else:
        raise InputError(f"eps must be a number or a list of numbers >= 0, got {eps!r}")
    if not budgets:
        raise InputError("eps is empty; pass at least one budget, e.g. eps=[0.05, 0.1]")
    budgets = sorted({check_eps_value(e) for e in budgets})
    x = check_images(x)
    check_model_fits(model, x, what="x")  # also tells the wrapper its number of classes
    y = check_labels(y, batch_size=int(x.shape[0]), num_classes=model._num_classes)
    members = _ensemble(attacks, threat.name, model._num_classes)
    for name, _ in members:
        if threat.name not in ATTACKS.get(name).norms:
            raise InputError(f"attack '{name}' does not support norm '{threat.name}'")
    from robustcv.attacks.adaptive import auto_eot, check_adaptive

    check_adaptive(eot or 1, eot_eval or 1, "majority", bpda, model)
    notes: dict[str, Any] = {}
    if eot is None and eot_eval is None and attacks == "default":
        switch = auto_eot(model, x)
        if switch is not None:
            eot, eot_eval, notes["eot"] = switch
    adaptive_all = {"eot_eval": eot_eval} if eot_eval and eot_eval > 1 else {}
    adaptive_grad = {
        **adaptive_all,
        **({"eot": eot} if eot and eot > 1 else {}),
        **({"bpda": bpda} if bpda else {}),
    }

    def extra(name: str) -> dict[str, Any]:
        return adaptive_grad if ATTACKS.get(name).kind == "gradient" else adaptive_all

    start = time.perf_counter()
    before = model.counts()
    with torch.no_grad():
        pred = model.predict(x)
    n = len(y)
    broken_by: list[str | None] = [
        "clean" if bool(p != t) else None for p, t in zip(pred, y, strict=True)
    ]
    broken_at: list[float | None] = [0.0 if b == "clean" else None for b in broken_by]
    accuracy: list[float] = []
    # minimum-norm members run once, unbounded: each gives the samples' minimal eps
    min_norm = [math.inf] * n
    min_by: list[str | None] = [None] * n
    alive = torch.tensor([b is None for b in broken_by])
    costs = {
        name: {"runs": 0, "attacked": 0, "forward": 0, "backward": 0, "seconds": 0.0}
        for name, _ in members
    }

    def book(name: str, res: AttackResult) -> None:
        c = costs[name]
        c["runs"] += 1
        c["attacked"] += len(res.success)
        c["forward"] += res.forward_passes
        c["backward"] += res.backward_passes
        c["seconds"] += res.seconds

    for name, params in members:
        if not ATTACKS.get(name).minimum_norm or not bool(alive.any()):
            continue
        idx = torch.nonzero(alive).flatten()
        res = attack(
            model, x[idx], y[idx], name, norm=threat.name, seed=seed, **extra(name), **params
        )
        book(name, res)
        for i, v in zip(idx.tolist(), res.norms.tolist(), strict=True):
            if v < min_norm[i]:
                min_norm[i], min_by[i] = v, name
    fixed = [(nm, pr) for nm, pr in members if not ATTACKS.get(nm).minimum_norm]
    for e in budgets:
        for i in range(n):
            if broken_by[i] is None and min_by[i] is not None and min_norm[i] <= e:
                broken_by[i], broken_at[i] = min_by[i], e
        for name, params in fixed:
            alive = torch.tensor([b is None for b in broken_by])
            idx = torch.nonzero(alive).flatten()
            if idx.numel() == 0:
                break
            res = attack(
                model,
                x[idx],
                y[idx],
                name,
                eps=e,
                norm=threat.name,
                seed=seed,
                **extra(name),
                **params,
            )
            book(name, res)
            if "notes" in res.config:
                notes[name] = res.config["notes"]
            for i, v in zip(
                idx[res.success].tolist(), res.norms[res.success].tolist(), strict=True
            ):
                broken_by[i] = name
                broken_at[i] = e
                min_norm[i] = min(min_norm[i], v)
        accuracy.append(sum(b is None for b in broken_by) / n)
    findings: list[Finding] = []
    cost_list = [{"name": name, **costs[name]} for name, _ in members]
    for c in cost_list:
        c["broke"] = sum(b == c["name"] for b in broken_by)
    if sanity:
        sanity_start, sanity_before = time.perf_counter(), model.counts()
        robust = torch.tensor(
            [
                [b is None or (at is not None and at > e) for e in budgets]
                for b, at in zip(broken_by, broken_at, strict=True)
            ],
            dtype=torch.bool,
        ).reshape(n, len(budgets))
        # the checks re-run the first iterative white-box member (else the first member)
        iterative = [
            (nm, pr)
            for nm, pr in members
            if ATTACKS.get(nm).kind == "gradient" and "steps" in ATTACKS.get(nm).params
        ]
        first = (iterative or members)[0]
        findings = run_sanity_checks(
            model,
            x,
            y,
            norm=threat.name,
            eps=budgets,
            robust=robust,
            member=first,
            seed=seed,
            subset=sanity_subset,
            adaptive=adaptive_grad,
        )
        spent = model.counts() - sanity_before
        cost_list.append(
            {
                "name": "sanity",
                "runs": 1,
                "attacked": min(sanity_subset, n),
                "forward": spent.forward,
                "backward": spent.backward,
                "seconds": time.perf_counter() - sanity_start,
                "broke": 0,
            }
        )
    cost = model.counts() - before
    robust_counts = [round(a * n) for a in accuracy]
    names = [name for name, _ in members]
    return RobustAccuracyResult(
        norm=threat.name,
        eps=budgets,
        accuracy=accuracy,
        ci95=[binomial_ci(c, n) for c in robust_counts],
        clean_accuracy=float((pred == y).float().mean()),
        n=n,
        attacks=[{"name": name, **params} for name, params in members],
        broken_by=broken_by,
        broken_at=broken_at,
        share_broken_by={k: sum(b == k for b in broken_by) / n for k in ["clean", *names]},
        forward_passes=cost.forward,
        backward_passes=cost.backward,
        seconds=time.perf_counter() - start,
        min_norm=[
            0.0 if b == "clean" else (v if math.isfinite(v) else None)
            for b, v in zip(broken_by, min_norm, strict=True)
        ],
        median_min_norm=_median_or_none(
            [0.0 if b == "clean" else v for b, v in zip(broken_by, min_norm, strict=True)]
        ),
        notes=notes,
        sanity=findings,
        costs=cost_list,
    )
