"""Figures of attribution maps: image, map and overlay, on an Agg canvas (no pyplot state).

Colour scale rule (one per figure, stated in its title): a map with no negative value is drawn
with the sequential ``magma`` map from 0 to its maximum; a map with negative values with the
diverging ``RdBu_r`` map, symmetric around 0 from -max|a| to +max|a| (red supports the target
class, blue speaks against it). Maps with several channels are summed over channels first. The
map panel and the overlay share the scale.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["color_scale", "explanation_figure", "method_grid", "save_figure", "to_2d"]


def to_2d(t: torch.Tensor) -> np.ndarray:
    """A (C,H,W) image or map as (H,W) (maps: summed over channels) or (H,W,3) (RGB images)."""
    arr = t.detach().cpu().float().numpy()
    if arr.shape[0] == 3:
        return np.asarray(np.transpose(arr, (1, 2, 0)))
    return np.asarray(arr.sum(0))


def color_scale(a: np.ndarray) -> tuple[str, float, float, str]:
    """``(colormap, vmin, vmax, description)`` for a 2-D map under the module's rule.

    Example:
        >>> color_scale(np.array([[0.0, 2.0]]))[:3], color_scale(np.array([[-1.0, 0.5]]))[:3]
        (('magma', 0.0, 2.0), ('RdBu_r', -1.0, 1.0))
    """
    top = float(np.abs(a).max()) if a.size else 0.0
    top = top if top > 0 else 1.0
    if float(a.min()) >= 0.0:
        return "magma", 0.0, top, f"magma 0..{top:.3g}"
    return "RdBu_r", -top, top, f"RdBu_r -{top:.3g}..+{top:.3g} (0 white)"


def _figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _show_image(ax: Axes, img: np.ndarray) -> None:
    if img.ndim == 3:
        ax.imshow(np.clip(img, 0.0, 1.0), interpolation="nearest")
    else:
        ax.imshow(img, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_axis_off()


def explanation_figure(
    image: torch.Tensor, attribution: torch.Tensor, title: str, *, alpha: float = 0.55
) -> Figure:
    """Image, map and overlay of one image, one colour scale stated in the title.

    Args:
        image: (C,H,W) image in [0, 1].
        attribution: (C,H,W) or (1,H,W) map at the image's size.
        title: first title line (method, target...).
        alpha: opacity of the map in the overlay.

    Example:
        >>> fig = explanation_figure(torch.rand(1, 8, 8), torch.randn(1, 8, 8), "demo")
        >>> len(fig.axes)
        4
    """
    img, amap = to_2d(image), to_2d(attribution)
    cmap, lo, hi, text = color_scale(amap)
    fig = _figure(7.2, 2.9)
    axes = fig.subplots(1, 3)
    fig.subplots_adjust(left=0.02, right=0.9, top=0.78, bottom=0.03, wspace=0.06)
    _show_image(axes[0], img)
    axes[0].set_title("image", fontsize=9)
    shown = axes[1].imshow(amap, cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest")
    axes[1].set_axis_off()
    axes[1].set_title("map", fontsize=9)
    _show_image(axes[2], img)
    axes[2].imshow(amap, cmap=cmap, vmin=lo, vmax=hi, alpha=alpha, interpolation="nearest")
    axes[2].set_title("overlay", fontsize=9)
    cax = fig.add_axes((0.915, 0.08, 0.018, 0.66))
    fig.colorbar(shown, cax=cax)
    cax.tick_params(labelsize=7)
    fig.suptitle(f"{title}\none colour scale for map and overlay: {text}", fontsize=9)
    return fig


def method_grid(
    images: torch.Tensor,
    rows: Sequence[tuple[str, torch.Tensor]],
    *,
    column_titles: Sequence[str] | None = None,
) -> Figure:
    """A grid: the images on top, then one row of maps per method, each panel on its own scale.

    Args:
        images: (N,C,H,W) images in [0, 1].
        rows: ``(label, maps)`` per method, maps (N,C,H,W) or (N,1,H,W).
        column_titles: one title per image (e.g. the class explained).

    Example:
        >>> fig = method_grid(torch.rand(2, 1, 8, 8), [("saliency", torch.rand(2, 1, 8, 8))])
        >>> len(fig.axes)
        4
    """
    n = images.shape[0]
    fig = _figure(1.45 * n + 1.3, 1.35 * (len(rows) + 1) + 0.5)
    axes = np.asarray(fig.subplots(len(rows) + 1, n, squeeze=False))
    fig.subplots_adjust(left=0.22, right=0.99, top=0.95, bottom=0.01, wspace=0.05, hspace=0.08)
    for j in range(n):
        _show_image(axes[0, j], to_2d(images[j]))
        if column_titles is not None:
            axes[0, j].set_title(column_titles[j], fontsize=8)
    axes[0, 0].text(-0.1, 0.5, "image", transform=axes[0, 0].transAxes, ha="right", va="center")
    for i, (label, maps) in enumerate(rows, start=1):
        for j in range(n):
            amap = to_2d(maps[j])
            cmap, lo, hi, _ = color_scale(amap)
            ax: Any = axes[i, j]
            ax.imshow(amap, cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest")
            ax.set_axis_off()
        axes[i, 0].text(
            -0.1, 0.5, label, transform=axes[i, 0].transAxes, ha="right", va="center", fontsize=8
        )
    return fig


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Write ``fig`` as a PNG and return the path."""
    out = Path(path)
    fig.savefig(out, format="png")
    return out
