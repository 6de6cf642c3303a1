"""Fast minimum-norm attack (FMN-style, after Pintor et al. 2021) for L-inf, L2, L1 and L0.

The attack keeps a per-sample radius ``eps_k`` and alternates a gradient step on the logit
margin with a projection onto the ``eps_k``-ball and the [0, 1] box. While the point is
adversarial the radius shrinks by ``(1 - gamma_k)`` towards the current norm; while it is not,
the radius grows by ``(1 + gamma_k)``, or, before the first success, jumps to a first-order
estimate of the distance to the boundary (margin / dual norm of the gradient). Step size and
``gamma`` follow cosine schedules. The smallest adversarial perturbation seen is returned.
Unbounded by default (``eps=None``): ``.norms`` are the per-sample minimal perturbations found.

L0 (``norm="l0"``) counts changed coordinates, so its radius is an integer: it shrinks to
``min(floor(r * (1 - gamma)), r - 1)`` and grows to ``max(floor(r * (1 + gamma)), r + 1)``,
starting from 1 (no first-order distance estimate exists for a count). Its step is
``alpha`` times the L2-normalised gradient, not scaled by the radius, and the projection then
keeps the ``r`` coordinates that moved most usefully (:class:`robustcv.attacks.threat.L0`).
"""

from __future__ import annotations

import dataclasses
import math

import torch

from robustcv.attacks.base import AttackContext, AttackSpec, register_attack
from robustcv.attacks.gradient import attack_loss
from robustcv.core.errors import InputError

__all__ = ["fmn"]

_DUAL = {"linf": 1.0, "l2": 2.0, "l1": math.inf, "l0": 2.0}


def _cosine(k: int, steps: int, start: float, end: float) -> float:
    return end + (start - end) * (1 + math.cos(math.pi * k / max(steps, 1))) / 2


def fmn(
    ctx: AttackContext,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    steps: int = 100,
    alpha_init: float = 1.0,
    alpha_final: float | None = None,
    gamma_init: float = 0.05,
    gamma_final: float = 0.001,
    n_targets: int = 0,
) -> torch.Tensor:
    """Minimum-norm search; see the module docstring.

    Args:
        ctx: attack context; ``ctx.eps`` (if given) caps the radius.
        x: images.
        y: labels.
        steps: iterations.
        alpha_init: initial step, relative to the current radius.
        alpha_final: final step (default ``alpha_init / 100``).
        gamma_init: initial radius update factor.
        gamma_final: final radius update factor.
        n_targets: untargeted runs only (0), or also targeted runs at the ``n_targets`` most
            likely other classes at the clean point (without explicit ``targets``); each sample
            keeps its smallest adversarial perturbation over all runs. On the MILP-verified
            MLP of ``tests/fixtures/milp`` at 300 steps the untargeted run ends 5.3% above the
            proven optimum on average, ``n_targets=2`` 1.5% and ``n_targets=4`` 0.8%
            (``benchmarks/minimum_norm_vs_milp.py``), at 3x and 5x the cost.
    """
    if not 0 < gamma_final <= gamma_init < 1:
        raise InputError(
            f"gamma_init and gamma_final need 0 < gamma_final <= gamma_init < 1, got "
            f"gamma_init={gamma_init!r}, gamma_final={gamma_final!r}"
        )
    if not alpha_init > 0:
        raise InputError(f"alpha_init must be > 0, got {alpha_init}")
    if alpha_final is not None and (
        isinstance(alpha_final, bool)
        or not isinstance(alpha_final, (int, float))
        or not 0 < alpha_final < math.inf
    ):
        raise InputError(f"alpha_final must be None or a finite number > 0, got {alpha_final!r}")
    a_end = alpha_final if alpha_final is not None else alpha_init / 100
    if isinstance(n_targets, bool) or not isinstance(n_targets, int) or n_targets < 0:
        raise InputError(f"n_targets must be an int >= 0, got {n_targets!r}")
    args = (steps, alpha_init, a_end, gamma_init, gamma_final)
    best, best_norm = _fmn_run(ctx, x, y, *args)
    if ctx.targets is not None or n_targets == 0:
        return best
    with torch.no_grad():
        order = ctx.model.logits(x, validate=False).argsort(1, descending=True)
    others = order[order != y[:, None]].view(x.shape[0], -1)  # most likely first, y removed
    for j in range(min(n_targets, others.shape[1])):
        run, run_norm = _fmn_run(dataclasses.replace(ctx, targets=others[:, j]), x, y, *args)
        better = run_norm < best_norm
        best[better] = run[better]
        best_norm = torch.where(better, run_norm, best_norm)
    return best


