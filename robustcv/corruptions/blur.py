"""ImageNet-C's blur corruptions: defocus, glass, motion, zoom, and the held-out Gaussian blur.

The algorithms follow ImageNet-C as packaged in ``imagecorruptions`` 1.1.2; each function's
notes say where robustcv's version differs. All work on float ``(B, C, H, W)`` batches on any
device and leave greyscale images greyscale.

* ``defocus_blur``: correlation with an anti-aliased disc (OpenCV ``filter2D``, reflect-101
  border), see :func:`robustcv.corruptions.ops.disc_blur`. Deterministic.
* ``glass_blur``: Gaussian blur, 8-bit truncation, local pixel shuffle, Gaussian blur again. The
  reference's shuffle loop is sequential; robustcv computes exactly the same result in parallel
  (see :func:`copy_pass_source`; the reference's "swap" is in fact a copy).
* ``motion_blur``: a one-sided line kernel with Gaussian weights at a random angle.
* ``zoom_blur``: the mean of the image and centre zooms of it. Deterministic.
* ``gaussian_blur`` (held out): ``skimage.filters.gaussian`` per channel. Deterministic.
"""

from __future__ import annotations

import math

import torch

from robustcv.corruptions import ops
from robustcv.corruptions.base import CorruptionDef, Params, SampleRNG, register_corruption

__all__ = ["copy_pass_source", "glass_offset_picks", "motion_taps", "zoom_factors"]


# --- defocus ------------------------------------------------------------------------------------


def _defocus_blur(x: torch.Tensor, p: Params, rng: SampleRNG) -> torch.Tensor:
    return ops.disc_blur(x, p["radius"], p["alias_blur"]).clamp_(0.0, 1.0)


# --- Gaussian -----------------------------------------------------------------------------------


def _gaussian_blur(x: torch.Tensor, p: Params, rng: SampleRNG) -> torch.Tensor:
    return ops.gaussian_blur(x, p["sigma"]).clamp_(0.0, 1.0)


# --- glass --------------------------------------------------------------------------------------


def copy_pass_source(dy: torch.Tensor, dx: torch.Tensor, delta: int) -> torch.Tensor:
    """One pass of ImageNet-C's glass-blur pixel shuffle, computed in parallel.

    The reference visits the pixels ``(h, w)`` with ``delta < h <= H - delta`` and
    ``delta < w <= W - delta`` from the bottom-right corner backwards (row by row, right to
    left) and runs ``x[h, w], x[h + dy, w + dx] = x[h + dy, w + dx], x[h, w]`` with offsets in
    ``[-delta, delta - 1]``. On an ``(H, W, 3)`` numpy array the right-hand side holds *views*,
    so this is not a swap: pixel ``(h, w)`` gets a copy of its neighbour and the neighbour
    keeps its value. Because the pass runs in place, a neighbour that was already visited (below,
    or to the right on the same row) has already been replaced by its own neighbour, and so on.
    So every pixel ends up with the original value found by following the offsets from pixel
    to pixel until one lands on a pixel not visited before it; this function follows all those
    chains at once by pointer doubling (about 4 rounds, over the few chained pixels only).

    Args:
        dy: ``(B, H, W)`` integer row offsets in ``[-delta, delta - 1]`` (only the visited
            pixels are read).
        dx: ``(B, H, W)`` integer column offsets.
        delta: the maximum displacement.

    Returns:
        ``(B, H * W)`` int64 source indices: after the pass, pixel ``i`` of image ``b`` holds
        the value that was at ``src[b, i]`` (row-major).

    Example:
        >>> dy = torch.ones(1, 7, 7, dtype=torch.long); dx = torch.zeros_like(dy)
        >>> copy_pass_source(dy, dx, 2).reshape(7, 7)[:, 3].tolist()  # rows 3-5 copy row 6
        [3, 10, 17, 45, 45, 45, 45]
    """
    b, h, w = int(dy.shape[0]), int(dy.shape[1]), int(dy.shape[2])
    step = dy.reshape(b, h * w).long() * w + dx.reshape(b, h * w).long()
    return _chase(step.mul_(_visited(h, w, delta, dy.device)), h, w, delta)


