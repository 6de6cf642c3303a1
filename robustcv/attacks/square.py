"""Square attack (Andriushchenko et al. 2020): score-based random search for L-inf and L2.

The attack only reads logits (no gradients, so it also runs on gradient-free models) and
maximises the logit margin: ``max_{k != y} z_k - z_y`` (untargeted) or ``z_t - max_{k != t} z_k``
(targeted); a sample is done as soon as it is adversarial. Each iteration changes one random
square window of every still-robust sample and keeps the change only if the margin improves.

* **L-inf**: start from vertical stripes of ``+-eps`` (a random sign per channel and column),
  then set a random ``s x s`` square to ``+-eps`` (a random sign per channel).
* **L2**: start from a 5 x 5 grid of "meta patterns" (two opposite-signed blocks of concentric
  squares with weights ``1 / (k + 1)**2``), rescaled to norm eps; each iteration moves the
  perturbation mass of a second random window into a first one, adds a fresh meta pattern there
  and spends any budget left unused (after clipping to [0, 1]), so the norm stays at eps.

The fraction of pixels changed, ``p``, starts at ``p_init`` and is halved at iterations 10, 50,
200, 500, 1000, 2000, 4000, 6000 and 8000 of a 10 000-iteration run, rescaled to the actual
budget. ``queries`` caps the forward passes per sample: one for the clean image (samples already
adversarial are returned unchanged), one for the initial point and ``queries - 2`` iterations.

Randomness comes only from per-sample generators keyed by (seed, image content) and by a block
of 100 iterations, so a sample's result does not depend on the batch it runs in.

Differences from the paper's reference implementation, all deliberate:

* square positions are drawn per sample (the reference draws one position per iteration for the
  whole batch), which keeps the result independent of batch size and order;
* window positions are uniform over all ``H - s + 1`` offsets;
* an L-inf proposal that would not change the image (every pixel of the square already at the
  drawn sign, e.g. black background clipped at 0) is replaced by the opposite signs instead of
  being redrawn, so no query is wasted and no extra random numbers are needed;
* L2 updates are rescaled to ``(1 - 1e-6) eps`` rather than exactly eps, so float rounding never
  leaves the ball (every candidate is still passed through ``ctx.threat.project``);
* the square side is capped at ``min(H, W)`` (non-square or tiny images), and for L2 the initial
  grid has ``min(5, H // t)`` tiles per axis of side ``t = max(min(H, W) // 5, 1)``.
"""

from __future__ import annotations

import math

import torch

from robustcv.attacks.base import (
    AttackContext,
    AttackSpec,
    per_sample_generators,
    register_attack,
)
from robustcv.attacks.gradient import attack_loss
from robustcv.core.errors import InputError

__all__ = ["meta_pattern", "p_schedule", "square", "square_side"]

_BLOCK = 100  # iterations whose random numbers one sample draws at once
_HALVINGS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)  # of a 10 000-iteration run
_L2_FILL = 1.0 - 1e-6  # L2 updates aim just inside the ball, so rounding never leaves it


def p_schedule(i: int, n_iters: int, p_init: float) -> float:
    """Fraction of pixels the square covers at iteration ``i`` of ``n_iters``.

    ``p_init`` is halved at iterations 10, 50, 200, 500, 1000, 2000, 4000, 6000 and 8000 of a
    10 000-iteration run; other budgets are mapped onto that schedule proportionally.

    Args:
        i: the iteration, from 0.
        n_iters: the total number of iterations.
        p_init: the initial fraction, in (0, 1].

    Returns:
        The fraction ``p`` for this iteration.

    Example:
        >>> [p_schedule(i, 10_000, 0.8) for i in (0, 10, 11, 51, 9000)]
        [0.8, 0.8, 0.4, 0.2, 0.0015625]
        >>> p_schedule(500, 1000, 0.8)  # half-way through a 1000-iteration run = iteration 5000
        0.00625
    """
    scaled = int(i / n_iters * 10_000) if n_iters > 0 else 0
    for halvings, bound in enumerate(_HALVINGS):
        if scaled <= bound:
            return p_init / 2**halvings
    return p_init / 2 ** len(_HALVINGS)


def square_side(p: float, height: int, width: int, norm: str) -> int:
    """Side of the square window that covers a fraction ``p`` of the ``height x width`` pixels.

    L-inf: ``round(sqrt(p H W))``, at least 1. L2: at least 3 and odd (the meta pattern needs a
    centre). Both are capped at ``min(H, W)``.

    Example:
        >>> square_side(0.8, 28, 28, "linf"), square_side(0.8, 28, 28, "l2")
        (25, 25)
        >>> square_side(0.001, 28, 28, "linf"), square_side(0.001, 28, 28, "l2")
        (1, 3)
    """
    side = round(math.sqrt(p * height * width))
    if norm == "linf":
        side = max(side, 1)
    else:
        side = max(side, 3)
        side += 1 - side % 2
    return max(min(side, height, width), 1)


