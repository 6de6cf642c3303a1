"""DeepFool (Moosavi-Dezfooli et al. 2016): iterative linearisation of the decision boundary.

At each iterate the classifier is linearised around the current point: for every candidate
class ``k`` the logit difference ``f_k = z_k - z_y`` and its input gradient ``w_k`` give the
distance to the linearised boundary ``|f_k| / ||w_k||_q`` (``q`` the dual norm: 2 for L2, 1 for
L-inf). The attack steps onto the closest of those hyperplanes and accumulates the steps in
``r_tot``; the next linearisation point is ``x + r_tot`` and the candidate checked for success is
the overshoot point ``x + (1 + overshoot) * r_tot``, so that the attack crosses the boundary that
the iterates converge to (both clipped to [0, 1] and projected onto ``ctx.eps`` when a budget caps
the search). A sample stops as soon as it is adversarial.

Pixels at a bound of [0, 1] whose gradient points out of the box are left out of the
linearisation (a box-aware variant: the paper ignores the box, and with the plain steps clipping
eats part of every step on images with saturated backgrounds, so the iterates stall short of the
boundary).

Only the ``candidates`` highest-scoring classes of the clean image (the label plus the
``candidates - 1`` best others) are considered; their Jacobian rows come from one backward pass
per candidate over the whole batch (a loop over classes, never over samples). DeepFool is
untargeted and returns the first adversarial iterate (the clean image where none was found).
"""

from __future__ import annotations

import math

import torch

from robustcv.attacks.base import AttackContext, AttackSpec, register_attack
from robustcv.core.errors import InputError

__all__ = ["deepfool"]

_DUAL = {"l2": 2.0, "linf": 1.0}


def deepfool(
    ctx: AttackContext,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    steps: int = 50,
    overshoot: float = 0.02,
    candidates: int = 10,
) -> torch.Tensor:
    """Untargeted DeepFool for L2 or L-inf; see the module docstring.

    Args:
        ctx: attack context; ``ctx.eps`` (if given) caps the perturbation (iterates are
            projected onto the ball). Targets are not supported.
        x: images (B, C, H, W) in [0, 1].
        y: labels (B,).
        steps: maximal number of linearisation steps.
        overshoot: the accumulated perturbation is scaled by ``1 + overshoot`` so that the
            iterate crosses the (linearised) boundary instead of landing on it.
        candidates: number of classes considered (the label plus the ``candidates - 1``
            highest other clean logits); at least 2, capped at the number of classes.

    Returns:
        The first adversarial iterate per sample, ``x`` itself where none was found.

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
        >>> res = attack(m, x, m.predict(x), "deepfool", norm="l2")
        >>> bool(res.success.all()), bool((res.norms < 1).all())
        (True, True)
    """
    if ctx.targets is not None:
        raise InputError("deepfool is untargeted; drop targets=")
    if ctx.threat.name not in _DUAL:
        raise InputError(f"deepfool supports norms linf and l2, not '{ctx.threat.name}'")
    if isinstance(candidates, bool) or not isinstance(candidates, int) or candidates < 2:
        raise InputError(f"candidates must be an int >= 2, got {candidates!r}")
    if not (isinstance(overshoot, (int, float)) and overshoot >= 0 and math.isfinite(overshoot)):
        raise InputError(f"overshoot must be a finite number >= 0, got {overshoot!r}")
    dual = _DUAL[ctx.threat.name]
    n = x.shape[0]
    view = (-1,) + (1,) * (x.dim() - 1)
    with torch.no_grad():
        clean = ctx.model.logits(x, validate=False)
    k = min(candidates, clean.shape[1])
    # the k - 1 best classes other than the label, fixed for the whole run (as in the paper)
    others = clean.scatter(1, y[:, None], float("-inf")).topk(k - 1, dim=1).indices

    best = x.clone()
    idx = torch.arange(n, device=x.device)
    p = x.clone()  # linearisation points x + r_tot of the samples in idx
    for step in range(steps + 1):
        last = step == steps
        pr = p.detach().requires_grad_(not last)
        with torch.set_grad_enabled(not last):
            logits = ctx.model.logits(pr, validate=False)
            yi = y[idx]
            # f_j < 0 while the label still beats candidate j
            f = logits.gather(1, others[idx]) - logits.gather(1, yi[:, None])
        adv = logits.detach().argmax(1) != yi
        best[idx[adv]] = p[adv].detach()
        keep = ~adv
        if last or not bool(keep.any()):
            break
        jac = torch.stack(
            [
                torch.autograd.grad(f[:, j].sum(), pr, retain_graph=j < k - 2)[0]
                for j in range(k - 1)
            ],
            dim=1,
        )  # (b, k - 1, C, H, W): rows of the Jacobian of f
        idx, f, jac, p = idx[keep], f.detach()[keep], jac[keep], p[keep].detach()
        # box-aware linearisation: a pixel at a bound cannot move further out of [0, 1]
        lo, hi = (p <= 0).unsqueeze(1), (p >= 1).unsqueeze(1)
        jac = jac.masked_fill((lo & (jac < 0)) | (hi & (jac > 0)), 0.0)
        rows = torch.arange(idx.numel(), device=x.device)
        w_norm = torch.linalg.vector_norm(jac.flatten(2), ord=dual, dim=2)  # (b, k - 1)
        dist = f.abs() / w_norm.clamp_min(1e-12)
        j_star = dist.argmin(1)
        w = jac[rows, j_star]
        f_star = f[rows, j_star].abs()
        wn = w_norm[rows, j_star].clamp_min(1e-12)
        if dual == 2.0:  # L2: r = |f| / ||w||_2^2 * w
            r = (f_star / wn.square()).view(view) * w
        else:  # L-inf: r = |f| / ||w||_1 * sign(w)
            r = (f_star / wn).view(view) * torch.sign(w)
        x0 = x[idx]
        p = (p + r).clamp(0.0, 1.0)
        xa = (x0 + (1 + overshoot) * (p - x0)).clamp(0.0, 1.0)
        if ctx.eps is not None:
            p = ctx.threat.project(x0, p, ctx.eps[idx])
            xa = ctx.threat.project(x0, xa, ctx.eps[idx])
        # the overshoot point x + (1 + overshoot) * r_tot is what crosses the boundary
        with torch.no_grad():
            adv = ctx.model.logits(xa, validate=False).argmax(1) != y[idx]
        best[idx[adv]] = xa[adv]
        idx, p = idx[~adv], p[~adv]
        if idx.numel() == 0:
            break
    return best


register_attack(
    AttackSpec(
        name="deepfool",
        fn=deepfool,
        kind="gradient",
        minimum_norm=True,
        norms=("linf", "l2"),
        targeted=False,
        params={"steps": 50, "overshoot": 0.02, "candidates": 10},
        summary="DeepFool: step to the closest linearised boundary (Moosavi-Dezfooli et al. 2016)",
    )
)
