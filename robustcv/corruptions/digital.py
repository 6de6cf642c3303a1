"""Digital corruptions: contrast, brightness, saturate, pixelate, JPEG, elastic transform.

Each follows imagecorruptions 1.1.2 (the reference), written from its algorithm for batched
float32 tensors in [0, 1]:

* **contrast**: ``(x - m) * c + m`` with ``m`` each image's per-channel mean.
* **brightness**: HSV value ``V += c`` (clipped). With hue and saturation fixed, every RGB
  channel is proportional to V, so this is computed exactly as ``x * min(V + c, 1) / V`` (black
  pixels become grey ``min(c, 1)``), without the HSV round trip.
* **saturate**: HSV saturation ``S = clip(S * a + b)``. With hue and value fixed each channel
  moves linearly between V and the minimum: ``ch' = V - S' V (V - ch) / (V - min)``; grey pixels
  (hue 0 by convention) become ``(V, V (1 - S'), V (1 - S'))``, i.e. reddish when ``b > 0``.
  Both closed forms equal scikit-image's ``rgb2hsv`` / ``hsv2rgb`` round trip up to float
  rounding (tested); :func:`robustcv.corruptions.ops.rgb_to_hsv` is the explicit conversion.
* **pixelate**: Pillow's ``BOX`` downscale to ``int(size * c)`` (every output pixel is the mean
  of the input pixels whose centres fall in its box) and ``NEAREST`` upscale. CPU batches run in
  numpy, a chunk of image planes (channels of images) per worker thread: group sums along
  rows then columns (a reshape for integer factors, index gathers otherwise), one division,
  then the upscale repeats columns and copies whole rows. Float precision throughout (equal
  to Pillow's float ``BOX`` to 1e-6, tested), bit-identical whatever the batch; other devices
  use a torch version with the same index rules (tested equal).
* **jpeg_compression**: Pillow JPEG encode/decode at the table's quality (default 4:2:0 chroma
  subsampling). CPU batches encode a chunk of images as one tall JPEG whose layout keeps every
  image's blocks and edge handling exactly as if it were encoded alone (tested equal for many
  sizes; see ``_jpeg``); CUDA batches make a round trip. The input is rounded to 8 bits first,
  as the reference's uint8 images are. Greyscale images are encoded as one-channel JPEGs, which
  equals the reference's RGB round trip of a grey image to within one grey level. On Linux the
  JPEG goes through an in-memory file with a descriptor (``memfd``) when chunks run in
  parallel, because Pillow encodes to such a file with the GIL released and to a ``BytesIO``
  with it held; a lone chunk uses the cheaper ``BytesIO``. With the optional ``simplejpeg``
  package installed (the ``fast`` extra), the JPEG is decoded by it: the same libjpeg-turbo
  decoder and settings as Pillow's (islow DCT, smooth upsampling), bit-identical (tested),
  without Pillow's per-call Python work. Encoding always goes through Pillow: simplejpeg's
  encoder does not give the reference's bytes.
* **elastic_transform**: imagecorruptions' version, without HC's random affine step: uniform
  noise ``U(-d, d)``, ``d = max_shift * H``, per axis, smoothed by a Gaussian (``sigma * (H, W)``,
  truncated at 3 sigma, reflected borders), times ``alpha``, used as a displacement field for one
  bilinear ``grid_sample`` with reflected borders (scipy ``map_coordinates(order=1,
  mode='reflect')``).

CPU outputs of pixelate and JPEG come from :mod:`robustcv.core.buffers` (recycled memory), and
their worker threads from :mod:`robustcv.core.threads`.

Parameter tables: ``imagenet-c`` holds the reference's values; ``cifar-10-c`` holds
CIFAR-10-C's where the algorithms agree. Elastic is the exception: CIFAR-10-C used HC's affine
variant, so its ``cifar-10-c`` row keeps the reference's strengths and widens the smoothing to
3% of the image (1 pixel at 32x32); with the reference's 1% the field would be uncorrelated
per-pixel jitter at 32x32 (about 3 pixels at severity 5), which destroys small images.
"""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from itertools import pairwise
from typing import IO

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

