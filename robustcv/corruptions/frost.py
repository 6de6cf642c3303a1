"""Procedural frost textures for the ``frost`` corruption (robustcv's own; nothing downloaded).

ImageNet-C's frost blends a random crop of one of six frost photographs into the image; those
photos cannot be shipped with robustcv. Instead robustcv synthesises five textures, one per photo
the reference can pick (it never picks the sixth; two of the five are the same photo, hence two
textures of the same style with different seeds):

=====  ==================  =========  ====================================================
index  style               size       look
=====  ==================  =========  ====================================================
0      ``glass``           600 x 900  rippled, bluish frosted glass
1      ``needles``         315 x 560  dense bright-white ice needles and feathers
2      ``needles``         315 x 560  same style, another seed
3      ``window``          350 x 527  grey window frost, many small crystals, vertical drift
4      ``stars``           495 x 660  darker blue-grey glass with six-armed star crystals
=====  ==================  =========  ====================================================

How a texture is made (all in torch, on the CPU, from a fixed seed; the same textures on every
run, identical up to float rounding across machines):

1. **Structure.** Ice crystals are rendered as kernels (a thin stem with side branches at +-60
   degrees, the dendritic habit of ice, or six-armed stars) and scattered by FFT convolution
   with sparse random seed points, one kernel per orientation and size; a smooth random
   orientation field makes neighbouring crystals grow alike (feathers). Rippled glass is a
   ridged multi-octave noise. A saturating tone curve ``1 - exp(-g s)`` turns overlapping
   crystals white.
2. **Calibration** (Heeger-Bergen style texture matching), per colour channel, towards summary
   statistics of the corresponding reference photo, measured once (:data:`_STATS`) with the
   functions below on what the corruption actually uses -- crops of 224 / 1.1 = 204 texture
   pixels:

   * the crop-weighted histogram (17 quantiles, :func:`crop_quantiles`), by monotone remapping;
   * the power per octave of the crops (:func:`crop_band_power`, 8 octaves) and of the
     variation between crops (:func:`large_scale_power`), by a radial gain in the Fourier
     domain;
   * the average brightness gradient of a crop (:func:`crop_slopes`: the photos are lit from
     above, so every crop is about 0.06-0.13 brighter at the top), by a global ramp.

   The steps alternate, then a few spectral corrections finish. The result matches the
   reference's crop statistics -- brightness, contrast, tint, spatial spectrum, gradient --
   without embedding any photo: 90 numbers per texture.

The textures are generated lazily on first use (a few seconds on one core) and cached per
process; the corruption scales them like the reference scales its photos (1.1x, or more to
cover a larger image).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import torch

__all__ = ["FROST_STYLES", "frost_textures", "make_frost_texture"]

FROST_STYLES: tuple[str, ...] = ("glass", "needles", "window", "stars")
"""Texture styles understood by :func:`make_frost_texture`."""


@dataclass(frozen=True)
class _Target:
    style: str
    height: int
    width: int
    seed: int
    quantiles: tuple[tuple[float, ...], ...]  # per channel: crop_quantiles, 17 levels
    bands: tuple[tuple[float, ...], ...]  # per channel: large_scale_power, crop_band_power
    slopes: tuple[tuple[float, ...], ...]  # per channel: crop_slopes


# Summary statistics of the reference's frost photos (RGB, values in [0, 1]): per photo, the
# crop-weighted quantiles (crop_quantiles: levels 0, 1/16, ..., 1) of R, G and B, then for R, G
# and B the 3 large-scale powers (large_scale_power) and the 8 crop octave powers
# (crop_band_power), then for R, G and B the average-crop gradient (crop_slopes), 90 numbers.
# Measured once with those functions from imagecorruptions 1.1.2's frost1.png, frost2.png
# (frost3.png is the same photo), frost4.jpg and frost5.jpg.
_STATS = """
[frost1.png]
0.05882 0.1569 0.1804 0.2039 0.2196 0.2353 0.251 0.2667 0.2824 0.302 0.3216 0.3451 0.3686
0.4 0.4392 0.4941 0.7882 0.3882 0.4863 0.5059 0.5216 0.5333 0.5451 0.5529 0.5647 0.5765
0.5843 0.5961 0.6078 0.6196 0.6392 0.6588 0.6863 0.902 0.451 0.5569 0.5765 0.5882 0.6 0.6118
0.6235 0.6314 0.6431 0.651 0.6627 0.6706 0.6824 0.698 0.7137 0.7373 0.9216 0.001202 0.002227
0.001883 0.002934 0.001153 0.0005917 0.0004373 0.0006783 0.00151 0.001065 4.063e-06
0.0004248 0.0008489 0.0006914 0.001063 0.0004295 0.0002328 0.0001679 0.0002603 0.0005417
0.0003641 1.326e-06 0.0002447 0.0006401 0.0007242 0.0009708 0.000394 0.0002155 0.0001605
0.00024 0.0004675 0.0002939 1.007e-06 -0.0001692 -2.298e-05 -5.9e-05 -2.819e-05 -1.52e-05
-2.963e-05
[frost2.png]
0.2157 0.6392 0.6863 0.7137 0.7333 0.749 0.7647 0.7765 0.7882 0.8 0.8078 0.8196 0.8314
0.8431 0.8549 0.8745 0.9922 0.2196 0.6549 0.698 0.7294 0.749 0.7647 0.7804 0.7922 0.8078
0.8157 0.8275 0.8392 0.851 0.8627 0.8784 0.898 1 0.2353 0.6824 0.7294 0.7608 0.7843 0.8
0.8157 0.8314 0.8431 0.8549 0.8667 0.8784 0.8902 0.902 0.9176 0.9333 1 0 0.0006461 0.001503
0.0009943 0.0005541 0.0005317 0.0008266 0.0008191 0.0009779 0.0004959 6.833e-07 0 0.0008243
0.001664 0.001125 0.000599 0.0005707 0.0008751 0.0008421 0.0009811 0.0004967 6.798e-07 0
0.0008794 0.001777 0.001271 0.000703 0.0006409 0.0009234 0.0008699 0.0009873 0.0004976
6.88e-07 -0.0005311 -0.0001265 -0.0005744 -0.000144 -0.0006049 -0.0001445
[frost4.jpg]
0.05882 0.4 0.451 0.4824 0.502 0.5216 0.5412 0.5569 0.5725 0.5843 0.6 0.6118 0.6314 0.651
0.6745 0.7176 0.9843 0.09412 0.4588 0.5098 0.5412 0.5608 0.5804 0.6 0.6157 0.6275 0.6431
0.6588 0.6706 0.6863 0.7098 0.7333 0.7765 1 0.1216 0.502 0.5529 0.5843 0.6078 0.6275 0.6471
0.6627 0.6784 0.6941 0.7098 0.7255 0.7412 0.7647 0.7922 0.8353 1 0 0.003837 0.0009684
0.001391 0.0005971 0.0006173 0.001183 0.001853 0.002778 0.00158 5.001e-06 0 0.003763
0.001006 0.001422 0.0006016 0.0006454 0.001209 0.001851 0.002773 0.001578 5.016e-06 0
0.004308 0.001105 0.001655 0.0007399 0.0008016 0.001453 0.002045 0.002801 0.001571 5.075e-06
-0.0002965 5.826e-05 -0.0002935 3.882e-05 -0.0003034 3.763e-05
[frost5.jpg]
0.0549 0.1882 0.2275 0.2588 0.2863 0.3098 0.3333 0.3569 0.3804 0.4039 0.4314 0.4588 0.4902
0.5294 0.5765 0.651 1 0.09804 0.2353 0.2745 0.3059 0.3333 0.3569 0.3804 0.4039 0.4275 0.451
0.4745 0.5059 0.5373 0.5725 0.6157 0.6902 1 0.1412 0.2824 0.3255 0.3569 0.3804 0.4078 0.4275
0.451 0.4745 0.498 0.5216 0.549 0.5804 0.6157 0.6588 0.7294 1 0 0.007058 0.002375 0.002216
0.002376 0.00288 0.003337 0.003251 0.003157 0.002571 5.258e-05 0 0.006469 0.002186 0.002092
0.002255 0.002744 0.00321 0.003215 0.003148 0.002568 5.258e-05 0 0.005712 0.001949 0.00192
0.002067 0.002525 0.003001 0.00315 0.003139 0.002564 5.254e-05 -0.0005127 -8.537e-05
-0.0004881 -9.06e-05 -0.0004512 -9.449e-05
"""


_Stats = tuple[tuple[tuple[float, ...], ...], ...]


def _parse_stats() -> dict[str, _Stats]:
    out: dict[str, _Stats] = {}
    for block in _STATS.split("[")[1:]:
        name, body = block.split("]", 1)
        v = [float(t) for t in body.split()]
        if len(v) != 90:
            raise ValueError(f"frost statistics for {name}: {len(v)} numbers, expected 90")
        q = tuple(tuple(v[17 * c : 17 * c + 17]) for c in range(3))
        b = tuple(tuple(v[51 + 11 * c : 62 + 11 * c]) for c in range(3))
        g = tuple(tuple(v[84 + 2 * c : 86 + 2 * c]) for c in range(3))
        out[name] = (q, b, g)
    return out


_STAT = _parse_stats()

_TARGETS: tuple[_Target, ...] = (
    _Target("glass", 600, 900, 101, *_STAT["frost1.png"]),
    _Target("needles", 315, 560, 202, *_STAT["frost2.png"]),
    _Target("needles", 315, 560, 303, *_STAT["frost2.png"]),
    _Target("window", 350, 527, 404, *_STAT["frost4.jpg"]),
    _Target("stars", 495, 660, 505, *_STAT["frost5.jpg"]),
)


# --- building blocks ----------------------------------------------------------------------------

_DT = torch.float32


def _radial_freq(h: int, w: int) -> torch.Tensor:
    fy = torch.fft.fftfreq(h, dtype=torch.float64)
    fx = torch.fft.rfftfreq(w, dtype=torch.float64)
    return torch.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2).to(_DT)


def _spectral_noise(h: int, w: int, beta: float, gen: torch.Generator) -> torch.Tensor:
    """Gaussian noise with power ~ f^-beta, zero mean, unit variance, (h, w)."""
    white = torch.randn(h, w, generator=gen, dtype=_DT)
    r = _radial_freq(h, w)
    gain = torch.where(r > 0, r.clamp(min=1e-6) ** (-beta / 2.0), torch.zeros_like(r))
    out = torch.fft.irfft2(torch.fft.rfft2(white) * gain, s=(h, w))
    return (out - out.mean()) / out.std().clamp(min=1e-12)


Segment = tuple[float, float, float, float, float, float]


def _segments_kernel(segments: list[Segment], size: int, width: float) -> torch.Tensor:
    """Render line segments (y0, x0, y1, x1, a0, a1) as a (size, size) max-composited kernel."""
    c = (size - 1) / 2.0
    t = torch.arange(size, dtype=_DT) - c
    py, px = t[:, None], t[None, :]
    out = torch.zeros(size, size, dtype=_DT)
    reach = 4.0 * width + 1.0
    for y0, x0, y1, x1, a0, a1 in segments:
        dy, dx = y1 - y0, x1 - x0
        ll = dy * dy + dx * dx
        if ll <= 0:
            continue
        # only the segment's bounding box (plus the line's blur) is touched
        r0 = max(math.floor(min(y0, y1) - reach + c), 0)
        r1 = min(math.ceil(max(y0, y1) + reach + c) + 1, size)
        c0 = max(math.floor(min(x0, x1) - reach + c), 0)
        c1 = min(math.ceil(max(x0, x1) + reach + c) + 1, size)
        if r0 >= r1 or c0 >= c1:
            continue
        yy, xx = py[r0:r1], px[:, c0:c1]
        u = (((yy - y0) * dy + (xx - x0) * dx) / ll).clamp(0.0, 1.0)
        d2 = (yy - (y0 + u * dy)) ** 2 + (xx - (x0 + u * dx)) ** 2
        # capped exponent: no denormals (they are very slow on x86)
        val = (a0 + (a1 - a0) * u) * torch.exp(-(d2 / (2.0 * width * width)).clamp(max=30.0))
        out[r0:r1, c0:c1] = torch.maximum(out[r0:r1, c0:c1], val)
    return out


def _dendrite(length: float, angle: float, branches: int, spread: float) -> list[Segment]:
    """A stem from the origin with paired side branches at +-60 degrees, shorter to the tip."""
    ca, sa = math.cos(angle), math.sin(angle)
    segs: list[Segment] = [(0.0, 0.0, length * sa, length * ca, 1.0, 0.4)]
    for j in range(1, branches + 1):
        f = j / (branches + 1)
        by, bx = f * length * sa, f * length * ca
        blen = spread * (1.0 - f) * length
        for side in (-1.0, 1.0):
            b = angle + side * math.pi / 3.0
            segs.append((by, bx, by + blen * math.sin(b), bx + blen * math.cos(b), 0.7, 0.25))
    return segs


def _star(radius: float, angle: float, branches: int) -> list[Segment]:
    segs: list[Segment] = []
    for k in range(6):
        segs += _dendrite(radius, angle + k * math.pi / 3.0, branches, 0.45)
    return segs


def _scatter(
    h: int,
    w: int,
    kernels: list[torch.Tensor],
    density: torch.Tensor,
    gen: torch.Generator,
) -> torch.Tensor:
    """Sparse random seeds (probability ``density[k]``) circularly convolved with kernel k, summed.

    ``density`` is (K, h, w) or broadcastable to it.
    """
    n = len(kernels)
    u = torch.rand(n, h, w, generator=gen, dtype=_DT)
    amp = torch.rand(n, h, w, generator=gen, dtype=_DT)
    seeds = torch.where(u < density, 0.5 + 0.5 * amp, torch.zeros_like(amp))
    placed = torch.zeros(n, h, w, dtype=_DT)
    for i, k in enumerate(kernels):
        size = k.shape[0]
        idx = torch.arange(size) - size // 2
        iy, ix = idx.remainder(h), idx.remainder(w)
        placed[i].index_put_((iy[:, None], ix[None, :]), k, accumulate=True)
    spec = (torch.fft.rfft2(seeds) * torch.fft.rfft2(placed)).sum(0)
    return torch.fft.irfft2(spec, s=(h, w)).clamp(min=0.0)


def _orientation_weights(
    angles: list[float], h: int, w: int, gen: torch.Generator, kappa: float
) -> torch.Tensor:
    """(K, h, w) weights summing to K that favour, region by region, some orientations.

    A smooth random orientation field picks which kernels dominate where, so neighbouring
    crystals grow alike (feather-like parallel growth).
    """
    field = _spectral_noise(h, w, 4.0, gen) * math.pi
    a = torch.tensor(angles, dtype=_DT)[:, None, None]
    wts = torch.exp(kappa * torch.cos(2.0 * (field[None] - a)))
    return wts * (len(angles) / wts.sum(0, keepdim=True))


def _tone(s: torch.Tensor, gain: float) -> torch.Tensor:
    return 1.0 - torch.exp(-gain * s / s.mean().clamp(min=1e-12))


def _rand(gen: torch.Generator) -> float:
    return float(torch.rand((), generator=gen, dtype=torch.float64))


# --- styles -------------------------------------------------------------------------------------


def _crystals(
    h: int,
    w: int,
    gen: torch.Generator,
    scales: tuple[tuple[float, int, float, float], ...],
    *,
    star: bool = False,
    bias: float | None = None,
    kappa: float = 2.0,
) -> torch.Tensor:
    """Scattered dendrites (or stars): scales are (length, orientations, line width, density)."""
    kernels: list[torch.Tensor] = []
    angles: list[float] = []
    dens: list[float] = []
    rot = _rand(gen) * math.pi
    for length, n_orient, width, density in scales:
        for i in range(n_orient):
            if bias is not None:
                a = bias + 0.8 * (_rand(gen) - 0.5) * math.pi
            else:
                a = rot + 2.0 * math.pi * (i + 0.5 * _rand(gen)) / n_orient
            if star:
                segs = _star(length, a, max(2, int(length / 4)))
            else:
                segs = _dendrite(length, a, max(2, int(length / 6)), 0.4)
            kernels.append(_segments_kernel(segs, 2 * int(length) + 3, width))
            angles.append(a)
            dens.append(density)
    weights = _orientation_weights(angles, h, w, gen, 0.0 if star else kappa)
    density_map = torch.tensor(dens, dtype=_DT)[:, None, None] * weights
    return _scatter(h, w, kernels, density_map, gen)


def _structure(style: str, h: int, w: int, gen: torch.Generator) -> torch.Tensor:
    """Grey structure (h, w) of one style, roughly in [0, 1]."""
    haze = _spectral_noise(h, w, 3.0, gen).tanh()
    if style == "glass":
        ridges = torch.zeros(h, w, dtype=_DT)
        for beta, amp in ((3.2, 1.0), (2.6, 0.45)):
            n = _spectral_noise(h, w, beta, gen)
            ridges += amp * (1.0 - n.abs().clamp(max=2.0) / 2.0) ** 4
        return ridges / ridges.max() + 0.3 * haze
    if style == "needles":
        s = _crystals(h, w, gen, ((60.0, 8, 0.8, 6e-4), (26.0, 8, 0.7, 1e-3), (9.0, 6, 0.6, 2e-3)))
        return _tone(s, 1.2) + 0.1 * haze
    if style == "window":
        s = _crystals(h, w, gen, ((24.0, 8, 0.7, 1.5e-3), (10.0, 8, 0.6, 3e-3)), bias=-math.pi / 2)
        vertical = torch.linspace(0.0, 1.0, h, dtype=_DT)[:, None]
        return _tone(s, 1.0) * (0.75 + 0.25 * vertical) + 0.15 * haze
    if style == "stars":
        s = _crystals(h, w, gen, ((20.0, 4, 0.7, 5e-4), (9.0, 4, 0.6, 1e-3)), star=True)
        density = (0.5 + 0.5 * haze).clamp(min=0.05)
        return _tone(s * density, 0.8) + 0.2 * haze
    raise ValueError(f"unknown frost style {style!r}; use one of {', '.join(FROST_STYLES)}")


# --- calibration --------------------------------------------------------------------------------

#: Side of the calibration crops in texture pixels: a 224-pixel crop of the texture magnified
#: 1.1x, i.e. what the corruption blends into a 224x224 image.
CROP = 204
#: Crops per axis of the calibration grid (evenly spaced offsets).
_GRID = 4
_N_BANDS = 8


def _offsets(n: int) -> list[int]:
    if n <= CROP:
        return [0]
    return [round(i * (n - CROP) / (_GRID - 1)) for i in range(_GRID)]


@lru_cache(maxsize=8)
def _crop_band_index(size: int) -> torch.Tensor:
    """Octave (0..7, or -1) of every rfft2 frequency of a crop: 2^k <= r < 2^(k+1) cycles."""
    fy = torch.fft.fftfreq(size, dtype=torch.float64) * size
    fx = torch.fft.rfftfreq(size, dtype=torch.float64) * size
    r = torch.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2)
    band = torch.floor(torch.log2(r.clamp(min=0.5))).long()
    return torch.where((r >= 1) & (band < _N_BANDS), band, torch.full_like(band, -1))


def _octave_power(crops: torch.Tensor, bands: int) -> torch.Tensor:
    """Mean power per octave (cycles per crop) of crops (N, C, s, s): (C, bands) float64.

    Each crop's mean is removed first.
    """
    c, size = crops.shape[1], crops.shape[-1]
    crops = crops - crops.mean(dim=(-2, -1), keepdim=True)
    power = torch.fft.rfft2(crops).abs().square_().mean(0).to(torch.float64)
    power /= float(size * size) ** 2
    weight = torch.full(power.shape[-2:], 2.0, dtype=torch.float64)  # rfft: +-f share a column
    weight[:, 0] = 1.0
    if size % 2 == 0:
        weight[:, -1] = 1.0
    band = _crop_band_index(size).reshape(-1)
    flat = (power * weight).reshape(c, -1)
    keep = (band >= 0) & (band < bands)
    out = torch.zeros(c, bands, dtype=torch.float64)
    out.index_add_(1, band[keep], flat[:, keep])
    return out


#: Octaves of :func:`crop_band_power` measured on an 8x reduced texture with densely placed
#: crops (a handful of Fourier coefficients carry each of them, so a coarse grid of crops is
#: too noisy); the others come from a 4x4 grid of full-resolution crops.
_LOW_OCTAVES = 3
_REDUCE = 8


def crop_band_power(img: torch.Tensor) -> torch.Tensor:
    """Mean power per octave (cycles per crop) of ``CROP``-pixel crops of ``img``: (C, 8).

    Per channel of ``img`` (C, h, w), each crop's mean removed, float64.

    The same quantity as the fidelity statistics' octave power, on the unmagnified texture:
    octaves 0-2 from crops every 8 pixels of an 8x box-reduced copy, octaves 3-7 from a 4x4 grid
    of crops at full resolution.

    Example:
        >>> crop_band_power(torch.rand(1, 240, 260)).shape
        torch.Size([1, 8])
    """
    _, h, w = img.shape
    size = min(CROP, h, w)
    x = img.to(torch.float32)
    crops = torch.stack(
        [x[:, y : y + size, xx : xx + size] for y in _offsets(h) for xx in _offsets(w)]
    )
    high = _octave_power(crops, _N_BANDS)
    small = torch.nn.functional.avg_pool2d(x[None], _REDUCE)[0]
    s = size // _REDUCE
    _, hs, ws = small.shape
    ys = range(0, hs - s + 1)
    xs = range(0, ws - s + 1)
    low_crops = torch.stack([small[:, y : y + s, xx : xx + s] for y in ys for xx in xs])
    low = _octave_power(low_crops, _LOW_OCTAVES)
    high[:, :_LOW_OCTAVES] = low
    return high


#: Octaves below one cycle per crop (the variation between crops), in cycles per crop.
_LARGE = ((0.0, 0.25), (0.25, 0.5), (0.5, 1.0))


def large_scale_power(img: torch.Tensor) -> torch.Tensor:
    """Power of each channel of ``img`` (C, h, w) below one cycle per crop: (C, 3).

    This is the variation between crops, which :func:`crop_band_power` leaves out, in the
    ranges [0, 1/4), [1/4, 1/2) and [1/2, 1) cycles per ``CROP`` pixels.

    Example:
        >>> large_scale_power(torch.rand(3, 240, 260)).shape
        torch.Size([3, 3])
    """
    _, h, w = img.shape
    x = img.to(torch.float32)
    spec = torch.fft.rfft2(x - x.mean(dim=(1, 2), keepdim=True))
    r = _freq_grid(h, w) * CROP
    weight = torch.full(r.shape, 2.0, dtype=torch.float64)
    weight[:, 0] = 1.0
    if w % 2 == 0:
        weight[:, -1] = 1.0
    power = spec.abs().square_().to(torch.float64) / float(h * w) ** 2 * weight
    out = [power[:, (r > lo) & (r < hi)].sum(1) for lo, hi in _LARGE]
    return torch.stack(out, dim=1)


@lru_cache(maxsize=16)
def _freq_grid(h: int, w: int) -> torch.Tensor:
    """Radial frequency (cycles per pixel) of every rfft2 index of an (h, w) image."""
    fy = torch.fft.fftfreq(h, dtype=torch.float64)
    fx = torch.fft.rfftfreq(w, dtype=torch.float64)
    return torch.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2)


def _coverage(n: int) -> torch.Tensor:
    """How often each position of an axis of length n falls in a uniformly placed crop."""
    if n <= CROP:
        return torch.ones(n, dtype=torch.float64)
    pos = torch.arange(n, dtype=torch.float64)
    starts = n - CROP + 1
    lo = (pos - CROP + 1).clamp(min=0)
    hi = pos.clamp(max=starts - 1)
    return (hi - lo + 1) / starts


def crop_quantiles(img: torch.Tensor, levels: int = 17, stride: int = 1) -> torch.Tensor:
    """Crop-weighted quantiles (levels 0..1) of each channel of ``img`` (C, h, w): (C, levels).

    Every pixel is weighted by how often a uniformly placed ``CROP``-pixel crop contains it.

    ``stride`` > 1 estimates them from every stride-th row and column (faster).

    Example:
        >>> crop_quantiles(torch.rand(3, 210, 250)).shape
        torch.Size([3, 17])
    """
    c, h, w = img.shape
    cov = _coverage(h)[::stride, None] * _coverage(w)[None, ::stride]
    wts = cov.reshape(-1)
    sub = img[:, ::stride, ::stride].reshape(c, -1).to(torch.float64)
    vals, order = torch.sort(sub, dim=1)
    cum = torch.cumsum(wts[order], dim=1)
    cum = (cum - 0.5 * wts[order]) / cum[:, -1:]
    probs = torch.linspace(0.0, 1.0, levels, dtype=torch.float64).expand(c, levels).contiguous()
    idx = torch.searchsorted(cum, probs).clamp(max=vals.shape[1] - 1)
    return vals.gather(1, idx)


def crop_slopes(img: torch.Tensor) -> torch.Tensor:
    """Slopes (d/dy, d/dx per pixel) of the average ``CROP``-pixel crop of ``img``: (C, 2).

    The least-squares plane through the mean of all crops of each channel of ``img``
    (C, h, w), float64.

    A crop at a uniformly random position has this brightness gradient on average; frost photos
    have one (lit from above), a stationary texture does not.

    Example:
        >>> ramp = torch.linspace(0, 1, 300)[:, None].expand(300, 250)[None]
        >>> [round(v, 5) for v in crop_slopes(ramp)[0].tolist()]
        [0.00334, 0.0]
    """
    _, h, w = img.shape
    size_y, size_x = min(CROP, h), min(CROP, w)
    ny, nx = h - size_y + 1, w - size_x + 1
    x = img.to(torch.float64)
    cs = torch.nn.functional.pad(x.cumsum(1).cumsum(2), (1, 0, 1, 0))
    i = torch.arange(size_y)[:, None]
    j = torch.arange(size_x)[None, :]
    total = cs[:, i + ny, j + nx] - cs[:, i, j + nx] - cs[:, i + ny, j] + cs[:, i, j]
    avg = total / (ny * nx)  # (C, size_y, size_x)
    yy = torch.arange(size_y, dtype=torch.float64) - (size_y - 1) / 2.0
    xx = torch.arange(size_x, dtype=torch.float64) - (size_x - 1) / 2.0
    dy = (avg.mean(2) * yy).sum(1) / (yy * yy).sum().clamp(min=1e-12)
    dx = (avg.mean(1) * xx).sum(1) / (xx * xx).sum().clamp(min=1e-12)
    return torch.stack((dy, dx), dim=1)


def _ramp(slopes: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Zero-mean linear ramps (C, h, w) with the given (C, 2) per-pixel slopes."""
    yy = torch.arange(h, dtype=torch.float64) - (h - 1) / 2.0
    xx = torch.arange(w, dtype=torch.float64) - (w - 1) / 2.0
    ramp = slopes[:, 0, None, None] * yy[:, None] + slopes[:, 1, None, None] * xx[None, :]
    return ramp.to(torch.float32)


