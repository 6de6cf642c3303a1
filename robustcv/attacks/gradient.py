"""First-order fixed-budget attacks: FGSM and PGD (L-inf, L2, L1).

Both are batched and only ever work on the samples that are still robust (per-sample early
stopping, unless ``early_stop=False``). PGD keeps, per sample, the first adversarial iterate it
finds, or else the iterate with the highest loss, over all steps and restarts.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from robustcv.attacks.base import (
    AttackContext,
    AttackSpec,
    per_sample_generators,
    register_attack,
)
from robustcv.core.errors import InputError

__all__ = ["attack_loss", "fgsm", "pgd", "random_starts"]

_LOSSES = ("ce", "margin", "kl")


def attack_loss(
    logits: torch.Tensor,
    y: torch.Tensor,
    targets: torch.Tensor | None,
    loss: str,
    reference: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-sample loss the attack *maximises*.

    ``ce``: cross-entropy of the true class (untargeted) or minus that of the target.
    ``margin``: max other logit minus the true logit (untargeted), or target logit minus the
    best other logit (targeted), as in Carlini & Wagner.
    ``kl``: KL(p_ref || p(x_adv)), the divergence of the prediction from ``reference`` (the
    log-probabilities at the clean images): the inner maximisation of TRADES (Zhang et al.
    2019). Labels and targets are ignored.

    Example:
        >>> logits = torch.tensor([[2.0, 0.0, 1.0]])
        >>> attack_loss(logits, torch.tensor([0]), None, "margin").item()
        -1.0
    """
    if loss == "ce":
        if targets is None:
            return F.cross_entropy(logits, y, reduction="none")
        return -F.cross_entropy(logits, targets, reduction="none")
    if loss == "kl":
        if reference is None:
            raise InputError("loss 'kl' needs the clean log-probabilities as reference")
        logp = F.log_softmax(logits, dim=1)
        return (reference.exp() * (reference - logp)).sum(1)
    if loss == "margin":
        ref = y if targets is None else targets
        own = logits.gather(1, ref[:, None]).squeeze(1)
        other = logits.scatter(1, ref[:, None], float("-inf")).amax(1)
        return other - own if targets is None else own - other
    raise InputError(f"unknown loss '{loss}'; use one of {', '.join(_LOSSES)}")


def random_starts(
    ctx: AttackContext, x: torch.Tensor, idx: torch.Tensor, key: object
) -> torch.Tensor:
    """Random starting points in the budget for rows ``idx`` of the batch.

    Each sample gets its own generator keyed by (seed, key, image content), so the start does
    not depend on batch size or order.
    """
    assert ctx.eps is not None  # fixed-budget attacks only
    out = torch.empty_like(x)
    for row, gen in per_sample_generators(ctx, idx, key):
        rows = slice(row, row + 1)
        out[rows] = ctx.threat.random_start(x[rows], ctx.eps[idx[rows]], gen)
    return out