def _rings(rows: int, cols: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Concentric rectangles around the centre, peaking there and decaying outwards.

    Ring ``d`` (Chebyshev distance from the centre) holds ``sum_{k >= d} 1 / (k + 1)**2``.
    """
    if rows == 0 or cols == 0:
        return torch.zeros(rows, cols, device=device, dtype=dtype)
    dist_r = (torch.arange(rows, device=device) - rows // 2).abs()
    dist_c = (torch.arange(cols, device=device) - cols // 2).abs()
    ring = torch.maximum(dist_r[:, None], dist_c[None, :])
    n_rings = max(rows // 2, cols // 2) + 1
    weights = 1.0 / torch.arange(1, n_rings + 1, device=device, dtype=dtype).square()
    tail = weights.flip(0).cumsum(0).flip(0)  # tail[d] = sum_{k >= d} weights[k]
    return tail[ring]


def meta_pattern(
    side: int, *, device: torch.device | None = None, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """The L2 Square attack's ``side x side`` update pattern, with unit L2 norm.

    The top ``side // 2`` rows hold a block of concentric rectangles, the bottom rows the same
    with the opposite sign (so the pattern has two "poles"); callers transpose it at random.

    Args:
        side: the window side (>= 1).
        device: where to build it (default CPU).
        dtype: floating dtype.

    Returns:
        A ``(side, side)`` tensor with L2 norm 1.

    Example:
        >>> pat = meta_pattern(5)
        >>> round(float(pat.norm()), 6), bool((pat[:2] > 0).all()), bool((pat[2:] < 0).all())
        (1.0, True, True)
    """
    if side < 1:
        raise InputError(f"side must be >= 1, got {side}")
    dev = torch.device("cpu") if device is None else device
    top = _rings(side // 2, side, dev, dtype)
    bottom = -_rings(side - side // 2, side, dev, dtype)
    pattern = torch.cat([top, bottom], 0)
    return pattern / torch.linalg.vector_norm(pattern)


def _box_mask(top: torch.Tensor, left: torch.Tensor, side: int, h: int, w: int) -> torch.Tensor:
    """(m, 1, h, w) bool masks of the ``side x side`` windows at per-sample offsets."""
    rows = torch.arange(h, device=top.device)
    cols = torch.arange(w, device=top.device)
    in_r = (rows[None, :] >= top[:, None]) & (rows[None, :] < top[:, None] + side)
    in_c = (cols[None, :] >= left[:, None]) & (cols[None, :] < left[:, None] + side)
    return (in_r[:, :, None] & in_c[:, None, :])[:, None]


def _window_index(
    top: torch.Tensor, left: torch.Tensor, side: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Advanced indices selecting each sample's window: ``t[b, :, r, c]`` is (m, side, side, C)."""
    span = torch.arange(side, device=top.device)
    batch = torch.arange(top.shape[0], device=top.device)[:, None, None]
    rows = (top[:, None] + span)[:, :, None]
    cols = (left[:, None] + span)[:, None, :]
    return batch, rows, cols


def _offsets(u: torch.Tensor, size: int, side: int) -> torch.Tensor:
    """Uniform window offsets in ``[0, size - side]`` from uniforms ``u`` in [0, 1)."""
    span = size - side + 1
    return (u * span).long().clamp(0, span - 1)


def _signs(u: torch.Tensor) -> torch.Tensor:
    return torch.where(u < 0.5, -1.0, 1.0).to(u.dtype)


def _evaluate(
    ctx: AttackContext, xa: torch.Tensor, y: torch.Tensor, targets: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """One query per sample: (margin loss to maximise, NaN read as -inf; adversarial mask)."""
    with torch.no_grad():
        logits = ctx.model.logits(xa, validate=False)
    loss = attack_loss(logits, y, targets, "margin").nan_to_num(nan=float("-inf"))
    pred = logits.argmax(1)
    return loss, (pred != y) if targets is None else (pred == targets)


def _init_linf(ctx: AttackContext, x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Vertical stripes: ``+-eps`` with a random sign per channel and column, clipped."""
    assert ctx.eps is not None
    _, c, _, w = x.shape
    signs = torch.empty(x.shape[0], c, 1, w, device=x.device, dtype=x.dtype)
    for row, gen in per_sample_generators(ctx, idx, "square", "init"):
        u = torch.rand(c, 1, w, generator=gen, device=x.device, dtype=x.dtype)
        signs[row] = _signs(u)
    return (x + signs * ctx.eps[idx].view(-1, 1, 1, 1)).clamp(0.0, 1.0)


def _init_l2(ctx: AttackContext, x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """A centred grid of up to 5 x 5 meta patterns, rescaled to norm eps and clipped.

    Each tile gets a random sign per channel and is transposed at random.
    """
    assert ctx.eps is not None
    m, c, h, w = x.shape
    t = max(min(h, w) // 5, 1)
    nh, nw = min(5, h // t), min(5, w // t)
    oh, ow = (h - nh * t) // 2, (w - nw * t) // 2
    pat = meta_pattern(t, device=x.device, dtype=x.dtype)
    u = torch.empty(m, nh * nw, c + 1, device=x.device, dtype=x.dtype)
    for row, gen in per_sample_generators(ctx, idx, "square", "init"):
        u[row] = torch.rand(nh * nw, c + 1, generator=gen, device=x.device, dtype=x.dtype)
    tiles = torch.where((u[:, :, c] < 0.5)[:, :, None, None], pat, pat.T)  # (m, n, t, t)
    tiles = tiles[:, :, None] * _signs(u[:, :, :c])[:, :, :, None, None]  # (m, n, c, t, t)
    grid = tiles.reshape(m, nh, nw, c, t, t).permute(0, 3, 1, 4, 2, 5).reshape(m, c, nh * t, -1)
    delta = torch.zeros_like(x)
    delta[:, :, oh : oh + nh * t, ow : ow + nw * t] = grid
    length = torch.linalg.vector_norm(delta.flatten(1), dim=1).clamp_min(1e-12)
    delta = delta * (ctx.eps[idx] / length).view(-1, 1, 1, 1)
    return (x + delta).clamp(0.0, 1.0)


def _step_linf(
    x: torch.Tensor, best: torch.Tensor, eps: torch.Tensor, u: torch.Tensor, side: int
) -> torch.Tensor:
    """Set one random square per sample to ``+-eps`` per channel (flipped if nothing changes)."""
    _, c, h, w = x.shape
    mask = _box_mask(_offsets(u[:, 0], h, side), _offsets(u[:, 1], w, side), side, h, w)
    step = _signs(u[:, 5 : 5 + c])[:, :, None, None] * eps.view(-1, 1, 1, 1)
    cand = torch.where(mask, (x + step).clamp(0.0, 1.0), best)
    same = (cand == best).flatten(1).all(1)
    if bool(same.any()):
        cand = torch.where(mask & same.view(-1, 1, 1, 1), (x - step).clamp(0.0, 1.0), cand)
    return cand


def _step_l2(
    x: torch.Tensor,
    best: torch.Tensor,
    eps: torch.Tensor,
    u: torch.Tensor,
    side: int,
    pat: torch.Tensor,
) -> torch.Tensor:
    """Move window 2's mass into window 1, add a meta pattern there, rescale to norm eps."""
    _, c, h, w = x.shape
    top1, left1 = _offsets(u[:, 0], h, side), _offsets(u[:, 1], w, side)
    top2, left2 = _offsets(u[:, 2], h, side), _offsets(u[:, 3], w, side)
    mask1 = _box_mask(top1, left1, side, h, w)
    mask2 = _box_mask(top2, left2, side, h, w)
    delta = best - x
    unused = (eps.square() - delta.flatten(1).square().sum(1)).clamp_min(0.0)  # (m,)
    both = (delta * (mask1 | mask2)).square().sum((2, 3), keepdim=True)  # (m, c, 1, 1)
    batch, rows, cols = _window_index(top1, left1, side)
    old = delta[batch, :, rows, cols].permute(0, 3, 1, 2)  # (m, c, side, side)
    old_len = torch.linalg.vector_norm(old, dim=(2, 3), keepdim=True)
    pats = torch.where((u[:, 4] < 0.5).view(-1, 1, 1, 1), pat, pat.T)  # (m, 1, side, side)
    new = pats * _signs(u[:, 5 : 5 + c])[:, :, None, None] + old / (old_len + 1e-12)
    new_len = torch.linalg.vector_norm(new, dim=(2, 3), keepdim=True).clamp_min(1e-12)
    new = new / new_len * (unused.view(-1, 1, 1, 1) / c + both).sqrt()
    delta = delta.masked_fill(mask2, 0.0)
    delta[batch, :, rows, cols] = new.permute(0, 2, 3, 1)
    length = torch.linalg.vector_norm(delta.flatten(1), dim=1).clamp_min(1e-12)
    return (x + delta * (_L2_FILL * eps / length).view(-1, 1, 1, 1)).clamp(0.0, 1.0)


def square(
    ctx: AttackContext,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    queries: int = 5000,
    p_init: float = 0.8,
) -> torch.Tensor:
    """Square attack (Andriushchenko et al. 2020): random square updates kept when they help.

    Batched over samples; a sample stops costing queries once it is adversarial. Only logits are
    read (under ``torch.no_grad``), so gradient-free models work.

    Args:
        ctx: the attack context (L-inf or L2 threat, per-sample eps, optional targets, seed).
        x: images (B, C, H, W) in [0, 1].
        y: labels.
        queries: forward passes per sample at most: the clean image, the initial point and
            ``queries - 2`` iterations (AutoAttack's budget is 5000).
        p_init: initial fraction of pixels in the square, in (0, 1] (0.8 as in the paper and
            AutoAttack).

    Returns:
        Adversarial images where found, else the highest-margin point (clean images for samples
        that are already adversarial or have eps 0).

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from robustcv.attacks import attack
        >>> from robustcv.core.model import Model
        >>> _ = torch.manual_seed(0)
        >>> m = Model(nn.Sequential(nn.Flatten(), nn.Linear(64, 3)), differentiable=False)
        >>> x, y = torch.rand(4, 1, 8, 8), torch.tensor([0, 1, 2, 0])
        >>> res = attack(m, x, y, "square", eps=0.1, queries=50)
        >>> bool((res.x_adv - x).abs().max() <= 0.1 + 1e-6), res.forward_passes <= 52 * 4
        (True, True)
    """
    assert ctx.eps is not None
    if isinstance(p_init, bool) or not isinstance(p_init, (int, float)) or not 0 < p_init <= 1:
        raise InputError(f"p_init must be a number in (0, 1], got {p_init!r}")
    if ctx.threat.name not in ("linf", "l2"):
        raise InputError(f"square supports norms linf, l2, not '{ctx.threat.name}'")
    if x.dim() != 4:
        raise InputError(f"square needs images (B, C, H, W), got shape {tuple(x.shape)}")
    linf = ctx.threat.name == "linf"
    c, h, w = x.shape[1:]
    eps_all = ctx.eps.to(x.dtype)
    best = x.clone()

    # query 1: the clean images; samples already adversarial (or with eps 0) are left alone
    _, adv = _evaluate(ctx, x, y, ctx.targets)
    rows = torch.nonzero(~adv & (eps_all > 0)).flatten()
    if queries < 2 or rows.numel() == 0:
        return best

    # the state of the samples still being attacked, compacted (rows: their batch positions)
    xs, ys, eps = x[rows], y[rows], eps_all[rows]
    ts = None if ctx.targets is None else ctx.targets[rows]

    # query 2: the initial point
    bs = _init_linf(ctx, xs, rows) if linf else _init_l2(ctx, xs, rows)
    bs = ctx.threat.project(xs, bs, eps)
    ls, adv = _evaluate(ctx, bs, ys, ts)

    n_iters = queries - 2
    draws = torch.empty(rows.numel(), _BLOCK, 5 + c, device=x.device, dtype=x.dtype)
    patterns: dict[int, torch.Tensor] = {}
    for i in range(n_iters + 1):
        if bool(adv.any()) or i == n_iters:  # retire finished samples (all of them at the end)
            keep = ~adv if i < n_iters else torch.zeros_like(adv)
            best[rows[~keep]] = bs[~keep]
            rows, xs, ys, eps, bs, ls, draws = (t[keep] for t in (rows, xs, ys, eps, bs, ls, draws))
            ts = None if ts is None else ts[keep]
            if rows.numel() == 0:
                break
        if i % _BLOCK == 0:  # every live sample draws the random numbers of the next block
            for pos, gen in per_sample_generators(ctx, rows, "square", "block", i // _BLOCK):
                draws[pos] = torch.rand(
                    _BLOCK, 5 + c, generator=gen, device=x.device, dtype=x.dtype
                )
        u = draws[:, i % _BLOCK]
        side = square_side(p_schedule(i, n_iters, p_init), h, w, ctx.threat.name)
        if linf:
            cand = _step_linf(xs, bs, eps, u, side)
        else:
            if side not in patterns:
                patterns[side] = meta_pattern(side, device=x.device, dtype=x.dtype)
            cand = _step_l2(xs, bs, eps, u, side, patterns[side])
        cand = ctx.threat.project(xs, cand, eps)
        loss, adv = _evaluate(ctx, cand, ys, ts)
        take = adv | (loss > ls)
        bs = torch.where(take.view(-1, 1, 1, 1), cand, bs)
        ls = torch.where(take, loss, ls)
    return best


register_attack(
    AttackSpec(
        name="square",
        fn=square,
        kind="score",
        minimum_norm=False,
        norms=("linf", "l2"),
        targeted=True,
        params={"queries": 5000, "p_init": 0.8},
        summary="Square attack: score-based random search over square windows, margin loss "
        "(Andriushchenko et al. 2020)",
    )
)