def _global_slopes(img: torch.Tensor) -> torch.Tensor:
    """(C, 2) slopes of the least-squares plane through each whole channel."""
    _, h, w = img.shape
    x = img.to(torch.float64)
    yy = torch.arange(h, dtype=torch.float64) - (h - 1) / 2.0
    xx = torch.arange(w, dtype=torch.float64) - (w - 1) / 2.0
    dy = (x.mean(2) * yy).sum(1) / (yy * yy).sum().clamp(min=1e-12)
    dx = (x.mean(1) * xx).sum(1) / (xx * xx).sum().clamp(min=1e-12)
    return torch.stack((dy, dx), dim=1)


def _set_slopes(img: torch.Tensor, want: torch.Tensor) -> torch.Tensor:
    """Add a global ramp so that :func:`crop_slopes` of ``img`` becomes ``want`` (C, 2)."""
    _, h, w = img.shape
    return img + _ramp(want - crop_slopes(img), h, w)


def _match_bands(img: torch.Tensor, have: torch.Tensor, want: torch.Tensor) -> torch.Tensor:
    """Scale the spectrum of each channel of (C, h, w) ``img`` by sqrt(want / have) (C, 11).

    The first three entries are the ranges of ``_LARGE``, the others the crop octaves k = 0..7
    (a constant gain in each). The global plane (mean and gradient) is kept.
    """
    _, h, w = img.shape
    nl = len(_LARGE)
    log_gain = 0.5 * torch.log(want.clamp(min=1e-20) / have.clamp(min=1e-20))
    bands = log_gain[:, nl:]
    r = _freq_grid(h, w).clamp(min=1e-12) * CROP  # cycles per crop
    octave = torch.floor(torch.log2(r)).long().clamp(0, _N_BANDS - 1)
    log_g = bands[:, octave]
    for j, (a, b) in enumerate(_LARGE):
        log_g = torch.where((r >= a) & (r < b), log_gain[:, j : j + 1, None], log_g)
    gain = torch.exp(log_g).to(torch.float32)
    # the global plane (mean and gradient) is set separately; filter the rest
    plane = img.mean(dim=(1, 2), keepdim=True) + _ramp(_global_slopes(img), h, w)
    spec = torch.fft.rfft2(img - plane) * gain
    return torch.fft.irfft2(spec, s=(h, w)) + plane


