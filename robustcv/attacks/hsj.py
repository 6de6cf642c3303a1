"""HopSkipJump (Chen, Jordan & Wainwright 2020): a decision-based minimum-norm attack, L2 and L-inf.

The attack only sees predicted labels. Per sample it keeps a point ``x_t`` just on the
adversarial side of the decision boundary and repeats three steps:

1. **Gradient-direction estimate** at ``x_t``: ``B_t = min(init_evals * sqrt(t), max_evals)``
   probes ``x_t + delta_t * u_b`` (clipped to [0, 1]) with ``u_b`` uniform on the unit sphere;
   each probe answers ``phi_b = +1`` (adversarial) or ``-1``, and the direction is the
   baseline-corrected Monte-Carlo mean ``sum_b (phi_b - mean(phi)) u_b / (B_t - 1)`` (the plain
   mean ``mean(phi_b u_b)`` when every probe agrees). ``delta_t = sqrt(d) * theta * dist`` (L2) or
   ``d * theta * dist`` (L-inf), with ``theta = d^(-3/2)`` (L2) or ``d^(-2)`` (L-inf).
2. **Geometric step-size search**: ``xi = dist / sqrt(t)`` is halved until
   ``x_t + xi * v`` is adversarial, where ``v`` is the normalised estimate (L2) or its sign
   (L-inf).
3. **Binary search** back towards the clean image: on the segment between the clean image and
   the new point (L2), or on the radius of the L-inf box around the clean image that the new
   point is clipped into (L-inf), up to a relative precision ``theta``.

Initialisation: with ``starts`` (a pool of real images, e.g. a few per class from the training
set), each sample starts from the nearest pool image (L2) that is adversarial for it; this is
how a targeted attack should be run, since a noise image is rarely classified as the target.
Samples without such a pool image draw uniform-noise images (up to 100 draws) until one is
adversarial (untargeted: not classified as ``y``; targeted: classified as the target). Either
way a binary search to the boundary follows. A sample for which nothing works fails (it stays
clean; the runner reports ``inf``). The pool is classified once; those queries are shared and
counted once (they do not depend on the batch, so results stay batch-size independent).
Samples already adversarial cost one query and get norm 0.

Every query counts towards ``max_queries`` per sample (the clean check, the noise draws, the
probes, the step search, the binary searches): an iteration only runs for samples with enough
budget left for it, shrinking its probe count if needed. With a budget ``eps`` a sample stops as
soon as its perturbation is inside it. The smallest adversarial perturbation seen is returned.

All samples' probes go through the model together, in chunks of at most 256 images on CPU (where
small batches run fastest) and 4096 elsewhere; randomness comes from
:func:`~robustcv.attacks.base.per_sample_generators` keyed by (iteration, probe block), so results
depend neither on batch size nor on sample order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from robustcv.attacks.base import (
    AttackContext,
    AttackSpec,
    per_sample_generators,
    register_attack,
)
from robustcv.core.errors import InputError

__all__ = ["hsj"]

_INIT_TRIES = 100  # uniform-noise draws per sample for the initial adversarial point
_MAX_HALVINGS = 10  # geometric step-size search: at most this many queries per iteration
_BLOCK = 128  # probes drawn from one per-sample generator (keyed by iteration and block index)
_CHUNK = {"cpu": 256, "other": 4096}  # images per model call: bounded memory; CPU is faster small


def _chunk(device: torch.device) -> int:
    """Images per model call on ``device``."""
    return _CHUNK["cpu" if device.type == "cpu" else "other"]


def _is_adv(
    ctx: AttackContext, images: torch.Tensor, rows: torch.Tensor, y: torch.Tensor
) -> torch.Tensor:
    """Label-only oracle: whether each image (belonging to batch row ``rows[i]``) is adversarial."""
    preds = []
    size = _chunk(images.device)
    with torch.no_grad():
        for start in range(0, images.shape[0], size):
            chunk = images[start : start + size]
            preds.append(ctx.model.logits(chunk, validate=False).argmax(1))
    pred = torch.cat(preds) if preds else torch.empty(0, dtype=torch.long, device=images.device)
    if ctx.targets is not None:
        return pred == ctx.targets[rows]
    return pred != y[rows]


def _pool_starts(
    ctx: AttackContext,
    pool: torch.Tensor,
    x0: torch.Tensor,
    y: torch.Tensor,
    need: torch.Tensor,
    start: torch.Tensor,
    shape: tuple[int, ...],
) -> torch.Tensor:
    """Write the nearest adversarial pool image into ``start`` for rows in ``need``.

    Returns the rows that got one.
    """
    from robustcv.core.contract import check_images

    check_images(pool, name="starts")
    if tuple(pool.shape[1:]) != shape:
        raise InputError(
            f"starts has images of shape {tuple(pool.shape[1:])} but the attacked images are "
            f"{shape}; pass a pool of images like x"
        )
    flat = pool.detach().to(x0.device, x0.dtype).reshape(pool.shape[0], -1)
    preds = []
    with torch.no_grad():
        for chunk in flat.split(_chunk(x0.device)):
            preds.append(ctx.model.logits(chunk.view(-1, *shape), validate=False).argmax(1))
    pool_pred = torch.cat(preds)
    got = torch.zeros_like(need)
    rows = torch.nonzero(need).flatten()
    if rows.numel() == 0:
        return got
    ref = y[rows] if ctx.targets is None else ctx.targets[rows]
    ok = (
        pool_pred[None, :] != ref[:, None]
        if ctx.targets is None
        else pool_pred[None, :] == ref[:, None]
    )
    dist = torch.cdist(x0[rows], flat).masked_fill(~ok, math.inf)
    nearest = dist.argmin(1)
    has = torch.isfinite(dist.gather(1, nearest[:, None]).squeeze(1))
    start[rows[has]] = flat[nearest[has]]
    got[rows[has]] = True
    return got


@dataclass(frozen=True)
class _Geometry:
    """Per-norm constants of the attack for images with ``d`` values."""

    linf: bool
    d: int

    @property
    def theta(self) -> float:
        """Binary-search precision (relative) and the probe radius factor."""
        return self.d ** (-2.0) if self.linf else self.d ** (-1.5)

    @property
    def bisect_steps(self) -> int:
        """Halvings needed to reach the relative precision ``theta``."""
        return max(1, math.ceil(math.log2(1.0 / self.theta)))

    def delta(self, dist: torch.Tensor) -> torch.Tensor:
        """Probe radius ``delta_t`` from the current distances (paper, Sec. 4)."""
        scale = self.d * self.theta if self.linf else math.sqrt(self.d) * self.theta
        return (scale * dist).clamp_min(1e-12)

    def dist(self, delta: torch.Tensor) -> torch.Tensor:
        """Per-sample L2 or L-inf norm of flat perturbations (B, d)."""
        order = math.inf if self.linf else 2.0
        return torch.linalg.vector_norm(delta, ord=order, dim=1)


def _toward(geo: _Geometry, x0: torch.Tensor, xa: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """Flat points from ``x0`` (s=0) to ``xa`` (s=1 for L2, s=||xa - x0||_inf for L-inf)."""
    if geo.linf:
        r = s[:, None]
        return x0 + (xa - x0).clamp(-r, r)
    return x0 + s[:, None] * (xa - x0)


def _bisect(
    ctx: AttackContext,
    geo: _Geometry,
    x0: torch.Tensor,
    xa: torch.Tensor,
    rows: torch.Tensor,
    y: torch.Tensor,
    shape: tuple[int, ...],
) -> torch.Tensor:
    """Binary search from adversarial ``xa`` towards ``x0`` (flat); returns adversarial points.

    Costs ``geo.bisect_steps`` queries per sample.
    """
    lo = torch.zeros(x0.shape[0], dtype=x0.dtype, device=x0.device)
    hi = geo.dist(xa - x0) if geo.linf else torch.ones_like(lo)
    for _ in range(geo.bisect_steps):
        mid = (lo + hi) / 2
        adv = _is_adv(ctx, _toward(geo, x0, xa, mid).view(-1, *shape), rows, y)
        hi = torch.where(adv, mid, hi)
        lo = torch.where(adv, lo, mid)
    return _toward(geo, x0, xa, hi)


def _estimate_directions(
    ctx: AttackContext,
    geo: _Geometry,
    cur: torch.Tensor,
    rows: torch.Tensor,
    y: torch.Tensor,
    evals: list[int],
    delta: torch.Tensor,
    step: int,
    shape: tuple[int, ...],
) -> torch.Tensor:
    """Monte-Carlo estimate of the boundary normal at ``cur`` (flat, one row per ``rows`` entry).

    Probes of every sample are streamed through the model in chunks of ``<= _CHUNK`` images;
    each sample's probes come in blocks of ``_BLOCK`` drawn from a generator keyed by
    (step, block), and the sums are accumulated per sample in block order.
    """
    n, d = cur.shape
    s_phi_u = torch.zeros_like(cur)
    s_u = torch.zeros_like(cur)
    s_phi = torch.zeros(n, dtype=cur.dtype, device=cur.device)
    pieces: list[tuple[int, torch.Tensor, torch.Tensor]] = []  # (position, probes, effective u)
    buffered = 0

    def flush() -> None:
        nonlocal buffered
        if not pieces:
            return
        probes = torch.cat([p for _, p, _ in pieces])
        owner = torch.cat(
            [torch.full((p.shape[0],), pos, dtype=torch.long) for pos, p, _ in pieces]
        ).to(cur.device)
        phi = _is_adv(ctx, probes.view(-1, *shape), rows[owner], y).to(cur.dtype) * 2 - 1
        start = 0
        for pos, p, u in pieces:
            ph = phi[start : start + p.shape[0]]
            start += p.shape[0]
            s_phi_u[pos] += (ph[:, None] * u).sum(0)
            s_u[pos] += u.sum(0)
            s_phi[pos] += ph.sum()
        pieces.clear()
        buffered = 0

    for pos in range(n):
        row = rows[pos : pos + 1]
        for k in range(math.ceil(evals[pos] / _BLOCK)):
            count = min(_BLOCK, evals[pos] - k * _BLOCK)
            _, gen = next(iter(per_sample_generators(ctx, row, "hsj", "probe", step, k)))
            u = torch.randn((count, d), generator=gen, device=cur.device, dtype=cur.dtype)
            u = u / torch.linalg.vector_norm(u, dim=1, keepdim=True).clamp_min(1e-12)
            probes = (cur[pos] + delta[pos] * u).clamp(0.0, 1.0)
            u_eff = (probes - cur[pos]) / delta[pos]  # the step actually taken after clipping
            if buffered + count > _chunk(cur.device):
                flush()
            pieces.append((pos, probes, u_eff))
            buffered += count
    flush()
    b = torch.tensor(evals, dtype=cur.dtype, device=cur.device)
    mean_phi = s_phi / b
    agree = mean_phi.abs() >= 1.0
    baseline = (s_phi_u - mean_phi[:, None] * s_u) / (b - 1).clamp_min(1.0)[:, None]
    plain = s_phi_u / b[:, None]
    return torch.where(agree[:, None], plain, baseline)


def hsj(
    ctx: AttackContext,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    steps: int = 40,
    init_evals: int = 100,
    max_evals: int = 1000,
    max_queries: int = 20000,
    starts: torch.Tensor | None = None,
) -> torch.Tensor:
    """HopSkipJump minimum-norm search from labels only; see the module docstring.

    Args:
        ctx: attack context (L2 or L-inf threat); ``ctx.eps`` (if given) stops a sample once
            its perturbation is within it.
        x: clean images (B, C, H, W) in [0, 1].
        y: labels (B,).
        steps: iterations (gradient estimate, step, binary search).
        init_evals: Monte-Carlo probes at iteration 1; iteration ``t`` uses
            ``init_evals * sqrt(t)``.
        max_evals: cap on the probes of one iteration.
        max_queries: cap on the model queries (images) spent per sample.
        starts: optional pool of starting images (N, C, H, W) in [0, 1]; recommended for a
            targeted attack (give images of the target classes).

    Returns:
        The smallest adversarial images found (the clean image where none was found).

    Raises:
        InputError: a parameter is out of range, or the norm is not L2 or L-inf.

    Example:
        >>> import torch
        >>> from robustcv.attacks import attack
        >>> from robustcv.core.model import Model
        >>> def linear(z: torch.Tensor) -> torch.Tensor:  # class 1 iff sum(z) > 2
        ...     s = z.flatten(1).sum(1) - 2.0
        ...     return torch.stack([-s, s], 1)
        >>> model = Model(linear, differentiable=False, num_classes=2)
        >>> x, y = torch.full((1, 1, 2, 2), 0.4), torch.tensor([0])
        >>> res = attack(model, x, y, "hsj", norm="l2", steps=10)  # exact distance 0.4 / 2
        >>> bool(res.success[0]), round(float(res.norms[0]), 2), res.backward_passes
        (True, 0.2, 0)
    """
    for name, value in (("init_evals", init_evals), ("max_evals", max_evals)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InputError(f"{name} must be a positive int, got {value!r}")
    if max_evals < init_evals:
        raise InputError(f"max_evals ({max_evals}) must be >= init_evals ({init_evals})")
    if isinstance(max_queries, bool) or not isinstance(max_queries, int):
        raise InputError(f"max_queries must be a positive int, got {max_queries!r}")
    if ctx.threat.name not in ("l2", "linf"):
        raise InputError(f"hsj supports norms l2, linf, not '{ctx.threat.name}'")
    n = x.shape[0]
    shape = tuple(x.shape[1:])
    geo = _Geometry(linf=ctx.threat.name == "linf", d=int(x[0].numel()))
    nb = geo.bisect_steps
    tries = min(_INIT_TRIES, max_queries - 1 - nb)
    if tries < 1:
        raise InputError(
            f"max_queries={max_queries} is too small: initialisation alone needs {nb + 2} queries"
            " per sample (e.g. max_queries=1000)"
        )
    device = x.device
    x0 = x.detach().reshape(n, -1)
    best = x0.clone()
    best_norm = torch.full((n,), math.inf, dtype=x0.dtype, device=device)
    used = torch.zeros(n, dtype=torch.long, device=device)
    cap = ctx.eps * (1 - 1e-6) if ctx.eps is not None else None

    # 1) samples that are adversarial already cost one query and have norm 0
    all_rows = torch.arange(n, device=device)
    clean_adv = _is_adv(ctx, x, all_rows, y)
    used += 1
    best_norm[clean_adv] = 0.0

    # 2) initial adversarial points: nearest suitable pool image, else uniform noise
    start = x0.clone()
    found = clean_adv.clone()
    if starts is not None:
        found |= _pool_starts(ctx, starts, x0, y, ~found, start, shape)
    for r in range(tries):
        idx = torch.nonzero(~found).flatten()
        if idx.numel() == 0:
            break
        noise = torch.empty((idx.numel(), x0.shape[1]), dtype=x0.dtype, device=device)
        for pos, gen in per_sample_generators(ctx, idx, "hsj", "init", r):
            noise[pos] = torch.rand(x0.shape[1], generator=gen, device=device, dtype=x0.dtype)
        adv = _is_adv(ctx, noise.view(-1, *shape), idx, y)
        used[idx] += 1
        start[idx[adv]] = noise[adv]
        found[idx[adv]] = True
    alive = found & ~clean_adv
    cur = x0.clone()
    idx = torch.nonzero(alive).flatten()
    if idx.numel():
        cur[idx] = _bisect(ctx, geo, x0[idx], start[idx], idx, y, shape)
        used[idx] += nb
    dist = geo.dist(cur - x0)
    best[alive] = cur[alive]
    best_norm = torch.where(alive, dist, best_norm)
    if cap is not None:
        alive &= ~(best_norm <= cap)

    # 3) iterations: gradient-direction estimate, geometric step search, binary search
    overhead = _MAX_HALVINGS + nb
    for t in range(1, steps + 1):
        wanted = min(max_evals, int(init_evals * math.sqrt(t)))
        evals_all = (max_queries - used - overhead).clamp(max=wanted)
        alive &= evals_all >= 1
        idx = torch.nonzero(alive).flatten()
        if idx.numel() == 0:
            break
        evals = evals_all[idx].tolist()
        xc, xo = cur[idx], x0[idx]
        grad = _estimate_directions(ctx, geo, xc, idx, y, evals, geo.delta(dist[idx]), t, shape)
        used[idx] += evals_all[idx]
        if geo.linf:
            direction = torch.sign(grad)
        else:
            length = torch.linalg.vector_norm(grad, dim=1, keepdim=True)
            direction = grad / length.clamp_min(1e-12)
        xi = dist[idx] / math.sqrt(t)
        cand = xc.clone()
        moved = torch.zeros(idx.numel(), dtype=torch.bool, device=device)
        for _ in range(_MAX_HALVINGS):
            todo = torch.nonzero(~moved).flatten()
            if todo.numel() == 0:
                break
            trial = (xc[todo] + xi[todo, None] * direction[todo]).clamp(0.0, 1.0)
            ok = _is_adv(ctx, trial.view(-1, *shape), idx[todo], y)
            used[idx[todo]] += 1
            cand[todo[ok]] = trial[ok]
            moved[todo[ok]] = True
            xi[todo[~ok]] /= 2
        step_rows = torch.nonzero(moved).flatten()
        if step_rows.numel():
            rows = idx[step_rows]
            new = _bisect(ctx, geo, xo[step_rows], cand[step_rows], rows, y, shape)
            used[rows] += nb
            cur[rows] = new
            dist[rows] = geo.dist(new - x0[rows])
            better = dist[rows] < best_norm[rows]
            best[rows[better]] = new[better]
            best_norm[rows[better]] = dist[rows[better]]
        if cap is not None:
            alive &= ~(best_norm <= cap)
    return best.view_as(x)


register_attack(
    AttackSpec(
        name="hsj",
        fn=hsj,
        kind="decision",
        minimum_norm=True,
        norms=("l2", "linf"),
        targeted=True,
        params={
            "steps": 40,
            "init_evals": 100,
            "max_evals": 1000,
            "max_queries": 20000,
            "starts": None,
        },
        summary="HopSkipJump (Chen et al. 2020): decision-based, labels only; eps=None gives "
        "minimal norms",
    )
)