def _visited(h: int, w: int, delta: int, device: torch.device) -> torch.Tensor:
    """Flat mask of the pixels a glass-blur pass visits."""
    mask = torch.zeros(h, w, dtype=torch.bool, device=device)
    mask[delta + 1 : h - delta + 1, delta + 1 : w - delta + 1] = True
    return mask.flatten()


def _chase(step: torch.Tensor, h: int, w: int, delta: int) -> torch.Tensor:
    """Source indices of one pass from the flat offsets ``step`` (0 where not visited)."""
    b, hw = int(step.shape[0]), h * w
    visited = _visited(h, w, delta, step.device)
    # the neighbour was visited before this pixel (it lies below, or to the right on the same
    # row: a positive flat offset) and already holds its own neighbour's value
    forward = (step > 0).flatten()
    src = step.add_(torch.arange(hw, device=step.device)).flatten()  # per-image indices
    chained = forward.logical_and_(visited.index_select(0, src))
    active = chained.nonzero().squeeze(1)  # batch-flattened positions
    while active.numel():
        row = active - active.remainder(hw)
        nxt = src.index_select(0, active) + row
        src[active] = src.index_select(0, nxt)
        more = chained.index_select(0, nxt)
        chained[active] = more
        active = active[more]
    return src.reshape(b, hw)


def glass_offset_picks(
    rng: SampleRNG, passes: int, pairs: int, h: int, w: int
) -> list[torch.Tensor]:
    """Per pass, each pixel's offset pair as an index in ``[0, pairs)``: ``(B, h * w)`` int64.

    One uniform per pixel serves several passes: the base-``pairs`` digits of
    ``floor(u * pairs^k)`` with ``pairs^k <= 2^12``, which is uniform to within
    ``pairs^k / 2^24`` (exactly for a power of two) since ``u`` has 24 random bits.

    Example:
        >>> gens = [torch.Generator().manual_seed(0)]
        >>> picks = glass_offset_picks(SampleRNG(gens, "cpu"), 3, 16, 4, 5)
        >>> len(picks), tuple(picks[0].shape), int(max(int(p.max()) for p in picks)) < 16
        (3, (1, 20), True)
    """
    per_draw = max(1, math.floor(12 / math.log2(pairs)) if pairs > 1 else passes)
    picks = []
    for first in range(0, passes, per_draw):
        todo = min(per_draw, passes - first)
        count = pairs**todo
        u = rng.rand(h, w).reshape(-1, h * w)
        code = u.mul_(float(count)).to(torch.int64).clamp_(max=count - 1)
        for _ in range(todo):
            picks.append(code.remainder(pairs))
            code = code.div_(pairs, rounding_mode="floor")
    return picks


