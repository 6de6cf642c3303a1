"""Foreground masks: taken from the data, or estimated for uniform-background images.

The estimation rule (:func:`estimate_masks`), for data whose background is one flat colour
(Fashion-MNIST, MNIST, product photos on white):

1. the background colour of each image is the per-channel median of its one-pixel border;
2. a pixel is foreground when some channel differs from that colour by more than
   ``threshold``;
3. a morphological closing (dilation then erosion with a ``(2r+1) x (2r+1)`` square,
   ``r = closing``) joins parts of the object separated by thin gaps;
4. only the largest 8-connected component is kept, so small separate marks (text, tags, a
   watermark in a corner) count as background, which is where shortcuts hide;
5. holes that do not touch the image border are filled (dark texture inside the object stays
   object).

Everything is batched tensor code (connected components by iterated 3x3 max-pooling of pixel
labels); no scipy. Masks are ``bool`` tensors of shape ``(B, 1, H, W)``, True on the object.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch.nn import functional as F

from robustcv.core.contract import check_images
from robustcv.core.errors import InputError
from robustcv.probes.base import check_fraction

__all__ = [
    "MaskConfig",
    "background_values",
    "border_background",
    "check_masks",
    "estimate_masks",
    "foreground_masks",
    "only_background",
    "only_foreground",
    "uniform_background",
]


@dataclass(frozen=True)
class MaskConfig:
    """How foreground masks are estimated (see the module docstring for the rule).

    Attributes:
        threshold: a pixel is foreground when it differs from the background colour by more
            than this (in [0, 1] units, largest channel difference).
        closing: radius ``r`` of the closing's square structuring element (0: no closing).
        fill_holes: fill holes of the kept component that do not touch the border.
        min_fraction: an estimated mask covering less than this share of the image counts as
            empty (the image is reported as having no object).
    """

    threshold: float = 0.1
    closing: int = 1
    fill_holes: bool = True
    min_fraction: float = 0.01

    def __post_init__(self) -> None:
        check_fraction(self.threshold, "MaskConfig.threshold")
        if isinstance(self.closing, bool) or not isinstance(self.closing, int) or self.closing < 0:
            raise InputError(f"MaskConfig.closing must be an int >= 0, got {self.closing!r}")
        check_fraction(self.min_fraction, "MaskConfig.min_fraction")


def border_background(x: torch.Tensor) -> torch.Tensor:
    """Per-image, per-channel median of the one-pixel border, shape ``(B, C, 1, 1)``.

    Example:
        >>> x = torch.zeros(1, 1, 6, 6); x[0, 0, 2:4, 2:4] = 1.0
        >>> border_background(x).flatten().tolist()
        [0.0]
    """
    b, c = x.shape[:2]
    edge = torch.cat([x[:, :, 0, :], x[:, :, -1, :], x[:, :, :, 0], x[:, :, :, -1]], dim=2).reshape(
        b, c, -1
    )
    return edge.median(dim=2).values.view(b, c, 1, 1)


def uniform_background(
    x: torch.Tensor, config: MaskConfig | None = None, *, share: float = 0.9
) -> tuple[bool, float]:
    """Whether the images look like uniform-background data (so masks can be estimated).

    An image has a uniform background when at least 70% of its border pixels lie within
    ``config.threshold`` of the border median (objects may touch the border: on Fashion-MNIST
    99.8% of the images pass, 48% would pass at 90%); the data qualifies when at least ``share``
    of its images do. Returns ``(qualifies, share of images with a uniform background)``.

    Example:
        >>> x = torch.zeros(4, 1, 8, 8); x[:, :, 2:6, 2:6] = 1.0
        >>> uniform_background(x)
        (True, 1.0)
        >>> uniform_background(torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(0)))
        (False, 0.0)
    """
    cfg = config or MaskConfig()
    x = check_images(x)
    b, c = x.shape[:2]
    edge = torch.cat([x[:, :, 0, :], x[:, :, -1, :], x[:, :, :, 0], x[:, :, :, -1]], dim=2)
    close = (edge - border_background(x).view(b, c, 1)).abs().amax(dim=1) <= cfg.threshold
    ok = close.double().mean(dim=1) >= 0.7
    frac = float(ok.double().mean())
    return frac >= share, frac


def _dilate(m: torch.Tensor, r: int) -> torch.Tensor:
    return F.max_pool2d(m, 2 * r + 1, stride=1, padding=r)


def _erode(m: torch.Tensor, r: int) -> torch.Tensor:
    # max-pooling pads with -inf, so pixels outside the image count as foreground here: the
    # closing never eats into an object that touches the border
    return -F.max_pool2d(-m, 2 * r + 1, stride=1, padding=r)


def _propagate(seed: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """Iterate ``seed = maxpool3x3(seed) * allowed`` until nothing changes (8-connectivity)."""
    cur = seed * allowed
    while True:
        nxt = cur
        for _ in range(4):
            nxt = F.max_pool2d(nxt, 3, stride=1, padding=1) * allowed
        if torch.equal(nxt, cur):
            return cur
        cur = nxt


def _largest_component(fg: torch.Tensor) -> torch.Tensor:
    """Keep the largest 8-connected component of each ``(B,1,H,W)`` float 0/1 mask."""
    b, _, h, w = fg.shape
    hw = h * w
    # float32 holds every integer label exactly up to 2**24; beyond, float64 (slower)
    dtype = torch.float32 if b * hw < 2**24 else torch.float64
    ids = torch.arange(1, b * hw + 1, dtype=dtype).view(b, 1, h, w)
    labels = _propagate(ids, fg.to(dtype)).long()
    counts = torch.bincount(labels.flatten(), minlength=b * hw + 1)[1:].view(b, hw)
    best = counts.argmax(dim=1) + torch.arange(b) * hw + 1
    keep = labels == best.view(b, 1, 1, 1)
    return (keep & (counts.max(dim=1).values > 0).view(b, 1, 1, 1)).to(fg.dtype)


def _fill_holes(mask: torch.Tensor) -> torch.Tensor:
    """Set to 1 the background pixels that cannot reach the border through background."""
    free = 1.0 - mask
    seed = torch.zeros_like(mask)
    seed[..., 0, :] = 1.0
    seed[..., -1, :] = 1.0
    seed[..., :, 0] = 1.0
    seed[..., :, -1] = 1.0
    outside = _propagate(seed, free)
    return 1.0 - outside


def estimate_masks(x: torch.Tensor, config: MaskConfig | None = None) -> torch.Tensor:
    """Estimate the main object's mask of uniform-background images (rule: module docstring).

    Args:
        x: images, float32 ``(B,C,H,W)`` in [0, 1].
        config: the estimation parameters (defaults when None).

    Returns:
        ``bool`` masks ``(B, 1, H, W)``, True on the object; all False where no object is found.

    Example:
        >>> x = torch.zeros(1, 1, 12, 12)
        >>> x[0, 0, 3:9, 3:9] = 0.8  # the object
        >>> x[0, 0, 0:2, 10:12] = 1.0  # a small mark in a corner: background
        >>> m = estimate_masks(x)
        >>> int(m.sum()), bool(m[0, 0, 0, 11])
        (36, False)
    """
    cfg = config or MaskConfig()
    x = check_images(x)
    bg = border_background(x)
    fg = ((x - bg).abs().amax(dim=1, keepdim=True) > cfg.threshold).float()
    if cfg.closing > 0:
        fg = _erode(_dilate(fg, cfg.closing), cfg.closing)
    mask = _largest_component(fg)
    if cfg.fill_holes:
        mask = _fill_holes(mask)
    h, w = x.shape[-2:]
    empty = mask.flatten(1).sum(1) < cfg.min_fraction * h * w
    mask[empty] = 0.0
    return mask > 0.5


def check_masks(masks: Any, x: torch.Tensor, *, name: str = "masks") -> torch.Tensor:
    """Validate user masks against images ``x`` and return them as ``bool (B,1,H,W)``.

    Accepts ``(B,H,W)`` or ``(B,1,H,W)`` tensors of bool, integer or float type (nonzero
    means foreground).

    Raises:
        InputError: not a tensor, or a shape that does not match ``x``.

    Example:
        >>> check_masks(torch.ones(2, 4, 4), torch.rand(2, 3, 4, 4)).shape
        torch.Size([2, 1, 4, 4])
    """
    b, _, h, w = x.shape
    if not isinstance(masks, torch.Tensor):
        raise InputError(
            f"{name} is a {type(masks).__name__}; pass a torch.Tensor of shape ({b}, 1, {h}, {w})"
        )
    m = masks
    if m.dim() == 3:
        m = m.unsqueeze(1)
    if m.dim() != 4 or tuple(m.shape) != (b, 1, h, w):
        raise InputError(
            f"{name} has shape {tuple(masks.shape)} but the images are {tuple(x.shape)}; pass one "
            f"mask per image of shape ({b}, 1, {h}, {w}) or ({b}, {h}, {w}), nonzero on the object"
        )
    if m.is_floating_point() and not bool(torch.isfinite(m).all()):
        raise InputError(f"{name} contains NaN or infinite values")
    return (m != 0).to(x.device)


def foreground_masks(
    x: torch.Tensor, masks: torch.Tensor | None = None, config: MaskConfig | None = None
) -> tuple[torch.Tensor, str]:
    """Masks from the data when given (validated), else estimated: ``(masks, source)``.

    Example:
        >>> x = torch.zeros(2, 1, 8, 8); x[:, :, 2:6, 2:6] = 1.0
        >>> m, source = foreground_masks(x)
        >>> source, int(m[0].sum())
        ('estimated', 16)
    """
    if masks is not None:
        return check_masks(masks, x), "given"
    return estimate_masks(x, config), "estimated"


def background_values(x: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """The background estimate of each image: per-channel median outside the mask, ``(B,C,1,1)``.

    Images whose mask covers everything fall back to the border median.

    Example:
        >>> x = torch.full((1, 1, 4, 4), 0.2); x[0, 0, 1:3, 1:3] = 0.9
        >>> m = x > 0.5
        >>> round(float(background_values(x, m)), 3)
        0.2
    """
    b, c = x.shape[:2]
    out = border_background(x).clone()
    flat = x.flatten(2)
    keep = (~masks).flatten(2).expand(b, c, -1)
    for i in range(b):
        if bool(keep[i, 0].any()):
            out[i, :, 0, 0] = flat[i][keep[i]].view(c, -1).median(dim=1).values
    return out


def only_background(x: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """The object removed: mask pixels set to the image's background estimate.

    Example:
        >>> x = torch.zeros(1, 1, 4, 4); x[0, 0, 1:3, 1:3] = 1.0
        >>> float(only_background(x, x > 0.5).max())
        0.0
    """
    return torch.where(masks, background_values(x, masks).expand_as(x), x)


def only_foreground(x: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """The background cleared: pixels outside the mask set to the background estimate.

    Example:
        >>> x = torch.zeros(1, 1, 8, 8); x[0, 0, 1:4, 1:4] = 1.0; x[0, 0, 6, 7] = 1.0
        >>> float(only_foreground(x, estimate_masks(x))[0, 0, 6, 7])
        0.0
    """
    return torch.where(masks, x, background_values(x, masks).expand_as(x))
