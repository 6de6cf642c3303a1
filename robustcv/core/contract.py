"""The image contract every robustcv entry point accepts, and the helpers that enforce it.

Images are ``float32`` tensors of shape ``(B, C, H, W)`` with values in ``[0, 1]``; labels are
``int64`` tensors of shape ``(B,)`` with values in ``[0, num_classes)``. Normalisation (mean/std,
0-255 ranges) lives inside :class:`robustcv.Model`, never in the data.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch import nn

from robustcv.core.errors import InputError, ModelDataMismatchError
from robustcv.core.threads import run_parallel

__all__ = [
    "check_batch",
    "check_count",
    "check_images",
    "check_labels",
    "check_model_fits",
    "describe_images",
    "in_unit_interval",
    "is_shape_error",
    "mismatch_error",
    "model_input_spec",
    "value_range",
]

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


def check_count(value: Any, name: str, *, minimum: int = 1) -> int:
    """Validate a count argument (``batch_size``, ``limit``, ``n_images``) and return it as int.

    Accepts Python and numpy integers; refuses ``bool`` (``True`` is not a count), floats
    (``2.5`` is not silently rounded, ``3.0`` is not taken either), strings and values below
    ``minimum``.

    Args:
        value: the candidate count.
        name: the argument name used in the message.
        minimum: the smallest value accepted.

    Raises:
        InputError: naming the argument and what it got.

    Example:
        >>> check_count(64, "batch_size")
        64
        >>> check_count(2.5, "limit")
        Traceback (most recent call last):
        ...
        robustcv.core.errors.InputError: limit must be an int >= 1, got 2.5 (float)
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InputError(
            f"{name} must be an int >= {minimum}, got {value!r} ({type(value).__name__})"
        )
    if int(value) < minimum:
        raise InputError(f"{name} must be >= {minimum}, got {int(value)}")
    return int(value)


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
    _check_storage(x, name)
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


def _check_storage(x: torch.Tensor, name: str) -> None:
    """Refuse tensors whose values cannot be read: meta tensors and sparse/other layouts."""
    if x.device.type == "meta":
        raise InputError(
            f"{name} is on the meta device: it has a shape but no values; create it on 'cpu' "
            f"(or 'cuda'), e.g. torch.empty_like({name}, device='cpu'), and fill it"
        )
    if x.layout != torch.strided:
        raise InputError(
            f"{name} is a {str(x.layout).replace('torch.', '')} tensor; pass a dense tensor "
            f"({name}.to_dense())"
        )


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
    _check_storage(y, name)
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


# ---------------------------------------------------------------------- model/data compatibility

MISMATCH_FIX = "resize/convert the data (or give the model that matches)"
"""The fix every model/data mismatch message ends with."""

_SHAPE_WORDS = (
    "size",
    "shape",
    "channel",
    "dimension",
    "mat1 and mat2",
    "expected input",
    "broadcast",
    "must match",
    "invalid dimensions",
)
_PROBE_SIZES = (28, 32, 224, 64, 96, 16, 112, 128, 256, 299, 384, 8)


def is_shape_error(err: BaseException) -> bool:
    """Whether ``err`` (raised by a network's forward pass) is about the shape of its input.

    torch reports a wrong channel count, image size or broadcast as a ``RuntimeError`` (or a
    ``ValueError``/``IndexError`` from some layers) whose message names sizes or shapes; those
    are the caller's model/data mismatch. Out-of-memory errors never are.

    Example:
        >>> is_shape_error(RuntimeError("mat1 and mat2 shapes cannot be multiplied (1x3 and 4x2)"))
        True
        >>> is_shape_error(RuntimeError("CUDA error: an illegal memory access"))
        False
    """
    if isinstance(err, torch.cuda.OutOfMemoryError) or isinstance(err, InputError):
        return False
    if not isinstance(err, (RuntimeError, ValueError, IndexError)):
        return False
    text = str(err).lower()
    return any(word in text for word in _SHAPE_WORDS)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def describe_images(channels: int | None, size: tuple[int, int] | None) -> str:
    """``"1-channel 28x28 images"``, leaving out what is not known (None).

    Example:
        >>> describe_images(3, None), describe_images(1, (28, 28))
        ('3-channel images', '1-channel 28x28 images')
    """
    parts = []
    if channels is not None:
        parts.append(f"{channels}-channel")
    if size is not None:
        parts.append(f"{size[0]}x{size[1]}")
    return " ".join([*parts, "images"])


