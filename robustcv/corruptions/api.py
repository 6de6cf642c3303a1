"""Public entry point :func:`corrupt`: validate, seed per sample, run, check the output."""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from robustcv.core.contract import check_images, in_unit_interval, value_range
from robustcv.core.errors import InputError, RobustcvError
from robustcv.core.seeding import check_seed, content_keys, derive_seed
from robustcv.corruptions.base import CORRUPTIONS, SampleRNG, resolve_params

__all__ = ["check_corruptible", "corrupt", "corrupt_with_draws"]


def check_corruptible(x: object, *, name: str = "x", min_size: int = 1) -> torch.Tensor:
    """The image contract plus what corruptions need: real values, 1 (grey) or 3 (RGB) channels.

    Raises:
        InputError: ``x`` breaks the image contract (see
            :func:`robustcv.core.contract.check_images`: NaN/inf, ``meta`` tensors...) or has
            a channel count other than 1 or 3.

    Example:
        >>> check_corruptible(torch.rand(2, 4, 16, 16))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        robustcv.core.errors.InputError: x has 4 channels; corruptions take greyscale ...
    """
    if isinstance(x, torch.Tensor) and x.dim() == 4 and x.shape[1] > 4 and x.shape[3] in (1, 3, 4):
        # said before the size check, which would only complain about a width of 1 or 3
        raise InputError(
            f"{name} has shape {tuple(x.shape)}, which looks channels-last (B,H,W,C); "
            f"corruptions take (B,C,H,W): use {name}.permute(0, 3, 1, 2)"
        )
    x = check_images(x, name=name, min_size=min_size)
    c = int(x.shape[1])
    if c not in (1, 3):
        fix = (
            f"drop the alpha channel ({name}[:, :3])"
            if c == 4
            else f"convert them to RGB or greyscale first (e.g. {name}[:, :1] or "
            f"{name}.mean(1, keepdim=True))"
        )
        raise InputError(
            f"{name} has {c} channels; corruptions take greyscale (1 channel) or RGB (3 "
            f"channel) images: {fix}"
        )
    return x


def _shares_memory(a: torch.Tensor, b: torch.Tensor) -> bool:
    return bool(a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr())


def corrupt_with_draws(
    x: torch.Tensor,
    name: str,
    severity: int,
    *,
    seed: int = 0,
    spec: str = "auto",
    replay: Mapping[str, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Like :func:`corrupt`, and also return the scalar random draws (angles, offsets...).

    Pass the draws back as ``replay=`` to reproduce the same random parameters exactly.

    Example:
        >>> x = torch.rand(2, 3, 32, 32)
        >>> y, draws = corrupt_with_draws(x, "gaussian_noise", 3)
        >>> y.shape == x.shape
        True
    """
    if not isinstance(name, str):
        raise InputError(
            f"name must be a corruption name (str), got {type(name).__name__} {name!r}; see "
            "'robustcv list corruptions'"
        )
    defn = CORRUPTIONS.get(name)
    check_corruptible(x, min_size=defn.min_size)
    seed = check_seed(seed)
    params = resolve_params(defn, severity, spec, int(x.shape[2]), int(x.shape[3]))
    # one memory layout for every corruption: channels-last and sliced views give the same
    # result as x.contiguous() (a copy only when x is not contiguous; x itself is never written)
    x = x.detach().contiguous()

    def generators() -> list[torch.Generator]:
        out = []
        for k in content_keys(x).tolist():
            g = torch.Generator(device=x.device)
            g.manual_seed(derive_seed(seed, defn.name, severity, int(k)))
            out.append(g)
        return out

    rng = SampleRNG(generators, x.device, replay, batch_size=int(x.shape[0]))
    # the contract tests check that no corruption modifies its input; no other copy is made
    out = defn.fn(x, params, rng)
    if out.shape != x.shape or out.dtype != torch.float32:
        raise RobustcvError(
            f"corruption '{defn.name}' returned {tuple(out.shape)} {out.dtype} for "
            f"{tuple(x.shape)} float32 (a bug in robustcv)"
        )
    if in_unit_interval(out) and not _shares_memory(out, x):
        return out, rng.draws
    lo, hi = value_range(out)  # NaN propagates; inf is caught by the range test
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise RobustcvError(f"corruption '{defn.name}' produced NaN/inf (a bug in robustcv)")
    if _shares_memory(out, x):
        return out.clamp(0.0, 1.0), rng.draws  # never hand back (or clamp in place) the input
    if lo < 0.0 or hi > 1.0:
        out.clamp_(0.0, 1.0)
    return out, rng.draws


def corrupt(
    x: torch.Tensor,
    name: str,
    severity: int,
    *,
    seed: int = 0,
    spec: str = "auto",
) -> torch.Tensor:
    """Apply the corruption ``name`` at ``severity`` to a batch of images.

    Args:
        x: float32 images (B, C, H, W) in [0, 1], greyscale (C=1) or RGB (C=3), on CPU or CUDA.
        name: a registered corruption (``robustcv list corruptions``), e.g. ``"fog"``,
            ``"gaussian_noise"`` or ``"mvh-contrast"``; ``-`` and ``_`` are interchangeable.
        severity: 1..5 for ImageNet-C corruptions; for ``mvh-`` degradations the 1-based index
            into the published level list.
        seed: same seed, same output, whatever the batch size or order.
        spec: ``"auto"`` (parameters interpolated by image size), ``"imagenet-c"`` (the 224x224
            values) or ``"cifar-10-c"`` (the 32x32 values).

    Returns:
        A new float32 tensor like ``x`` with values in [0, 1]; ``x`` is not modified.

    Raises:
        InputError: unknown corruption (with close matches), severity out of range, image too
            small, a channel count other than 1 or 3, input outside the image contract (NaN/inf,
            values outside [0, 1], a ``meta`` tensor).

    Any memory layout works (channels-last, sliced or strided views, a batch of one): the
    result equals that for ``x.contiguous()``.

    Example:
        >>> import robustcv
        >>> x = torch.rand(4, 3, 64, 64)
        >>> y = robustcv.corrupt(x, "gaussian_noise", 2, seed=1)
        >>> torch.equal(y[1:], robustcv.corrupt(x[1:], "gaussian_noise", 2, seed=1))
        True
    """
    if not isinstance(name, str):
        raise InputError(f"name must be a corruption name (str), got {type(name).__name__}")
    return corrupt_with_draws(x, name, severity, seed=seed, spec=spec)[0]
