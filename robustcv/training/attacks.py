"""The minimal L-inf attacks the training recipes need (FGSM with random start, PGD).

These are deliberately small; the attack engine (``robustcv.attacks``) is the tool for
evaluation. Both work on [0, 1] images through a :class:`robustcv.Model` and never mutate x.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from robustcv.core.model import Model

__all__ = ["fgsm_rs", "pgd_linf"]


def _input_grad(model: Model, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        loss = F.cross_entropy(model.logits(x, validate=False), y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, x)
    return grad


def fgsm_rs(
    model: Model,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    alpha: float,
    generator: torch.Generator,
) -> torch.Tensor:
    """FGSM from a uniform random start in the eps-ball (Wong et al. 2020), clipped to [0,1].

    Example:
        >>> from torch import nn
        >>> from robustcv.core.seeding import make_generator
        >>> m = Model(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)))
        >>> x = torch.rand(3, 1, 2, 2); y = torch.tensor([0, 1, 0])
        >>> adv = fgsm_rs(m, x, y, eps=0.1, alpha=0.125, generator=make_generator(0))
        >>> bool((adv - x).abs().max() <= 0.1 + 1e-6)
        True
    """
    noise = torch.rand(x.shape, generator=generator, device=x.device)
    delta = (noise * 2 - 1) * eps
    x0 = (x + delta).clamp(0, 1)
    grad = _input_grad(model, x0, y)
    delta = (x0 - x + alpha * grad.sign()).clamp(-eps, eps)
    return (x + delta).clamp(0, 1).detach()


def pgd_linf(
    model: Model,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    alpha: float,
    steps: int,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """L-inf PGD on the cross-entropy; random start when a generator is given.

    Returns the last iterate for samples never misclassified and the first misclassified
    iterate otherwise (so the result is at least as strong as the last iterate).

    Example:
        >>> from torch import nn
        >>> m = Model(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)))
        >>> x = torch.rand(3, 1, 2, 2); y = torch.tensor([0, 1, 0])
        >>> adv = pgd_linf(m, x, y, eps=0.1, alpha=0.025, steps=5)
        >>> bool((adv - x).abs().max() <= 0.1 + 1e-6) and bool((adv >= 0).all())
        True
    """
    if generator is not None:
        noise = torch.rand(x.shape, generator=generator, device=x.device)
        x_adv = (x + (noise * 2 - 1) * eps).clamp(0, 1)
    else:
        x_adv = x.clone()
    best = x_adv.clone()
    fooled = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
    for i in range(steps + 1):
        last = i == steps
        x_req = x_adv.detach().requires_grad_(not last)
        with torch.set_grad_enabled(not last):
            logits = model.logits(x_req, validate=False)
        wrong = logits.detach().argmax(1) != y
        keep = wrong & ~fooled  # first success is kept
        best[keep] = x_adv[keep]
        fooled |= wrong
        best[~fooled] = x_adv[~fooled]
        if last:
            break
        (grad,) = torch.autograd.grad(F.cross_entropy(logits, y, reduction="sum"), x_req)
        x_adv = torch.min(torch.max(x_adv + alpha * grad.sign(), x - eps), x + eps).clamp(0, 1)
    return best.detach()
