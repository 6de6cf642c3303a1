"""Make imagecorruptions 1.1.2 (the last PyPI release) run on current numpy / scikit-image.

Benchmark-only: robustcv itself never imports this module or imagecorruptions.

imagecorruptions 1.1.2 predates NumPy 2, scikit-image 0.19 and setuptools 81:

1. ``skimage.filters.gaussian(..., multichannel=True)`` (glass_blur, gaussian_blur) raises
   ``TypeError``: the keyword became ``channel_axis``. The shim wraps ``gaussian`` and translates
   ``multichannel=True`` to ``channel_axis=-1`` (``False`` to ``None``).
2. ``np.float_`` (fog's plasma fractal) raises ``AttributeError`` on NumPy 2. The shim restores
   the alias ``np.float_ = np.float64``.
3. ``from pkg_resources import resource_filename`` fails when setuptools >= 81 (or none) is
   installed. The shim provides a minimal ``pkg_resources`` with ``resource_filename`` only when
   the real one cannot be imported (it is only used to locate the bundled frost photos).
4. impulse_noise calls ``skimage.util.random_noise``, which on scikit-image >= 0.20 draws from
   its own unseeded ``np.random.default_rng()``, so ``np.random.seed`` does not make it
   reproducible. The shim passes ``rng=`` drawn from numpy's global generator when none is given,
   so every corruption is reproducible from ``np.random.seed(s)``. (Statistics of the noise are
   unchanged: only the source of the random bits.)

Call :func:`apply` before ``import imagecorruptions``, or use :func:`load`.

Example::

    from ic_shims import load
    ic = load()
    np.random.seed(0)
    y = ic.corrupt(img_uint8, corruption_name="fog", severity=3)
"""

from __future__ import annotations

import functools
import importlib.util
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np

_APPLIED = False


def _patch_gaussian() -> None:
    import skimage.filters

    original = skimage.filters.gaussian
    if getattr(original, "_ic_shim", False):
        return

    @functools.wraps(original)
    def gaussian(image: Any, *args: Any, multichannel: bool | None = None, **kwargs: Any) -> Any:
        if multichannel is not None and "channel_axis" not in kwargs:
            kwargs["channel_axis"] = -1 if multichannel else None
        return original(image, *args, **kwargs)

    gaussian._ic_shim = True  # type: ignore[attr-defined]
    skimage.filters.gaussian = gaussian


def _patch_random_noise() -> None:
    import skimage.util

    original = skimage.util.random_noise
    if getattr(original, "_ic_shim", False):
        return

    @functools.wraps(original)
    def random_noise(image: Any, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("rng") is None and kwargs.get("seed") is None:
            kwargs["rng"] = int(np.random.randint(0, 2**31 - 1))
        return original(image, *args, **kwargs)

    random_noise._ic_shim = True  # type: ignore[attr-defined]
    skimage.util.random_noise = random_noise


def _patch_pkg_resources() -> None:
    try:
        import pkg_resources  # noqa: F401

        return
    except ImportError:
        pass

    def resource_filename(package: str, resource: str) -> str:
        spec = importlib.util.find_spec(package)
        if spec is None or spec.origin is None:
            raise ImportError(f"cannot locate package {package!r}")
        return str(Path(spec.origin).parent / resource)

    mod = types.ModuleType("pkg_resources")
    mod.resource_filename = resource_filename  # type: ignore[attr-defined]
    sys.modules["pkg_resources"] = mod


def apply() -> None:
    """Install the shims (idempotent). Must run before ``import imagecorruptions``."""
    global _APPLIED
    if _APPLIED:
        return
    if "imagecorruptions" in sys.modules:
        raise RuntimeError("apply() must run before imagecorruptions is imported")
    if not hasattr(np, "float_") or np.float_ is not np.float64:
        np.float_ = np.float64  # type: ignore[attr-defined]
    _patch_gaussian()
    _patch_random_noise()
    _patch_pkg_resources()
    _APPLIED = True


def load() -> types.ModuleType:
    """Apply the shims and return the imported ``imagecorruptions`` module."""
    apply()
    import imagecorruptions

    return imagecorruptions


def versions() -> dict[str, str]:
    """Versions of the reference and of the libraries its output depends on."""
    import importlib.metadata as md

    out = {}
    for pkg in ("imagecorruptions", "numpy", "scikit-image", "scipy", "opencv-python-headless"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "missing"
    import PIL

    out["pillow"] = PIL.__version__
    return out