def _glass_blur(x: torch.Tensor, p: Params, rng: SampleRNG) -> torch.Tensor:
    sigma = p["sigma"]
    delta = int(p["max_delta"])
    passes = int(p["iterations"])
    b, c, h, w = x.shape
    hw = h * w
    y = ops.gaussian_blur(x, sigma)
    y = y.mul_(255.0).floor_().div_(255.0).reshape(b, c, hw)  # the reference's uint8 step
    span = 2 * delta
    pairs = span * span
    k = torch.arange(pairs, device=x.device)
    table = (k // span - delta) * w + (k % span - delta)  # flat offset of each (dy, dx) pair
    visited = _visited(h, w, delta, x.device)
    chunk = max(1, (1 << 19) // hw)  # images at a time: bounded memory, cache-sized arrays
    for start in range(0, b, chunk):
        stop = min(b, start + chunk)
        n = stop - start
        sub = SampleRNG(rng.generators[start:stop], rng.device)  # the same per-image streams
        src = None
        for pick in glass_offset_picks(sub, passes, pairs, h, w):
            step = table.index_select(0, pick.flatten()).reshape(n, hw).mul_(visited)
            s = _chase(step, h, w, delta)
            src = s if src is None else src.gather(1, s)
        if src is not None:
            index = src[:, None, :].expand(n, c, hw)
            y[start:stop] = torch.gather(y[start:stop], 2, index)
    return ops.gaussian_blur(y.reshape(b, c, h, w), sigma).clamp_(0.0, 1.0)


# --- motion -------------------------------------------------------------------------------------


def motion_taps(radius: int, sigma: float, angle: float) -> list[tuple[int, int, float]]:
    """Taps ``(dy, dx, weight)`` of ImageNet-C's motion-blur kernel at ``angle`` degrees.

    Tap ``i = 0 .. 2 radius`` reads the pixel ``i`` steps along the direction ``angle`` (rounded
    to the pixel grid, half down) with weight ``exp(-i^2 / (2 sigma^2))``, normalised to sum 1.
    Taps that land on the same pixel are merged.

    Example:
        >>> [(dy, dx) for dy, dx, _ in motion_taps(2, 1.0, 0.0)]
        [(0, 0), (0, 1), (0, 2), (0, 3), (0, 4)]
    """
    width = 2 * int(radius) + 1
    if sigma <= 0:
        return [(0, 0, 1.0)]
    weights = [math.exp(-(i * i) / (2.0 * sigma * sigma)) for i in range(width)]
    total = math.fsum(weights)
    rad = math.radians(angle)
    py, px = width * math.sin(rad), width * math.cos(rad)
    hyp = math.hypot(py, px)
    taps: dict[tuple[int, int], float] = {}
    for i, wt in enumerate(weights):
        key = (math.ceil(i * py / hyp - 0.5), math.ceil(i * px / hyp - 0.5))
        taps[key] = taps.get(key, 0.0) + wt / total
    return [(dy, dx, wt) for (dy, dx), wt in taps.items()]


def _motion_blur(x: torch.Tensor, p: Params, rng: SampleRNG) -> torch.Tensor:
    radius = int(p["radius"])
    angles = rng.uniform("angle", -45.0, 45.0)
    h, w = int(x.shape[-2]), int(x.shape[-1])
    out = torch.empty_like(x)
    for i in range(x.shape[0]):
        taps = motion_taps(radius, p["sigma"], float(angles[i]))
        top = max(0, -min(t[0] for t in taps))
        bottom = max(0, max(t[0] for t in taps))
        left = max(0, -min(t[1] for t in taps))
        right = max(0, max(t[1] for t in taps))
        xp = ops.pad2d(x[i : i + 1], top, bottom, left, right, "nearest")
        acc = out[i : i + 1].zero_()
        for dy, dx, wt in taps:
            acc.add_(xp[..., top + dy : top + dy + h, left + dx : left + dx + w], alpha=wt)
    return out.clamp_(0.0, 1.0)


# --- zoom ---------------------------------------------------------------------------------------


def zoom_factors(max_zoom: float, step: float) -> list[float]:
    """The zoom factors ``1, 1 + step, ...`` up to ``max_zoom`` (ImageNet-C's ``np.arange``).

    Example:
        >>> zoom_factors(1.06, 0.02)
        [1.0, 1.02, 1.04, 1.06]
    """
    if step <= 0 or max_zoom < 1:
        return [1.0]
    n = math.floor((max_zoom - 1.0) / step + 1e-6) + 1
    delta = (1.0 + step) - 1.0  # numpy's arange steps by (start + step) - start
    return [1.0 + k * delta for k in range(n)]


def _zoom_blur(x: torch.Tensor, p: Params, rng: SampleRNG) -> torch.Tensor:
    factors = zoom_factors(p["max_zoom"], p["step"])

    def run(t: torch.Tensor) -> torch.Tensor:
        # bilinear resizing is several times faster on channels-last tensors on the CPU
        t = t.contiguous(memory_format=torch.channels_last)
        acc = t.clone()
        for z in factors:
            acc.add_(t if z == 1.0 else ops.zoom_centre(t, z))
        return acc.div_(len(factors) + 1).contiguous()

    return ops.chunked(x, run).clamp_(0.0, 1.0)


# --- registration -------------------------------------------------------------------------------

register_corruption(
    CorruptionDef(
        name="defocus_blur",
        fn=_defocus_blur,
        family="blur",
        benchmark=True,
        param_names=("radius", "alias_blur"),
        tables={
            "imagenet-c": ((3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)),
            "cifar-10-c": ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)),
        },
        summary="out of focus: an anti-aliased disc of the given radius",
        notes=(
            "Exact: the same kernel and reflect-101 image border as the reference's cv2.filter2D.",
            "A radius interpolated by the 'auto' spec above 8 uses the frame -ceil(r)..ceil(r); "
            "the reference's np.arange(-r, r + 1) is only centred for whole radii.",
        ),
    )
)