def mismatch_error(
    takes: str,
    data_shape: tuple[int, ...],
    *,
    what: str = "the data",
    detail: str = "",
    exact: bool = False,
) -> ModelDataMismatchError:
    """The one model/data mismatch message: what the model takes, what the data has, the fix.

    Args:
        takes: what the model takes, e.g. ``"1-channel 28x28 images"``.
        data_shape: the shape of the data, ``(B, C, H, W)`` or ``(C, H, W)``.
        what: how to call the data in the message.
        detail: an optional note appended in brackets (the original error's first line).
        exact: ``takes`` was read from the model's own declaration (an ONNX signature, the
            mean/std length), so :func:`check_model_fits` need not probe further.

    Example:
        >>> print(mismatch_error("1-channel 28x28 images", (8, 3, 32, 32)))
        the model takes 1-channel 28x28 images; the data has 3-channel 32x32 images: \
resize/convert the data (or give the model that matches)
    """
    c, h, w = (int(v) for v in tuple(data_shape)[-3:])
    has = describe_images(c, (h, w))
    note = f" [{detail}]" if detail else ""
    err = ModelDataMismatchError(f"the model takes {takes}; {what} has {has}: {MISMATCH_FIX}{note}")
    err.takes, err.detail, err.exact = takes, detail, exact
    return err


def _channel_count(value: Any) -> int | None:
    if isinstance(value, torch.Tensor) and value.numel() > 1:
        return int(value.numel())
    return None


def model_input_spec(model: Any) -> tuple[int | None, tuple[int, int] | None, str]:
    """What can be read off a model about its input, without running it.

    Reads, in this order: the length of the wrapper's ``mean``/``std`` (when more than one
    value), an ONNX model's input signature, the ``in_channels`` of the network's first
    ``Conv2d``, and the ``in_features`` of a ``Linear`` that directly follows a leading
    ``Flatten`` (which fixes channels x height x width).

    Args:
        model: a :class:`robustcv.Model`, an ``nn.Module`` or an :class:`OnnxNet`-like object.

    Returns:
        ``(channels, (height, width), source)``; unknown parts are None, ``source`` says where
        the channel count was read ("" when nothing was read).

    Example:
        >>> from torch import nn
        >>> model_input_spec(nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU()))
        (3, None, 'its first convolution takes 3 channels')
        >>> model_input_spec(nn.Sequential(nn.Flatten(), nn.Linear(784, 10)))
        (None, None, '')
    """
    for attr in ("_mean", "_std"):
        n = _channel_count(getattr(model, attr, None))
        if n is not None:
            return n, None, f"its {attr[1:]} has {n} values"
    net = getattr(model, "net", model)
    shape = getattr(net, "input_shape", None)
    channels: int | None = None
    size: tuple[int, int] | None = None
    source = ""
    if isinstance(shape, tuple) and len(shape) == 4:
        c, h, w = shape[1], shape[2], shape[3]
        if isinstance(c, int) and c > 0:
            channels, source = c, f"its input signature is {list(shape)}"
        if isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0:
            size = (h, w)
            source = source or f"its input signature is {list(shape)}"
        return channels, size, source
    if isinstance(net, nn.Module) and not isinstance(net, torch.jit.ScriptModule):
        for m in net.modules():
            if isinstance(m, nn.Conv2d):
                return m.in_channels, None, f"its first convolution takes {m.in_channels} channels"
    return channels, size, source


def _flat_features(model: Any) -> int | None:
    """``in_features`` of the Linear after a leading Flatten of a Sequential network."""
    net = getattr(model, "net", model)
    if not isinstance(net, nn.Sequential):
        return None
    leaves = [m for m in net.modules() if not list(m.children())][:2]
    if len(leaves) == 2 and isinstance(leaves[0], nn.Flatten) and isinstance(leaves[1], nn.Linear):
        return int(leaves[1].in_features)
    return None


@contextmanager
def _counts_kept(model: Any) -> Iterator[None]:
    """Restore the wrapper's pass counters after a probe (a probe is not the user's work)."""
    saved = {k: getattr(model, k) for k in ("_forward", "_backward") if hasattr(model, k)}
    try:
        yield
    finally:
        for k, v in saved.items():
            setattr(model, k, v)


def _runs(model: Any, x: torch.Tensor) -> BaseException | None:
    """Run ``model`` on ``x``; None when it works, else the shape error it raised."""
    try:
        with torch.no_grad(), _counts_kept(model):
            model.logits(x, validate=False)
    except ModelDataMismatchError as err:
        return err
    except InputError:
        raise
    except Exception as err:
        if is_shape_error(err):
            return err
        raise
    return None


