"""Shared pieces of the probes: the registry, input checks and batched prediction.

A probe is a frozen config dataclass (its parameters, checked in ``__post_init__``) plus a pure
function ``fn(model, x, y, config, *, masks=None, seed=0) -> Result`` over images under the image
contract (float32 ``(B,C,H,W)`` in [0, 1]). Probes register a :class:`ProbeSpec` in
:data:`PROBES`, so the command line, the docs and the contract tests iterate over them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from numbers import Real
from typing import Any

import torch
from torch import nn

from robustcv.core.contract import check_count, check_images, check_labels
from robustcv.core.errors import InputError
from robustcv.core.model import Model
from robustcv.core.registry import Registry

__all__ = [
    "PROBES",
    "ProbeSpec",
    "as_model",
    "check_fraction",
    "check_inputs",
    "check_positive",
    "float_tuple",
    "int_tuple",
    "num_classes",
    "predict",
    "register_probe",
]


@dataclass(frozen=True)
class ProbeSpec:
    """One registered probe.

    Attributes:
        name: the registry name (``background``, ``cue-scan``, ...).
        config_class: the frozen dataclass of its parameters (every field defaulted).
        fn: ``fn(model, x, y, config, *, masks=None, seed=0) -> Result``.
        question: the question the probe answers, in one line.
        needs_masks: whether it needs foreground masks (given or estimated).
    """

    name: str
    config_class: type
    fn: Callable[..., Any]
    question: str
    needs_masks: bool = False

    def run(
        self,
        model: Model | nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        config: Any = None,
        *,
        masks: torch.Tensor | None = None,
        seed: int = 0,
    ) -> Any:
        """Run the probe with ``config`` (its defaults when None)."""
        cfg = self.config_class() if config is None else config
        if not isinstance(cfg, self.config_class):
            raise InputError(
                f"probe '{self.name}' takes a {self.config_class.__name__}, got "
                f"{type(cfg).__name__}; build one with {self.config_class.__name__}(...)"
            )
        return self.fn(model, x, y, cfg, masks=masks, seed=seed)


PROBES: Registry[ProbeSpec] = Registry("probe")
"""Probe name -> :class:`ProbeSpec`."""


def register_probe(spec: ProbeSpec) -> ProbeSpec:
    """Add ``spec`` to :data:`PROBES` under its name and return it."""
    PROBES.add(spec.name, spec, summary=spec.question)
    return spec


def as_model(model: Any) -> Model:
    """``model`` as a :class:`robustcv.Model` (an ``nn.Module`` or callable is wrapped).

    Example:
        >>> as_model(torch.nn.Flatten()).name is not None
        True
    """
    if isinstance(model, Model):
        return model
    if isinstance(model, nn.Module) or callable(model):
        return Model(model)
    raise InputError(
        f"model is a {type(model).__name__}; pass a robustcv.Model, an nn.Module or a callable "
        "that returns logits"
    )


def check_inputs(
    model: Any, x: Any, y: Any, *, min_size: int = 1
) -> tuple[Model, torch.Tensor, torch.Tensor]:
    """Validate (model, images, labels) for a probe and return them (the model wrapped).

    Raises:
        InputError: images outside the contract, labels of the wrong length or range.
    """
    m = as_model(model)
    x = check_images(x, min_size=min_size)
    y = check_labels(y, batch_size=int(x.shape[0]))
    return m, x, y.cpu()  # predictions come back on the CPU


def predict(model: Model, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Predicted labels (int64, CPU) of ``x`` in batches of ``batch_size`` (no gradients)."""
    with torch.no_grad():
        return model.predict_logits(x, batch_size=batch_size, validate=False).argmax(1)


def num_classes(model: Model, x: torch.Tensor) -> int:
    """The model's number of classes (one forward pass on ``x[:1]`` when not known yet)."""
    try:
        return model.num_classes
    except InputError:
        with torch.no_grad():
            return int(model.logits(x[:1], validate=False).shape[1])


def check_positive(value: Any, name: str) -> float:
    """``value`` as a finite positive float, else :class:`InputError` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, Real) or not float(value) > 0:
        raise InputError(f"{name} must be a positive number, got {value!r}")
    if float(value) == float("inf"):
        raise InputError(f"{name} must be finite, got {value!r}")
    return float(value)


def check_fraction(value: Any, name: str, *, low: float = 0.0, high: float = 1.0) -> float:
    """``value`` as a float in ``[low, high]``, else :class:`InputError` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, Real) or not low <= float(value) <= high:
        raise InputError(f"{name} must be a number in [{low:g}, {high:g}], got {value!r}")
    return float(value)


def int_tuple(values: Any, name: str, *, minimum: int = 1) -> tuple[int, ...]:
    """A non-empty tuple of ints >= ``minimum`` (a single int is accepted)."""
    if isinstance(values, (int,)) and not isinstance(values, bool):
        values = (values,)
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
        raise InputError(f"{name} must be a non-empty list of ints, got {values!r}")
    return tuple(check_count(v, name, minimum=minimum) for v in values)


def float_tuple(values: Any, name: str, *, low: float, high: float) -> tuple[float, ...]:
    """A non-empty tuple of floats in ``[low, high]`` (a single number is accepted)."""
    if isinstance(values, Real) and not isinstance(values, bool):
        values = (values,)
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
        raise InputError(f"{name} must be a non-empty list of numbers, got {values!r}")
    return tuple(check_fraction(v, name, low=low, high=high) for v in values)