def _fmn_run(
    ctx: AttackContext,
    x: torch.Tensor,
    y: torch.Tensor,
    steps: int,
    alpha_init: float,
    a_end: float,
    gamma_init: float,
    gamma_final: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One FMN run (untargeted, or at ``ctx.targets``): best points and their norms."""
    threat = ctx.threat
    dual = _DUAL[threat.name]
    n = x.shape[0]
    view = (-1, 1, 1, 1)
    cap = ctx.eps if ctx.eps is not None else torch.full((n,), math.inf, device=x.device)
    best = x.clone()
    best_norm = torch.full((n,), math.inf, device=x.device)
    found = torch.zeros(n, dtype=torch.bool, device=x.device)
    radius = torch.zeros(n, device=x.device)
    xa = x.clone()
    for k in range(steps + 1):
        xr = xa.detach().requires_grad_(k < steps)
        with torch.set_grad_enabled(k < steps):
            logits = ctx.model.logits(xr, validate=False)
            # margin > 0 means adversarial (untargeted: best other beats y; targeted: t wins)
            margin = attack_loss(logits, y, ctx.targets, "margin")
        pred = logits.detach().argmax(1)
        adv = pred != y if ctx.targets is None else pred == ctx.targets
        norms = threat.norm(xa - x)
        better = adv & (norms < best_norm)
        best[better] = xa[better].detach()
        best_norm = torch.where(better, norms, best_norm)
        found |= adv
        if k == steps:
            break
        (grad,) = torch.autograd.grad(margin.sum(), xr)
        gamma = _cosine(k, steps, gamma_init, gamma_final)
        grad_dual = torch.linalg.vector_norm(grad.flatten(1), ord=dual, dim=1).clamp_min(1e-12)
        estimate = norms + (-margin.detach()).clamp_min(0) / grad_dual
        alpha = _cosine(k, steps, alpha_init, a_end)
        if threat.name == "l0":  # an integer radius that always moves by at least one
            current = torch.minimum(radius.where(radius > 0, norms), norms)
            shrink = torch.minimum(torch.floor(current * (1 - gamma)), current - 1).clamp_min(0)
            grow = torch.maximum(torch.floor(radius * (1 + gamma)), radius + 1)
            radius = torch.minimum(torch.where(adv, shrink, grow), cap)
            step = alpha * threat.steepest(grad)
        else:
            radius = torch.where(
                adv,
                torch.minimum(radius.where(radius > 0, norms), norms) * (1 - gamma),
                torch.where(found, radius * (1 + gamma), estimate),
            )
            radius = torch.minimum(radius, cap)
            step = (alpha * radius.clamp_min(1e-6)).view(view) * threat.steepest(grad)
        xa = threat.project(x, (xa.detach() + step).clamp(0, 1), radius, check=False)
    return best, best_norm


register_attack(
    AttackSpec(
        name="fmn",
        fn=fmn,
        kind="gradient",
        minimum_norm=True,
        norms=("linf", "l2", "l1", "l0"),
        targeted=True,
        params={
            "steps": 100,
            "alpha_init": 1.0,
            "alpha_final": None,
            "gamma_init": 0.05,
            "gamma_final": 0.001,
            "n_targets": 0,
        },
        summary="fast minimum-norm attack (after Pintor et al. 2021); eps=None gives minimal norms",
    )
)
