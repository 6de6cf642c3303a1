"""The :class:`Dataset` type every loader returns.

A dataset is backed by a *source*: anything with a length, class names and a way to load a
set of indices as (images, labels). In-memory sources keep uint8 arrays (4x smaller than float);
folder sources read files only when asked. ``.x`` and ``.y`` materialise the whole set under the
image contract; :meth:`Dataset.batches` streams it for data that does not fit in memory.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch

from robustcv.core.errors import InputError

__all__ = ["ArraySource", "Dataset", "Source", "images_to_tensor"]


class Source(Protocol):
    """What a dataset is read from."""

    def __len__(self) -> int: ...

    def load(self, index: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Images (float32, (n,C,H,W), [0,1]) and labels (int64) for ``index``."""
        ...


def images_to_tensor(arr: np.ndarray, *, layout: str = "auto") -> torch.Tensor:
    """Convert an image array to a float32 (N,C,H,W) tensor in [0, 1].

    Args:
        arr: uint8 (0-255) or float (already in [0, 1]) images of shape (N,H,W), (N,H,W,C) or
            (N,C,H,W).
        layout: ``"nchw"``, ``"nhwc"`` or ``"auto"`` (channels-first when axis 1 has 1 or 3
            entries, channels-last when the last axis has 1, 3 or 4).

    Example:
        >>> import numpy as np
        >>> images_to_tensor(np.full((2, 4, 4, 3), 255, dtype=np.uint8)).shape
        torch.Size([2, 3, 4, 4])
    """
    if arr.ndim == 3:
        arr = arr[:, None]
        layout = "nchw"
    if arr.ndim != 4:
        raise InputError(f"images have shape {arr.shape}; expected (N,H,W), (N,H,W,C) or (N,C,H,W)")
    if layout == "auto":
        if arr.shape[1] in (1, 3):
            layout = "nchw"
        elif arr.shape[-1] in (1, 3, 4):
            layout = "nhwc"
        else:
            raise InputError(
                f"cannot tell the channel axis of images with shape {arr.shape}; store them as "
                "(N,C,H,W) or (N,H,W,C) with 1 or 3 channels"
            )
    if layout == "nhwc":
        arr = arr.transpose(0, 3, 1, 2)
    if arr.dtype == np.uint8:
        t = torch.from_numpy(np.ascontiguousarray(arr)).float().div_(255.0)
    elif np.issubdtype(arr.dtype, np.floating):
        t = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
        if t.numel() and not bool(torch.isfinite(t).all()):
            raise InputError("float images contain NaN or infinite values; clean them first")
        if t.numel() and (float(t.min()) < 0.0 or float(t.max()) > 1.0):
            raise InputError(
                f"float images have values in [{float(t.min()):.4g}, {float(t.max()):.4g}]; "
                "store uint8 0-255 or floats in [0, 1]"
            )
    else:
        raise InputError(f"images have dtype {arr.dtype}; store uint8 (0-255) or float in [0, 1]")
    return t


class ArraySource:
    """An in-memory source over an image array (uint8 or float) and integer labels.

    Example:
        >>> import numpy as np
        >>> src = ArraySource(np.zeros((3, 8, 8), np.uint8), np.array([0, 1, 2]))
        >>> x, y = src.load(np.array([0, 2]))
        >>> tuple(x.shape), y.tolist()
        ((2, 1, 8, 8), [0, 2])
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, *, layout: str = "auto") -> None:
        labels = np.asarray(labels)
        if labels.ndim != 1 or len(labels) != len(images):
            raise InputError(
                f"got {len(images)} images but labels of shape {labels.shape}; "
                "store one integer label per image"
            )
        if labels.size and not np.issubdtype(labels.dtype, np.integer):
            if not np.all(np.equal(np.mod(labels, 1), 0)):
                raise InputError("labels must be integer class indices")
        if labels.size and labels.min() < 0:
            raise InputError(f"labels contain the negative value {labels.min()}")
        self.images = images
        self.labels = labels.astype(np.int64)
        self.layout = layout

    def __len__(self) -> int:
        return len(self.labels)

    def load(self, index: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Images and labels at ``index``."""
        x = images_to_tensor(np.asarray(self.images[index]), layout=self.layout)
        return x, torch.from_numpy(self.labels[index].copy())


@dataclass
class Dataset:
    """Images and labels under the image contract, with their class names.

    Attributes:
        name: the dataset's name (e.g. ``"fashion-mnist"``).
        split: the split (``"train"``, ``"test"``, ...).
        classes: class names, index i naming label i.
        source: where images come from; use :attr:`x`, :attr:`y` or :meth:`batches`.

    Example:
        >>> import numpy as np
        >>> ds = Dataset("toy", "test", ["a", "b"], ArraySource(np.zeros((4, 2, 2), np.uint8),
        ...              np.array([0, 1, 0, 1])))
        >>> len(ds), ds.x.shape, ds.y.tolist()
        (4, torch.Size([4, 1, 2, 2]), [0, 1, 0, 1])
        >>> [tuple(xb.shape) for xb, _ in ds.batches(3)]
        [(3, 1, 2, 2), (1, 1, 2, 2)]
    """

    name: str
    split: str
    classes: list[str]
    source: Source
    _index: np.ndarray | None = field(default=None, repr=False)
    _cache: tuple[torch.Tensor, torch.Tensor] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self._index is None:
            self._index = np.arange(len(self.source))

    def __len__(self) -> int:
        assert self._index is not None
        return len(self._index)

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.classes)

    def _materialise(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._cache is None:
            assert self._index is not None
            self._cache = self.source.load(self._index)
            if self._cache[1].numel() and int(self._cache[1].max()) >= self.num_classes:
                raise InputError(
                    f"dataset '{self.name}' has label {int(self._cache[1].max())} but only "
                    f"{self.num_classes} class names"
                )
        return self._cache

    @property
    def x(self) -> torch.Tensor:
        """All images as one float32 (N,C,H,W) tensor in [0, 1] (loaded on first use)."""
        return self._materialise()[0]

    @property
    def y(self) -> torch.Tensor:
        """All labels as one int64 tensor (N,)."""
        return self._materialise()[1]

    def batches(self, batch_size: int = 256) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield (images, labels) batches in order without loading everything at once."""
        if batch_size < 1:
            raise InputError(f"batch_size must be >= 1, got {batch_size}")
        assert self._index is not None
        if self._cache is not None:
            x, y = self._cache
            for i in range(0, len(y), batch_size):
                yield x[i : i + batch_size], y[i : i + batch_size]
            return
        for i in range(0, len(self._index), batch_size):
            yield self.source.load(self._index[i : i + batch_size])

    def subset(self, index: Sequence[int] | np.ndarray) -> Dataset:
        """A dataset over the given positions (relative to this dataset)."""
        assert self._index is not None
        idx = np.asarray(index, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise InputError(f"subset indices must be in [0, {len(self)})")
        return Dataset(self.name, self.split, list(self.classes), self.source, self._index[idx])

    def limit(self, n: int | None, *, seed: int | None = None) -> Dataset:
        """The first ``n`` images, or a seeded random sample of ``n`` when ``seed`` is given."""
        if n is None or n >= len(self):
            return self
        if n < 1:
            raise InputError(f"limit must be >= 1, got {n}")
        if seed is None:
            return self.subset(np.arange(n))
        rng = np.random.default_rng(seed)
        return self.subset(np.sort(rng.choice(len(self), size=n, replace=False)))

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, split={self.split!r}, n={len(self)}, "
            f"classes={len(self.classes)})"
        )
