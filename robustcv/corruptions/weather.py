"""Weather corruptions: snow, frost, fog (ImageNet-C benchmark) and spatter (held out).

Written from imagecorruptions 1.1.2's algorithms (the reference) for batched float32 tensors in
[0, 1]; every random number comes from the per-sample streams of
:class:`~robustcv.corruptions.base.SampleRNG`, so an image's output does not depend on its batch.

* **snow**: a Gaussian layer ``N(c0, c1)``, centre-cropped to ``1/zoom`` of the image and
  bilinearly zoomed back (scipy ``zoom(order=1)``: corners aligned, output
  ``round(crop * zoom)``), thresholded at ``c3``, clipped, blurred by the reference's one-sided
  Gaussian line kernel (``2 r + 1`` taps at an angle ``U(-135, -45)`` degrees, edge-replicated
  shifts) and rounded to 8 bits; the image is brightened to ``c6 x + (1 - c6) max(x, 1.5 grey +
  0.5)`` and the layer plus its 180-degree rotation are added.
* **frost**: ``c_image * x + c_frost * crop`` of a frost texture, as the reference, but the
  textures are robustcv's own procedural ones (:mod:`robustcv.corruptions.frost`) instead of the
  six photos imagecorruptions ships; choice of texture and crop offset are logged draws
  (``texture``, ``crop_y``, ``crop_x``). A texture is scaled by ``max(scale, 1.1 * cover)``,
  where ``cover`` is the factor that makes it as large as the image (the reference's rule for
  ``scale = 1.1``; CIFAR-10-C shrank its photos to 0.2).
* **fog**: ``x + c0 * plasma`` (diamond-square fractal on the next power of two >= max(H, W),
  toroidal, amplitude ``wibble**2`` with ``wibble`` starting at 100 and divided by the decay
  ``c1`` per octave, normalised to [0, 1], cropped to the top-left H x W), then scaled by
  ``max / (max + c0)`` with ``max`` the image's maximum. One uniform draw per map cell.
* **spatter**: a Gaussian layer ``N(c0, c1)`` smoothed by ``c2`` (edge-replicated borders, 4
  sigma) and thresholded at ``c3``. *Mud* (mode 1): the mask, smoothed by ``c4`` and cut below
  0.8, mixes the image with brown (63, 42, 20). *Water* (mode 0): the reference's OpenCV chain
  Canny(50, 150) -> distance transform -> truncate at 20 -> 3x3 box -> histogram equalisation ->
  emboss -> 3x3 box, multiplied with the layer and normalised, adds ``c4`` times pale turquoise
  (175, 238, 238). robustcv reimplements the chain in torch (no OpenCV): Canny with the same
  Sobel/L1 magnitude, direction sectors, non-maximum suppression and hysteresis (OpenCV's
  row-wise seeding shortcut is skipped; it does not change the final edges), the 5x5 chamfer
  distance (1, 1.4, 2.1969) by the same two raster passes, the same box filters, histogram
  equalisation and emboss kernel. Only float rounding differs (measured on identical layers:
  the same edges, the shading within a few grey levels).

Greyscale images: every weather corruption works on the single channel; where the reference
adds a colour (spatter, frost) the grey level of that colour is used (ITU-R 601 weights).
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F

from robustcv.corruptions.base import CorruptionDef, Params, SampleRNG, register_corruption
from robustcv.corruptions.frost import frost_textures
from robustcv.corruptions.ops import gaussian_weights, greyscale, pad2d, separable_filter

__all__ = ["line_blur_taps", "plasma_fractal"]

#: Weights of the reference's ``rgb2gray`` (frost, spatter on greyscale images).
_GREY_IC = (0.2989, 0.5870, 0.1140)


# --- fog ----------------------------------------------------------------------------------------


def _plasma_raw(noise: torch.Tensor, decay: float) -> torch.Tensor:
    """Unnormalised diamond-square maps (B, n, n) driven by uniform noise (B, n, n).

    Each level keeps its maps dense: the k x k corners C, the new centres D, left diamonds L
    and top diamonds T interleave into the next level's 2k x 2k corners (the reference fills
    strided slices of one toroidal map; neighbours wrap around, here by circular padding).
    """
    b, n, n2 = noise.shape
    if n != n2 or n & (n - 1):
        raise ValueError(f"plasma_fractal needs square power-of-two noise, got {n}x{n2}")
    u = noise.to(torch.float32)
    corners = torch.zeros(b, 1, 1, dtype=torch.float32, device=noise.device)
    step, wibble, k = n, 100.0, 1
    while step >= 2:
        h = step // 2
        amp = wibble * wibble  # the reference's wibble * U(-wibble, wibble)
        cp = F.pad(corners[:, None], (0, 1, 0, 1), mode="circular")[:, 0]  # C[i + 1], C[j + 1]
        acc = cp[:, :-1, :-1] + cp[:, 1:, :-1]
        acc += cp[:, :-1, 1:]
        acc += cp[:, 1:, 1:]
        # D = acc / 4 + amp * (2 u - 1)
        centres = acc.mul_(0.25).add_(u[:, h::step, h::step], alpha=2 * amp).sub_(amp)
        dp = F.pad(centres[:, None], (1, 0, 1, 0), mode="circular")[:, 0]  # D[i - 1], D[j - 1]
        left = centres + dp[:, :-1, 1:]
        left += corners
        left += cp[:, :-1, 1:]
        left = left.mul_(0.25).add_(u[:, 0::step, h::step], alpha=2 * amp).sub_(amp)
        top = centres + dp[:, 1:, :-1]
        top += corners
        top += cp[:, 1:, :-1]
        top = top.mul_(0.25).add_(u[:, h::step, 0::step], alpha=2 * amp).sub_(amp)
        nxt = torch.empty(b, k, 2, k, 2, dtype=torch.float32, device=noise.device)
        nxt[:, :, 0, :, 0] = corners
        nxt[:, :, 0, :, 1] = left
        nxt[:, :, 1, :, 0] = top
        nxt[:, :, 1, :, 1] = centres
        corners = nxt.reshape(b, 2 * k, 2 * k)
        step //= 2
        wibble /= decay
        k *= 2
    return corners


def plasma_fractal(noise: torch.Tensor, decay: float) -> torch.Tensor:
    """Diamond-square height maps in [0, 1] driven by uniform noise, batched.

    Args:
        noise: uniform [0, 1) noise (B, n, n), n a power of two; cell (i, j) supplies the random
            offset of that cell when it is filled.
        decay: the amplitude divisor per octave (the reference's ``wibbledecay``).

    Returns:
        (B, n, n) float32 maps, each min-max normalised to [0, 1].

    Example:
        >>> m = plasma_fractal(torch.rand(2, 16, 16), 2.0)
        >>> m.shape, float(m.amin()), float(m.amax())
        (torch.Size([2, 16, 16]), 0.0, 1.0)
    """
    m = _plasma_raw(noise, decay)
    lo, hi = torch.aminmax(m.reshape(m.shape[0], -1), dim=1)
    return (m - lo[:, None, None]) / (hi - lo).clamp(min=1e-30)[:, None, None]


def _fog(x: torch.Tensor, p: Params, rng: SampleRNG) -> torch.Tensor:
    bsz, _, h, w = x.shape
    n = 1 << (max(h, w) - 1).bit_length()
    raw = _plasma_raw(rng.rand(n, n), p["decay"])
    lo, hi = torch.aminmax(raw.reshape(bsz, -1), dim=1)
    c = p["c"]
    peak = x.amax(dim=(1, 2, 3))
    gain = peak / (peak + c)  # the reference rescales by max / (max + c)
    # (x + c (raw - lo) / (hi - lo)) * gain, on the top-left h x w of the map only
    k = (c * gain / (hi - lo).clamp(min=1e-30)).reshape(bsz, 1, 1, 1)
    fog = (raw[:, None, :h, :w] - lo.reshape(bsz, 1, 1, 1)) * k
    return torch.addcmul(fog, x, gain.reshape(bsz, 1, 1, 1)).clamp_(0.0, 1.0)


# --- snow ---------------------------------------------------------------------------------------


def line_blur_taps(
    radius: int, sigma: float, angle: float, height: int, width: int
) -> list[tuple[int, int, float]]:
    """The reference's motion-blur line kernel as (dy, dx, weight) taps.

    ``2 radius + 1`` taps with one-sided Gaussian weights ``exp(-i^2 / (2 sigma^2))``
    (normalised), tap ``i`` shifted by ``-ceil(i * (sin, cos)(angle) - 0.5)``; taps that would
    leave the image stop the kernel (without renormalising), as in the reference.

    Example:
        >>> [(dy, dx) for dy, dx, _ in line_blur_taps(2, 1.0, 0.0, 32, 32)]
        [(0, 0), (0, -1), (0, -2), (0, -3), (0, -4)]
    """
    n = 2 * radius + 1
    weights = [math.exp(-(i**2) / (2.0 * sigma**2)) for i in range(n)]
    total = sum(weights)
    rad = math.radians(angle)
    py, px = n * math.sin(rad), n * math.cos(rad)
    hyp = math.hypot(py, px)
    taps = []
    for i in range(n):
        dy = -math.ceil((i * py) / hyp - 0.5)
        dx = -math.ceil((i * px) / hyp - 0.5)
        if abs(dy) >= height or abs(dx) >= width:
            break
        taps.append((dy, dx, weights[i] / total))
    return taps


def _line_blur(
    layer: torch.Tensor, taps: list[list[tuple[int, int, float]]], h: int, w: int
) -> torch.Tensor:
    """Per-sample line blur of (B, Hl, Wl) with edge replication; returns the top-left h x w."""
    pad = max((max(abs(dy), abs(dx)) for t in taps for dy, dx, _ in t), default=0)
    padded = F.pad(layer[:, None], (pad, pad, pad, pad), mode="replicate")[:, 0]
    out = torch.zeros(layer.shape[0], h, w, dtype=layer.dtype, device=layer.device)
    for b, sample in enumerate(taps):
        for dy, dx, wt in sample:
            y0, x0 = pad - dy, pad - dx
            out[b].add_(padded[b, y0 : y0 + h, x0 : x0 + w], alpha=wt)
    return out


def _snow(x: torch.Tensor, p: Params, rng: SampleRNG) -> torch.Tensor:
    _, _, h, w = x.shape
    layer = rng.randn(h, w).mul_(p["std"]).add_(p["mean"])
    z = p["zoom"]
    ch, cw = math.ceil(h / z), math.ceil(w / z)
    top, left = (h - ch) // 2, (w - cw) // 2
    crop = layer[:, None, top : top + ch, left : left + cw]
    size = (max(round(ch * z), 1), max(round(cw * z), 1))
    if size != (ch, cw):
        crop = F.interpolate(crop, size=size, mode="bilinear", align_corners=True)
    layer = crop[:, 0]
    layer = torch.where(layer < p["threshold"], torch.zeros_like(layer), layer).clamp_(0.0, 1.0)
    angles = rng.uniform("angle", -135.0, -45.0).tolist()
    hl, wl = layer.shape[1:]
    taps = [line_blur_taps(int(p["radius"]), p["sigma"], a, hl, wl) for a in angles]
    layer = _line_blur(layer, taps, min(h, hl), min(w, wl))
    if layer.shape[1:] != (h, w):  # only if rounding made the zoomed layer smaller
        layer = F.pad(layer, (0, w - layer.shape[2], 0, h - layer.shape[1]))
    layer = layer.mul_(255.0).round_().div_(255.0)
    snow = (layer + layer.flip(1, 2))[:, None]
    grey = greyscale(x)
    keep = p["blend"]
    base = x * keep + (1.0 - keep) * torch.maximum(x, grey * 1.5 + 0.5)
    return base.add_(snow).clamp_(0.0, 1.0)


# --- frost --------------------------------------------------------------------------------------


@lru_cache(maxsize=10)  # a magnified texture can be ~30 MB (1024-pixel images)
def _scaled_texture(index: int, height: int, width: int, device: str) -> torch.Tensor:
    tex = frost_textures()[index]
    out = tex[None]
    if (height, width) != tuple(tex.shape[1:]):
        smaller = height < tex.shape[1]
        out = F.interpolate(
            out, size=(height, width), mode="bicubic", align_corners=False, antialias=smaller
        )
    return out[0].clamp(0.0, 1.0).to(device)


def _frost(x: torch.Tensor, p: Params, rng: SampleRNG) -> torch.Tensor:
    bsz, chans, h, w = x.shape
    textures = frost_textures()
    which = rng.randint("texture", 0, len(textures)).tolist()
    uy = rng.uniform("crop_y", 0.0, 1.0).tolist()
    ux = rng.uniform("crop_x", 0.0, 1.0).tolist()
    crops = []
    for b in range(bsz):
        i = int(which[b])
        th, tw = textures[i].shape[1:]
        scale = max(p["scale"], 1.1 * max(h / th, w / tw))
        sh, sw = math.ceil(th * scale), math.ceil(tw * scale)
        tex = _scaled_texture(i, sh, sw, str(x.device))
        oy = min(int(uy[b] * (sh - h)), sh - h)
        ox = min(int(ux[b] * (sw - w)), sw - w)
        crops.append(tex[:, oy : oy + h, ox : ox + w])
    frost = torch.stack(crops)
    if chans == 1:
        frost = greyscale(frost, _GREY_IC)
    return (x * p["c_image"]).add_(frost, alpha=p["c_frost"]).clamp_(0.0, 1.0)


# --- spatter ------------------------------------------------------------------------------------


def _sum3(xp: torch.Tensor, h: int, w: int, weights: tuple[float, ...]) -> torch.Tensor:
    """Correlate a padded (B, 1, h + 2, w + 2) map with a 3x3 kernel (row-major weights)."""
    out: torch.Tensor | None = None
    for k, wt in enumerate(weights):
        if wt == 0.0:
            continue
        dy, dx = divmod(k, 3)
        term = xp[:, :, dy : dy + h, dx : dx + w]
        out = term * wt if out is None else out.add_(term, alpha=wt)
    if out is None:
        return torch.zeros_like(xp[:, :, 1 : 1 + h, 1 : 1 + w])
    return out


def _box3(x: torch.Tensor) -> torch.Tensor:
    """3x3 mean with OpenCV's default border (reflect-101) on (B, 1, H, W)."""
    h, w = x.shape[2:]
    xp = pad2d(x, 1, 1, 1, 1, "reflect101")
    rows = xp[:, :, 0:h] + xp[:, :, 1 : h + 1] + xp[:, :, 2 : h + 2]
    return (rows[..., 0:w] + rows[..., 1 : w + 1] + rows[..., 2 : w + 2]).mul_(1.0 / 9.0)


def _dilate3(x: torch.Tensor) -> torch.Tensor:
    """3x3 dilation of a bool (B, 1, H, W) map (nothing outside the image)."""
    rows = x.clone()
    rows[:, :, 1:] |= x[:, :, :-1]
    rows[:, :, :-1] |= x[:, :, 1:]
    out = rows.clone()
    out[..., 1:] |= rows[..., :-1]
    out[..., :-1] |= rows[..., 1:]
    return out


_EMBOSS = (-2.0, -1.0, 0.0, -1.0, 1.0, 1.0, 0.0, 1.0, 2.0)
_TAN22 = math.tan(math.radians(22.5))


def _canny(img: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """Canny edges (bool) of (B, 1, H, W) 8-bit-valued maps, as OpenCV's ``Canny``.

    3x3 Sobel (replicated borders), L1 magnitude, 4-sector non-maximum suppression (magnitude 0
    outside the image), hysteresis over 8-neighbours.
    """
    h, w = img.shape[2:]
    xp = pad2d(img, 1, 1, 1, 1, "nearest")
    dx = xp[..., 2 : w + 2] - xp[..., 0:w]  # (B, 1, H + 2, W)
    gx = dx[:, :, 0:h] + 2.0 * dx[:, :, 1 : h + 1] + dx[:, :, 2 : h + 2]
    dy = xp[:, :, 2 : h + 2] - xp[:, :, 0:h]  # (B, 1, H, W + 2)
    gy = dy[..., 0:w] + 2.0 * dy[..., 1 : w + 1] + dy[..., 2 : w + 2]
    ax, ay = gx.abs(), gy.abs()
    mag = ax + ay
    mp = F.pad(mag, (1, 1, 1, 1))

    def nb(oy: int, ox: int) -> torch.Tensor:
        return mp[:, :, 1 + oy : 1 + oy + h, 1 + ox : 1 + ox + w]

    horiz = ay < ax * _TAN22
    vert = ay > ax * (_TAN22 + 2.0)
    keep = torch.where(
        horiz,
        (mag > nb(0, -1)) & (mag >= nb(0, 1)),
        (mag > nb(-1, 0)) & (mag >= nb(1, 0)),
    )
    diag = ~(horiz | vert)
    # Diagonal sector: neighbours along (1, 1) when gx and gy share a sign, else (1, -1).
    same = (gx * gy) >= 0
    keep_d = torch.where(
        same,
        (mag > nb(-1, -1)) & (mag > nb(1, 1)),
        (mag > nb(-1, 1)) & (mag > nb(1, -1)),
    )
    weak = torch.where(diag, keep_d, keep) & (mag > low)
    edges = weak & (mag > high)
    for _ in range(h * w):  # hysteresis: grow the strong edges along weak ones
        grown = _dilate3(edges) & weak
        if torch.equal(grown, edges):
            break
        edges = grown
    return edges


#: OpenCV's 5x5 chamfer steps for DIST_L2 (1, 1.4, 2.1969) in its 16-bit fixed point.
_CHAMFER = tuple(round(v * 65536) for v in (1.0, 1.4, 2.1969))


#: "Infinity" of the fixed-point chamfer transform (int32; leaves room for one step on top).
_FAR = 1 << 28


def _chamfer_scan(init: torch.Tensor) -> torch.Tensor:
    """One raster pass of the 5x5 chamfer transform over (B, H, W) int32 fixed-point values.

    Rows top to bottom, each row left to right.
    """
    hv, diag, long = _CHAMFER
    bsz, h, w = init.shape
    buf = torch.full((bsz, h + 2, w + 4), _FAR, dtype=init.dtype, device=init.device)
    ramp = torch.arange(w, dtype=init.dtype, device=init.device) * hv
    for y in range(h):
        r2, r1 = buf[:, y], buf[:, y + 1]  # two rows up, one row up (padded by 2 columns)
        c = torch.minimum(r2[:, 1 : w + 1], r2[:, 3 : w + 3]).add_(long)
        c = torch.minimum(c, torch.minimum(r1[:, 0:w], r1[:, 4 : w + 4]).add_(long))
        c = torch.minimum(c, torch.minimum(r1[:, 1 : w + 1], r1[:, 3 : w + 3]).add_(diag))
        c = torch.minimum(c, r1[:, 2 : w + 2] + hv)
        c = torch.minimum(c, init[:, y]).clamp_(max=_FAR).sub_(ramp)
        # in-row recursion cur[x] = min(cur[x], cur[x-1] + hv) as a running minimum
        buf[:, y + 2, 2 : w + 2] = torch.cummin(c, dim=1).values.add_(ramp)
    return buf[:, 2:, 2 : w + 2]


def _chamfer_distance(zero: torch.Tensor) -> torch.Tensor:
    """OpenCV's ``distanceTransform(DIST_L2, 5)`` to the pixels where ``zero`` is true.

    The 5x5 chamfer distance of every pixel of ``zero`` (B, 1, H, W), by the same two raster
    passes (the backward pass is the forward one on the 180-degree rotation; the mask is
    symmetric). Returns float32 pixels; distances beyond about 4000 pixels saturate.
    """
    init = torch.where(zero[:, 0], 0, _FAR).to(torch.int32)
    fwd = _chamfer_scan(init)
    both = _chamfer_scan(fwd.flip(1, 2)).flip(1, 2)
    # exact in float32 up to 256 pixels, far beyond the cap of 20 the corruption uses
    return both.to(torch.float32).mul_(1.0 / 65536.0)[:, None]


def _equalize(levels: torch.Tensor) -> torch.Tensor:
    """OpenCV ``equalizeHist`` of (B, 1, H, W) integer levels 0..255, per image."""
    bsz = levels.shape[0]
    dev = levels.device
    flat = levels.reshape(bsz, -1).to(torch.int64)
    offsets = torch.arange(bsz, device=dev)[:, None] * 256
    hist = torch.bincount((flat + offsets).reshape(-1), minlength=256 * bsz)
    hist = hist.reshape(bsz, 256).to(torch.float64)
    total = float(flat.shape[1])
    first = (hist > 0).to(torch.int64).argmax(dim=1, keepdim=True)
    first_count = hist.gather(1, first)
    cdf = hist.cumsum(1) - first_count  # pixels with first < level <= j
    lut = torch.round(cdf * (255.0 / (total - first_count).clamp(min=1.0))).clamp_(0, 255)
    levels_256 = torch.arange(256, device=dev, dtype=torch.float64)[None]
    lut = torch.where(levels_256 < first, 0.0, lut)
    lut = torch.where(first_count == total, levels_256, lut)  # a constant image stays as it is
    return lut.gather(1, flat).reshape(levels.shape).to(levels.dtype)


def _water_layer(liquid: torch.Tensor) -> torch.Tensor:
    """The reference's water-drop shading from the thresholded liquid layer (B, 1, H, W)."""
    level = torch.floor(liquid * 255.0).clamp_(0.0, 255.0)
    h, w = level.shape[2:]
    edges = _canny(level, 50.0, 150.0)
    dist = _chamfer_distance(edges).clamp_(max=20.0)
    dist = torch.floor(_box3(dist))
    dist = _equalize(dist)
    dist = _sum3(pad2d(dist, 1, 1, 1, 1, "reflect101"), h, w, _EMBOSS).clamp_(0.0, 255.0)
    dist = torch.round(_box3(dist))
    m = level * dist
    return m / m.amax(dim=(1, 2, 3), keepdim=True).clamp(min=1e-12)


def _spatter(x: torch.Tensor, p: Params, rng: SampleRNG) -> torch.Tensor:
    _, chans, h, w = x.shape
    liquid = rng.randn(1, h, w).mul_(p["std"]).add_(p["mean"])
    wts = gaussian_weights(p["sigma"], truncate=4.0)
    liquid = separable_filter(liquid, wts, wts, "nearest")
    threshold = p["threshold"]
    liquid = torch.where(liquid < threshold, torch.zeros_like(liquid), liquid)
    if int(p["mode"]) == 0:
        m = _water_layer(liquid) * p["intensity"]
        color = torch.tensor([175.0, 238.0, 238.0], device=x.device) / 255.0
        add = (m * color.reshape(1, 3, 1, 1)).clamp_(0.0, 1.0)
        if chans == 1:
            add = greyscale(add, _GREY_IC)
        return (x + add).clamp_(0.0, 1.0)
    mask = (liquid > threshold).to(x.dtype)
    s = p["intensity"]
    wts = gaussian_weights(s, truncate=4.0)
    mask = separable_filter(mask, wts, wts, "nearest")
    mask = torch.where(mask < 0.8, torch.zeros_like(mask), mask)
    brown = torch.tensor([63.0, 42.0, 20.0], device=x.device).reshape(1, 3, 1, 1) / 255.0
    if chans == 1:
        brown = greyscale(brown, _GREY_IC)
    return (x * (1.0 - mask) + mask * brown).clamp_(0.0, 1.0)


# --- registration -------------------------------------------------------------------------------

register_corruption(
    CorruptionDef(
        name="snow",
        fn=_snow,
        family="weather",
        benchmark=True,
        param_names=("mean", "std", "zoom", "threshold", "radius", "sigma", "blend"),
        tables={
            "imagenet-c": (
                (0.1, 0.3, 3.0, 0.5, 10.0, 4.0, 0.8),
                (0.2, 0.3, 2.0, 0.5, 12.0, 4.0, 0.7),
                (0.55, 0.3, 4.0, 0.9, 12.0, 8.0, 0.7),
                (0.55, 0.3, 4.5, 0.85, 12.0, 8.0, 0.65),
                (0.55, 0.3, 2.5, 0.85, 12.0, 12.0, 0.55),
            ),
            "cifar-10-c": (
                (0.1, 0.2, 1.0, 0.6, 8.0, 3.0, 0.95),
                (0.1, 0.2, 1.0, 0.5, 10.0, 4.0, 0.9),
                (0.15, 0.3, 1.75, 0.55, 10.0, 4.0, 0.9),
                (0.25, 0.3, 2.25, 0.6, 12.0, 6.0, 0.85),
                (0.3, 0.3, 1.25, 0.65, 14.0, 12.0, 0.8),
            ),
        },
        integer_params=("radius",),
        random=True,
        summary="falling snow: zoomed thresholded noise, motion-blurred, on a brightened image",
        greyscale="the flakes are added to the single channel, which is its own grey level",
        notes=("zoom, radius and sigma are pixel lengths, interpolated between 32 and 224 px",),
    )
)

register_corruption(
    CorruptionDef(
        name="frost",
        fn=_frost,
        family="weather",
        benchmark=True,
        param_names=("c_image", "c_frost", "scale"),
        tables={
            "imagenet-c": (
                (1.0, 0.4, 1.1),
                (0.8, 0.6, 1.1),
                (0.7, 0.7, 1.1),
                (0.65, 0.7, 1.1),
                (0.6, 0.75, 1.1),
            ),
            "cifar-10-c": (
                (1.0, 0.2, 0.2),
                (1.0, 0.3, 0.2),
                (0.9, 0.4, 0.2),
                (0.85, 0.4, 0.2),
                (0.75, 0.45, 0.2),
            ),
        },
        random=True,
        summary="frost on a window: c_image * x + c_frost * a crop of a frost texture",
        greyscale="the grey level of the (bluish-white) frost texture is blended in",
        notes=(
            "textures are procedural (robustcv.corruptions.frost), not the reference's photos",
            "scale is the texture magnification (imagecorruptions: 1.1; CIFAR-10-C: 0.2)",
        ),
    )
)

register_corruption(
    CorruptionDef(
        name="fog",
        fn=_fog,
        family="weather",
        benchmark=True,
        param_names=("c", "decay"),
        tables={
            "imagenet-c": ((1.5, 2.0), (2.0, 2.0), (2.5, 1.7), (2.5, 1.5), (3.0, 1.4)),
            "cifar-10-c": ((0.2, 3.0), (0.5, 3.0), (0.75, 2.5), (1.0, 2.0), (1.5, 1.75)),
        },
        random=True,
        summary="plasma-fractal haze added and the image rescaled",
        notes=("the fractal map is the next power of two >= max(H, W), cropped",),
    )
)

register_corruption(
    CorruptionDef(
        name="spatter",
        fn=_spatter,
        family="weather",
        benchmark=False,
        param_names=("mean", "std", "sigma", "threshold", "intensity", "mode"),
        tables={
            "imagenet-c": (
                (0.65, 0.3, 4.0, 0.69, 0.6, 0.0),
                (0.65, 0.3, 3.0, 0.68, 0.6, 0.0),
                (0.65, 0.3, 2.0, 0.68, 0.5, 0.0),
                (0.65, 0.3, 1.0, 0.65, 1.5, 1.0),
                (0.67, 0.4, 1.0, 0.65, 1.5, 1.0),
            ),
            "cifar-10-c": (
                (0.62, 0.1, 0.7, 0.7, 0.5, 0.0),
                (0.65, 0.1, 0.8, 0.7, 0.5, 0.0),
                (0.65, 0.3, 1.0, 0.69, 0.5, 0.0),
                (0.65, 0.1, 0.7, 0.69, 0.6, 1.0),
                (0.65, 0.1, 0.5, 0.68, 0.6, 1.0),
            ),
        },
        integer_params=("mode",),
        random=True,
        summary="water drops (severities 1-3) or mud splashes (4-5) (held out)",
        greyscale="the grey level of the water/mud colour is used",
        notes=(
            "intensity is the water strength (mode 0) or the mud mask's blur sigma (mode 1)",
            "water shading: torch port of the reference's OpenCV Canny/distance-transform chain",
        ),
    )
)