def _match_histogram(img: torch.Tensor, have: torch.Tensor, want: torch.Tensor) -> torch.Tensor:
    """Monotone remap of each channel of (C, h, w) ``img``, quantiles ``have`` to ``want``.

    Piecewise linear between the (C, L) knots; values beyond the end knots are shifted.
    """
    c = img.shape[0]
    levels = have.shape[1]
    have = (have + torch.arange(levels, dtype=torch.float64) * 1e-7).to(torch.float32)
    want = want.to(torch.float32)
    flat = img.reshape(c, -1).contiguous()
    idx = torch.searchsorted(have, flat).clamp_(1, levels - 1)
    x0, x1 = have.gather(1, idx - 1), have.gather(1, idx)
    y0, y1 = want.gather(1, idx - 1), want.gather(1, idx)
    t = ((flat - x0) / (x1 - x0)).clamp_(0.0, 1.0)
    out = y0 + t * (y1 - y0)
    out = torch.where(flat < have[:, :1], want[:, :1] + (flat - have[:, :1]), out)
    out = torch.where(flat > have[:, -1:], want[:, -1:] + (flat - have[:, -1:]), out)
    return out.reshape(img.shape)


def _spectrum(img: torch.Tensor) -> torch.Tensor:
    """(C, 11): the three large-scale powers, then the 8 crop octaves."""
    return torch.cat((large_scale_power(img), crop_band_power(img)), dim=1)


