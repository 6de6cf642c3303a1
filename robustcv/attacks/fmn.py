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
    return best


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
        },
        summary="fast minimum-norm attack (after Pintor et al. 2021); eps=None gives minimal norms",
    )
)
