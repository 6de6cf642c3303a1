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

from robustcv.core.devices import resolve_device
from robustcv.core.errors import InputError, UserCodeError, user_code_error
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
            raise InputError(
                f"model file {path} does not exist" + (" (it is a folder)" if path.is_dir() else "")
            )
        digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
        mod_name = f"robustcv_user_{path.stem}_{digest}"
        mod_spec = importlib.util.spec_from_file_location(mod_name, path)
        if mod_spec is None or mod_spec.loader is None:
            raise InputError(f"cannot import {path}")
        module = importlib.util.module_from_spec(mod_spec)
        sys.modules[mod_name] = module
        try:
            mod_spec.loader.exec_module(module)
        except (Exception, SystemExit) as err:
            sys.modules.pop(mod_name, None)
            raise user_code_error(err, f"importing model file {path}") from err
    else:
        try:
            module = importlib.import_module(target)
        except ModuleNotFoundError as err:
            if err.name is not None and not target.startswith(err.name) and err.name != target:
                raise user_code_error(err, f"importing module '{target}'") from err
            raise InputError(
                f"cannot import module '{target}': {err}; check the name and that it is on "
                "PYTHONPATH (or give path/to/file.py:factory)"
            ) from err
        except ImportError as err:
            raise InputError(f"cannot import module '{target}': {err}") from err
        except (Exception, SystemExit) as err:
            raise user_code_error(err, f"importing module '{target}'") from err
    where = getattr(module, "__file__", None) or target
    if not hasattr(module, attr):
        names = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_"))[
            :10
        ]
        raise InputError(
            f"'{target}' has no callable named '{attr}' (model spec '{spec}'); callables there: "
            f"{', '.join(names) or 'none'}"
        )
    factory = getattr(module, attr)
    if not callable(factory):
        raise InputError(
            f"'{target}' has no callable named '{attr}': '{attr}' is a "
            f"{type(factory).__name__}; the model spec must name a function returning an "
            f"nn.Module ({where})"
        )
    return factory


def _call_factory(factory: Any, spec: str) -> Any:
    """Call a user factory; whatever it raises is reported as the user's error."""
    try:
        return factory()
    except TypeError as err:
        if "missing" in str(err) and "required" in str(err):
            raise UserCodeError(
                f"model factory '{spec}' needs arguments ({err}); robustcv calls it with none: "
                "give its parameters defaults, or write a wrapper function"
            ) from err
        raise user_code_error(err, f"model factory '{spec}'") from err
    except (Exception, SystemExit) as err:
        if isinstance(err, InputError):
            raise
        raise user_code_error(err, f"model factory '{spec}'") from err


def _load_torchscript(path: Path) -> nn.Module:
    try:
        return torch.jit.load(str(path), map_location="cpu")
    except Exception as err:
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
        raise user_code_error(err, f"loading TorchScript file {path}") from err


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
    channels_last: bool = False,
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
        channels_last: run the network channels-last (faster convolutions on the CPU; see
            :class:`robustcv.Model`).

    Returns:
        A :class:`robustcv.Model` taking [0, 1] images.

    Raises:
        InputError: unknown spec, missing file, unsafe or mismatched weights, or a device this
            machine does not have.
        UserCodeError: the user's factory or module raised (or does not parse), or a model
            file cannot be read; the message names the original error and its file:line.

    Example:
        >>> model = load_model("zoo:fmnist-cnn")
        >>> model.name
        'zoo:fmnist-cnn'
    """
    if device is not None:
        device = resolve_device(device)
    if not isinstance(spec, (str, Path, nn.Module, Model)):
        raise InputError(
            f"model spec is a {type(spec).__name__}; give zoo:NAME, a .onnx or TorchScript "
            "file, file.py:factory / package.module:factory, an nn.Module or a robustcv.Model"
        )
    if weights is not None and not isinstance(weights, (str, Path)):
        raise InputError(f"weights must be a file path, got {type(weights).__name__}")
    wrap: dict[str, Any] = {
        "mean": mean,
        "std": std,
        "input_range": input_range if input_range is not None else (0.0, 1.0),
        "num_classes": num_classes,
        "features": features,
        "device": device,
        "channels_last": channels_last,
    }
    if isinstance(spec, Model):
        if device is not None and spec.device != device:
            raise InputError(
                f"the model is already wrapped on {spec.device}; drop device= or build the "
                "robustcv.Model with that device"
            )
        return spec
    if isinstance(spec, nn.Module):
        if weights is not None:
            load_weights(spec, weights)
        return Model(spec, **wrap)
    text = str(spec).strip()
    if not text:
        raise InputError(
            "model spec is empty; give zoo:NAME, a .onnx or TorchScript file, or "
            "file.py:factory (robustcv list models shows the zoo)"
        )
    if text.startswith("zoo:"):
        custom = {
            k: v
            for k, v in wrap.items()
            if k not in ("device", "channels_last") and v not in (None, (0.0, 1.0))
        }
        if custom or weights is not None:
            raise InputError(
                f"zoo models carry their own preprocessing and weights; drop {sorted(custom)}"
                f"{' and weights' if weights is not None else ''}"
            )
        return load_zoo_model(text[4:], device=device, channels_last=channels_last)
    path = Path(text).expanduser()
    if path.suffix == ".onnx":
        if weights is not None:
            raise InputError("an ONNX file holds its own weights; drop weights=")
        net = OnnxNet(path, device=device if device is not None else "cpu")
        return Model(net, differentiable=False, name=path.name, **wrap)
    if path.suffix in _TORCHSCRIPT_SUFFIXES and ":" not in path.name:
        if not path.is_file():
            raise InputError(
                f"model file {path} does not exist" + (" (it is a folder)" if path.is_dir() else "")
            )
        if weights is not None:
            raise InputError("a TorchScript file holds its own weights; drop weights=")
        return Model(_load_torchscript(path), name=path.name, **wrap)
    if ":" in text:
        factory = _import_factory(text)
        obj = _call_factory(factory, text)
        if isinstance(obj, Model):
            if weights is not None:
                raise InputError("the factory returned a robustcv.Model; load weights inside it")
            return obj
        if not isinstance(obj, nn.Module):
            raise UserCodeError(
                f"factory '{text}' returned {type(obj).__name__}; it must return an nn.Module "
                "(or a robustcv.Model)"
            )
        if weights is not None:
            load_weights(obj, weights)
        return Model(obj, name=text.rpartition(":")[2], **wrap)
    raise InputError(
        f"cannot tell how to load '{text}'; use zoo:NAME, a .onnx or TorchScript (.pt) file, or "
        "file.py:factory / package.module:factory"
    )
