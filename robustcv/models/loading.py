"""``load_model(spec)``: one entry point for zoo models, TorchScript, ONNX and Python factories.

Spec forms:

* ``zoo:NAME`` - a model shipped with robustcv (``robustcv list models``);
* ``path/to/model.onnx`` - run by onnxruntime (gradient-free);
* ``path/to/model.pt`` (or ``.pth``, ``.ts``, ``.jit``) - a TorchScript file;
* ``path/to/file.py:factory`` or ``package.module:factory`` - a function returning an
  ``nn.Module`` (or a :class:`robustcv.Model`), with ``weights=`` a ``.safetensors`` file or a
  state_dict checkpoint;
* an ``nn.Module`` or a :class:`robustcv.Model` object.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from robustcv.core.errors import InputError
from robustcv.core.model import FeatureSpec, Model
from robustcv.models.onnx import OnnxNet
from robustcv.models.weights import load_weights
from robustcv.models.zoo import load_zoo_model

__all__ = ["load_model"]

_TORCHSCRIPT_SUFFIXES = {".pt", ".pth", ".ts", ".jit", ".torchscript"}


def _import_factory(spec: str) -> Any:
    target, _, attr = spec.rpartition(":")
    if not target or not attr.isidentifier():
        raise InputError(
            f"cannot parse model spec '{spec}'; use path/to/file.py:factory or "
            "package.module:factory"
        )
    if target.endswith(".py"):
        path = Path(target).expanduser()
        if not path.is_file():
            raise InputError(f"model file {path} does not exist")
        digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
        mod_name = f"robustcv_user_{path.stem}_{digest}"
        mod_spec = importlib.util.spec_from_file_location(mod_name, path)
        if mod_spec is None or mod_spec.loader is None:
            raise InputError(f"cannot import {path}")
        module = importlib.util.module_from_spec(mod_spec)
        sys.modules[mod_name] = module
        mod_spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as err:
            raise InputError(f"cannot import module '{target}': {err}") from err
    factory = getattr(module, attr, None)
    if factory is None or not callable(factory):
        raise InputError(f"'{target}' has no callable named '{attr}'")
    return factory


def _load_torchscript(path: Path) -> nn.Module:
    try:
        return torch.jit.load(str(path), map_location="cpu")
    except (RuntimeError, ValueError) as err:
        text = str(err)
        if not zipfile.is_zipfile(path):
            raise InputError(
                f"cannot load TorchScript file {path}: it is not a complete archive; the file is "
                "truncated or corrupt"
            ) from err
        if "constants.pkl" in text or "archive" in text.lower() or "code/" in text:
            raise InputError(
                f"{path} is not a TorchScript file (it may be a plain state_dict); for weights, "
                f"use --model file.py:factory --weights {path.name}"
            ) from err
        raise InputError(f"cannot load TorchScript file {path}: {text.splitlines()[0]}") from err


def load_model(
    spec: str | Path | nn.Module | Model,
    *,
    weights: str | Path | None = None,
    mean: float | Sequence[float] | None = None,
    std: float | Sequence[float] | None = None,
    input_range: tuple[float, float] | None = None,
    num_classes: int | None = None,
    features: FeatureSpec = None,
    device: torch.device | str | None = None,
) -> Model:
    """Load a classifier and wrap it in a :class:`robustcv.Model`.

    Args:
        spec: see the module docstring.
        weights: weights for a factory spec (``.safetensors`` or a state_dict checkpoint).
        mean: per-channel mean applied inside the wrapper.
        std: per-channel std applied inside the wrapper.
        input_range: the range the network expects before mean/std (default (0, 1)).
        num_classes: number of classes (inferred from the first output when None).
        features: a layer name or callable giving penultimate features.
        device: where to run (default: CPU, or the module's device).

    Returns:
        A :class:`robustcv.Model` taking [0, 1] images.

    Raises:
        InputError: unknown spec, missing file, unsafe or mismatched weights.

    Example:
        >>> model = load_model("zoo:fmnist-cnn")
        >>> model.name
        'zoo:fmnist-cnn'
    """
    wrap: dict[str, Any] = {
        "mean": mean,
        "std": std,
        "input_range": input_range if input_range is not None else (0.0, 1.0),
        "num_classes": num_classes,
        "features": features,
        "device": device,
    }
    if isinstance(spec, Model):
        return spec
    if isinstance(spec, nn.Module):
        if weights is not None:
            load_weights(spec, weights)
        return Model(spec, **wrap)
    text = str(spec)
    if text.startswith("zoo:"):
        custom = {k: v for k, v in wrap.items() if k != "device" and v not in (None, (0.0, 1.0))}
        if custom or weights is not None:
            raise InputError(
                f"zoo models carry their own preprocessing and weights; drop {sorted(custom)}"
                f"{' and weights' if weights is not None else ''}"
            )
        return load_zoo_model(text[4:], device=device)
    path = Path(text).expanduser()
    if path.suffix == ".onnx":
        if weights is not None:
            raise InputError("an ONNX file holds its own weights; drop weights=")
        net = OnnxNet(path, device=device or "cpu")
        return Model(net, differentiable=False, name=path.name, **wrap)
    if path.suffix in _TORCHSCRIPT_SUFFIXES and ":" not in path.name:
        if not path.is_file():
            raise InputError(f"model file {path} does not exist")
        if weights is not None:
            raise InputError("a TorchScript file holds its own weights; drop weights=")
        return Model(_load_torchscript(path), name=path.name, **wrap)
    if ":" in text:
        factory = _import_factory(text)
        obj = factory()
        if isinstance(obj, Model):
            if weights is not None:
                raise InputError("the factory returned a robustcv.Model; load weights inside it")
            return obj
        if not isinstance(obj, nn.Module):
            raise InputError(
                f"factory '{text}' returned {type(obj).__name__}; it must return an nn.Module"
            )
        if weights is not None:
            load_weights(obj, weights)
        return Model(obj, name=text.rpartition(":")[2], **wrap)
    raise InputError(
        f"cannot tell how to load '{text}'; use zoo:NAME, a .onnx or TorchScript (.pt) file, or "
        "file.py:factory / package.module:factory"
    )
