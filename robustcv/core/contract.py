"""The image contract every robustcv entry point accepts, and the helpers that enforce it.

Images are ``float32`` tensors of shape ``(B, C, H, W)`` with values in ``[0, 1]``; labels are
``int64`` tensors of shape ``(B,)`` with values in ``[0, num_classes)``. Normalisation (mean/std,
0-255 ranges) lives inside :class:`robustcv.Model`, never in the data.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from robustcv.core.errors import InputError
from robustcv.core.threads import run_parallel

__all__ = ["check_batch", "check_images", "check_labels", "in_unit_interval", "value_range"]

_ONE_BITS = 0x3F800000  # float32 1.0 as an unsigned integer
_PART = 1 << 20  # values per thread, at least, for the CPU range scan


def in_unit_interval(x: torch.Tensor) -> bool:
    """Whether every value of the float32 tensor ``x`` lies in [0, 1] (False for NaN).

    On the CPU this is one pass: read as unsigned 32-bit integers, the floats in [+0, 1] are
    exactly the bit patterns ``<= 0x3F800000``; negative values (sign bit set), values above 1,
    inf and NaN all read larger. (A negative zero reads larger too; callers fall back to
    :func:`value_range`, which accepts it.)

    Example:
        >>> in_unit_interval(torch.tensor([0.0, 0.5, 1.0])), in_unit_interval(torch.tensor([1.5]))
        (True, False)
    """
    if x.device.type == "cpu" and x.dtype == torch.float32 and x.numel() and x.is_contiguous():
        bits = x.detach().numpy().reshape(-1).view(np.uint32)
        step = max(_PART, -(-bits.size // max(torch.get_num_threads(), 1)))
        parts = [bits[i : i + step] for i in range(0, bits.size, step)]
        return max(run_parallel(lambda p: int(p.max()), parts)) <= _ONE_BITS
    lo, hi = value_range(x)
    return lo >= 0.0 and hi <= 1.0


def value_range(x: torch.Tensor) -> tuple[float, float]:
    """The smallest and largest value of ``x`` as floats; NaN if ``x`` holds a NaN.

    CPU tensors are scanned by numpy on the calling thread. torch's own reduction would wake
    its OpenMP workers, which then spin for several milliseconds and take both cores from the
    numpy/Pillow worker threads that some corruptions start right after the check (measured:
    pixelate ran 1.5x slower). The single-threaded scan costs about 0.02 ms per 224x224 RGB
    image.

    Example:
        >>> value_range(torch.tensor([[0.25, 1.0], [0.5, 0.0]]))
        (0.0, 1.0)
    """
    if x.device.type == "cpu" and x.numel() and x.dtype in (torch.float32, torch.float64):
        arr = x.detach().numpy()
        return float(arr.min()), float(arr.max())
    lo, hi = torch.aminmax(x.detach())
    return float(lo), float(hi)


def check_images(x: Any, *, name: str = "x", min_size: int = 1) -> torch.Tensor:
    """Validate a batch of images against the image contract and return it unchanged.

    Args:
        x: the candidate batch.
        name: the argument name used in error messages.
        min_size: the smallest height and width accepted.

    Returns:
        ``x`` itself (never a copy), so callers can write ``x = check_images(x)``.

    Raises:
        InputError: wrong type, dtype, rank, empty batch, NaN/inf or values outside [0, 1].

    Example:
        >>> import torch
        >>> check_images(torch.rand(2, 1, 28, 28)).shape
        torch.Size([2, 1, 28, 28])
        >>> check_images(torch.rand(1, 28, 28))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        robustcv.core.errors.InputError: x has 3 dimensions ... x.unsqueeze(0)
    """
    if not isinstance(x, torch.Tensor):
        hint = (
            "convert it with torch.from_numpy(arr).float() / 255 (uint8) or torch.as_tensor(arr)"
            if type(x).__module__.startswith("numpy")
            else "pass a torch.Tensor"
        )
        raise InputError(f"{name} is a {type(x).__name__}, not a torch.Tensor; {hint}")
    shape = tuple(x.shape)
    if x.dim() != 4:
        fix = (
            f"add a batch axis with {name}.unsqueeze(0)"
            if x.dim() == 3
            else "reshape it to (batch, channels, height, width)"
        )
        raise InputError(
            f"{name} has {x.dim()} dimensions (shape {shape}); robustcv expects a (B,C,H,W) "
            f"batch: {fix}"
        )
    if x.dtype != torch.float32:
        fix = (
            f"scale it with {name}.float() / 255"
            if x.dtype == torch.uint8
            else f"convert it with {name}.float()"
        )
        raise InputError(f"{name} has dtype {x.dtype}; robustcv expects float32 in [0, 1]: {fix}")
    if shape[0] == 0:
        raise InputError(f"{name} is an empty batch (shape {shape}); pass at least one image")
    if shape[1] == 0 or shape[2] < min_size or shape[3] < min_size:
        raise InputError(
            f"{name} has shape {shape}; images need at least one channel and "
            f"{min_size}x{min_size} pixels"
        )
    if shape[1] > 4 and shape[3] in (1, 3, 4):
        raise InputError(
            f"{name} has shape {shape}, which looks channels-last; robustcv expects "
            f"(B,C,H,W): use {name}.permute(0, 3, 1, 2)"
        )
    if in_unit_interval(x):
        return x
    # NaN propagates through min/max and inf fails the range test
    lo, hi = value_range(x)
    if lo >= 0.0 and hi <= 1.0:
        return x
    finite = torch.isfinite(x)
    if not bool(finite.all()):
        bad = int((~finite).sum())
        raise InputError(
            f"{name} contains {bad} NaN or infinite values; clean the data "
            f"(e.g. torch.nan_to_num) before passing it"
        )
    if lo < 0.0 or hi > 1.0:
        fix = (
            f"divide by 255 ({name} / 255)"
            if hi > 1.0 and hi <= 255.0 and lo >= 0.0
            else "undo any normalisation and pass images in [0, 1]; give mean/std to "
            "robustcv.Model instead"
        )
        raise InputError(f"{name} has values in [{lo:.4g}, {hi:.4g}], outside [0, 1]: {fix}")
    return x


def check_labels(
    y: Any, *, batch_size: int | None = None, num_classes: int | None = None, name: str = "y"
) -> torch.Tensor:
    """Validate a label vector and return it unchanged.

    Args:
        y: the candidate labels.
        batch_size: the number of images the labels belong to, if known.
        num_classes: the number of classes of the model, if known.
        name: the argument name used in error messages.

    Returns:
        ``y`` itself.

    Raises:
        InputError: wrong type, dtype, rank, length or values outside ``[0, num_classes)``.

    Example:
        >>> import torch
        >>> check_labels(torch.tensor([0, 3]), batch_size=2, num_classes=10).tolist()
        [0, 3]
    """
    if not isinstance(y, torch.Tensor):
        raise InputError(
            f"{name} is a {type(y).__name__}, not a torch.Tensor; "
            f"pass torch.as_tensor({name}, dtype=torch.int64)"
        )
    if y.dtype != torch.int64:
        raise InputError(
            f"{name} has dtype {y.dtype}; labels must be int64 class indices: use {name}.long()"
        )
    if y.dim() != 1:
        raise InputError(
            f"{name} has shape {tuple(y.shape)}; labels must be a 1-D vector of class indices "
            f"(if they are one-hot, use {name}.argmax(1))"
        )
    if batch_size is not None and y.shape[0] != batch_size:
        raise InputError(
            f"{name} has {y.shape[0]} labels but there are {batch_size} images; "
            "pass one label per image"
        )
    if y.numel() == 0:
        raise InputError(f"{name} is empty; pass at least one label")
    lo, hi = int(y.min()), int(y.max())
    if lo < 0:
        raise InputError(f"{name} contains the negative label {lo}; labels are in [0, num_classes)")
    if num_classes is not None and hi >= num_classes:
        raise InputError(
            f"{name} contains label {hi} but the model has {num_classes} classes; labels must be "
            f"in [0, {num_classes}) (check the dataset's class order or the model's num_classes)"
        )
    return y


def check_batch(
    x: Any, y: Any, *, num_classes: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate an (images, labels) pair; see :func:`check_images` and :func:`check_labels`.

    Example:
        >>> import torch
        >>> x, y = check_batch(torch.rand(2, 1, 8, 8), torch.tensor([1, 0]), num_classes=2)
        >>> y.tolist()
        [1, 0]
    """
    x = check_images(x)
    y = check_labels(y, batch_size=x.shape[0], num_classes=num_classes)
    return x, y
