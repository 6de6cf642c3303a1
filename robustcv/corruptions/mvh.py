"""Model-vs-human degradations (Geirhos et al. 2018, 2021), batched and seeded in torch.

The parametric image degradations of *Generalisation in humans and deep neural networks*
(Geirhos et al., NeurIPS 2018; code ``generalisation-humans-DNNs/code/image_manipulation.py``)
that the model-vs-human benchmark (``bethgelab/model-vs-human``) reuses. They are registered
with ``family="mvh"`` under an ``mvh-`` prefix; ``mvh-contrast`` is *not* ImageNet-C's
``contrast``.

**Severity = level index.** Each degradation has one ``"levels"`` table holding the published
level list in the published order; ``severity`` is the 1-based index into it, so
``corrupt(x, "mvh-contrast", 3)`` uses contrast 0.3 (the third of 1, .5, .3, .15, .1, .05, .03,
.01). Level 1 is the undegraded control wherever the study had one. ``robustcv list
corruptions`` prints the tables; :data:`MVH_EXCLUDED_LEVELS` (and each definition's
``notes``) gives the levels that model-vs-human drops from its benchmark scores
(``plotting/plot.py`` ``EXCLUDE_CONDITIONS``: the control, plus levels where mean human accuracy
is below 0.2).

==========================  =======================================  ===========================
name                        levels (severity 1, 2, ...)              MvH excludes (severities)
==========================  =======================================  ===========================
mvh-colour                  colour, greyscale (encoded 0, 1)         1 (colour)
mvh-contrast                contrast 1, .5, .3, .15, .1, .05, .03,   1, 7, 8
                            .01
mvh-uniform-noise           width 0, .03, .05, .1, .2, .35, .6, .9   1, 7, 8
                            (at 30% contrast)
mvh-low-pass                sigma 0, 1, 3, 5, 7, 10, 15, 40          1, 7, 8
mvh-high-pass               sigma inf, 3, 1.5, 1, .7, .55, .45, .4   1, 6, 7, 8
mvh-phase-noise             width 0, 30, 60, 90, 120, 150, 180 deg   1, 6, 7
mvh-power-equalisation      original, equalised (encoded 0, 1)       1 (original)
mvh-false-colour            true, opponent colour (encoded 0, 1)     1 (true colour)
mvh-rotation                0, 90, 180, 270 degrees                  1 (0 degrees)
mvh-salt-and-pepper         p 0, .1, .2, .35, .5, .65, .8, .95       none (not an MvH dataset)
                            (at 30% contrast)
==========================  =======================================  ===========================

**Greyscale first.** Every degradation except ``mvh-colour`` and ``mvh-false-colour`` converts
the image to grey first (luma ``0.2125 R + 0.7154 G + 0.0721 B`` on the stored values, as
scikit-image's ``rgb2gray``) and returns that grey in every channel, so RGB stays 3-channel.
A single-channel image is already grey; an image with another channel count is greyed by the
channel mean.

**Where we differ from the published code, and why:**

* *Phase noise* (``mvh-phase-noise``; MvH calls it phase scrambling): every frequency gets a
  phase shift ``U[-w, w]`` degrees and its conjugate frequency the opposite shift, so the output
  is exactly real (self-conjugate frequencies, DC and Nyquist, keep their phase). The original
  pairs flattened spectrum positions ``k`` and ``k + n/2 + 1``, which are not conjugate
  pairs, and then drops the imaginary part; the stated intent is the symmetric version.
* *Power equalisation*: the original sets the amplitude spectrum to the mean amplitude spectrum
  of its own stimulus set (``mean_power_spectrum_grey.npy``, 224x224 only), which robustcv cannot
  ship. We use a procedural natural-image spectrum for any size (:func:`mean_amplitude_spectrum`):
  amplitude ``proportional to 1 / |f|^alpha`` with ``alpha = 1`` (natural images have amplitude
  spectra falling roughly as 1/f: Field 1987; van der Schaaf & van Hateren 1996), frequency in
  cycles per pixel, DC set so the mean is the background grey 0.4423 (the original's dataset
  mean), and the overall level set so the RMS contrast (pixel standard deviation before
  clipping) is 0.13, about that of the mean amplitude spectrum of scikit-image's 16 bundled
  sample photos at 224x224 (measured 0.128). Each image keeps its own phases. The spectrum
  depends only on the image size, never on the batch.
* *False colour*: the original linearises with its own monitor's measured gamma table
  (``x_gamma_function.npy``) and converts to cones with a matrix measured on that monitor. We
  treat images as sRGB: decode with the sRGB transfer function (IEC 61966-2-1), convert linear
  RGB to CIE XYZ (D65) and to LMS cones with the Hunt-Pointer-Estevez matrix (D65-normalised),
  then to Brainard's (1996) cone-opponent axes around the background (linear mid-grey 0.5):
  luminance ``L + M``, ``L - (Lw/Mw) M`` and ``S - Sw/(Lw+Mw) (L + M)``, as the original does.
  The two chromatic axes are inverted, the result mapped back and clipped to [0, 1]. Greys
  (and any colour proportional to the background) are unchanged, so on a single-channel image
  ``mvh-false-colour`` is the identity; on other channel counts it is the identity too.
* *Rotation*: the original rotates (square, 224x224) grey images. A 90 or 270 degree rotation
  of a non-square image cannot keep its shape, so we rotate the centred ``min(H, W)`` square
  (counter-clockwise, like ``numpy.rot90``) and fill the rest with the background grey 0.4423;
  180 degrees flips the whole image whatever its shape.
* *Salt and pepper*: not one of MvH's 12 datasets; it comes from the 2018 paper's training
  experiments (``raw-data/fine-tuning/salt-and-pepper-png-experiment``). The level list
  p = 0, .1, .2, .35, .5, .65, .8, .95 is the one in ``image_manipulation.py``'s example
  (``noise_levels``); pixels become white with probability p/2 and black with p/2 after the
  grey image is reduced to 30% contrast. No exclusions are published; p = 0 is the control.
* Low-pass and high-pass use a Gaussian of standard deviation ``sigma`` truncated at
  ``int(4 sigma + 0.5)`` pixels with constant padding 0.4423, exactly like
  ``scipy.ndimage.gaussian_filter(mode="constant", cval=0.4423)`` (computed with FFTs in
  float64). The high-pass is ``grey - lowpass(grey)`` with its mean reset to 0.4423; at
  ``sigma = inf`` the low-pass is the constant 0.4423, so the output is the grey image with its
  mean moved to 0.4423.

Randomness (uniform noise, salt and pepper, phase noise) comes from the per-sample streams of
:class:`robustcv.corruptions.base.SampleRNG`, so an image's output depends only on the seed and
its own content.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType

import numpy as np
import torch

from robustcv.corruptions.base import (
    CorruptionDef,
    CorruptionFn,
    Params,
    SampleRNG,
    register_corruption,
)

__all__ = [
    "BACKGROUND_GREY",
    "MVH_EXCLUDED_LEVELS",
    "POWER_SPECTRUM_ALPHA",
    "POWER_SPECTRUM_RMS",
    "mean_amplitude_spectrum",
]

BACKGROUND_GREY = 0.4423
"""Background grey of the original code: its mean pixel value over all stimuli."""

POWER_SPECTRUM_ALPHA = 1.0
"""Exponent of the procedural amplitude spectrum ``1 / |f|^alpha`` (power equalisation)."""

POWER_SPECTRUM_RMS = 0.13
"""RMS contrast (pixel standard deviation) of the procedural mean spectrum."""

_GREY_WEIGHTS = (0.2125, 0.7154, 0.0721)
_TRUNCATE = 4.0

# ---------------------------------------------------------------------------- helpers


def _grey(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, 1, H, W) luma (scikit-image ``rgb2gray`` weights for RGB)."""
    c = x.shape[1]
    if c == 1:
        return x
    if c == 3:
        w = torch.tensor(_GREY_WEIGHTS, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        return (x * w).sum(dim=1, keepdim=True)
    return x.mean(dim=1, keepdim=True)


def _out(g: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Clip a grey result to [0, 1] and repeat it over the channels of ``like`` (float32)."""
    g = g.clamp(0.0, 1.0).to(torch.float32)
    return g.expand(-1, like.shape[1], -1, -1).contiguous()


def _adjust_contrast(g: torch.Tensor, c: float) -> torch.Tensor:
    return (1.0 - c) / 2.0 + c * g


def _gaussian_kernel(sigma: float, device: torch.device) -> torch.Tensor:
    radius = int(_TRUNCATE * sigma + 0.5)
    t = torch.arange(-radius, radius + 1, dtype=torch.float64, device=device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def _gaussian_filter(g: torch.Tensor, sigma: float, cval: float) -> torch.Tensor:
    """Separable Gaussian filter with constant padding ``cval``, in float64 (linear FFT conv).

    Matches ``scipy.ndimage.gaussian_filter(g, sigma, mode="constant", cval=cval)`` (truncate 4)
    on each (H, W) plane; ``sigma == 0`` returns the input.
    """
    y = g.to(torch.float64)
    if sigma <= 1e-15:
        return y
    kernel = _gaussian_kernel(sigma, g.device)
    radius = (kernel.numel() - 1) // 2
    y = y - cval
    for dim in (-2, -1):
        length = y.shape[dim]
        n = length + 2 * radius
        spec = torch.fft.rfft(y, n=n, dim=dim)
        k_spec = torch.fft.rfft(kernel, n=n)
        if dim == -2:
            k_spec = k_spec.view(-1, 1)
        y = torch.fft.irfft(spec * k_spec, n=n, dim=dim).narrow(dim, radius, length)
    return y + cval


def _conjugate_index(h: int, w: int, device: torch.device) -> torch.Tensor:
    """Flat index of the conjugate frequency (-ky mod H, -kx mod W) of each FFT position."""
    i = torch.arange(h, device=device).view(-1, 1)
    j = torch.arange(w, device=device).view(1, -1)
    return (((-i) % h) * w + ((-j) % w)).reshape(-1)


def _antisymmetric(u: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Turn per-frequency draws (B, H*W) into a phase field with phi(-f) = -phi(f).

    Each conjugate pair takes the draw of its lower flat index (negated for the other member);
    self-conjugate frequencies (DC, Nyquist) get 0.
    """
    conj = _conjugate_index(h, w, u.device)
    k = torch.arange(h * w, device=u.device)
    phi = torch.where(k < conj, u, -u[:, conj])
    return torch.where(k == conj, torch.zeros_like(phi), phi)


def mean_amplitude_spectrum(
    height: int, width: int, *, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """The procedural mean amplitude spectrum used by ``mvh-power-equalisation``.

    Amplitude ``s / |f|^alpha`` (``alpha`` = :data:`POWER_SPECTRUM_ALPHA`, ``|f|`` in cycles per
    pixel), scaled so that an image with this spectrum has pixel standard deviation
    :data:`POWER_SPECTRUM_RMS`; the DC term makes its mean :data:`BACKGROUND_GREY`. Unshifted
    FFT layout (DC at [0, 0]), float64, shape (H, W); amplitudes as returned by
    ``torch.fft.fft2`` (unnormalised).

    Example:
        >>> a = mean_amplitude_spectrum(32, 32)
        >>> a.shape, round(float(a[0, 0]) / (32 * 32), 4)
        (torch.Size([32, 32]), 0.4423)
        >>> round(float((a.pow(2).sum() - a[0, 0] ** 2).sqrt()) / (32 * 32), 4)
        0.13
    """
    dev = torch.device(device)
    fy = torch.fft.fftfreq(height, dtype=torch.float64, device=dev).view(-1, 1)
    fx = torch.fft.fftfreq(width, dtype=torch.float64, device=dev).view(1, -1)
    f = torch.sqrt(fy**2 + fx**2)
    amp = torch.zeros_like(f)
    ac = f > 0
    amp[ac] = f[ac].pow(-POWER_SPECTRUM_ALPHA)
    n = float(height * width)
    energy = float(amp.pow(2).sum())
    if energy > 0:
        amp = amp * (POWER_SPECTRUM_RMS * n / math.sqrt(energy))
    amp[0, 0] = BACKGROUND_GREY * n
    return amp


def _srgb_to_linear(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055).pow(2.4))


def _linear_to_srgb(y: torch.Tensor) -> torch.Tensor:
    y = y.clamp(0.0, 1.0)
    return torch.where(y <= 0.0031308, 12.92 * y, 1.055 * y.pow(1.0 / 2.4) - 0.055)


# linear sRGB -> CIE XYZ (D65), IEC 61966-2-1 primaries (the values scikit-image uses)
_XYZ_FROM_RGB = np.array(
    [
        [0.412453, 0.357580, 0.180423],
        [0.212671, 0.715160, 0.072169],
        [0.019334, 0.119193, 0.950227],
    ]
)
# CIE XYZ -> LMS cones, Hunt-Pointer-Estevez, normalised to D65
_LMS_FROM_XYZ = np.array(
    [
        [0.4002, 0.7076, -0.0808],
        [-0.2263, 1.1653, 0.0457],
        [0.0, 0.0, 0.9182],
    ]
)
_FALSE_COLOUR_BACKGROUND = 0.5  # linear mid-grey, the original's white point


def _false_colour_matrix() -> np.ndarray:
    """3x3 map of linear-RGB offsets from the background that inverts both chromatic axes."""
    cones = _LMS_FROM_XYZ @ _XYZ_FROM_RGB
    lw, mw, sw = cones @ np.full(3, _FALSE_COLOUR_BACKGROUND)
    opponent = np.array(
        [
            [1.0, 1.0, 0.0],
            [1.0, -lw / mw, 0.0],
            [-sw / (lw + mw), -sw / (lw + mw), 1.0],
        ]
    )
    flip = np.diag([1.0, -1.0, -1.0])
    to_opp = opponent @ cones
    return np.asarray(np.linalg.inv(to_opp) @ flip @ to_opp)


_FALSE_COLOUR = _false_colour_matrix()

# ---------------------------------------------------------------------------- degradations


def _colour(x: torch.Tensor, p: Params, rng: SampleRNG) -> torch.Tensor:
    if p["greyscale"] < 0.5:
        return x.clone()
    return _out(_grey(x), x)


def _contrast(x: torch.Tensor, p: Params, rng: SampleRNG) -> torch.Tensor:
    return _out(_adjust_contrast(_grey(x), p["contrast"]), x)


def _uniform_noise(x: torch.Tensor, p: Params, rng: SampleRNG) -> torch.Tensor:
    g = _adjust_contrast(_grey(x), p["contrast"])
    w = p["width"]
    noise = rng.rand(1, x.shape[2], x.shape[3]).to(g.dtype)
    return _out(g + (2.0 * noise - 1.0) * w, x)


def _salt_and_pepper(x: torch.Tensor, p: Params, rng: SampleRNG) -> torch.Tensor:
    g = _adjust_contrast(_grey(x), p["contrast"])
    prob = p["p"]
    u = rng.rand(1, x.shape[2], x.shape[3])
    salt = (u >= 1.0 - prob / 2.0).to(g.dtype)
    pepper = (u < prob / 2.0).to(g.dtype)
    return _out(g + salt - pepper, x)


def _low_pass(x: torch.Tensor, p: Params, rng: SampleRNG) -> torch.Tensor:
    return _out(_gaussian_filter(_grey(x), p["sigma"], BACKGROUND_GREY), x)


def _high_pass(x: torch.Tensor, p: Params, rng: SampleRNG) -> torch.Tensor:
    g = _grey(x).to(torch.float64)
    sigma = p["sigma"]
    low = (
        torch.full_like(g, BACKGROUND_GREY)
        if math.isinf(sigma)
        else _gaussian_filter(g, sigma, BACKGROUND_GREY)
    )
    high = g - low
    high = high + (BACKGROUND_GREY - high.mean(dim=(-2, -1), keepdim=True))
    return _out(high, x)


def _phase_noise(x: torch.Tensor, p: Params, rng: SampleRNG) -> torch.Tensor:
    h, w = x.shape[2], x.shape[3]
    g = _grey(x).to(torch.float64)
    u = rng.rand(h * w).to(torch.float64)
    width = math.radians(p["width_deg"])
    phi = _antisymmetric((2.0 * u - 1.0) * width, h, w).view(-1, 1, h, w)
    spec = torch.fft.fft2(g) * torch.polar(torch.ones_like(phi), phi)
    return _out(torch.fft.ifft2(spec).real, x)


def _power_equalisation(x: torch.Tensor, p: Params, rng: SampleRNG) -> torch.Tensor:
    g = _grey(x).to(torch.float64)
    if p["equalise"] < 0.5:
        return _out(g, x)
    return _out(_equalised(g), x)


def _equalised(g: torch.Tensor) -> torch.Tensor:
    """Grey (B, 1, H, W) float64 with its amplitude spectrum replaced, before clipping."""
    amp = mean_amplitude_spectrum(g.shape[-2], g.shape[-1], device=g.device)
    phase = torch.angle(torch.fft.fft2(g))
    return torch.fft.ifft2(torch.polar(amp.expand_as(phase), phase)).real


def _false_colour(x: torch.Tensor, p: Params, rng: SampleRNG) -> torch.Tensor:
    if p["false_colour"] < 0.5 or x.shape[1] != 3:
        return x.clone()
    lin = _srgb_to_linear(x.to(torch.float64)) - _FALSE_COLOUR_BACKGROUND
    t = torch.as_tensor(_FALSE_COLOUR, dtype=torch.float64, device=x.device)
    out = torch.einsum("ij,bjhw->bihw", t, lin) + _FALSE_COLOUR_BACKGROUND
    return _linear_to_srgb(out).clamp(0.0, 1.0).to(torch.float32)


def _rotation(x: torch.Tensor, p: Params, rng: SampleRNG) -> torch.Tensor:
    g = _grey(x)
    turns = round(p["angle"] / 90.0) % 4
    h, w = g.shape[-2], g.shape[-1]
    if turns == 0:
        return _out(g, x)
    if turns == 2 or h == w:
        return _out(torch.rot90(g, turns, dims=(-2, -1)), x)
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    square = g[..., top : top + s, left : left + s]
    canvas = torch.full_like(g, BACKGROUND_GREY)
    canvas[..., top : top + s, left : left + s] = torch.rot90(square, turns, dims=(-2, -1))
    return _out(canvas, x)


# ---------------------------------------------------------------------------- registration

_GREY_NOTE = "converted to grey first; a single-channel image is already grey"


def _excluded(levels: tuple[int, ...], labels: str) -> str:
    if not levels:
        return f"model-vs-human excludes no level ({labels})"
    return f"model-vs-human excludes severities {', '.join(map(str, levels))} ({labels})"


def _register(
    name: str,
    fn: CorruptionFn,
    params: tuple[str, ...],
    levels: tuple[tuple[float, ...], ...],
    excluded: tuple[int, ...],
    summary: str,
    *,
    excluded_labels: str,
    random: bool = False,
    greyscale: str = _GREY_NOTE,
    extra: tuple[str, ...] = (),
) -> CorruptionDef:
    notes = (
        "severity is the 1-based index into the published level list",
        _excluded(excluded, excluded_labels),
        *extra,
    )
    return register_corruption(
        CorruptionDef(
            name=name,
            fn=fn,
            family="mvh",
            benchmark=False,
            param_names=params,
            tables={"levels": levels},
            random=random,
            summary=summary,
            greyscale=greyscale,
            notes=notes,
        )
    )


def _rows(*values: float) -> tuple[tuple[float, ...], ...]:
    return tuple((float(v),) for v in values)


_EXCLUDED: dict[str, tuple[int, ...]] = {
    "mvh-colour": (1,),
    "mvh-contrast": (1, 7, 8),
    "mvh-uniform-noise": (1, 7, 8),
    "mvh-low-pass": (1, 7, 8),
    "mvh-high-pass": (1, 6, 7, 8),
    "mvh-phase-noise": (1, 6, 7),
    "mvh-power-equalisation": (1,),
    "mvh-false-colour": (1,),
    "mvh-rotation": (1,),
    "mvh-salt-and-pepper": (),
}
MVH_EXCLUDED_LEVELS: Mapping[str, tuple[int, ...]] = MappingProxyType(_EXCLUDED)
"""Severities (1-based level indices) model-vs-human drops from its benchmark scores."""

_register(
    "mvh-colour",
    _colour,
    ("greyscale",),
    _rows(0, 1),
    _EXCLUDED["mvh-colour"],
    "MvH colour vs greyscale (levels: colour, greyscale)",
    excluded_labels="colour",
    greyscale="identity: a single-channel image is already grey",
)
_register(
    "mvh-contrast",
    _contrast,
    ("contrast",),
    _rows(1.0, 0.5, 0.3, 0.15, 0.1, 0.05, 0.03, 0.01),
    _EXCLUDED["mvh-contrast"],
    "MvH grey contrast (1-c)/2 + c*grey, c = 1 ... .01 (not ImageNet-C's contrast)",
    excluded_labels="c = 1, .03, .01",
)
_register(
    "mvh-uniform-noise",
    _uniform_noise,
    ("width", "contrast"),
    tuple((w, 0.3) for w in (0.0, 0.03, 0.05, 0.1, 0.2, 0.35, 0.6, 0.9)),
    _EXCLUDED["mvh-uniform-noise"],
    "MvH grey at 30% contrast + uniform noise U[-w, w], w = 0 ... .9",
    excluded_labels="w = 0, .6, .9",
    random=True,
)
_register(
    "mvh-low-pass",
    _low_pass,
    ("sigma",),
    _rows(0, 1, 3, 5, 7, 10, 15, 40),
    _EXCLUDED["mvh-low-pass"],
    "MvH grey Gaussian low-pass, sigma = 0 ... 40 px, padding 0.4423",
    excluded_labels="sigma = 0, 15, 40",
)
_register(
    "mvh-high-pass",
    _high_pass,
    ("sigma",),
    _rows(math.inf, 3.0, 1.5, 1.0, 0.7, 0.55, 0.45, 0.4),
    _EXCLUDED["mvh-high-pass"],
    "MvH grey Gaussian high-pass x - G(x), mean 0.4423, sigma = inf ... .4 px",
    excluded_labels="sigma = inf, .55, .45, .4",
)
_register(
    "mvh-phase-noise",
    _phase_noise,
    ("width_deg",),
    _rows(0, 30, 60, 90, 120, 150, 180),
    _EXCLUDED["mvh-phase-noise"],
    "MvH phase scrambling: Fourier phases + U[-w, w] deg (conjugate-symmetric), w = 0 ... 180",
    excluded_labels="w = 0, 150, 180",
    random=True,
)
_register(
    "mvh-power-equalisation",
    _power_equalisation,
    ("equalise",),
    _rows(0, 1),
    _EXCLUDED["mvh-power-equalisation"],
    "MvH power equalisation: amplitude spectrum := procedural 1/f mean spectrum",
    excluded_labels="original",
    extra=("the mean spectrum is procedural (1/f, RMS 0.13), not the original's .npy file",),
)
_register(
    "mvh-false-colour",
    _false_colour,
    ("false_colour",),
    _rows(0, 1),
    _EXCLUDED["mvh-false-colour"],
    "MvH false colour: invert the cone-opponent chromatic axes (sRGB, HPE cones, Brainard)",
    excluded_labels="true colour",
    greyscale="identity: greys have no chromatic component",
    extra=("sRGB + Hunt-Pointer-Estevez cones replace the original's measured monitor",),
)
_register(
    "mvh-rotation",
    _rotation,
    ("angle",),
    _rows(0, 90, 180, 270),
    _EXCLUDED["mvh-rotation"],
    "MvH grey rotation by 0/90/180/270 degrees counter-clockwise",
    excluded_labels="0 degrees",
    extra=("90/270 on non-square images rotate the centred min(H, W) square; the rest is 0.4423",),
)
_register(
    "mvh-salt-and-pepper",
    _salt_and_pepper,
    ("p", "contrast"),
    tuple((v, 0.3) for v in (0.0, 0.1, 0.2, 0.35, 0.5, 0.65, 0.8, 0.95)),
    _EXCLUDED["mvh-salt-and-pepper"],
    "Geirhos 2018 grey at 30% contrast + salt-and-pepper noise, p = 0 ... .95",
    excluded_labels="not one of MvH's datasets; p = 0 is the control",
    random=True,
    extra=("levels from image_manipulation.py's example and the 2018 training experiments",),
)
