"""Load weights into a network safely.

Weights come from safetensors files or state_dicts read with ``torch.load(weights_only=True)``;
arbitrary pickled objects are never unpickled.
"""

from __future__ import annotations

import pickle
import re
import warnings
import zipfile
from pathlib import Path

import torch
from torch import nn

from robustcv.core.errors import InputError, UserCodeError

__all__ = ["load_weights", "read_state_dict"]

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _first(err: BaseException) -> str:
    text = _ANSI.sub("", str(err)).strip()
    return text.splitlines()[0] if text else ""


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state_dict from a ``.safetensors`` file or a PyTorch checkpoint (tensors only).

    A checkpoint holding ``{"state_dict": {...}}`` or ``{"model": {...}}`` is unwrapped.

    Raises:
        InputError: missing or unsafe files, with the reason.
        UserCodeError: a truncated or corrupt file (an :class:`InputError` too); the message
            carries the reader's error.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise InputError(
            f"weights file {path} does not exist" + (" (it is a folder)" if path.is_dir() else "")
        )
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError, TypeError, RuntimeError) as err:
            raise UserCodeError(
                f"cannot read safetensors file {path}: {type(err).__name__}: {_first(err)}; "
                "the file is truncated or corrupt"
            ) from err
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols it then refuses
            warnings.simplefilter("ignore", UserWarning)
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        text = _ANSI.sub("", str(err))
        with open(path, "rb") as fh:
            head = fh.read(2)
        is_pickle = head.startswith(b"\x80") or head == b"PK"  # a raw pickle or torch's zip
        if not is_pickle or "invalid load key" in text.lower():
            raise UserCodeError(
                f"cannot read weights file {path}: it is not a PyTorch checkpoint (the unpickler "
                "found garbage); save weights with torch.save(net.state_dict(), f) or as "
                ".safetensors"
            ) from err
        detail = text.splitlines()[0]
        raise InputError(
            f"{path} holds more than tensors (refused: robustcv never unpickles arbitrary "
            f"objects). Save only the state_dict (torch.save(net.state_dict(), f)) or use "
            f"safetensors. Detail: {detail}"
        ) from err
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as err:
        raise UserCodeError(
            f"cannot read weights file {path}: {type(err).__name__}: {_first(err)}; it may be "
            "truncated, or not a PyTorch checkpoint"
        ) from err
    except Exception as err:  # torch.load on arbitrary bytes raises many types
        raise UserCodeError(
            f"cannot read weights file {path}: {type(err).__name__}: {_first(err)}; it is not "
            "a PyTorch checkpoint (torch.save(net.state_dict(), f)) or a .safetensors file"
        ) from err
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "model_state_dict"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise InputError(f"{path} does not hold a state_dict (a dict of tensors)")
    return obj


def load_weights(net: nn.Module, path: str | Path) -> nn.Module:
    """Load a state_dict file into ``net`` strictly; mismatches are reported clearly.

    Returns:
        ``net`` (modified in place).
    """
    state = read_state_dict(path)
    own = net.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shape_bad = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state and state[k].shape != own[k].shape
    ]
    if missing or unexpected or shape_bad:
        parts = []
        if missing:
            parts.append(f"missing keys {missing[:5]}{' ...' if len(missing) > 5 else ''}")
        if unexpected:
            parts.append(f"unexpected keys {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}")
        if shape_bad:
            parts.append(f"shape mismatches {shape_bad[:3]}")
        raise InputError(
            f"weights in {path} do not match the network ({'; '.join(parts)}); check that the "
            "factory builds the same architecture the weights were saved from"
        )
    net.load_state_dict(state)
    return net
