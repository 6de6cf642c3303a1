"""How alike two attribution maps are: the measures the trust checks share.

Every function takes two batches of maps of the same shape, (B,C,H,W) or (B,H,W), and returns
one value per image (B,), float64 on the CPU. Maps are first reduced to one value per pixel by
:func:`pixel_scores`: the sum over channels of ``|map|`` (``absolute=True``, the default, what
"importance" means for most checks) or of the signed map.

* :func:`spearman`: Spearman rank correlation of the flattened maps (ties get their average
  rank, so the many exact zeros of a map on a black background do not get arbitrary ranks).
* :func:`topk_intersection`: ``|topk(a) & topk(b)| / k`` (Ghorbani et al. 2019); ties broken by
  pixel position, the same way for both maps.
* :func:`ssim`: structural similarity of the maps scaled to [0, 1] each (min-max per image),
  7x7 uniform window, sample covariances, ``K1=0.01, K2=0.03``: scikit-image's
  ``structural_similarity(a, b, data_range=1)`` defaults, averaged over the valid window centres
  (the border of 3 pixels is left out, as scikit-image crops it).
* :func:`center_of_mass` and :func:`center_shift`: the centre of mass of ``|map|`` in pixels
  (row, column) and its L2 shift between two maps.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from robustcv.core.errors import InputError

__all__ = [
    "center_of_mass",
    "center_shift",
    "pixel_scores",
    "spearman",
    "ssim",
    "topk_count",
    "topk_intersection",
]


def _check_maps(a: torch.Tensor, b: torch.Tensor | None = None) -> None:
    for name, m in (("a", a), ("b", b)):
        if m is None:
            continue
        if not isinstance(m, torch.Tensor) or m.dim() not in (3, 4):
            got = tuple(m.shape) if isinstance(m, torch.Tensor) else type(m).__name__
            raise InputError(
                f"maps {name} must be a (B,C,H,W) or (B,H,W) tensor, got {got}; pass "
                "Explanation.maps"
            )
    if b is not None and a.shape != b.shape:
        raise InputError(
            f"maps have different shapes {tuple(a.shape)} and {tuple(b.shape)}; compare maps of "
            "the same images made the same way (same layer upsampling)"
        )


def pixel_scores(maps: torch.Tensor, *, absolute: bool = True) -> torch.Tensor:
    """One score per pixel, (B,H,W) float64: the channel sum of ``|map|`` (or of the map).

    Example:
        >>> pixel_scores(torch.tensor([[[[1.0, -2.0]], [[-1.0, 0.5]]]])).tolist()
        [[[2.0, 2.5]]]
    """
    _check_maps(maps)
    m = maps.detach().to("cpu", torch.float64)
    if m.dim() == 3:
        return m.abs() if absolute else m
    return (m.abs() if absolute else m).sum(1)


def _ranks(v: torch.Tensor) -> torch.Tensor:
    """Average ranks (1-based) along the last axis, ties sharing their mean rank."""
    s, _ = torch.sort(v, dim=-1)
    left = torch.searchsorted(s, v.contiguous(), right=False)
    right = torch.searchsorted(s, v.contiguous(), right=True)
    return (left + right + 1).to(torch.float64) / 2.0


def spearman(a: torch.Tensor, b: torch.Tensor, *, absolute: bool = True) -> torch.Tensor:
    """Spearman rank correlation per image (B,); 0 where a map is constant.

    Example:
        >>> a = torch.tensor([[[[1.0, 2.0, 3.0, 4.0]]]])
        >>> spearman(a, a).tolist(), spearman(a, -a, absolute=False).tolist()
        ([1.0], [-1.0])
    """
    _check_maps(a, b)
    ra = _ranks(pixel_scores(a, absolute=absolute).flatten(1))
    rb = _ranks(pixel_scores(b, absolute=absolute).flatten(1))
    ra = ra - ra.mean(1, keepdim=True)
    rb = rb - rb.mean(1, keepdim=True)
    den = (ra.square().sum(1) * rb.square().sum(1)).sqrt()
    num = (ra * rb).sum(1)
    return torch.where(den > 0, num / den.clamp_min(1e-300), torch.zeros_like(num))


def topk_intersection(
    a: torch.Tensor, b: torch.Tensor, k: int | float = 0.1, *, absolute: bool = True
) -> torch.Tensor:
    """Share of the ``k`` highest pixels of ``a`` that are among the ``k`` highest of ``b`` (B,).

    Args:
        a: maps.
        b: maps of the same shape.
        k: a pixel count (int >= 1) or a share of the pixels (float in (0, 1]).
        absolute: rank ``|map|`` (default) or the signed map.

    Example:
        >>> a = torch.tensor([[[[4.0, 3.0, 2.0, 1.0]]]])
        >>> b = torch.tensor([[[[1.0, 3.0, 2.0, 4.0]]]])
        >>> topk_intersection(a, b, 2).tolist()
        [0.5]
    """
    _check_maps(a, b)
    pa = pixel_scores(a, absolute=absolute).flatten(1)
    pb = pixel_scores(b, absolute=absolute).flatten(1)
    kk = topk_count(k, int(pa.shape[1]))
    ia = _topk_mask(pa, kk)
    ib = _topk_mask(pb, kk)
    return (ia & ib).sum(1).to(torch.float64) / kk


def topk_count(k: int | float, pixels: int) -> int:
    """``k`` as a pixel count: an int as is, a float in (0, 1] as a share of ``pixels``.

    Example:
        >>> topk_count(0.1, 784), topk_count(5, 784)
        (78, 5)
    """
    if isinstance(k, bool) or not isinstance(k, (int, float)):
        raise InputError(f"k must be a pixel count or a share in (0, 1], got {k!r}; e.g. k=0.1")
    if isinstance(k, int):
        if not 1 <= k <= pixels:
            raise InputError(f"k={k} pixels is outside [1, {pixels}] (the map's pixel count)")
        return k
    if not 0.0 < k <= 1.0:
        raise InputError(f"k={k} as a share must lie in (0, 1]; e.g. k=0.1 for the top 10%")
    return max(1, round(k * pixels))


def _topk_mask(scores: torch.Tensor, k: int) -> torch.Tensor:
    """(B,N) bool: the k highest scores, ties broken by position (lower index first)."""
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices[:, :k]
    mask = torch.zeros_like(scores, dtype=torch.bool)
    mask.scatter_(1, order, True)
    return mask


def ssim(a: torch.Tensor, b: torch.Tensor, *, absolute: bool = True) -> torch.Tensor:
    """Mean structural similarity per image (B,) of the maps scaled to [0, 1] each.

    Each map's pixel scores are min-max scaled to [0, 1] (a constant map becomes 0), then SSIM
    with a 7x7 uniform window, sample covariances, ``K1=0.01``, ``K2=0.03`` and data range 1
    is averaged over the window centres at least 3 pixels from the border (scikit-image's
    ``structural_similarity`` defaults). Maps smaller than 7x7 are refused.

    Example:
        >>> a = torch.rand(2, 1, 9, 9, generator=torch.Generator().manual_seed(0))
        >>> [round(v, 6) for v in ssim(a, a).tolist()]
        [1.0, 1.0]
    """
    _check_maps(a, b)
    pa, pb = (
        _minmax(pixel_scores(a, absolute=absolute)),
        _minmax(pixel_scores(b, absolute=absolute)),
    )
    if pa.shape[-1] < 7 or pa.shape[-2] < 7:
        raise InputError(
            f"ssim needs maps of at least 7x7 pixels, got {tuple(pa.shape[-2:])}; compare "
            "upsampled maps (upsample='bilinear')"
        )
    x, y = pa[:, None], pb[:, None]
    win, n = 7, 49.0
    kernel = torch.full((1, 1, win, win), 1.0 / n, dtype=torch.float64)
    mx, my = F.conv2d(x, kernel), F.conv2d(y, kernel)
    cov = n / (n - 1.0)
    vx = cov * (F.conv2d(x * x, kernel) - mx * mx)
    vy = cov * (F.conv2d(y * y, kernel) - my * my)
    vxy = cov * (F.conv2d(x * y, kernel) - mx * my)
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mx * my + c1) * (2 * vxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return s.flatten(1).mean(1)


def _minmax(p: torch.Tensor) -> torch.Tensor:
    flat = p.flatten(1)
    lo, hi = flat.amin(1), flat.amax(1)
    span = (hi - lo).view(-1, 1, 1)
    return torch.where(span > 0, (p - lo.view(-1, 1, 1)) / span.clamp_min(1e-300), 0.0 * p)


def center_of_mass(maps: torch.Tensor) -> torch.Tensor:
    """(B,2) centre of mass of ``|map|`` in pixels (row, column); the centre for a zero map.

    Example:
        >>> m = torch.zeros(1, 1, 3, 3)
        >>> m[0, 0, 2, 0] = 1.0
        >>> center_of_mass(m).tolist()
        [[2.0, 0.0]]
    """
    p = pixel_scores(maps)
    h, w = int(p.shape[-2]), int(p.shape[-1])
    rows = torch.arange(h, dtype=torch.float64).view(1, h, 1)
    cols = torch.arange(w, dtype=torch.float64).view(1, 1, w)
    total = p.sum((1, 2))
    safe = total.clamp_min(1e-300)
    r = (p * rows).sum((1, 2)) / safe
    c = (p * cols).sum((1, 2)) / safe
    centre = torch.tensor([(h - 1) / 2.0, (w - 1) / 2.0], dtype=torch.float64)
    out = torch.stack([r, c], 1)
    return torch.where((total > 0)[:, None], out, centre.expand_as(out))


def center_shift(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """L2 distance in pixels between the centres of mass of two batches of maps (B,).

    Example:
        >>> a, b = torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4)
        >>> a[0, 0, 0, 0], b[0, 0, 3, 3] = 1.0, 1.0
        >>> round(center_shift(a, b).item(), 4)
        4.2426
    """
    _check_maps(a, b)
    return (center_of_mass(a) - center_of_mass(b)).norm(dim=1)