def _runs_raw(model: Any, x: torch.Tensor) -> bool:
    """Whether the network runs on ``x`` at all (preprocessing and forward only)."""
    try:
        with torch.no_grad(), _counts_kept(model), model.eval_mode():
            out = model.net(model.preprocess(x.to(model.device)))
    except Exception:
        return False
    return isinstance(out, torch.Tensor) and out.dim() == 2 and out.shape[0] == x.shape[0]


def _search_size(
    model: Any, channels: int, data_shape: tuple[int, int, int]
) -> tuple[int, int] | None:
    """The image size the network runs on with ``channels`` (None if none found).

    Tries the data's own size first (when the channels differ), then common square sizes.
    """
    flat = _flat_features(model)
    if flat is not None:
        side = round((flat / channels) ** 0.5)
        return (side, side) if side * side * channels == flat else None
    c, h, w = data_shape
    candidates = [(h, w)] if channels != c else []
    candidates += [(s, s) for s in _PROBE_SIZES if (s, s) != (h, w)]
    for size in candidates:
        if _runs_raw(model, torch.zeros(1, channels, *size)):
            return size
    return None


def _sample(x: Any, what: str) -> torch.Tensor:
    """One image of ``x`` (a tensor batch or a Dataset-like object), checked."""
    if not isinstance(x, torch.Tensor) and hasattr(x, "subset") and hasattr(x, "__len__"):
        if len(x) == 0:
            raise InputError(f"{what} has no images; give a dataset with at least one image")
        x = x.subset([0]).x
    if isinstance(x, torch.Tensor) and x.dim() == 4 and x.shape[0] > 0:
        x = x[:1]
    return check_images(x, name=what)


def check_model_fits(model: Any, x: Any, *, what: str = "the data") -> None:
    """Raise a clear error if ``model`` cannot take the images ``x``; return None if it can.

    Reads what it can off the model (see :func:`model_input_spec`), then runs it on one image
    of ``x`` (without counting the pass). When that fails on the input's shape, the message
    says what the model takes and what the data has, in one format everywhere.

    Args:
        model: a :class:`robustcv.Model`.
        x: images under the image contract ``(B, C, H, W)``, or a
            :class:`robustcv.data.Dataset`.
        what: how to call the data in the message (e.g. ``"--data"``, ``"x"``).

    Raises:
        ModelDataMismatchError: channels, image size or mean/std length do not fit
            (an :class:`InputError`).
        InputError: ``x`` breaks the image contract, or ``model`` is not a robustcv Model.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from robustcv.core.model import Model
        >>> net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(4 * 26 * 26, 10))
        >>> model = Model(net)
        >>> check_model_fits(model, torch.rand(2, 1, 28, 28))  # fits: returns None
        >>> check_model_fits(model, torch.rand(2, 3, 32, 32))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        robustcv.core.errors.ModelDataMismatchError: the model takes 1-channel 28x28 images; \
the data has 3-channel 32x32 images: resize/convert the data (or give the model that matches) [...]
    """
    if not (hasattr(model, "logits") and hasattr(model, "preprocess") and hasattr(model, "net")):
        raise InputError(
            f"model is a {type(model).__name__}; wrap it with robustcv.Model(net, ...) or use "
            "robustcv.load_model"
        )
    sample = _sample(x, what)
    _, c, h, w = (int(v) for v in sample.shape)
    channels, size, source = model_input_spec(model)
    if source.startswith(("its mean", "its std")) and channels != c:
        raise mismatch_error(
            f"{describe_images(channels, size)} ({source}: give one value per channel of the data)",
            tuple(sample.shape),
            what=what,
        )
    failure = _runs(model, sample)
    if failure is None:
        return
    detail = getattr(failure, "detail", None) or _first_line(failure)
    if isinstance(failure, ModelDataMismatchError) and failure.exact:
        raise mismatch_error(
            failure.takes, tuple(sample.shape), what=what, detail=failure.detail, exact=True
        )
    if size is None:
        size = _search_size(model, channels if channels is not None else c, (c, h, w))
        if size is None and channels is None:
            for other in (1, 3):
                if other != c:
                    size = _search_size(model, other, (c, h, w))
                    if size is not None:
                        channels = other
                        break
    if channels is None and size is not None and _runs_raw(model, torch.zeros(1, c, *size)):
        channels = c
    if size == (h, w) and channels in (None, c):
        size = None  # the search found nothing the data lacks: do not claim a size
    if channels is None and size is None:
        takes = "other images"
    elif size is None and channels == c:
        takes = f"{c}-channel images of another size"
    else:
        takes = describe_images(channels, size)
    raise mismatch_error(takes, tuple(sample.shape), what=what, detail=detail)
