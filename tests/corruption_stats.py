"""Statistics that compare a corruption with its reference, in plain numpy (no robustcv).

Shared by ``benchmarks/make_fixtures.py`` (which computes them on imagecorruptions 1.1.2) and
``tests/test_corruptions_fidelity.py`` (which computes them on robustcv), so both sides use the
same definitions. Images are float arrays in [0, 1], channels last: ``(..., H, W, C)``.

Definitions:

* **mean absolute change** of a corrupted image ``y`` of ``x``: ``mean(|y - x|)`` over H, W, C.
* **octave power of the change** ``d = y - x``: remove each channel's mean from ``d``; take the
  2-D DFT ``D`` over (H, W); the power of a frequency is ``|D|^2 / (H W)^2``, so summed over all
  frequencies it equals the channel's variance of ``d`` (Parseval). The radial frequency of DFT
  index ``(ky, kx)`` is ``r = hypot(ky', kx')`` with ``ky' = ky`` for ``ky <= H/2`` and ``ky - H``
  otherwise (numpy's ``fftfreq(H) * H``): cycles per image. Octave band ``k`` (k = 0..7) is
  ``2^k <= r < 2^(k+1)``: [1,2), [2,4), ..., [64,128), [128,256) cycles per image; at 224x224 the
  last band holds the corner frequencies between 128 and 158. Band power is the **sum** of the
  power over the band's frequencies, averaged over channels; the 8 bands add up to the mean
  per-channel variance of the change (only r = 0, which is 0 after the mean removal, is left out).
"""

from __future__ import annotations

import functools

import numpy as np

#: Octave bands of the radial frequency, in cycles per image: [2^k, 2^(k+1)), k = 0..7.
BANDS: tuple[tuple[int, int], ...] = tuple((2**k, 2 ** (k + 1)) for k in range(8))


def mean_abs_change(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``mean |y - x|`` over the last three axes (H, W, C)."""
    d = np.asarray(y, np.float64) - np.asarray(x, np.float64)
    return np.abs(d).mean(axis=(-3, -2, -1))


def radial_frequency(height: int, width: int) -> np.ndarray:
    """Radial frequency (cycles per image) of every index of an ``(height, width)`` DFT."""
    fy = np.fft.fftfreq(height) * height
    fx = np.fft.fftfreq(width) * width
    return np.hypot(fy[:, None], fx[None, :])


@functools.cache
def _band_weights(height: int, width: int) -> np.ndarray:
    """(H * (W//2 + 1), 8) weights that sum the power of an ``rfft2`` layout into the bands.

    ``rfft2`` keeps columns 0..W//2; every column except 0 (and W/2 when W is even) stands for
    itself and its conjugate mirror, so it counts twice.
    """
    wr = width // 2 + 1
    r = radial_frequency(height, width)[:, :wr]
    mult = np.full(wr, 2.0)
    mult[0] = 1.0
    if width % 2 == 0:
        mult[-1] = 1.0
    out = np.zeros((height * wr, len(BANDS)))
    for k, (lo, hi) in enumerate(BANDS):
        out[:, k] = (((r >= lo) & (r < hi)) * mult[None, :]).reshape(-1)
    return out


def octave_power(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Power of the change ``y - x`` in each octave band of :data:`BANDS`: shape ``(..., 8)``."""
    d = np.asarray(y, np.float64) - np.asarray(x, np.float64)
    h, w = d.shape[-3], d.shape[-2]
    d = np.moveaxis(d, -1, -3)  # (..., C, H, W)
    d = d - d.mean(axis=(-2, -1), keepdims=True)
    spec = np.fft.rfft2(d)
    power = (spec.real**2 + spec.imag**2).mean(axis=-3) / float(h * w) ** 2  # (..., H, W//2+1)
    lead = power.shape[:-2]
    return (power.reshape(-1, power.shape[-2] * power.shape[-1]) @ _band_weights(h, w)).reshape(
        *lead, len(BANDS)
    )


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of two images in [0, 1] (inf when identical)."""
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0.0 else 10.0 * float(np.log10(1.0 / mse))
