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

from robustcv.core.contract import check_count
from robustcv.core.errors import InputError

__all__ = [
    "ArraySource",
    "Dataset",
    "Source",
    "check_image_array",
    "check_label_array",
    "images_to_tensor",
    "resolve_layout",
]


class Source(Protocol):
    """What a dataset is read from."""

    def __len__(self) -> int: ...

    def load(self, index: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Images (float32, (n,C,H,W), [0,1]) and labels (int64) for ``index``."""
        ...


_LAYOUTS = ("auto", "nchw", "nhwc")
_MAX_CLASSES = 100_000


def resolve_layout(shape: tuple[int, ...], layout: str = "auto") -> str:
    """The layout (``"nchw"`` or ``"nhwc"``) of an image array of ``shape``; checks the shape.

    Images have 1 (grey) or 3 (RGB) channels: arrays with 2 or 4 channels (grey+alpha, RGBA)
    are refused rather than passed on, since the image contract and every corruption assume
    1 or 3.

    Raises:
        InputError: a shape that is not (N,H,W), (N,H,W,C) or (N,C,H,W) with C in {1, 3}, or
            an empty image axis.

    Example:
        >>> resolve_layout((2, 32, 32, 3)), resolve_layout((2, 28, 28))
        ('nhwc', 'nchw')
    """
    if layout not in _LAYOUTS:
        raise InputError(f"layout must be one of {', '.join(_LAYOUTS)}, got {layout!r}")
    ndim = len(shape)
    if ndim == 3:
        if shape[1] == 0 or shape[2] == 0:
            raise InputError(f"images have shape {shape}; each image needs at least 1x1 pixels")
        return "nchw"
    if ndim != 4:
        raise InputError(
            f"images have {ndim} dimensions (shape {shape}); expected (N,H,W), (N,H,W,C) or "
            "(N,C,H,W)"
        )
    if layout == "auto":
        if shape[1] in (1, 3):
            layout = "nchw"
        elif shape[-1] in (1, 3):
            layout = "nhwc"
        elif shape[-1] in (2, 4) or shape[1] in (2, 4):
            c = shape[-1] if shape[-1] in (2, 4) else shape[1]
            raise InputError(
                f"images have shape {shape}: {c} channels ({'RGBA' if c == 4 else 'grey+alpha'}"
                "?); robustcv images have 1 (grey) or 3 (RGB) channels: drop the alpha channel "
                "(e.g. x[..., :3] or x[..., :1]) before storing them"
            )
        else:
            raise InputError(
                f"cannot tell the channel axis of images with shape {shape}; store them as "
                "(N,C,H,W) or (N,H,W,C) with 1 or 3 channels"
            )
    if layout == "nchw":
        c, h, w = shape[1], shape[2], shape[3]
    else:
        h, w, c = shape[1], shape[2], shape[3]
    if c not in (1, 3):
        raise InputError(
            f"images have shape {shape} ({layout}): {c} channels; robustcv images have 1 "
            "(grey) or 3 (RGB) channels"
        )
    if h == 0 or w == 0:
        raise InputError(f"images have shape {shape}; each image needs at least 1x1 pixels")
    return layout


def check_image_array(arr: object, *, layout: str = "auto", name: str = "images") -> str:
    """Check an image array before it becomes a dataset; return its layout.

    Dtype uint8 (0-255) or float in [0, 1] (NaN/inf and values outside refused); shape per
    :func:`resolve_layout`.

    Raises:
        InputError: naming ``name`` and the problem.

    Example:
        >>> check_image_array(np.zeros((2, 8, 8), np.uint8))
        'nchw'
    """
    if not isinstance(arr, np.ndarray):
        raise InputError(f"{name} is a {type(arr).__name__}; store a numpy image array")
    if arr.dtype != np.uint8 and not np.issubdtype(arr.dtype, np.floating):
        raise InputError(f"{name} have dtype {arr.dtype}; store uint8 (0-255) or float in [0, 1]")
    layout = resolve_layout(tuple(int(d) for d in arr.shape), layout)
    if arr.dtype != np.uint8 and arr.size:
        with np.errstate(all="ignore"):
            lo, hi = float(np.min(arr)), float(np.max(arr))
        if not (np.isfinite(lo) and np.isfinite(hi)):
            bad = int(np.count_nonzero(~np.isfinite(arr)))
            raise InputError(f"{name} contain {bad} NaN or infinite values; clean them first")
        if lo < 0.0 or hi > 1.0:
            fix = "divide by 255" if lo >= 0.0 and hi <= 255.0 else "rescale them"
            raise InputError(
                f"float {name} have values in [{lo:.4g}, {hi:.4g}]; store uint8 0-255 or floats "
                f"in [0, 1] ({fix})"
            )
    return layout


def images_to_tensor(arr: np.ndarray, *, layout: str = "auto") -> torch.Tensor:
    """Convert an image array to a float32 (N,C,H,W) tensor in [0, 1].

    Args:
        arr: uint8 (0-255) or float (already in [0, 1]) images of shape (N,H,W), (N,H,W,C) or
            (N,C,H,W), with 1 or 3 channels.
        layout: ``"nchw"``, ``"nhwc"`` or ``"auto"`` (channels-first when axis 1 has 1 or 3
            entries, channels-last when the last axis has 1 or 3).

    Raises:
        InputError: see :func:`check_image_array` (2- and 4-channel images are refused).

    Example:
        >>> import numpy as np
        >>> images_to_tensor(np.full((2, 4, 4, 3), 255, dtype=np.uint8)).shape
        torch.Size([2, 3, 4, 4])
    """
    layout = check_image_array(arr, layout=layout)
    if arr.ndim == 3:
        arr = arr[:, None]
    if layout == "nhwc":
        arr = arr.transpose(0, 3, 1, 2)
    if arr.dtype == np.uint8:
        return torch.from_numpy(np.ascontiguousarray(arr)).float().div_(255.0)
    return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))


def check_label_array(labels: object, n_images: int, *, name: str = "labels") -> np.ndarray:
    """Check integer class labels (one per image) and return them as int64.

    Integer dtypes, or floats holding whole numbers; negative labels, NaN, fractions, more
    than 100,000 classes and a length other than ``n_images`` are refused.

    Example:
        >>> check_label_array(np.array([0.0, 2.0]), 2).tolist()
        [0, 2]
    """
    arr = np.asarray(labels) if not isinstance(labels, np.ndarray) else labels
    if arr.ndim != 1 or len(arr) != n_images:
        raise InputError(
            f"got {n_images} images but {name} of shape {arr.shape}; store one integer label "
            "per image"
        )
    if arr.dtype.kind in "iu":
        out = arr.astype(np.int64)
    elif arr.dtype.kind == "f":
        with np.errstate(all="ignore"):
            whole = np.isfinite(arr) & (np.mod(arr, 1) == 0)
        if not bool(whole.all()):
            bad = arr[~whole][:3].tolist()
            raise InputError(
                f"{name} must be integer class indices; found {bad} (NaN, inf or a fraction)"
            )
        if arr.size and float(np.max(np.abs(arr))) >= 2**62:
            raise InputError(f"{name} hold values too large to be class indices")
        out = arr.astype(np.int64)
    elif arr.dtype.kind == "b":
        raise InputError(f"{name} are booleans; store integer class indices (0, 1, ...)")
    else:
        raise InputError(f"{name} have dtype {arr.dtype}; store integer class indices")
    if out.size and int(out.min()) < 0:
        raise InputError(
            f"{name} contain the negative value {int(out.min())}; labels are class indices >= 0"
        )
    if out.size and int(out.max()) >= _MAX_CLASSES:
        raise InputError(
            f"{name} go up to {int(out.max())}; more than {_MAX_CLASSES} classes - are these "
            "class indices?"
        )
    return out


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
        self.layout = check_image_array(images, layout=layout)
        self.images = images
        self.labels = check_label_array(labels, len(images))

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
        batch_size = check_count(batch_size, "batch_size")
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
        raw = np.asarray(index)
        if raw.size and raw.dtype.kind not in "iu":
            raise InputError(f"subset indices must be integers, got dtype {raw.dtype}")
        idx = raw.astype(np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise InputError(f"subset indices must be in [0, {len(self)})")
        return Dataset(self.name, self.split, list(self.classes), self.source, self._index[idx])

    def limit(self, n: int | None, *, seed: int | None = None) -> Dataset:
        """The first ``n`` images, or a seeded random sample of ``n`` when ``seed`` is given."""
        if n is None:
            return self
        n = check_count(n, "limit")
        if seed is not None:
            seed = check_count(seed, "seed", minimum=0)
        if n >= len(self):
            return self
        if seed is None:
            return self.subset(np.arange(n))
        rng = np.random.default_rng(seed)
        return self.subset(np.sort(rng.choice(len(self), size=n, replace=False)))

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, split={self.split!r}, n={len(self)}, "
            f"classes={len(self.classes)})"
        )