try:  # optional (the "fast" extra): a lighter JPEG decoder, bit-identical to Pillow's
    import simplejpeg as _simplejpeg
except ImportError:  # pragma: no cover - depends on the environment
    _simplejpeg = None

from robustcv.core import buffers
from robustcv.core.threads import run_parallel, scratch
from robustcv.corruptions.base import CorruptionDef, Params, SampleRNG, register_corruption
from robustcv.corruptions.ops import gaussian_weights, separable_filter

__all__ = ["elastic_from_noise"]


# --- contrast, brightness, saturate ---------------------------------------------------------------


def _contrast(x: torch.Tensor, p: Params, rng: SampleRNG) -> torch.Tensor:
    c = p["c"]
    mean = x.mean(dim=(2, 3), keepdim=True)
    return torch.addcmul(mean * (1.0 - c), x, torch.full_like(mean, c)).clamp_(0.0, 1.0)


def _brightness(x: torch.Tensor, p: Params, rng: SampleRNG) -> torch.Tensor:
    c = p["c"]
    v = x.amax(dim=1, keepdim=True)
    v_new = (v + c).clamp_(max=1.0)
    scale = v_new / v.clamp(min=1e-12)
    out = x * scale
    return torch.where(v > 0, out, v_new.expand_as(out)).clamp_(0.0, 1.0)


def _saturate(x: torch.Tensor, p: Params, rng: SampleRNG) -> torch.Tensor:
    a, b = p["scale"], p["shift"]
    if x.shape[1] == 1:  # a grey pixel has S = 0 and hue 0: its red channel (= V) is kept
        return x.clone()
    v = x.amax(dim=1, keepdim=True)
    delta = v - x.amin(dim=1, keepdim=True)
    grey = delta <= 0
    s = torch.where(grey, torch.zeros_like(v), delta / v.clamp(min=1e-12))
    s_new = (s * a + b).clamp_(0.0, 1.0)
    # ch' = V - S' * V * (V - ch) / delta  (hue and value kept)
    rel = (v - x) / torch.where(grey, torch.ones_like(delta), delta)
    out = v - (s_new * v) * rel
    if bool(grey.any()):
        red = torch.zeros_like(x)
        red[:, 0:1] = 1.0
        grey_out = v * (1.0 - s_new * (1.0 - red))  # (V, V(1-S'), V(1-S'))
        out = torch.where(grey, grey_out, out)
    return out.clamp_(0.0, 1.0)


# --- fast buffers ------------------------------------------------------------------------------


