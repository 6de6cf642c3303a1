"""Auto-PGD (Croce & Hein 2020): step-size-free PGD with momentum, for L-inf and L2.

The step starts at 2 eps and is halved at checkpoints when progress stalls (the loss rose in
fewer than ``rho`` of the steps since the last checkpoint, or neither the step nor the best loss
changed); each halving restarts from the best point found. ``apgd-ce`` maximises cross-entropy,
``apgd-dlr`` the Difference-of-Logits-Ratio loss, ``apgd-t`` runs targeted DLR against the
``min(9, K-1)`` most likely other classes in turn, only on samples still robust.

DLR needs at least 3 classes (targeted DLR: 4). Below that the attacks switch to the plain
logit margin (max other logit minus true logit; target logit minus max other logit) and record
the switch in the result's ``config["notes"]``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from robustcv.attacks.base import AttackContext, AttackSpec, register_attack
from robustcv.attacks.gradient import random_starts
from robustcv.core.errors import InputError

__all__ = ["apgd", "apgd_targeted", "checkpoints", "dlr_loss"]


def dlr_loss(logits: torch.Tensor, y: torch.Tensor, targets: torch.Tensor | None) -> torch.Tensor:
    """Per-sample DLR loss to maximise (untargeted, or targeted when ``targets`` is given).

    Untargeted: ``-(z_y - max_{i != y} z_i) / (z_pi1 - z_pi3)``; targeted:
    ``-(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2)``, with ``z_pi`` the sorted logits.

    Example:
        >>> z = torch.tensor([[3.0, 1.0, 0.0, -1.0]])
        >>> round(dlr_loss(z, torch.tensor([0]), None).item(), 4)
        -0.6667
    """
    srt = logits.sort(dim=1, descending=True).values
    z_y = logits.gather(1, y[:, None]).squeeze(1)
    if targets is None:
        other = logits.scatter(1, y[:, None], float("-inf")).amax(1)
        return -(z_y - other) / (srt[:, 0] - srt[:, 2] + 1e-12)
    z_t = logits.gather(1, targets[:, None]).squeeze(1)
    return -(z_y - z_t) / (srt[:, 0] - (srt[:, 2] + srt[:, 3]) / 2 + 1e-12)


def _margin(logits: torch.Tensor, y: torch.Tensor, targets: torch.Tensor | None) -> torch.Tensor:
    if targets is None:
        other = logits.scatter(1, y[:, None], float("-inf")).amax(1)
        return other - logits.gather(1, y[:, None]).squeeze(1)
    own = logits.gather(1, targets[:, None]).squeeze(1)
    return own - logits.scatter(1, targets[:, None], float("-inf")).amax(1)


def checkpoints(steps: int) -> list[int]:
    """The iterations at which APGD checks progress (0.22 n, then shrinking gaps >= 0.06 n).

    Example:
        >>> checkpoints(100)
        [22, 41, 57, 70, 80, 87, 93, 99]
    """
    p = [0.0, 0.22]
    while p[-1] < 1:
        p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
    return sorted(
        {min(math.ceil(round(q * steps, 9)), steps - 1) for q in p[1:] if q * steps < steps}
    )


def _check_rho(rho: float) -> None:
    if not 0.0 < rho <= 1.0:
        raise InputError(
            f"rho must be in (0, 1] (the share of improving steps that keeps the step size), "
            f"got {rho!r}; e.g. rho=0.75"
        )


def _loss_kind(ctx: AttackContext, loss: str, targeted: bool) -> str:
    """The loss actually used: ce, dlr, or margin when DLR has too few classes (noted)."""
    k = ctx.model.num_classes
    if loss == "ce":
        return "ce"
    if loss == "dlr":
        need = 4 if targeted else 3
        if k < need:
            ctx.notes["loss"] = (
                f"DLR{'-targeted' if targeted else ''} needs >= {need} classes; the model has "
                f"{k}, so the logit margin was used instead"
            )
            return "margin"
        return "dlr"
    raise InputError(f"unknown APGD loss '{loss}'; use 'ce' or 'dlr'")


def _values(
    logits: torch.Tensor, y: torch.Tensor, t: torch.Tensor | None, kind: str
) -> torch.Tensor:
    if kind == "ce":
        if t is None:
            return F.cross_entropy(logits, y, reduction="none")
        return -F.cross_entropy(logits, t, reduction="none")
    if kind == "dlr":
        return dlr_loss(logits, y, t)
    return _margin(logits, y, t)


def _run(
    ctx: AttackContext,
    x: torch.Tensor,
    y: torch.Tensor,
    targets: torch.Tensor | None,
    kind: str,
    steps: int,
    rho: float,
    key: object,
    early_stop: bool,
    best: torch.Tensor,
    done: torch.Tensor,
    targeted_success: bool,
) -> None:
    """One APGD run over the samples not yet ``done``; updates ``best``/``done`` in place.

    ``targets`` steer the loss; success means reaching them only when ``targeted_success``
    (otherwise any misclassification counts, as in APGD-T).
    """
    assert ctx.eps is not None
    idx = torch.nonzero(~done).flatten()
    if idx.numel() == 0:
        return
    threat = ctx.threat
    x0 = x[idx]
    yi = y[idx]
    ti = None if targets is None else targets[idx]
    eps = ctx.eps[idx]
    view = (-1, 1, 1, 1)

    def evaluate(
        xa: torch.Tensor, ya: torch.Tensor, ta: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        xr = xa.detach().requires_grad_(True)
        with torch.enable_grad():
            logits = ctx.model.logits(xr, validate=False)
            vals = _values(logits, ya, ta, kind)
            (g,) = torch.autograd.grad(vals.sum(), xr)
        return logits.detach(), vals.detach(), g

    def record(
        rows: torch.Tensor,
        xa: torch.Tensor,
        logits: torch.Tensor,
        ya: torch.Tensor,
        ta: torch.Tensor | None,
    ) -> torch.Tensor:
        pred = logits.argmax(1)
        adv = pred == ta if (ta is not None and targeted_success) else pred != ya
        if ctx.stochastic and bool(adv.any()):
            # one draw of a random prediction is no success: confirm it by the runner's rule
            # (the majority of eot_eval fresh draws) before the sample stops
            adv = adv & ctx.confirmed(xa, ya, ta if targeted_success else None, adv)
        new = adv & ~done[rows]
        best[rows[new]] = xa[new]
        done[rows[new]] = True
        return adv

    xk = random_starts(ctx, x0, idx, key)
    logits, f, g = evaluate(xk, yi, ti)
    adv = record(idx, xk, logits, yi, ti)
    x_best, f_best, g_best = xk.clone(), f.clone(), g.clone()
    eta = 2 * eps
    x_prev = xk.clone()
    increases = torch.zeros_like(f)
    last_ck, eta_at_ck, fbest_at_ck = 0, eta.clone(), f_best.clone()
    marks = set(checkpoints(steps))
    rows = idx
    for k in range(steps):
        if early_stop:
            keep = ~adv
            if not bool(keep.any()):
                return
            if not bool(keep.all()):
                rows, x0, yi, eps, eta, xk, x_prev, g, f = (
                    t[keep] for t in (rows, x0, yi, eps, eta, xk, x_prev, g, f)
                )
                x_best, f_best, g_best = x_best[keep], f_best[keep], g_best[keep]
                increases = increases[keep]
                eta_at_ck, fbest_at_ck = eta_at_ck[keep], fbest_at_ck[keep]
                ti = None if ti is None else ti[keep]
        z_raw = (xk + eta.view(view) * threat.steepest(g)).clamp(0, 1)
        z = threat.project(x0, z_raw, eps, check=False)
        if k == 0:
            x_new = z
        else:
            alpha = 0.75
            step = alpha * (z - xk) + (1 - alpha) * (xk - x_prev)
            x_new = threat.project(x0, (xk + step).clamp(0, 1), eps, check=False)
        x_prev, xk = xk, x_new
        logits, f_new, g = evaluate(xk, yi, ti)
        adv = record(rows, xk, logits, yi, ti)
        increases += (f_new > f).float()
        f = f_new
        improved = f > f_best
        x_best[improved] = xk[improved]
        g_best[improved] = g[improved]
        f_best = torch.where(improved, f, f_best)
        if k + 1 in marks:
            span = k + 1 - last_ck
            cond1 = increases < rho * span
            cond2 = (eta_at_ck == eta) & (fbest_at_ck == f_best)
            halve = cond1 | cond2
            eta = torch.where(halve, eta / 2, eta)
            # restart halved samples from their best point (with the gradient stored there)
            xk = torch.where(halve.view(view), x_best, xk)
            x_prev = torch.where(halve.view(view), x_best, x_prev)
            g = torch.where(halve.view(view), g_best, g)
            f = torch.where(halve, f_best, f)
            increases.zero_()
            last_ck, eta_at_ck, fbest_at_ck = k + 1, eta.clone(), f_best.clone()
    # samples never broken: keep the highest-loss point
    still = ~done[rows]
    best[rows[still]] = x_best[still]


def apgd(
    ctx: AttackContext,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    steps: int = 100,
    loss: str = "ce",
    restarts: int = 1,
    rho: float = 0.75,
    early_stop: bool = True,
) -> torch.Tensor:
    """Untargeted (or user-targeted) APGD with cross-entropy or DLR loss."""
    _check_rho(rho)
    kind = _loss_kind(ctx, loss, ctx.targets is not None)
    best = x.clone()
    done = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
    for r in range(restarts):
        _run(
            ctx,
            x,
            y,
            ctx.targets,
            kind,
            steps,
            rho,
            ("apgd", loss, r),
            early_stop,
            best,
            done,
            targeted_success=True,
        )
    return best


def apgd_targeted(
    ctx: AttackContext,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    steps: int = 100,
    n_targets: int = 9,
    rho: float = 0.75,
    early_stop: bool = True,
) -> torch.Tensor:
    """APGD-T: targeted DLR against the most likely other classes, one target at a time.

    Without explicit ``targets``, targets are the 2nd, 3rd, ... most likely classes at the clean
    point, ``min(n_targets, K - 1)`` of them; later targets only run on samples still robust,
    and any misclassification counts as success (as in AutoAttack). With explicit ``targets``
    it is a targeted attack: success means reaching the target.
    """
    if n_targets < 1:
        raise InputError(f"n_targets must be >= 1, got {n_targets}")
    _check_rho(rho)
    kind = _loss_kind(ctx, "dlr", True)
    best = x.clone()
    done = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
    if ctx.targets is not None:
        _run(
            ctx,
            x,
            y,
            ctx.targets,
            kind,
            steps,
            rho,
            ("apgd-t", "given"),
            early_stop,
            best,
            done,
            targeted_success=True,
        )
        return best
    with torch.no_grad():
        order = ctx.model.logits(x, validate=False).argsort(1, descending=True)
    others = order[order != y[:, None]].view(x.shape[0], -1)  # most likely first, y removed
    for j in range(min(n_targets, ctx.model.num_classes - 1)):
        _run(
            ctx,
            x,
            y,
            others[:, j],
            kind,
            steps,
            rho,
            ("apgd-t", j),
            early_stop,
            best,
            done,
            targeted_success=False,
        )
    return best


_APGD_NORMS = ("linf", "l2")
register_attack(
    AttackSpec(
        name="apgd-ce",
        fn=lambda ctx, x, y, **kw: apgd(ctx, x, y, loss="ce", **kw),
        kind="gradient",
        minimum_norm=False,
        norms=_APGD_NORMS,
        targeted=True,
        params={"steps": 100, "restarts": 1, "rho": 0.75, "early_stop": True},
        summary="Auto-PGD with cross-entropy, step-size free (Croce & Hein 2020)",
    )
)
register_attack(
    AttackSpec(
        name="apgd-dlr",
        fn=lambda ctx, x, y, **kw: apgd(ctx, x, y, loss="dlr", **kw),
        kind="gradient",
        minimum_norm=False,
        norms=_APGD_NORMS,
        targeted=False,
        params={"steps": 100, "restarts": 1, "rho": 0.75, "early_stop": True},
        summary="Auto-PGD with the scale-invariant DLR loss (margin loss below 3 classes)",
    )
)
register_attack(
    AttackSpec(
        name="apgd-t",
        fn=apgd_targeted,
        kind="gradient",
        minimum_norm=False,
        norms=_APGD_NORMS,
        targeted=True,
        params={"steps": 100, "n_targets": 9, "rho": 0.75, "early_stop": True},
        summary="targeted Auto-PGD (DLR) over the min(9, K-1) most likely other classes",
    )
)
