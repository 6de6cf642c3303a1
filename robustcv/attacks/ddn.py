"""Decoupling Direction and Norm (DDN, Rony et al. 2019): a minimum-norm L2 attack.

DDN keeps the *direction* and the *norm* of the perturbation apart. Each step moves the current
perturbation ``delta`` by ``alpha_k`` along the normalised cross-entropy gradient (ascent for an
untargeted attack, descent on the target's cross-entropy for a targeted one), then rescales it to
a per-sample norm ``eps_k``: ``x_k = clip(x + eps_k * delta / ||delta||_2, 0, 1)``. The norm
shrinks by ``(1 - gamma)`` while the iterate is adversarial (from the norm actually reached, which
clipping may make smaller than ``eps_k``) and grows by ``(1 + gamma)`` while it is not. The step
``alpha_k`` follows a cosine schedule from ``alpha`` to ``alpha / 100``. The smallest adversarial
iterate seen is returned. An optional 8-bit quantisation rounds each iterate to multiples of
1/255 (meaningful when the clean images are 8-bit too).
"""

from __future__ import annotations

import math

import torch

from robustcv.attacks.base import AttackContext, AttackSpec, register_attack
from robustcv.attacks.gradient import attack_loss
from robustcv.core.errors import InputError

__all__ = ["ddn"]


def _cosine(k: int, steps: int, start: float, end: float) -> float:
    return end + (start - end) * (1 + math.cos(math.pi * k / max(steps, 1))) / 2


def ddn(
    ctx: AttackContext,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    steps: int = 100,
    gamma: float = 0.05,
    init_norm: float = 1.0,
    alpha: float = 1.0,
    quantize: bool = False,
) -> torch.Tensor:
    """DDN minimum-norm L2 attack (untargeted or targeted); see the module docstring.

    Args:
        ctx: attack context; ``ctx.eps`` (if given) caps the norm ``eps_k``.
        x: images (B, C, H, W) in [0, 1].
        y: labels (B,).
        steps: iterations (each one forward and one backward pass).
        gamma: relative norm update per step, in (0, 1).
        init_norm: the starting norm ``eps_0``.
        alpha: initial L2 length of the direction step (cosine-annealed to ``alpha / 100``).
        quantize: round every iterate to the 8-bit grid (multiples of 1/255).

    Returns:
        The smallest adversarial iterate per sample, ``x`` itself where none was found.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from robustcv import Model
        >>> from robustcv.attacks import attack
        >>> g = torch.Generator().manual_seed(0)
        >>> lin = nn.Linear(4, 3)
        >>> _ = lin.weight.data.copy_(torch.randn(3, 4, generator=g)), lin.bias.data.zero_()
        >>> m = Model(nn.Sequential(nn.Flatten(), lin), num_classes=3)
        >>> x = torch.rand(2, 1, 2, 2, generator=g)
        >>> res = attack(m, x, m.predict(x), "ddn", norm="l2", steps=20)
        >>> bool(res.success.all())
        True
    """
    if ctx.threat.name != "l2":
        raise InputError(f"ddn supports norm l2 only, not '{ctx.threat.name}'")
    if not 0 < gamma < 1:
        raise InputError(f"gamma must be in (0, 1), got {gamma!r}")
    if not (init_norm > 0 and math.isfinite(init_norm)):
        raise InputError(f"init_norm must be a finite number > 0, got {init_norm!r}")
    if not (alpha > 0 and math.isfinite(alpha)):
        raise InputError(f"alpha must be a finite number > 0, got {alpha!r}")
    threat = ctx.threat
    n = x.shape[0]
    view = (-1,) + (1,) * (x.dim() - 1)
    cap = ctx.eps if ctx.eps is not None else torch.full((n,), math.inf, device=x.device)
    best = x.clone()
    best_norm = torch.full((n,), math.inf, device=x.device)
    radius = torch.full((n,), float(init_norm), device=x.device).minimum(cap)
    idx = torch.arange(n, device=x.device)  # samples still searched
    x0, xa = x, x.clone()
    for k in range(steps + 1):
        last = k == steps
        xr = xa.detach().requires_grad_(not last)
        ti = None if ctx.targets is None else ctx.targets[idx]
        with torch.set_grad_enabled(not last):
            logits = ctx.model.logits(xr, validate=False)
            loss = attack_loss(logits, y[idx], ti, "ce")  # maximised
        pred = logits.detach().argmax(1)
        adv = pred != y[idx] if ti is None else pred == ti
        delta = xa.detach() - x0
        norms = threat.norm(delta)
        better = adv & (norms < best_norm[idx])
        best[idx[better]] = xa[better].detach()
        best_norm[idx[better]] = norms[better]
        if last:
            break
        (grad,) = torch.autograd.grad(loss.sum(), xr)
        step = _cosine(k, steps, alpha, alpha / 100)
        delta = delta + step * threat.steepest(grad)
        rad = radius[idx]
        rad = torch.where(adv, (1 - gamma) * torch.minimum(rad, norms), (1 + gamma) * rad)
        radius[idx] = rad.minimum(cap[idx])
        # a clean image that is already adversarial (norm 0) cannot improve: stop it
        keep = best_norm[idx] > 0
        if not bool(keep.all()):
            idx, delta, x0 = idx[keep], delta[keep], x0[keep]
            if idx.numel() == 0:
                break
        length = threat.norm(delta)
        scale = torch.where(length > 0, radius[idx] / length.clamp_min(1e-12), 0.0)
        xa = (x0 + scale.view(view) * delta).clamp(0.0, 1.0)
        if quantize:
            xa = torch.round(xa * 255) / 255
    return best


register_attack(
    AttackSpec(
        name="ddn",
        fn=ddn,
        kind="gradient",
        minimum_norm=True,
        norms=("l2",),
        targeted=True,
        params={"steps": 100, "gamma": 0.05, "init_norm": 1.0, "alpha": 1.0, "quantize": False},
        summary="decoupled direction and norm: minimum-norm L2 attack (Rony et al. 2019)",
    )
)