def _empty(shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """An uninitialised float32 tensor; on the CPU from :mod:`robustcv.core.buffers`."""
    if device.type == "cpu":
        return torch.from_numpy(buffers.empty(shape))
    return torch.empty(shape, dtype=torch.float32, device=device)


# --- pixelate ---------------------------------------------------------------------------------


@lru_cache(maxsize=128)
def _box_groups(n_in: int, n_out: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pillow BOX: output pixel i averages input pixels j with i*s < j + 0.5 <= (i+1)*s."""
    scale = n_in / n_out
    support = 0.5 * scale
    starts, counts = [], []
    for i in range(n_out):
        centre = (i + 0.5) * scale
        lo = max(int(centre - support + 0.5), 0)
        hi = min(int(centre + support + 0.5), n_in)
        members = [j for j in range(lo, hi) if -0.5 < (j - centre + 0.5) / scale <= 0.5]
        if not members:  # cannot happen for n_out <= n_in; keep the nearest pixel
            members = [min(int(centre), n_in - 1)]
        starts.append(members[0])
        counts.append(len(members))
    return torch.tensor(starts), torch.tensor(counts)


@lru_cache(maxsize=128)
def _nearest_index(n_in: int, n_out: int) -> torch.Tensor:
    """Pillow NEAREST: source index int(0.5 * a + i * a), a = n_in / n_out, accumulated."""
    step = n_in / n_out
    pos = step * 0.5
    out = []
    for _ in range(n_out):
        out.append(min(int(pos), n_in - 1))
        pos += step
    return torch.tensor(out)


@lru_cache(maxsize=128)
def _box_matrix(n: int, n_low: int) -> torch.Tensor:
    """(n, n_low) matrix: ``row @ M`` is Pillow's BOX reduction of a row to ``n_low``."""
    starts, counts = _box_groups(n, n_low)
    down = torch.zeros(n, n_low, dtype=torch.float32)
    for i, (s0, k) in enumerate(zip(starts.tolist(), counts.tolist(), strict=True)):
        down[s0 : s0 + k, i] = 1.0 / k
    return down


@lru_cache(maxsize=128)
def _nearest_exact_is_pillow(n_low: int, n: int, device: str) -> bool:
    """Whether torch's ``nearest-exact`` upsampling picks Pillow's NEAREST source pixels."""
    ramp = torch.arange(n_low, dtype=torch.float32, device=device).reshape(1, 1, 1, n_low)
    picked = F.interpolate(ramp, size=(1, n), mode="nearest-exact").flatten().long().cpu()
    return torch.equal(picked, _nearest_index(n_low, n))


def _box_reduce_rows(x: torch.Tensor, n_out: int) -> torch.Tensor:
    """Pillow BOX reduction of the rows (dim -2) of (B, C, H, W) to ``n_out`` rows."""
    n_in = x.shape[-2]
    starts, counts = _box_groups(n_in, n_out)
    starts, counts = starts.to(x.device), counts.to(x.device)
    inv = (1.0 / counts.to(x.dtype)).reshape(-1, 1)
    shape = (*x.shape[:-2], n_out, x.shape[-1])
    acc = torch.index_select(x, -2, starts, out=_empty(shape, x.device)).mul_(inv)
    for k in range(1, int(counts.max())):
        idx = (starts + k).clamp_(max=n_in - 1)
        acc.addcmul_(x.index_select(-2, idx), (k < counts).to(x.dtype).reshape(-1, 1) * inv)
    return acc


def _pixelate_torch(x: torch.Tensor, lh: int, lw: int) -> torch.Tensor:
    """Pixelate in torch (any device): row groups, a column matrix, nearest upsampling."""
    _, _, h, w = x.shape
    low = _box_reduce_rows(x, lh)  # (B, C, lh, W)
    if lw != w:
        low = torch.matmul(low, _box_matrix(w, lw).to(x.device))  # (B, C, lh, lw)
    dev = str(x.device)
    if _nearest_exact_is_pillow(lh, h, dev) and _nearest_exact_is_pillow(lw, w, dev):
        return F.interpolate(low, size=(h, w), mode="nearest-exact")
    rows = low.index_select(-2, _nearest_index(lh, h).to(x.device))
    return rows.index_select(-1, _nearest_index(lw, w).to(x.device))


# CPU paths split a batch into chunks of whole images and run them on the shared worker pool
# (robustcv.core.threads). JPEG stacks a chunk into one tall "mosaic" image per Pillow call:
# Pillow's per-call Python work holds the GIL, so one call per image did not run in parallel.
# pixelate's chunks are numpy work; larger chunks there mean fewer GIL hand-overs.
_JPEG_PIXELS = 400_000
_PIXELATE_PIXELS = 1_200_000
_PIXELATE_MIN_PIXELS = 400_000  # below 2x this (about 5 RGB 224x224 images) one thread


def _chunks(
    n_images: int,
    rows: int,
    cols: int,
    *,
    pixels: int,
    max_rows: int = 1 << 30,
    min_pixels: int = 0,
) -> list[tuple[int, int]]:
    """Split ``n_images`` into consecutive (start, stop) chunks of at most about ``pixels``.

    The chunks are as even as possible and, when there are fewer items than would fill every
    worker thread, smaller: a batch of 4 on 2 threads is two chunks of 2 (not one of 4 that
    leaves a thread idle), and 16 JPEG images are 4 chunks of 4 (not 6, 6 and 4, whose last
    chunk runs alone).
    """
    per = max(1, min(pixels // max(rows * cols, 1), max_rows // max(rows, 1)))
    n = -(-n_images // per)
    threads = torch.get_num_threads()
    if n == 1 and n_images * rows * cols < 2 * min_pixels:
        return [(0, n_images)]  # too little work to pay for a hand-over to another thread
    if threads > 1:
        n = min(n_images, -(-n // threads) * threads)  # a multiple of the threads: none idles
    n = max(n, 1)
    bounds = [i * n_images // n for i in range(n + 1)]
    return [(a, b) for a, b in pairwise(bounds) if b > a]


def _run_chunks(fn: Callable[[int, int], None], chunks: list[tuple[int, int]]) -> None:
    """Run ``fn(start, stop)`` for every chunk on up to ``torch.get_num_threads()`` threads."""
    run_parallel(lambda ab: fn(*ab), chunks)


@lru_cache(maxsize=64)
def _box_plan(n_in: int, n_out: int) -> tuple[int, np.ndarray, np.ndarray]:
    """Pillow's BOX groups of ``n_in -> n_out`` as (uniform factor or 0, starts, counts).

    The factor is ``k`` when every group is ``k`` consecutive pixels starting at ``i * k`` (an
    integer reduction, done with a reshape), else 0.
    """
    starts, counts = (a.numpy() for a in _box_groups(n_in, n_out))
    k = int(counts[0])
    uniform = n_in == k * n_out and bool((counts == k).all())
    return (k if uniform else 0), starts, counts


def _window_sums(a: np.ndarray, axis: int, n_out: int) -> np.ndarray:
    """Sums over Pillow's BOX groups along ``axis`` (1 or 2) of a 3-D float32 array."""
    n_in = a.shape[axis]
    k, starts, counts = _box_plan(n_in, n_out)
    if k:  # integer factor: add the k interleaved slices
        shape = list(a.shape)
        shape[axis : axis + 1] = [n_out, k]
        v = a.reshape(shape)
        part: list[slice | int] = [slice(None)] * 4
        part[axis + 1] = 0
        acc = v[tuple(part)].copy()
        for t in range(1, k):
            part[axis + 1] = t
            acc += v[tuple(part)]
        return acc
    m = int(counts.min())
    acc = np.take(a, starts, axis=axis)
    for t in range(1, m):
        acc += np.take(a, starts + t, axis=axis)
    longer = np.flatnonzero(counts > m)  # groups with one more member
    if longer.size:
        index: list[slice | np.ndarray] = [slice(None)] * 3
        index[axis] = longer
        acc[tuple(index)] += np.take(a, starts[longer] + m, axis=axis)
    return acc


@lru_cache(maxsize=64)
def _repeat_factor(n_low: int, n: int) -> int:
    """``k`` if Pillow's nearest upscale ``n_low -> n`` repeats each pixel ``k`` times, else 0."""
    k = n // n_low
    if n != k * n_low:
        return 0
    return k if bool((_nearest_index(n_low, n).numpy() == np.arange(n) // k).all()) else 0


def _pixelate_numpy(x: torch.Tensor, lh: int, lw: int) -> torch.Tensor:
    """Pixelate CPU float32 images with numpy, a chunk of images per thread.

    Row groups, then column groups, are summed (a reshape for integer factors, index gathers
    otherwise) and scaled once; the nearest upscale repeats columns, then copies whole rows into
    the output. Chunks hold whole image planes, at most 23 planes of 224x224
    (``_PIXELATE_PIXELS``) and fewer for small batches, so that every thread has work; the
    output is written once. Float precision throughout, bit-identical whatever the batch.
    """
    xn = x.detach().contiguous().numpy()
    b, ch, h, w = xn.shape
    out = buffers.empty(xn.shape)
    # dividing (not multiplying by 1 / count) keeps the mean of pixels <= 1 at most 1
    count = _box_plan(h, lh)[2][:, None] * _box_plan(w, lw)[2][None, :]  # (lh, lw)
    count = count.astype(np.float32)
    rep_h, rep_w = _repeat_factor(lh, h), _repeat_factor(lw, w)
    row_idx = _nearest_index(lh, h).numpy()
    col_idx = _nearest_index(lw, w).numpy()

    planes, dst_planes = xn.reshape(b * ch, h, w), out.reshape(b * ch, h, w)

    def part(s: int, e: int) -> None:
        n = e - s
        low = _window_sums(_window_sums(planes[s:e], 1, lh), 2, lw)
        np.divide(low, count, out=low)  # (n, lh, lw) means
        wide = np.repeat(low, rep_w, axis=2) if rep_w else np.take(low, col_idx, axis=2)
        dst = dst_planes[s:e]
        if rep_h:
            dst.reshape(n, lh, rep_h, w)[...] = wide[:, :, None, :]
        else:  # mode="clip" skips numpy's defensive copy for out=
            np.take(wide, row_idx, axis=1, out=dst, mode="clip")

    # chunks of whole planes (one channel of one image): every plane is computed alone, so the
    # result does not depend on the chunking, and even a single RGB image keeps 2 threads busy
    chunks = _chunks(b * ch, h, w, pixels=_PIXELATE_PIXELS, min_pixels=_PIXELATE_MIN_PIXELS)
    _run_chunks(part, chunks)
    return torch.from_numpy(out)


def _pixelate(x: torch.Tensor, p: Params, rng: SampleRNG) -> torch.Tensor:
    c = p["c"]
    _, _, h, w = x.shape
    lh, lw = max(int(h * c), 1), max(int(w * c), 1)
    if x.device.type == "cpu":
        return _pixelate_numpy(x, lh, lw)
    return _pixelate_torch(x, lh, lw)


# --- JPEG ------------------------------------------------------------------------------------

# A JPEG mosaic keeps each image's 8x8 blocks (and 16x16 colour MCUs) identical to encoding it
# alone: every image starts on an MCU boundary and is padded to whole MCUs by repeating its last
# row, as libjpeg pads. The one cross-block step is the decoder's smoothing ("fancy") upsampling
# of the half-resolution colour planes, which reads one colour row above and below. Alone, an
# image's edge rows see their own edge colour row repeated. In the mosaic a 16-row guard band
# above and below each colour image holds the image's own first/last 16 rows mirrored, so the
# colour row next to each edge is that edge row again (a mirrored block quantises to the
# mirrored result). The decoded images are then identical to encoding each alone (tested for
# many sizes), and nothing depends on the other images of the batch.
_JPEG_BAND = 16
_JPEG_MAX_ROWS = 65_000  # JPEG images are at most 65535 pixels high


def _scratch_file(parallel: bool = True) -> IO[bytes]:
    """An in-memory file for one JPEG round trip; on Linux one with a file descriptor.

    Pillow encodes to a file that has a descriptor in C with the GIL released, but to a
    ``BytesIO`` in a Python loop that holds it, which serialised the worker threads. When
    nothing runs in parallel (``parallel=False``) the ``BytesIO`` is faster: the descriptor
    costs system calls for every write and read (about 0.2 ms per 224x224 image).
    """
    if parallel and hasattr(os, "memfd_create"):
        try:
            return open(os.memfd_create("robustcv-jpeg", os.MFD_CLOEXEC), "w+b")
        except OSError:  # no memfd on this kernel: the portable path
            pass
    return io.BytesIO()


_PILLOW_BLOCKS = 64
_pillow_lock = threading.Lock()
_pillow_users = 0
_pillow_saved = 0


@contextmanager
def _pillow_block_cache() -> Iterator[None]:
    """Let Pillow keep freed image blocks for reuse while JPEG chunks run.

    Pillow frees every image's memory by default (``blocks_max`` 0), so each chunk's merged and
    decoded images were fresh allocations, page-faulted page by page; with the heap trimmed
    between chunks that doubled the JPEG time. The setting is raised only for the duration of
    the call (nested and concurrent calls share it) and restored afterwards, which also frees
    the cached blocks.
    """
    global _pillow_users, _pillow_saved
    core = Image.core
    with _pillow_lock:
        if _pillow_users == 0:
            _pillow_saved = int(core.get_blocks_max())
            if _pillow_saved < _PILLOW_BLOCKS:
                core.set_blocks_max(_PILLOW_BLOCKS)
        _pillow_users += 1
    try:
        yield
    finally:
        with _pillow_lock:
            _pillow_users -= 1
            if _pillow_users == 0 and int(core.get_blocks_max()) != _pillow_saved:
                core.set_blocks_max(_pillow_saved)


def _decode_jpeg(buf: IO[bytes], channels: int) -> np.ndarray:
    """Decode the JPEG just written to ``buf`` to a uint8 array (rows, W) or (rows, W, 3).

    simplejpeg when it is installed (with the settings that make it equal Pillow's decoder:
    accurate DCT, smooth chroma upsampling), else Pillow.
    """
    buf.seek(0)
    if _simplejpeg is not None:
        return np.asarray(
            _simplejpeg.decode_jpeg(
                buf.read(),
                colorspace="GRAY" if channels == 1 else "RGB",
                fastdct=False,
                fastupsample=False,
            )
        )
    return np.asarray(Image.open(buf, formats=("JPEG",)))


def _jpeg_mosaic_layout(c: int, h: int) -> tuple[int, int, int]:
    """(guard band rows, image rows padded to whole MCUs, rows per image) for a JPEG mosaic."""
    mcu = 16 if c == 3 else 8
    padded = -(-h // mcu) * mcu
    band = _JPEG_BAND if c == 3 else 0
    return band, padded, band + padded + band


def _jpeg(x: torch.Tensor, p: Params, rng: SampleRNG) -> torch.Tensor:
    quality = int(p["quality"])
    xn = x.detach().to("cpu").contiguous().numpy()
    b, c, h, w = xn.shape
    out = buffers.empty(xn.shape)
    band, padded, unit = _jpeg_mosaic_layout(c, h)
    scale, inv = np.float32(255.0), np.float32(1.0 / 255.0)

    def part(s: int, e: int) -> None:
        k = e - s
        # one image is encoded as it is: libjpeg pads it and repeats its edges itself, which
        # is what the guard bands of a mosaic reproduce (so the result is the same)
        alone = lone or k == 1
        planes = scratch("jpeg-planes", (c, k, unit, w), np.uint8)
        # x is in [0, 1], so truncation after + 0.5 rounds to the nearest 8-bit level; the
        # addition writes the 8-bit planes directly (one pass fewer than a separate cast)
        levels = np.multiply(xn[s:e], scale, out=scratch("jpeg-levels", (k, c, h, w), np.float32))
        dst = planes[:, :, band : band + h].transpose(1, 0, 2, 3)
        np.add(levels, np.float32(0.5), out=dst, casting="unsafe")
        if padded > h and not alone:  # libjpeg's own padding: the last row repeated
            planes[:, :, band + h : band + padded] = planes[:, :, band + h - 1 : band + h]
        if band and not alone:  # guard bands: the image's first and last 16 (padded) rows, mirrored
            top = planes[:, :, band : 2 * band]
            planes[:, :, :band] = top[:, :, ::-1]
            bottom = planes[:, :, padded : band + padded]
            planes[:, :, band + padded :] = bottom[:, :, ::-1]
        rows = slice(band, band + h) if alone else slice(0, k * unit)
        layers = [Image.fromarray(planes[i].reshape(k * unit, w)[rows]) for i in range(c)]
        img = layers[0] if c == 1 else Image.merge("RGB", layers)
        with _scratch_file(parallel) as buf:
            img.save(buf, format="JPEG", quality=quality)
            # one (rows, W[, 3]) uint8 array
            decoded = _decode_jpeg(buf, c).reshape(-1, w, c)
        images = decoded[None] if alone else decoded.reshape(k, unit, w, c)[:, band : band + h]
        # to planes in uint8 first (a quarter of the bytes to move strided), then one
        # contiguous scaling pass: 1.6x faster than scaling each channel from the strided view
        planar = scratch("jpeg-planar", (k, c, h, w), np.uint8)
        np.copyto(planar, images.transpose(0, 3, 1, 2))
        np.multiply(planar, inv, out=out[s:e])

    # For a colour image of even height that is not a whole number of MCUs, the decoder repeats
    # the last real colour row where a mosaic would show the padding's; such images are encoded
    # one at a time, which is exact but pays Pillow's per-call overhead.
    lone = c == 3 and h % 2 == 0 and h % 16 != 0
    chunks = (
        [(i, i + 1) for i in range(b)]
        if lone
        else _chunks(b, unit, w, pixels=_JPEG_PIXELS, max_rows=_JPEG_MAX_ROWS)
    )
    parallel = len(chunks) > 1 and torch.get_num_threads() > 1
    with _pillow_block_cache():
        _run_chunks(part, chunks)
    result = torch.from_numpy(out)
    return result if x.device.type == "cpu" else result.to(x.device)


# --- elastic transform --------------------------------------------------------------------------


def _elastic(x: torch.Tensor, p: Params, rng: SampleRNG) -> torch.Tensor:
    noise = rng.rand(2, x.shape[2], x.shape[3])  # (B, 2, H, W): dx then dy
    return elastic_from_noise(x, noise, p["alpha"], p["sigma"], p["max_shift"])


def elastic_from_noise(
    x: torch.Tensor, noise: torch.Tensor, alpha: float, sigma: float, max_shift: float
) -> torch.Tensor:
    """Elastic transform of ``x`` driven by given uniform noise (the deterministic part).

    Args:
        x: images (B, C, H, W).
        noise: uniform [0, 1) noise (B, 2, H, W); channel 0 drives the horizontal and channel 1
            the vertical displacement.
        alpha: displacement gain.
        sigma: smoothing, as a fraction of (H, W).
        max_shift: noise amplitude, as a fraction of H (for both axes, as in the reference).

    Example:
        >>> x = torch.rand(1, 3, 16, 16)
        >>> torch.allclose(elastic_from_noise(x, torch.rand(1, 2, 16, 16), 0.0, 0.01, 0.005), x)
        True
    """
    _, _, h, w = x.shape
    amp = max_shift * h
    disp = (noise.to(x.dtype) * (2.0 * amp) - amp).to(x.device)
    disp = separable_filter(
        disp,
        gaussian_weights(sigma * h, truncate=3.0),
        gaussian_weights(sigma * w, truncate=3.0),
        "reflect",
    )
    disp = disp * alpha
    ys = torch.arange(h, device=x.device, dtype=x.dtype).reshape(1, h, 1)
    xs = torch.arange(w, device=x.device, dtype=x.dtype).reshape(1, 1, w)
    # grid_sample (align_corners=False): pixel i sits at (2 i + 1) / n - 1.
    gx = (xs + disp[:, 0]) * (2.0 / w) + (1.0 / w - 1.0)
    gy = (ys + disp[:, 1]) * (2.0 / h) + (1.0 / h - 1.0)
    grid = torch.stack((gx, gy), dim=-1)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


# --- registration -------------------------------------------------------------------------------

register_corruption(
    CorruptionDef(
        name="brightness",
        fn=_brightness,
        family="weather",  # ImageNet-C files brightness under weather
        benchmark=True,
        param_names=("c",),
        tables={
            "imagenet-c": ((0.1,), (0.2,), (0.3,), (0.4,), (0.5,)),
            "cifar-10-c": ((0.05,), (0.1,), (0.15,), (0.2,), (0.3,)),
        },
        summary="HSV value + c (brighter, colours kept)",
        greyscale="adds c to the grey level (the grey value is V), as the reference does",
    )
)

register_corruption(
    CorruptionDef(
        name="contrast",
        fn=_contrast,
        family="digital",
        benchmark=True,
        param_names=("c",),
        tables={
            "imagenet-c": ((0.4,), (0.3,), (0.2,), (0.1,), (0.05,)),
            "cifar-10-c": ((0.75,), (0.5,), (0.4,), (0.3,), (0.15,)),
        },
        summary="pull every channel towards its image mean: (x - mean) * c + mean",
    )
)

register_corruption(
    CorruptionDef(
        name="saturate",
        fn=_saturate,
        family="digital",
        benchmark=False,
        param_names=("scale", "shift"),
        tables={
            "imagenet-c": ((0.3, 0.0), (0.1, 0.0), (2.0, 0.0), (5.0, 0.1), (20.0, 0.2)),
            "cifar-10-c": ((0.3, 0.0), (0.1, 0.0), (1.5, 0.0), (2.0, 0.1), (2.5, 0.2)),
        },
        summary="HSV saturation * scale + shift (held out)",
        greyscale="identity: a grey pixel has no saturation, and the reference returns its "
        "red channel, which stays at V",
    )
)

register_corruption(
    CorruptionDef(
        name="pixelate",
        fn=_pixelate,
        family="digital",
        benchmark=True,
        param_names=("c",),
        tables={
            "imagenet-c": ((0.6,), (0.5,), (0.4,), (0.3,), (0.25,)),
            "cifar-10-c": ((0.95,), (0.9,), (0.85,), (0.75,), (0.65,)),
        },
        summary="box-average down to c * size, nearest-neighbour back up (Pillow rules)",
    )
)

register_corruption(
    CorruptionDef(
        name="jpeg_compression",
        fn=_jpeg,
        family="digital",
        benchmark=True,
        param_names=("quality",),
        tables={
            "imagenet-c": ((25.0,), (18.0,), (15.0,), (10.0,), (7.0,)),
            "cifar-10-c": ((80.0,), (65.0,), (58.0,), (50.0,), (40.0,)),
        },
        integer_params=("quality",),
        summary="Pillow JPEG re-encode at the given quality",
        greyscale="encoded as a one-channel JPEG (same as the reference's RGB round trip)",
        notes=("Pillow on the CPU, a chunk of images per call; CUDA batches make a round trip",),
    )
)

register_corruption(
    CorruptionDef(
        name="elastic_transform",
        fn=_elastic,
        family="digital",
        benchmark=True,
        param_names=("alpha", "sigma", "max_shift"),
        tables={
            "imagenet-c": tuple((250.0 * a, 0.01, 0.005) for a in (0.05, 0.065, 0.085, 0.1, 0.12)),
            "cifar-10-c": tuple((250.0 * a, 0.03, 0.005) for a in (0.05, 0.065, 0.085, 0.1, 0.12)),
        },
        random=True,
        summary="smoothed random displacement field (imagecorruptions' version, no affine)",
        notes=(
            "sigma and max_shift are fractions of the image size; the cifar-10-c row is "
            "robustcv's (CIFAR-10-C used Hendrycks' affine variant)",
        ),
    )
)
