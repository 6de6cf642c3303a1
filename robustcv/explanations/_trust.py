"""Helpers the trust checks share (private): model and image checks, targets, intervals."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from robustcv.core.contract import check_images, check_model_fits
from robustcv.core.errors import InputError
from robustcv.core.model import Model
from robustcv.core.seeding import check_seed
from robustcv.explanations.base import METHODS


def as_model(model: Any) -> Model:
    """A :class:`Model` from a Model or an ``nn.Module`` (else an error naming the fix)."""
    if isinstance(model, Model):
        return model
    if isinstance(model, nn.Module):
        return Model(model)
    raise InputError(
        f"model is a {type(model).__name__}; pass a robustcv.Model (robustcv.load_model) or a "
        "torch.nn.Module that maps [0, 1] images to logits"
    )


def prepare(model: Any, x: Any, seed: Any) -> tuple[Model, torch.Tensor, int]:
    """Checked (model, a contiguous copy of the images on the model's device, seed)."""
    m = as_model(model)
    x = check_images(x)
    check_model_fits(m, x, what="x")
    s = check_seed(0 if seed is None else seed)
    return m, x.detach().to(m.device, memory_format=torch.contiguous_format).clone(), s


def check_method(method: Any) -> str:
    """A registered method name (with "did you mean" from the registry)."""
    if not isinstance(method, str):
        raise InputError(
            f"method must be a method name (str), got {type(method).__name__}; see "
            "'robustcv list methods'"
        )
    return METHODS.canonical(method)


def predict(model: Model, x: torch.Tensor, rows: int = 512) -> torch.Tensor:
    """(N, classes) logits without gradients, batched."""
    with torch.no_grad():
        return torch.cat(
            [model.logits(x[i : i + rows], validate=False) for i in range(0, len(x), rows)]
        )


def targets_for(model: Model, x: torch.Tensor, target: Any) -> torch.Tensor:
    """(B,) int64 targets: the predicted class (None), an int, or a (B,) tensor."""
    logits = predict(model, x)
    classes = int(logits.shape[1])
    if target is None:
        return logits.argmax(1)
    if isinstance(target, bool):
        raise InputError(f"target must be a class index, got {target!r}; e.g. target=0")
    if isinstance(target, int):
        if not 0 <= target < classes:
            raise InputError(f"target={target} is out of range: pass a class in [0, {classes - 1}]")
        return torch.full((len(x),), target, dtype=torch.int64, device=x.device)
    if isinstance(target, torch.Tensor) and target.dim() == 1 and len(target) == len(x):
        if target.is_floating_point() or target.dtype == torch.bool:
            raise InputError(f"target has dtype {target.dtype}; pass int64 classes (.long())")
        t = target.to(x.device, torch.int64)
        if bool(((t < 0) | (t >= classes)).any()):
            raise InputError(f"target holds classes outside [0, {classes - 1}]")
        return t
    raise InputError(
        f"target must be None (the predicted class), an int or a ({len(x)},) int64 tensor"
    )


def mean_ci(values: torch.Tensor) -> dict[str, Any]:
    """Mean with a normal-approximation 95% interval (mean +- 1.96 standard errors).

    Example:
        >>> mean_ci(torch.tensor([1.0, 1.0]))["value"]
        1.0
    """
    v = values.detach().to("cpu", torch.float64).flatten()
    v = v[torch.isfinite(v)]
    n = int(v.numel())
    if n == 0:
        return {
            "value": math.nan,
            "low": math.nan,
            "high": math.nan,
            "n": 0,
            "method": "",
            "level": 0.95,
        }
    mean = float(v.mean())
    se = float(v.std(unbiased=True)) / math.sqrt(n) if n > 1 else math.nan
    return {
        "value": mean,
        "low": mean - 1.96 * se,
        "high": mean + 1.96 * se,
        "n": n,
        "method": "mean +- 1.96 standard errors (normal approximation)",
        "level": 0.95,
    }


def check_fraction(value: Any, name: str, *, open_low: bool = True) -> float:
    """A float in (0, 1] (or [0, 1] with ``open_low=False``)."""
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    if ok:
        ok = (0.0 < value <= 1.0) if open_low else (0.0 <= value <= 1.0)
    if not ok:
        span = "(0, 1]" if open_low else "[0, 1]"
        raise InputError(f"{name} must be a number in {span}, got {value!r}")
    return float(value)


def check_positive(value: Any, name: str, *, allow_zero: bool = False) -> float:
    """A finite number > 0 (or >= 0)."""
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    ok = ok and (value >= 0 if allow_zero else value > 0)
    if not ok:
        raise InputError(
            f"{name} must be a finite number {'>=' if allow_zero else '>'} 0, got {value!r}"
        )
    return float(value)


def check_count(value: Any, name: str, minimum: int = 1) -> int:
    """An int >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InputError(
            f"{name} must be an int >= {minimum}, got {value!r}; e.g. {name}={max(minimum, 1) * 8}"
        )
    return int(value)
