"""Public entry point :func:`corrupt`: validate, seed per sample, run, check the output."""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from robustcv.core.contract import check_images, in_unit_interval, value_range
from robustcv.core.errors import InputError, RobustcvError
from robustcv.core.seeding import check_seed, content_keys, derive_seed
from robustcv.corruptions.base import CORRUPTIONS, SampleRNG, resolve_params

__all__ = ["corrupt", "corrupt_with_draws"]


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
    defn = CORRUPTIONS.get(name)
    check_images(x, min_size=defn.min_size)
    seed = check_seed(seed)
    params = resolve_params(defn, severity, spec, int(x.shape[2]), int(x.shape[3]))

    def generators() -> list[torch.Generator]:
        out = []
        for k in content_keys(x).tolist():
            g = torch.Generator(device=x.device)
            g.manual_seed(derive_seed(seed, defn.name, severity, int(k)))
            out.append(g)
        return out

    rng = SampleRNG(generators, x.device, replay, batch_size=int(x.shape[0]))
    # the contract tests check that no corruption modifies its input; no copy is made here
    out = defn.fn(x.detach(), params, rng)
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
            small, input outside the image contract.

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
