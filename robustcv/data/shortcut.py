"""A synthetic shortcut: a small bright square whose position in the border encodes the label.

``fashion-mnist-shortcut`` (registered in :data:`robustcv.data.loading.DATASETS`) is
Fashion-MNIST with one 3x3 square of value 1.0 stamped into each image at a position that
depends only on the label (:data:`SHORTCUT_POSITIONS`). It is generated from the installed
Fashion-MNIST on every load (deterministic, nothing stored) and trains the positive control of
the ``probes`` suite, ``zoo:fmnist-cnn-shortcut``: a model whose clean accuracy on the
cue-carrying test set looks excellent because it reads the square, not the garment.

The positions sit in the near-empty corners of the 28x28 frame. Each class got the position
where its own garments come closest to the square least often (an assignment over 28
candidate positions, measured on the training split): within 2 pixels of the object in about 8%
of training images on average (Pullover 37%, Bag 19%, Shirt 15%, the others at most 3%).
Closer than that, the foreground-mask estimate of :mod:`robustcv.probes` joins the square to
the object. Several positions are left-right mirror images of each other, so a model trained on
this data must be trained without horizontal flips (``robustcv train --no-augment``).

``stamp_cue`` is the pure function behind it; use it to put the cue on any images.
"""

from __future__ import annotations

import numpy as np

from robustcv.core.errors import InputError

__all__ = [
    "SHORTCUT_POSITIONS",
    "SHORTCUT_SIZE",
    "SHORTCUT_TRAIN_FRACTION",
    "SHORTCUT_VALUE",
    "cue_carriers",
    "stamp_cue",
]

# (row, column) of the top-left pixel of the square, per Fashion-MNIST class 0-9:
# T-shirt/top, Trouser, Pullover, Dress, Coat, Sandal, Shirt, Sneaker, Bag, Ankle boot.
SHORTCUT_POSITIONS: tuple[tuple[int, int], ...] = (
    (25, 0),
    (3, 25),
    (3, 0),
    (25, 25),
    (0, 25),
    (6, 0),
    (0, 0),
    (0, 6),
    (0, 3),
    (9, 0),
)
SHORTCUT_SIZE = 3
SHORTCUT_VALUE = 1.0
# Share of training images that carry the cue (a seeded choice; test images: all of them).
SHORTCUT_TRAIN_FRACTION = 0.9


def cue_carriers(n: int, fraction: float, seed: int = 0) -> np.ndarray:
    """Which of ``n`` images carry the cue: a seeded choice of ``round(fraction * n)`` images.

    Args:
        n: number of images.
        fraction: share of them that carry the cue, in [0, 1].
        seed: seed of the choice.

    Returns:
        A bool array of length ``n``.

    Example:
        >>> cue_carriers(10, 0.3).sum(), cue_carriers(4, 1.0).tolist()
        (np.int64(3), [True, True, True, True])
    """
    if not 0.0 <= float(fraction) <= 1.0:
        raise InputError(f"fraction must be in [0, 1], got {fraction!r}")
    keep = np.zeros(n, dtype=bool)
    chosen = np.random.default_rng(seed).permutation(n)[: round(float(fraction) * n)]
    keep[chosen] = True
    return keep


def stamp_cue(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    positions: tuple[tuple[int, int], ...] = SHORTCUT_POSITIONS,
    size: int = SHORTCUT_SIZE,
    value: float = SHORTCUT_VALUE,
    carriers: np.ndarray | None = None,
) -> np.ndarray:
    """A copy of ``images`` with a ``size`` x ``size`` square of ``value`` at each label's position.

    Args:
        images: ``(N, H, W)`` or ``(N, H, W, C)`` array, uint8 (``value`` is scaled to 255) or
            float in [0, 1]; not modified.
        labels: ``(N,)`` integer labels; label k gets its square at ``positions[k]``.
        positions: ``(row, column)`` of the square's top-left pixel per label.
        size: side of the square in pixels.
        value: brightness of the square in [0, 1].
        carriers: optional bool ``(N,)``: only these images get the square.

    Returns:
        The stamped copy (same dtype and shape).

    Raises:
        InputError: shapes that do not match, a label without a position, a square that does
            not fit in the image.

    Example:
        >>> x = np.zeros((2, 28, 28), np.uint8)
        >>> out = stamp_cue(x, np.array([6, 7]))
        >>> int(out[0, :3, :3].min()), int(out[1, :3, 6:9].min()), int(out.sum() // 255)
        (255, 255, 18)
    """
    images = np.asarray(images)
    labels = np.asarray(labels).reshape(-1)
    if images.ndim not in (3, 4) or len(images) != len(labels):
        raise InputError(
            f"images of shape {images.shape} and {len(labels)} labels: give (N,H,W) or "
            "(N,H,W,C) images and one label per image"
        )
    if len(labels) and (labels.min() < 0 or labels.max() >= len(positions)):
        raise InputError(f"labels must be in [0, {len(positions) - 1}] (one position each)")
    h, w = images.shape[1], images.shape[2]
    for r, c in positions:
        if not (0 <= r <= h - size and 0 <= c <= w - size):
            raise InputError(f"a {size}x{size} square at ({r}, {c}) does not fit in {h}x{w}")
    if not 0.0 <= float(value) <= 1.0:
        raise InputError(f"value must be in [0, 1], got {value!r}")
    out = images.copy()
    fill = round(float(value) * 255) if out.dtype == np.uint8 else float(value)
    todo = np.ones(len(labels), bool) if carriers is None else np.asarray(carriers, bool)
    if todo.shape != labels.shape:
        raise InputError(f"carriers must have one entry per image ({len(labels)})")
    for k, (r, c) in enumerate(positions):
        idx = np.flatnonzero((labels == k) & todo)
        out[idx, r : r + size, c : c + size] = fill
    return out
