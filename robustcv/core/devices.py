"""Device specs (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``) checked against this machine.

torch accepts ``torch.device("cuda:3")`` on a machine without CUDA and only fails later, deep
inside ``.to()``, with ``AssertionError: Torch not compiled with CUDA enabled``.
:func:`resolve_device` checks the device up front and names what is available instead.
"""

from __future__ import annotations

from typing import Any

import torch

from robustcv.core.errors import InputError

__all__ = ["available_devices", "resolve_device"]


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def available_devices() -> list[str]:
    """The devices robustcv can run on here, e.g. ``['cpu', 'cuda:0', 'cuda:1']``.

    Example:
        >>> available_devices()[0]
        'cpu'
    """
    names = ["cpu"]
    if torch.cuda.is_available():
        names += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if _mps_available():
        names.append("mps")
    return names


def _cuda_reason() -> str:
    if torch.version.cuda is None and getattr(torch.version, "hip", None) is None:
        return "torch built without CUDA"
    return "no CUDA GPU or driver found"


def resolve_device(spec: Any, *, name: str = "device") -> torch.device:
    """Turn a device spec into a ``torch.device`` that exists on this machine.

    Args:
        spec: ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"``, a ``torch.device`` or an int
            (a CUDA index).
        name: the argument name used in error messages (``"--device"`` for the CLI).

    Returns:
        The device (``"cuda"`` without an index stays index-less: torch's current GPU).

    Raises:
        InputError: the spec is not a device, or names one this machine does not have; the
            message lists the available devices.

    Example:
        >>> resolve_device("cpu")
        device(type='cpu')
        >>> resolve_device("gpu")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        robustcv.core.errors.InputError: unknown device 'gpu'; use cpu, cuda or cuda:N ...
    """
    available = available_devices()
    shown = ", ".join(available)
    if isinstance(spec, bool) or not isinstance(spec, (str, int, torch.device)):
        raise InputError(
            f"{name} must be a device name such as 'cpu' or 'cuda:0', got {type(spec).__name__} "
            f"{spec!r}; available: {shown}"
        )
    try:
        dev = torch.device(spec.strip() if isinstance(spec, str) else spec)
    except (RuntimeError, TypeError, ValueError) as err:
        raise InputError(
            f"unknown {name} {spec!r}; use cpu, cuda or cuda:N (available here: {shown})"
        ) from err
    if dev.type == "cpu":
        return dev
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(
                f"{name} {str(dev)!r}: cuda is not available on this machine ({_cuda_reason()}); "
                f"available: {shown}"
            )
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise InputError(
                f"{name} {str(dev)!r}: this machine has {count} CUDA GPU"
                f"{'s' if count != 1 else ''} (cuda:0 to cuda:{count - 1}); available: {shown}"
            )
        return dev
    if dev.type == "mps":
        if not _mps_available():
            raise InputError(
                f"{name} 'mps' is not available on this machine (Apple-silicon GPUs only); "
                f"available: {shown}"
            )
        return dev
    if dev.type == "meta":
        raise InputError(f"{name} 'meta' holds no data and cannot run a model; available: {shown}")
    raise InputError(f"{name} {str(dev)!r} is not supported by robustcv; available: {shown}")
