"""Image operations shared by the corruptions: borders, separable and disc filters, centre zoom.

Every function takes float ``(B, C, H, W)`` tensors on any device, works for any size (a kernel
may be larger than the image) and never modifies its input.

Border modes (what lies outside the image, for a row ``abcd``):

* ``"nearest"``: ``aaa|abcd|ddd``, the edge pixel repeated (scipy / scikit-image ``nearest``,
  OpenCV ``BORDER_REPLICATE``);
* ``"reflect101"``: ``dcb|abcd|cba``, mirrored without repeating the edge (OpenCV's default
  ``BORDER_REFLECT_101``, torch ``reflect``, scipy ``mirror``);
* ``"reflect"``: ``cba|abcd|dcb``, mirrored with the edge repeated (scipy ``reflect``, numpy
  ``symmetric``);
* ``"wrap"``: ``bcd|abcd|abc``, periodic.

Filters are correlations (``y[i] = sum_k w[k] x[i + k - r]`` for a kernel of length ``2r + 1``);
for the symmetric kernels used here that is the same as a convolution.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Literal

import torch
import torch.nn.functional as F

from robustcv.core.errors import InputError
from robustcv.corruptions.base import SampleRNG

__all__ = [
    "BORDER_MODES",
    "GREY_WEIGHTS",
    "BorderMode",
    "border_index",
    "chunked",
    "chunked_random",
    "cv2_gaussian_weights",
    "defocus_kernel",
    "disc_blur",
    "filter1d",
    "gaussian_blur",
    "gaussian_weights",
    "greyscale",
    "hsv_to_rgb",
    "pad2d",
    "rgb_to_hsv",
    "separable_filter",
    "zoom_centre",
]

BorderMode = Literal["nearest", "reflect101", "reflect", "wrap"]
BORDER_MODES: tuple[str, ...] = ("nearest", "reflect101", "reflect", "wrap")

#: Elements per chunk when a batch is processed piecewise (about 2 MB of float32): small
#: enough to stay in cache across the many passes of a filter, large enough for two threads.
CHUNK_ELEMENTS = 1 << 19


def chunked(
    x: torch.Tensor,
    fn: Callable[[torch.Tensor], torch.Tensor],
    max_elements: int = CHUNK_ELEMENTS,
) -> torch.Tensor:
    """Apply ``fn`` to consecutive slices of the batch and stack the results.

    ``fn`` must map a ``(b, C, H, W)`` slice to a tensor of the same shape. Many-pass filters
    run faster on slices that fit in cache, and peak memory stays proportional to one slice.

    Example:
        >>> x = torch.rand(5, 3, 8, 8)
        >>> torch.equal(chunked(x, lambda t: t * 2, max_elements=200), x * 2)
        True
    """
    per_image = max(1, x[0].numel()) if x.shape[0] else 1
    step = max(1, max_elements // per_image)
    if x.shape[0] <= step:
        return fn(x)
    out = torch.empty_like(x, memory_format=torch.contiguous_format)
    for start in range(0, x.shape[0], step):
        out[start : start + step] = fn(x[start : start + step])
    return out


def chunked_random(
    x: torch.Tensor,
    rng: SampleRNG,
    fn: Callable[[torch.Tensor, SampleRNG], torch.Tensor],
    max_elements: int = CHUNK_ELEMENTS,
) -> torch.Tensor:
    """:func:`chunked` for functions that draw per-pixel noise: ``fn(slice, slice_rng)``.

    Each slice gets a :class:`SampleRNG` over its images' own generators, so the numbers an
    image receives are those ``rng`` would have given it. Scalar draws (``uniform``,
    ``randint``) must be made on ``rng`` before, not inside ``fn`` (they would not be logged).

    Example:
        >>> gens = [torch.Generator().manual_seed(i) for i in range(3)]
        >>> x = torch.zeros(3, 1, 4, 4)
        >>> y = chunked_random(x, SampleRNG(gens, "cpu"), lambda t, r: t + r.rand(1, 4, 4), 20)
        >>> gens = [torch.Generator().manual_seed(i) for i in range(3)]
        >>> torch.equal(y, SampleRNG(gens, "cpu").rand(1, 4, 4))
        True
    """
    per_image = max(1, x[0].numel()) if x.shape[0] else 1
    step = max(1, max_elements // per_image)
    if x.shape[0] <= step:
        return fn(x, rng)
    out = torch.empty_like(x, memory_format=torch.contiguous_format)
    for start in range(0, x.shape[0], step):
        stop = min(x.shape[0], start + step)
        sub = SampleRNG(rng.generators[start:stop], rng.device)
        out[start:stop] = fn(x[start:stop], sub)
    return out


def border_index(
    n: int, before: int, after: int, mode: str, device: torch.device | str | None = None
) -> torch.Tensor:
    """Source index of each position of a length-``n`` axis padded by ``before`` and ``after``.

    Works for pads of any length (folding repeatedly, as OpenCV does), including ``n == 1``.

    Example:
        >>> border_index(4, 3, 3, "reflect101").tolist()
        [3, 2, 1, 0, 1, 2, 3, 2, 1, 0]
        >>> border_index(4, 2, 2, "nearest").tolist()
        [0, 0, 0, 1, 2, 3, 3, 3]
        >>> border_index(4, 2, 2, "reflect").tolist()
        [1, 0, 0, 1, 2, 3, 3, 2]
    """
    if mode not in BORDER_MODES:
        raise InputError(f"unknown border mode '{mode}'; use one of {', '.join(BORDER_MODES)}")
    i = torch.arange(-before, n + after, device=device)
    if mode == "nearest" or n == 1:
        return i.clamp(0, n - 1)
    if mode == "wrap":
        return i.remainder(n)
    if mode == "reflect101":
        period = 2 * (n - 1)
        i = i.remainder(period)
        return torch.where(i >= n, period - i, i)
    period = 2 * n  # "reflect": the edge sample is repeated
    i = i.remainder(period)
    return torch.where(i >= n, period - 1 - i, i)


def pad2d(x: torch.Tensor, top: int, bottom: int, left: int, right: int, mode: str) -> torch.Tensor:
    """Pad the last two axes of ``x`` with border ``mode`` (pads may exceed the image size).

    Example:
        >>> x = torch.arange(4.0).reshape(1, 1, 1, 4)
        >>> pad2d(x, 0, 0, 2, 1, "reflect101").flatten().tolist()
        [2.0, 1.0, 0.0, 1.0, 2.0, 3.0, 2.0]
    """
    h, w = int(x.shape[-2]), int(x.shape[-1])
    if top == bottom == left == right == 0:
        return x
    fast = {"nearest": "replicate", "reflect101": "reflect", "wrap": "circular"}.get(mode)
    fits = max(top, bottom) < h and max(left, right) < w
    if fast == "replicate" or (fast is not None and fits):
        return F.pad(x, (left, right, top, bottom), mode=fast)
    if top or bottom:
        x = x.index_select(-2, border_index(h, top, bottom, mode, x.device))
    if left or right:
        x = x.index_select(-1, border_index(w, left, right, mode, x.device))
    return x


def gaussian_weights(sigma: float, truncate: float = 4.0) -> tuple[float, ...]:
    """Normalised 1-D Gaussian taps of radius ``int(truncate * sigma + 0.5)`` (scipy's rule).

    Example:
        >>> [round(w, 4) for w in gaussian_weights(0.5)]
        [0.0003, 0.1065, 0.7866, 0.1065, 0.0003]
    """
    if sigma <= 0:
        return (1.0,)
    radius = int(truncate * float(sigma) + 0.5)
    taps = [math.exp(-0.5 * (i / sigma) ** 2) for i in range(-radius, radius + 1)]
    total = math.fsum(taps)
    return tuple(t / total for t in taps)


def cv2_gaussian_weights(ksize: int, sigma: float) -> tuple[float, ...]:
    """OpenCV's ``getGaussianKernel(ksize, sigma)`` for ``sigma > 0``: ``ksize`` sampled taps.

    Example:
        >>> [round(w, 4) for w in cv2_gaussian_weights(3, 0.5)]
        [0.1065, 0.787, 0.1065]
    """
    if ksize % 2 != 1 or ksize < 1:
        raise InputError(f"ksize must be odd and positive, got {ksize}")
    if sigma <= 0:
        raise InputError(f"sigma must be positive, got {sigma}")
    half = (ksize - 1) / 2
    taps = [math.exp(-((i - half) ** 2) / (2.0 * sigma * sigma)) for i in range(ksize)]
    total = math.fsum(taps)
    return tuple(t / total for t in taps)


@functools.lru_cache(maxsize=64)
def _filter_matrix(n: int, weights: tuple[float, ...], mode: str) -> torch.Tensor:
    """(n, n) float64 matrix M with ``y = x @ M`` the 1-D correlation with the border folded in."""
    r = len(weights) // 2
    src = border_index(n, r, r, mode)
    out_idx = torch.arange(n).repeat_interleave(len(weights))
    taps = torch.arange(len(weights)).repeat(n)
    rows = src[out_idx + taps]
    vals = torch.tensor(weights, dtype=torch.float64).repeat(n)
    m = torch.zeros(n, n, dtype=torch.float64)
    m.index_put_((rows, out_idx), vals, accumulate=True)
    return m


def filter1d(x: torch.Tensor, weights: Sequence[float], dim: int, mode: str) -> torch.Tensor:
    """Correlate ``x`` with an odd-length 1-D kernel along ``dim`` (-1: width, -2: height).

    Short axes (at most four kernel lengths) use one matrix product with the border folded into
    the matrix; longer ones a sum of shifted slices of the padded image.

    Example:
        >>> x = torch.zeros(1, 1, 1, 5); x[..., 0] = 1.0
        >>> filter1d(x, (0.25, 0.5, 0.25), -1, "nearest").flatten().tolist()
        [0.75, 0.25, 0.0, 0.0, 0.0]
    """
    w = tuple(float(v) for v in weights)
    if len(w) % 2 != 1:
        raise InputError(f"a 1-D kernel needs an odd length, got {len(w)}")
    if dim not in (-1, -2):
        raise InputError(f"dim must be -1 (width) or -2 (height), got {dim}")
    if len(w) == 1:
        return x * w[0]
    n = int(x.shape[dim])
    r = len(w) // 2
    if n <= 4 * len(w):
        m = _filter_matrix(n, w, mode).to(device=x.device, dtype=x.dtype)
        return torch.matmul(x, m) if dim == -1 else torch.matmul(m.t(), x)
    if dim == -1:
        xp = pad2d(x, 0, 0, r, r, mode)
        out = xp[..., 0:n] * w[0]
        for k in range(1, len(w)):
            if w[k] != 0.0:
                out.add_(xp[..., k : k + n], alpha=w[k])
    else:
        xp = pad2d(x, r, r, 0, 0, mode)
        out = xp[..., 0:n, :] * w[0]
        for k in range(1, len(w)):
            if w[k] != 0.0:
                out.add_(xp[..., k : k + n, :], alpha=w[k])
    return out


def separable_filter(
    x: torch.Tensor, weights_h: Sequence[float], weights_w: Sequence[float], mode: str
) -> torch.Tensor:
    """Correlate with ``weights_h`` along the height, then ``weights_w`` along the width.

    Example:
        >>> x = torch.rand(2, 3, 16, 16)
        >>> y = separable_filter(x, (1.0,), (0.0, 1.0, 0.0), "nearest")
        >>> torch.allclose(y, x)
        True
    """

    def run(t: torch.Tensor) -> torch.Tensor:
        return filter1d(filter1d(t, weights_h, -2, mode), weights_w, -1, mode)

    return chunked(x, run)


def gaussian_blur(
    x: torch.Tensor, sigma: float, *, truncate: float = 4.0, mode: str = "nearest"
) -> torch.Tensor:
    """Gaussian blur of each channel, the same as ``skimage.filters.gaussian`` (per channel).

    Uses scipy's kernel (radius ``int(truncate * sigma + 0.5)``) and, by default, its
    ``nearest`` border, so it matches ``scipy.ndimage.gaussian_filter(x, (0, 0, s, s),
    mode="nearest")`` up to float32 rounding.

    Example:
        >>> x = torch.zeros(1, 1, 9, 9); x[..., 4, 4] = 1.0
        >>> y = gaussian_blur(x, 1.0)
        >>> round(float(y.sum()), 5), bool(y[..., 4, 4] < 1)
        (1.0, True)
    """
    w = gaussian_weights(sigma, truncate)
    return separable_filter(x, w, w, mode)


def _disc_rows(radius: float) -> list[tuple[int, int]]:
    """(row offset, half width) of the pixels within ``radius`` of the centre."""
    r2 = float(radius) * float(radius)
    rows = []
    reach = math.floor(radius)
    for dy in range(-reach, reach + 1):
        rest = r2 - dy * dy
        if rest < 0:
            continue
        half = math.floor(math.sqrt(rest))
        while (half + 1) ** 2 <= rest:  # guard against sqrt rounding down
            half += 1
        while half * half > rest:
            half -= 1
        rows.append((dy, half))
    return rows


def _defocus_frame(radius: float) -> tuple[int, int]:
    """ImageNet-C's kernel frame half-size and anti-aliasing kernel size for a disc radius."""
    if radius <= 8:
        return 8, 3
    return math.ceil(radius), 5


def defocus_kernel(radius: float, alias_blur: float) -> torch.Tensor:
    """ImageNet-C's defocus kernel, built exactly as it does (float64, for tests and docs).

    A disc of the pixels with ``dx^2 + dy^2 <= radius^2``, normalised to sum 1, on a frame of
    17x17 (``radius <= 8``) or ``2 radius + 1`` squared, then anti-aliased by a 3x3 (5x5 for
    ``radius > 8``) Gaussian of ``sigma = alias_blur`` applied with OpenCV's reflect-101 border
    at the frame's edge.

    Example:
        >>> k = defocus_kernel(3, 0.1)
        >>> tuple(k.shape), round(float(k.sum()), 6)
        ((17, 17), 1.0)
    """
    half, ksize = _defocus_frame(radius)
    size = 2 * half + 1
    disc = torch.zeros(size, size, dtype=torch.float64)
    for dy, w in _disc_rows(radius):
        lo, hi = max(-w, -half), min(w, half)
        disc[dy + half, lo + half : hi + half + 1] = 1.0
    disc /= disc.sum()
    g = cv2_gaussian_weights(ksize, alias_blur)
    return separable_filter(disc[None, None], g, g, "reflect101")[0, 0]


@functools.lru_cache(maxsize=32)
def _defocus_plan(
    radius: float, alias_blur: float
) -> tuple[bool, dict[int, tuple[tuple[int, float], ...]], float, int]:
    """How :func:`disc_blur` applies the kernel: (factored?, row boxes, kernel sum, reach).

    Row boxes map a half-width ``w`` to ``(row offset, weight)`` pairs: the kernel is
    ``sum weight * box_w`` shifted to each row. Factored plans hold the bare disc (weight
    ``1 / count``) and the anti-aliasing Gaussian is applied afterwards; otherwise the rows are a
    "layer cake" decomposition of the exact kernel (Gaussian included).
    """
    half, ksize = _defocus_frame(radius)
    gr = ksize // 2
    exact = defocus_kernel(radius, alias_blur)
    rows = _disc_rows(radius)
    count = float(sum(2 * w + 1 for _, w in rows))
    # the kernel factors as Gaussian * disc unless the disc reaches the frame's reflected ring
    factored = math.floor(radius) + gr <= half
    boxes: dict[int, list[tuple[int, float]]] = {}
    if factored:
        for dy, w in rows:
            boxes.setdefault(w, []).append((dy, 1.0 / count))
        reach = math.floor(radius)
    else:
        k = exact.numpy()
        tol = 1e-13
        for i in range(k.shape[0]):
            profile = [float(v) for v in k[i, half:]] + [0.0]
            for w in range(half + 1):
                c = profile[w] - profile[w + 1]
                if abs(c) > tol:
                    boxes.setdefault(w, []).append((i - half, c))
        reach = half
    frozen = {w: tuple(terms) for w, terms in sorted(boxes.items())}
    return factored, frozen, float(exact.sum()), reach


def disc_blur(x: torch.Tensor, radius: float, alias_blur: float) -> torch.Tensor:
    """Defocus blur: ``cv2.filter2D(x, -1, defocus_kernel(radius, alias_blur))``, reflect-101.

    Each kernel row is written as a sum of centred horizontal box filters, and every box sum
    comes from one running sum along the width (two slices), so the cost grows with the radius,
    not its square. When the disc stays clear of the kernel frame's edge (ImageNet-C radii up to
    6) the anti-aliasing Gaussian is applied after the bare disc; for larger radii OpenCV's
    reflect-101 border at the frame's edge adds about 1% of kernel mass (a slight brightening
    that ImageNet-C has), and the rows of the exact kernel are used instead.

    Example:
        >>> x = torch.rand(2, 3, 32, 32)
        >>> y = disc_blur(x, 3, 0.5)
        >>> y.shape == x.shape and bool((y - x).abs().mean() > 0)
        True
    """
    factored, boxes, total, reach = _defocus_plan(float(radius), float(alias_blur))
    _, ksize = _defocus_frame(radius)
    gr = ksize // 2 if factored else 0
    g = cv2_gaussian_weights(ksize, alias_blur)
    pad = reach + gr

    def run(t: torch.Tensor) -> torch.Tensor:
        h, w = int(t.shape[-2]), int(t.shape[-1])
        oh, ow = h + 2 * gr, w + 2 * gr
        # centred values keep the running sums small (float32 precision)
        xp = pad2d(t, pad, pad, pad, pad, "reflect101") - 0.5
        csum = F.pad(torch.cumsum(xp, dim=-1), (1, 0))
        acc = torch.zeros(*t.shape[:-2], oh, ow, dtype=t.dtype, device=t.device)
        c0 = pad - gr  # padded column (and row) of the first output column (row)
        for half, terms in boxes.items():
            box = (
                csum[..., c0 + half + 1 : c0 + half + 1 + ow]
                - csum[..., c0 - half : c0 - half + ow]
            )
            for dy, weight in terms:
                r0 = c0 + dy
                acc.add_(box[..., r0 : r0 + oh, :], alpha=weight)
        if not factored:
            return acc.add_(0.5 * total)
        # anti-aliasing Gaussian over the ring of width gr computed above ("valid" correlation)
        out = acc[..., 0:h, :] * g[0]
        for k in range(1, ksize):
            out.add_(acc[..., k : k + h, :], alpha=g[k])
        res = out[..., 0:w] * g[0]
        for k in range(1, ksize):
            res.add_(out[..., k : k + w], alpha=g[k])
        return res.add_(0.5 * total)

    return chunked(x, run)


def _zoom_axis(n: int, factor: float) -> tuple[int, int, int]:
    """(crop start, crop length, zoomed length) of one axis, as ImageNet-C's ``clipped_zoom``."""
    crop = math.ceil(n / factor)
    start = (n - crop) // 2
    return start, crop, round(crop * factor)


def zoom_centre(x: torch.Tensor, factor: float) -> torch.Tensor:
    """Zoom into the centre by ``factor`` >= 1, keeping the size (ImageNet-C's ``clipped_zoom``).

    Crops the central ``ceil(n / factor)`` pixels of each axis, resizes them bilinearly to
    ``round(crop * factor)`` with the corner pixels aligned (``scipy.ndimage.zoom`` with
    ``order=1``) and keeps the first ``n`` rows and columns.

    Example:
        >>> x = torch.rand(2, 3, 20, 30)
        >>> zoom_centre(x, 1.0).equal(x), zoom_centre(x, 1.2).shape
        (True, torch.Size([2, 3, 20, 30]))
    """
    if factor < 1:
        raise InputError(f"zoom factor must be >= 1, got {factor}")
    h, w = int(x.shape[-2]), int(x.shape[-1])
    top, ch, oh = _zoom_axis(h, factor)
    left, cw, ow = _zoom_axis(w, factor)
    if ch == h and cw == w and oh == h and ow == w:
        return x.clone()
    crop = x[..., top : top + ch, left : left + cw]
    out = F.interpolate(crop, size=(oh, ow), mode="bilinear", align_corners=True)
    return out[..., :h, :w]


# --- colour helpers (shared with the weather / digital corruptions) -----------------------------

#: ITU-R 601 luma weights, as OpenCV's ``COLOR_RGB2GRAY`` uses them.
GREY_WEIGHTS: tuple[float, float, float] = (0.299, 0.587, 0.114)


def greyscale(x: torch.Tensor, weights: Sequence[float] = GREY_WEIGHTS) -> torch.Tensor:
    """Grey level ``(B, 1, H, W)`` of RGB images (a copy of the channel for greyscale ones).

    Example:
        >>> x = torch.ones(2, 3, 4, 4)
        >>> g = greyscale(x)
        >>> g.shape, round(float(g.max()), 6)
        (torch.Size([2, 1, 4, 4]), 1.0)
    """
    if x.shape[-3] == 1:
        return x.clone()
    if x.shape[-3] != 3 or len(weights) != 3:
        raise InputError(f"greyscale needs 1 or 3 channels and 3 weights, got {tuple(x.shape)}")
    r, g, b = (float(w) for w in weights)
    return (x[..., 0:1, :, :] * r).add_(x[..., 1:2, :, :], alpha=g).add_(x[..., 2:3, :, :], alpha=b)


def rgb_to_hsv(x: torch.Tensor) -> torch.Tensor:
    """RGB ``(B, 3, H, W)`` in [0, 1] to HSV, all three in [0, 1] (``skimage.color.rgb2hsv``).

    Example:
        >>> x = torch.tensor([1.0, 0.5, 0.0]).reshape(1, 3, 1, 1)
        >>> [round(v, 4) for v in rgb_to_hsv(x).flatten().tolist()]
        [0.0833, 1.0, 1.0]
    """
    r, g, b = x[..., 0, :, :], x[..., 1, :, :], x[..., 2, :, :]
    v = torch.maximum(torch.maximum(r, g), b)
    delta = v - torch.minimum(torch.minimum(r, g), b)
    safe_v = torch.where(v == 0, torch.ones_like(v), v)
    s = torch.where(v == 0, torch.zeros_like(v), delta / safe_v)
    safe_d = torch.where(delta == 0, torch.ones_like(delta), delta)
    h = (g - b) / safe_d  # red is the maximum
    h = torch.where(g == v, 2.0 + (b - r) / safe_d, h)
    h = torch.where(b == v, 4.0 + (r - g) / safe_d, h)
    h = torch.remainder(h / 6.0, 1.0)
    h = torch.where(delta == 0, torch.zeros_like(h), h)
    return torch.stack([h, s, v], dim=-3)


def hsv_to_rgb(x: torch.Tensor) -> torch.Tensor:
    """HSV ``(B, 3, H, W)`` in [0, 1] back to RGB (``skimage.color.hsv2rgb``).

    Example:
        >>> x = torch.rand(2, 3, 5, 5)
        >>> torch.allclose(hsv_to_rgb(rgb_to_hsv(x)), x, atol=1e-6)
        True
    """
    h, s, v = x[..., 0, :, :], x[..., 1, :, :], x[..., 2, :, :]
    h6 = h * 6.0
    sector = torch.floor(h6)
    f = h6 - sector
    sector = torch.remainder(sector, 6.0)
    p = v * (1.0 - s)
    q = v * (1.0 - f * s)
    t = v * (1.0 - (1.0 - f) * s)
    table = (
        (v, t, p),
        (q, v, p),
        (p, v, t),
        (p, q, v),
        (t, p, v),
        (v, p, q),
    )
    out = []
    for c in range(3):
        chan = torch.zeros_like(v)
        for k, row in enumerate(table):
            chan = torch.where(sector == k, row[c], chan)
        out.append(chan)
    return torch.stack(out, dim=-3)
