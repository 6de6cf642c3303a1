"""Superpixels for LIME and Kernel SHAP: a regular grid (the default) or SLIC-like clustering.

Both return int64 segment ids (B,H,W) numbered 0..S-1 with the same S for every image, so the
linear fits of a batch share one feature count.

* ``grid``: ``rows x cols`` rectangular cells with ``rows * cols`` close to ``segments`` and cells
  as square as the image allows. Identical for every image, independent of content.
* ``slic``: k-means in (colour, position) space started from the grid cells' centres
  (Achanta et al. 2012, simplified): each pixel joins the centre with the smallest
  ``||colour difference||^2 + (compactness * spatial distance / cell side)^2`` (colours in
  [0, 1]; with compactness 1 a full-range colour step costs as much as one cell side), searched
  over all centres, for ``iterations`` rounds. Clusters follow edges of the content; a cluster
  may be split in several pieces (no connectivity step) and an emptied cluster keeps its old
  centre (it then has no pixels, so its coefficient is 0).
"""

from __future__ import annotations

import math

import torch

from robustcv.core.errors import InputError

__all__ = ["SUPERPIXELS", "grid_segments", "grid_shape", "segment", "slic_segments"]

SUPERPIXELS = ("grid", "slic")


def grid_shape(height: int, width: int, segments: int) -> tuple[int, int]:
    """Rows and columns of a grid with about ``segments`` cells, as square as possible.

    Example:
        >>> grid_shape(28, 28, 49), grid_shape(28, 56, 50), grid_shape(3, 3, 100)
        ((7, 7), (5, 10), (3, 3))
    """
    rows = max(1, min(height, round(math.sqrt(segments * height / width))))
    cols = max(1, min(width, round(segments / rows)))
    return rows, cols


def grid_segments(height: int, width: int, segments: int, device: torch.device) -> torch.Tensor:
    """(H,W) int64 ids of a ``grid_shape`` grid, cells split as evenly as the size allows.

    Example:
        >>> grid_segments(4, 4, 4, torch.device("cpu")).tolist()
        [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]]
    """
    rows, cols = grid_shape(height, width, segments)
    r = torch.arange(height, device=device) * rows // height
    c = torch.arange(width, device=device) * cols // width
    return r[:, None] * cols + c[None, :]


def slic_segments(
    x: torch.Tensor, segments: int, compactness: float = 1.0, iterations: int = 10
) -> torch.Tensor:
    """(B,H,W) SLIC-like segment ids for a (B,C,H,W) batch in [0, 1] (see the module doc).

    Example:
        >>> x = torch.zeros(1, 1, 8, 8)
        >>> x[..., 4:] = 1.0
        >>> seg = slic_segments(x, 2, compactness=0.1)
        >>> bool((seg[0, :, :4] != seg[0, :, 4:].unique()).all())
        True
    """
    b, c, h, w = x.shape
    rows, cols = grid_shape(h, w, segments)
    k = rows * cols
    side = math.sqrt(h * w / k)
    ys = (torch.arange(h, device=x.device, dtype=x.dtype) + 0.5) / side
    xs = (torch.arange(w, device=x.device, dtype=x.dtype) + 0.5) / side
    pos = torch.stack(torch.meshgrid(ys, xs, indexing="ij")).reshape(2, -1)  # (2, HW)
    feats = torch.cat(
        [x.reshape(b, c, -1), compactness * pos.expand(b, 2, h * w)], dim=1
    ).transpose(1, 2)  # (B, HW, C+2)
    init = grid_segments(h, w, k, x.device).reshape(-1)
    onehot = torch.nn.functional.one_hot(init, k).to(x.dtype)  # (HW, K)
    centres = (onehot.T @ feats) / onehot.sum(0)[:, None]  # (B, K, C+2)
    labels = init.expand(b, -1)
    for _ in range(iterations):
        dist = torch.cdist(feats, centres)  # (B, HW, K)
        labels = dist.argmin(2)
        oh = torch.nn.functional.one_hot(labels, k).to(x.dtype)  # (B, HW, K)
        count = oh.sum(1)  # (B, K)
        new = oh.transpose(1, 2) @ feats / count.clamp_min(1.0)[..., None]
        centres = torch.where(count[..., None] > 0, new, centres)
    return labels.reshape(b, h, w)


def segment(x: torch.Tensor, kind: str, segments: int) -> torch.Tensor:
    """(B,H,W) int64 segment ids of the batch with ``kind`` in :data:`SUPERPIXELS`."""
    if kind == "grid":
        ids = grid_segments(x.shape[2], x.shape[3], segments, x.device)
        return ids.expand(x.shape[0], -1, -1).contiguous()
    if kind == "slic":
        return slic_segments(x, segments)
    raise InputError(f"superpixels must be one of {', '.join(SUPERPIXELS)}, got {kind!r}")
