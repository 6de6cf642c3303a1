"""Clipping-aware rescaling: scale a perturbation so that it has norm ``eps`` *after* clipping.

Scaling ``delta`` to norm ``eps`` and then clipping ``x + delta`` to the valid range shrinks the
perturbation wherever the image saturates. The clipping-aware rescaling (idea of Rauber & Bethge,
2020, here generalised to every ``p >= 1`` and ``p = inf``) instead finds the factor ``eta`` with

    ``||clip(x + eta * delta, lo, hi) - x||_p = eps``.

Coordinate ``i`` contributes ``min(eta * |delta_i|, c_i)``, where ``c_i`` is the room left in the
box in the direction of ``delta_i``; it saturates at the breakpoint ``eta = c_i / |delta_i|``. With
the breakpoints sorted, the norm between two consecutive ones is
``(sum_sat c_i**p + eta**p * sum_unsat |delta_i|**p)**(1/p)``, so one sort, two cumulative sums
and a closed form per segment give ``eta`` exactly, batched, and differentiably in ``delta``.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from robustcv.attacks.threat import (
    _batch_eps,
    _check_in_box,
    _check_pair,
    _col,
    _work_dtype,
)
from robustcv.core.errors import InputError

__all__ = ["clipping_aware_rescale", "rescale_to_norm"]


def _check_p(p: Any) -> float:
    """Validate the norm order: a real number ``>= 1`` or ``inf``."""
    if isinstance(p, bool) or not isinstance(p, (int, float)):
        raise InputError(
            f"p is a {type(p).__name__} ({p!r}); pass a number >= 1, e.g. 2 or float('inf')"
        )
    pf = float(p)
    if math.isnan(pf) or pf < 1.0:
        raise InputError(
            f"p={p!r} is not a norm order; pass p >= 1 or float('inf') (p < 1 is not a norm)"
        )
    return pf


def _check_bounds(bounds: Any) -> tuple[float, float]:
    """Validate ``(lo, hi)``: two finite numbers with ``lo < hi``."""
    try:
        lo, hi = (float(b) for b in bounds)
    except (TypeError, ValueError):
        raise InputError(f"bounds must be a pair (lo, hi) of numbers, got {bounds!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi)) or not lo < hi:
        raise InputError(
            f"bounds={bounds!r} is not a valid range; pass finite (lo, hi) with lo < hi, "
            "e.g. (0.0, 1.0)"
        )
    return lo, hi


def clipping_aware_rescale(
    x: torch.Tensor,
    delta: torch.Tensor,
    eps: float | torch.Tensor,
    p: float,
    bounds: tuple[float, float] = (0.0, 1.0),
) -> torch.Tensor:
    """Per-sample factor ``eta`` with ``||clip(x + eta * delta, lo, hi) - x||_p = eps``.

    When ``eps`` is not reachable (every coordinate saturated still gives a smaller norm), ``eta``
    is the smallest factor at which every coordinate with nonzero ``delta`` saturates, i.e. the
    one giving the largest reachable norm. A sample with ``delta = 0`` or ``eps = 0`` gets
    ``eta = 0``. For ``p = inf`` the (smallest) solution has a closed form. The result is
    differentiable with respect to ``delta`` (and ``x``) wherever the sort order of the
    breakpoints does not change.

    Args:
        x: clean images ``(B, ...)`` with values in ``bounds``.
        delta: perturbation directions, same shape as ``x``.
        eps: the target norm, a float or a ``(B,)`` tensor, ``>= 0`` (``inf`` saturates).
        p: the norm order, ``>= 1`` or ``float('inf')``.
        bounds: the valid value range ``(lo, hi)`` of ``x + eta * delta``.

    Returns:
        A ``(B,)`` tensor of factors ``eta >= 0`` in the promoted dtype of ``x`` and ``delta``
        (at least ``float32``).

    Raises:
        InputError: ``p < 1``, negative or NaN ``eps``, mismatched shapes, invalid bounds or
            ``x`` outside the bounds.

    Example:
        >>> import torch
        >>> x = torch.tensor([[0.5, 0.9]])
        >>> delta = torch.tensor([[0.0, 1.0]])
        >>> clipping_aware_rescale(x, delta, 0.05, p=2)
        tensor([0.0500])
        >>> clipping_aware_rescale(x, delta, 0.5, p=2)  # only 0.1 of room: saturate
        tensor([0.1000])
        >>> delta = torch.tensor([[1.0, 1.0]])
        >>> clipping_aware_rescale(x, delta, 0.5, p=1)  # 0.1 + 0.4 = 0.5
        tensor([0.4000])
    """
    x, delta = _check_pair(x, delta, "x", "delta")
    pf = _check_p(p)
    lo, hi = _check_bounds(bounds)
    _check_in_box(x, lo, hi, "x")
    dtype = _work_dtype(x, delta)
    batch = x.shape[0]
    xf = x.reshape(batch, -1).to(dtype)
    df = delta.reshape(batch, -1).to(dtype)
    e = _batch_eps(eps, batch, dtype, x.device)
    width = hi - lo

    # Scale-free problem: rooms and eps in units of the box width, |delta| in units of its
    # per-sample maximum, so powers stay in [0, 1]. eta = eta_scaled * width / peak.
    mag = df.abs()
    peak = mag.amax(1)
    has_delta = peak > 0
    peak_safe = torch.where(has_delta, peak, torch.ones_like(peak))
    a = mag / _col(peak_safe)
    active = a > 0
    a_safe = torch.where(active, a, torch.ones_like(a))
    room = torch.where(df > 0, hi - xf, xf - lo) / width
    c = torch.where(active, room, torch.zeros_like(room))
    b = c / a_safe  # breakpoints; 0 for inactive coordinates (never used for them)
    es = e / width

    if math.isinf(pf):
        eta_s = _rescale_inf(a, c, b, active, es)
    else:
        eta_s = _rescale_finite(a, c, b, active, es, pf)
    eta = eta_s * (width / peak_safe)
    keep = has_delta & (e > 0)
    return torch.where(keep, eta, torch.zeros_like(eta))


def _rescale_inf(
    a: torch.Tensor, c: torch.Tensor, b: torch.Tensor, active: torch.Tensor, es: torch.Tensor
) -> torch.Tensor:
    """Closed form for ``p = inf``: ``eps / max{|delta_i| : c_i >= eps}``, else full saturation."""
    reach = active & (c >= _col(es))
    any_reach = reach.any(1)
    top = torch.where(reach, a, torch.zeros_like(a)).amax(1)
    eta_reach = es / torch.where(any_reach, top, torch.ones_like(top))
    eta_sat = torch.where(active, b, torch.zeros_like(b)).amax(1)
    return torch.where(any_reach, eta_reach, eta_sat)


def _rescale_finite(
    a: torch.Tensor,
    c: torch.Tensor,
    b: torch.Tensor,
    active: torch.Tensor,
    es: torch.Tensor,
    p: float,
) -> torch.Tensor:
    """Sort the breakpoints, find the segment holding ``eps`` and solve in closed form there."""
    n = a.shape[1]
    key = torch.where(active, b, torch.full_like(b, math.inf)).detach()
    order = key.argsort(dim=1)
    b_s = b.gather(1, order)
    act_s = active.gather(1, order)
    cp = c.pow(p).gather(1, order)
    ap = a.pow(p).gather(1, order)
    # sat[:, k] = sum_{j<k} c_j^p (exclusive prefix), unsat[:, k] = sum_{j>=k} |delta_j|^p.
    sat = torch.cat([torch.zeros_like(cp[:, :1]), torch.cumsum(cp, dim=1)[:, :-1]], dim=1)
    unsat = torch.flip(torch.cumsum(torch.flip(ap, dims=[1]), dim=1), dims=[1])
    ep = es.pow(p)
    with torch.no_grad():
        # Norm**p at each breakpoint; written as (b * unsat**(1/p))**p, which cannot overflow
        # because b_k * |delta_j| <= b_j * |delta_j| = c_j <= 1 for j >= k.
        at_break = sat + (b_s * unsat.pow(1.0 / p)).pow(p)
        below = (at_break < _col(ep)) & act_s
        k = below.sum(1)  # index of the first breakpoint whose norm reaches eps
        n_active = act_s.sum(1)
    reachable = k < n_active
    k_idx = _col(k.clamp(max=n - 1))
    sat_k = sat.gather(1, k_idx).squeeze(1)
    unsat_k = unsat.gather(1, k_idx).squeeze(1)
    seg_hi = b_s.gather(1, k_idx).squeeze(1)
    seg_lo = b_s.gather(1, _col((k - 1).clamp(min=0))).squeeze(1)
    seg_lo = torch.where(k > 0, seg_lo, torch.zeros_like(seg_lo))
    tiny = torch.finfo(a.dtype).tiny
    ok = reachable & (es > 0)
    one = torch.ones_like(sat_k)
    num = torch.where(ok, (ep - sat_k).clamp(min=tiny), one)
    den = torch.where(ok, unsat_k.clamp(min=tiny), one)
    eta_seg = (num / den).pow(1.0 / p)
    eta_seg = torch.minimum(torch.maximum(eta_seg, seg_lo), seg_hi)
    last = _col((n_active - 1).clamp(min=0))
    eta_sat = torch.where(n_active > 0, b_s.gather(1, last).squeeze(1), torch.zeros_like(sat_k))
    return torch.where(ok, eta_seg, torch.where(reachable, torch.zeros_like(eta_sat), eta_sat))


def rescale_to_norm(
    x: torch.Tensor,
    delta: torch.Tensor,
    eps: float | torch.Tensor,
    p: float,
    bounds: tuple[float, float] = (0.0, 1.0),
) -> torch.Tensor:
    """Return ``clip(x + eta * delta, lo, hi)`` with ``eta`` from :func:`clipping_aware_rescale`.

    The returned point is at ``p``-distance ``eps`` from ``x`` (or as far as the box allows in the
    direction of ``delta``) and differentiable with respect to ``delta``.

    Args:
        x: clean images ``(B, ...)`` with values in ``bounds``.
        delta: perturbation directions, same shape as ``x``.
        eps: the target norm, a float or a ``(B,)`` tensor, ``>= 0``.
        p: the norm order, ``>= 1`` or ``float('inf')``.
        bounds: the valid value range ``(lo, hi)``.

    Returns:
        The perturbed batch, shape of ``x``, in the promoted dtype (at least ``float32``).

    Example:
        >>> import torch
        >>> x = torch.tensor([[0.5, 0.9]])
        >>> rescale_to_norm(x, torch.tensor([[1.0, 1.0]]), 0.5, p=1)
        tensor([[0.9000, 1.0000]])
    """
    eta = clipping_aware_rescale(x, delta, eps, p, bounds)
    lo, hi = _check_bounds(bounds)
    dtype = eta.dtype
    shape = (-1,) + (1,) * (x.dim() - 1)
    return (x.to(dtype) + eta.reshape(shape) * delta.to(dtype)).clamp(lo, hi)