def make_frost_texture(
    style: str,
    height: int,
    width: int,
    seed: int,
    quantiles: tuple[tuple[float, ...], ...] | None = None,
    bands: tuple[tuple[float, ...], ...] | None = None,
    slopes: tuple[tuple[float, ...], ...] | None = None,
    iterations: int = 2,
    final_steps: int = 3,
) -> torch.Tensor:
    """Synthesise one RGB frost texture (3, height, width), float32 in [0, 1], on the CPU.

    Args:
        style: one of :data:`FROST_STYLES`.
        height: texture height in pixels.
        width: texture width in pixels.
        seed: seed of the texture's private generator.
        quantiles: per channel, target quantiles at evenly spaced levels 0..1; ``None`` keeps
            a neutral bluish-white tint.
        bands: per channel, target large-scale and crop octave powers (:func:`large_scale_power`,
            :func:`crop_band_power`); ``None`` skips spectral matching.
        slopes: per channel, the target average-crop gradient (:func:`crop_slopes`); ``None``
            leaves the gradient as the structure made it.
        iterations: rounds of alternating spectrum and histogram matching.
        final_steps: spectrum-only corrections at the end.

    Example:
        >>> t = make_frost_texture("needles", 64, 96, seed=0)
        >>> t.shape, bool(t.min() >= 0), bool(t.max() <= 1)
        (torch.Size([3, 64, 96]), True, True)
    """
    if style not in FROST_STYLES:
        raise ValueError(f"unknown frost style {style!r}; use one of {', '.join(FROST_STYLES)}")
    gen = torch.Generator().manual_seed(seed)
    base = _structure(style, height, width, gen)
    base = (base - base.min()) / (base.max() - base.min()).clamp(min=1e-12)
    tint = torch.tensor((0.86, 0.92, 1.0), dtype=base.dtype)[:, None, None]
    img = base[None] * tint
    if quantiles is None:
        return img.clamp(0.0, 1.0).to(torch.float32)
    want_q = torch.tensor(quantiles, dtype=torch.float64)
    want_b = torch.tensor(bands, dtype=torch.float64) if bands is not None else None
    want_s = torch.tensor(slopes, dtype=torch.float64) if slopes is not None else None
    img = img.to(torch.float32)
    for _ in range(max(iterations, 1)):
        if want_b is not None:
            img = _match_bands(img, _spectrum(img), want_b)
        img = _match_histogram(img, crop_quantiles(img, want_q.shape[1], stride=2), want_q)
        if want_s is not None:
            img = _set_slopes(img, want_s)
    if want_b is not None:
        # Finish on the spectrum (it keeps the mean; the histogram moves only slightly), aiming
        # past the target where a step falls short. A crop's lowest octave is mostly the
        # leakage of the texture's [1/2, 1) cycles-per-crop range (a ramp across the crop), so
        # that range is steered by the crop octave instead of by its own target.
        nl = len(_LARGE)
        target = want_b.clone()
        have = _spectrum(img)
        for _ in range(final_steps):
            img = _match_bands(img, have, target)
            if want_s is not None:
                img = _set_slopes(img, want_s)
            img = _match_histogram(img, crop_quantiles(img, want_q.shape[1], stride=2), want_q)
            have = _spectrum(img)
            corr = (want_b / have.clamp(min=1e-20)).clamp(0.25, 4.0)
            corr[:, nl - 1] = corr[:, nl]
            target = target * corr
    return img.clamp(0.0, 1.0)


@lru_cache(maxsize=1)
def frost_textures() -> tuple[torch.Tensor, ...]:
    """The five frost textures of the ``frost`` corruption (cached; CPU float32 (3, h, w)).

    Generated on one thread (temporarily), so they are bit-identical whatever the caller's
    thread settings.

    Example:
        >>> [tuple(t.shape) for t in frost_textures()][:2]
        [(3, 600, 900), (3, 315, 560)]
    """
    # One thread: multi-threaded reductions and FFTs round differently with the thread count,
    # and the textures must be the same whatever the caller's torch.set_num_threads.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return tuple(
            make_frost_texture(t.style, t.height, t.width, t.seed, t.quantiles, t.bands, t.slopes)
            for t in _TARGETS
        )
    finally:
        torch.set_num_threads(threads)