def _grad(
    ctx: AttackContext,
    xa: torch.Tensor,
    y: torch.Tensor,
    targets: torch.Tensor | None,
    loss: str,
    reference: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(logits, per-sample loss, input gradient of the summed loss) at ``xa``."""
    xr = xa.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = ctx.model.logits(xr, validate=False)
        values = attack_loss(logits, y, targets, loss, reference)
        (grad,) = torch.autograd.grad(values.sum(), xr)
    return logits.detach(), values.detach(), grad


def _clean_log_probs(ctx: AttackContext, x: torch.Tensor) -> torch.Tensor:
    """Log-probabilities at the clean images (the reference of the ``kl`` loss)."""
    with torch.no_grad():
        return F.log_softmax(ctx.model.logits(x, validate=False), dim=1)


def fgsm(
    ctx: AttackContext,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    loss: str = "ce",
    random_start: bool = False,
    rel_step: float = 1.0,
) -> torch.Tensor:
    """One steepest-ascent step in the threat model's norm (Goodfellow et al.).

    For L-inf this is the sign of the gradient; for L2/L1 the normalised (sparse, for L1)
    gradient direction. Never use FGSM alone to claim robustness. With ``random_start=True`` and
    ``rel_step=1.25`` it is the FGSM-RS of fast adversarial training (Wong et al. 2020): the step
    starts from a random point of the ball and the result is projected back into it.

    Args:
        ctx: the attack context (threat model, per-sample eps, targets, seed).
        x: images.
        y: labels.
        loss: ``"ce"``, ``"margin"`` or ``"kl"`` (see :func:`attack_loss`).
        random_start: take the step from a random point of the ball (seeded per sample, like
            PGD's start) instead of from ``x``.
        rel_step: step length as a fraction of eps (default 1: one step of length eps).
    """
    assert ctx.eps is not None
    if isinstance(rel_step, bool) or not isinstance(rel_step, (int, float)) or not rel_step > 0:
        raise InputError(f"rel_step must be a number > 0, got {rel_step!r}")
    if loss not in _LOSSES:
        raise InputError(f"unknown loss '{loss}'; use one of {', '.join(_LOSSES)}")
    tg = ctx.targets
    rows = torch.arange(x.shape[0], device=x.device)
    ref = _clean_log_probs(ctx, x) if loss == "kl" else None
    x0 = random_starts(ctx, x, rows, "fgsm") if random_start else x
    _, _, grad = _grad(ctx, x0, y, tg, loss, ref)
    step = (rel_step * ctx.eps).view(-1, 1, 1, 1) * ctx.threat.steepest(grad)
    return ctx.threat.project(x, (x0 + step).clamp(0, 1), ctx.eps)


def pgd(
    ctx: AttackContext,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    steps: int = 40,
    rel_step: float | None = None,
    restarts: int = 1,
    random_start: bool = True,
    loss: str = "ce",
    early_stop: bool = True,
) -> torch.Tensor:
    """Projected gradient descent (Madry et al. 2018) with restarts and best-point tracking.

    Args:
        ctx: the attack context (threat model, per-sample eps, targets, seed).
        x: images.
        y: labels.
        steps: iterations per restart.
        rel_step: step size as a fraction of eps (default ``2.5 / steps``, at least 0.01; on a
            stochastic model, ``eot_eval`` > 1: 0.25, halved at 50% and again at 75% of the
            steps, which broke 3 points more of a random resize defence at 40 steps).
        restarts: random restarts; later restarts only run on samples still robust.
        random_start: start from a random point in the ball (the first restart included).
        loss: ``"ce"``, ``"margin"`` or ``"kl"``. With ``"kl"`` (TRADES' inner maximisation)
            a misclassified iterate is not a success: every sample runs all steps and the
            result is the last iterate, as in TRADES (``early_stop`` has no effect).
        early_stop: stop working on a sample once it is adversarial (off: run all steps, for
            cost benchmarks).
    """
    assert ctx.eps is not None
    if loss not in _LOSSES:
        raise InputError(f"unknown loss '{loss}'; use one of {', '.join(_LOSSES)}")
    # on a stochastic model the gradients are noisy: by default larger steps that shrink
    # (eps / 4, halved at 50% and again at 75% of the steps) instead of 2.5 / steps throughout
    decay = rel_step is None and ctx.stochastic
    rel = rel_step if rel_step is not None else (0.25 if decay else max(2.5 / steps, 0.01))
    if not rel > 0:
        raise InputError(f"rel_step must be > 0, got {rel_step}")
    n = x.shape[0]
    best = x.clone()
    best_loss = torch.full((n,), float("-inf"), device=x.device)
    done = torch.zeros(n, dtype=torch.bool, device=x.device)
    targets = ctx.targets
    divergence = loss == "kl"
    ref_all = _clean_log_probs(ctx, x) if divergence else None

    for restart in range(restarts):
        idx = torch.nonzero(~done).flatten()
        if idx.numel() == 0:
            break
        x0 = x[idx]
        xa = random_starts(ctx, x0, idx, ("pgd", restart)) if random_start else x0.clone()
        for step in range(steps + 1):
            yi = y[idx]
            ti = None if targets is None else targets[idx]
            ri = None if ref_all is None else ref_all[idx]
            last = step == steps
            if last and divergence:  # TRADES: the last iterate, without another forward pass
                best[idx] = xa
                break
            if last:
                with torch.no_grad():
                    logits = ctx.model.logits(xa, validate=False)
                    values = attack_loss(logits, yi, ti, loss, ri)
                grad = None
            else:
                logits, values, grad = _grad(ctx, xa, yi, ti, loss, ri)
            pred = logits.argmax(1)
            adv = pred != yi if ti is None else pred == ti
            if divergence or ctx.stochastic:
                # TRADES: no success before the last iterate, whatever the prediction; a
                # stochastic model: one draw of the prediction is no success either (keep
                # maximising the loss; the highest-loss iterate is returned)
                adv = torch.zeros_like(adv)
            # record: first success wins; otherwise keep the highest-loss iterate
            new_adv = adv & ~done[idx]
            better = ~done[idx] & ~adv & (values > best_loss[idx])
            take = new_adv | better
            best[idx[take]] = xa[take]
            best_loss[idx[better]] = values[better]
            done[idx[new_adv]] = True
            if last or grad is None:
                break
            keep = ~adv if early_stop else torch.ones_like(adv)
            if not bool(keep.any()):
                break
            idx, xa, grad, x0 = idx[keep], xa[keep], grad[keep], x0[keep]
            eps_i = ctx.eps[idx]
            size = rel / (1 + (2 * step >= steps) + 2 * (4 * step >= 3 * steps)) if decay else rel
            xa = xa + (size * eps_i).view(-1, 1, 1, 1) * ctx.threat.steepest(grad)
            xa = ctx.threat.project(x0, xa.clamp(0, 1), eps_i, check=False)
    return best


_NORMS = ("linf", "l2", "l1")
register_attack(
    AttackSpec(
        name="fgsm",
        fn=fgsm,
        kind="gradient",
        minimum_norm=False,
        norms=_NORMS,
        targeted=True,
        params={"loss": "ce", "random_start": False, "rel_step": 1.0},
        summary="fast gradient (sign) method: one step of length eps (Goodfellow et al. 2015)",
    )
)
register_attack(
    AttackSpec(
        name="pgd",
        fn=pgd,
        kind="gradient",
        minimum_norm=False,
        norms=_NORMS,
        targeted=True,
        params={
            "steps": 40,
            "rel_step": None,
            "restarts": 1,
            "random_start": True,
            "loss": "ce",
            "early_stop": True,
        },
        summary="projected gradient descent with restarts and best-point tracking (Madry 2018)",
    )
)