register_corruption(
    CorruptionDef(
        name="glass_blur",
        fn=_glass_blur,
        family="blur",
        benchmark=True,
        param_names=("sigma", "max_delta", "iterations"),
        tables={
            "imagenet-c": ((0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2)),
            "cifar-10-c": ((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)),
        },
        integer_params=("max_delta", "iterations"),
        random=True,
        summary="frosted glass: blur, shuffle pixels locally, blur again",
        notes=(
            "Each pass gives exactly the result of the reference's sequential loop for the same "
            "offsets (computed in parallel); only the random numbers differ.",
            "The reference's swap x[h, w], x[h', w'] = x[h', w'], x[h, w] acts on numpy views of "
            "an (H, W, 3) array, so it copies the neighbour into (h, w) and leaves the neighbour "
            "as it was; robustcv reproduces that copy (also on greyscale images, which the "
            "reference turns into 3 channels).",
            "Offsets are drawn in [-max_delta, max_delta - 1] as the reference's "
            "np.random.randint does (so the shuffle drifts by half a pixel).",
        ),
    )
)

register_corruption(
    CorruptionDef(
        name="motion_blur",
        fn=_motion_blur,
        family="blur",
        benchmark=True,
        param_names=("radius", "sigma"),
        tables={
            "imagenet-c": ((10, 3), (15, 5), (15, 8), (15, 12), (20, 15)),
            "cifar-10-c": ((6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)),
        },
        integer_params=("radius",),
        random=True,
        summary="camera shake: a Gaussian-weighted line blur at an angle ~ U(-45, 45) degrees",
        notes=(
            "The angle is drawn per image (logged as 'angle', replayable).",
            "Beyond the border the edge pixel is repeated, as in the reference; the reference "
            "also drops the remaining taps once a shift reaches the image size (darkening images "
            "smaller than 2 radius + 1), robustcv keeps them.",
        ),
    )
)

register_corruption(
    CorruptionDef(
        name="zoom_blur",
        fn=_zoom_blur,
        family="blur",
        benchmark=True,
        param_names=("max_zoom", "step"),
        tables={
            "imagenet-c": ((1.11, 0.01), (1.15, 0.01), (1.20, 0.02), (1.24, 0.02), (1.30, 0.03)),
            "cifar-10-c": ((1.06, 0.01), (1.11, 0.01), (1.15, 0.01), (1.20, 0.01), (1.25, 0.01)),
        },
        summary="zooming during the exposure: mean of the image and centre zooms 1..max_zoom",
        notes=(
            "Factors are 1, 1 + step, ... up to max_zoom: the values of the reference's "
            "np.arange(1, stop, step) (e.g. stop 1.11 gives 12 factors, up to 1.11).",
            "Each zoom is scipy.ndimage.zoom(order=1) of the central crop; the image itself "
            "counts twice (once unzoomed, once as factor 1), as in the reference.",
        ),
    )
)

register_corruption(
    CorruptionDef(
        name="gaussian_blur",
        fn=_gaussian_blur,
        family="blur",
        benchmark=False,
        param_names=("sigma",),
        tables={
            "imagenet-c": ((1,), (2,), (3,), (4,), (6,)),
            "cifar-10-c": ((0.4,), (0.6,), (0.7,), (0.8,), (1,)),
        },
        summary="Gaussian blur of standard deviation sigma (held out)",
        notes=("scikit-image's gaussian: truncated at 4 sigma, 'nearest' border.",),
    )
)
