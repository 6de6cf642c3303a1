"""Random-noise baselines: Gaussian and uniform noise rescaled to the budget.

Each of ``repeats`` draws is rescaled with clipping-aware rescaling so that the perturbation
*after* clipping to [0, 1] has norm exactly eps (or the largest reachable). They are sanity
baselines: if noise breaks a sample that the gradient attacks missed, the evaluation is suspect.

Under L0 (eps counts coordinates) each draw picks ``floor(eps)`` coordinates at random and adds
the noise there only (clipped to [0, 1]): salt-and-pepper-like noise with exactly that budget.
"""

from __future__ import annotations

import torch

from robustcv.attacks.base import (
    AttackContext,
    AttackSpec,
    per_sample_generators,
    register_attack,
)
from robustcv.attacks.rescale import clipping_aware_rescale
from robustcv.attacks.threat import L0

__all__ = ["noise_attack"]


def _draws(
    ctx: AttackContext, x: torch.Tensor, idx: torch.Tensor, kind: str, repeat: int
) -> torch.Tensor:
    out = torch.empty_like(x)
    shape = tuple(x.shape[1:])
    for row, gen in per_sample_generators(ctx, idx, "noise", kind, repeat):
        if kind == "gaussian":
            out[row] = torch.randn(shape, generator=gen, device=x.device)
        else:
            out[row] = torch.rand(shape, generator=gen, device=x.device) * 2 - 1
    return out


def noise_attack(
    ctx: AttackContext, x: torch.Tensor, y: torch.Tensor, *, kind: str, repeats: int = 20
) -> torch.Tensor:
    """Try ``repeats`` random perturbations of norm eps per sample; keep the first success."""
    assert ctx.eps is not None
    best = x.clone()
    done = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
    p = ctx.threat.p
    for r in range(repeats):
        idx = torch.nonzero(~done).flatten()
        if idx.numel() == 0:
            break
        xs = x[idx]
        delta = _draws(ctx, xs, idx, kind, r)
        if p == 0:  # L0: the noise lands on floor(eps) random coordinates
            scores = _draws(ctx, xs, idx, "uniform", repeats + r).flatten(1)
            mask = L0.keep_largest(scores, ctx.eps[idx]).view_as(xs)
            cand = torch.where(mask, (xs + delta).clamp(0, 1), xs)
        else:
            eta = clipping_aware_rescale(xs, delta, ctx.eps[idx], p)
            cand = (xs + eta.view(-1, 1, 1, 1) * delta).clamp(0, 1)
        with torch.no_grad():
            pred = ctx.model.logits(cand, validate=False).argmax(1)
        adv = pred != y[idx] if ctx.targets is None else pred == ctx.targets[idx]
        best[idx[adv]] = cand[adv]
        done[idx[adv]] = True
    return best


def _gaussian(
    ctx: AttackContext, x: torch.Tensor, y: torch.Tensor, *, repeats: int = 20
) -> torch.Tensor:
    return noise_attack(ctx, x, y, kind="gaussian", repeats=repeats)


def _uniform(
    ctx: AttackContext, x: torch.Tensor, y: torch.Tensor, *, repeats: int = 20
) -> torch.Tensor:
    return noise_attack(ctx, x, y, kind="uniform", repeats=repeats)


for _name, _fn, _what in (
    ("noise-gaussian", _gaussian, "Gaussian"),
    ("noise-uniform", _uniform, "uniform"),
):
    register_attack(
        AttackSpec(
            name=_name,
            fn=_fn,
            kind="noise",
            minimum_norm=False,
            norms=("linf", "l2", "l1", "l0"),
            targeted=True,
            params={"repeats": 20},
            summary=f"{_what} noise rescaled (clipping-aware) to norm eps; a sanity baseline",
        )
    )
