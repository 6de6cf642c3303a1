"""Weather and digital corruptions against independent implementations.

Each deterministic step is checked against numpy / scipy / scikit-image / Pillow code written
here from the reference algorithm (imagecorruptions 1.1.2), driven by the same random numbers
(a fake ``SampleRNG`` hands the corruption chosen noise). OpenCV is only used where it is
installed (the bench extra); the always-run checks use hand-derived values. The statistical
fidelity against imagecorruptions itself lives in ``test_corruptions_fidelity.py``.
"""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch
import torch.nn.functional as F
from PIL import Image
from skimage import color as skcolor

from robustcv.corruptions import (
    CORRUPTIONS,
    corrupt,
    corrupt_with_draws,
    digital,
    frost,
    resolve_params,
    weather,
)
from robustcv.corruptions.base import SampleRNG


class FakeRNG(SampleRNG):
    """Hands out given noise instead of drawing it (one batch)."""

    def __init__(self, n: int, *, rand=None, randn=None, scalars=None) -> None:  # type: ignore[no-untyped-def]
        super().__init__([torch.Generator() for _ in range(n)], "cpu")
        self._rand, self._randn = rand, randn
        self._scalars = scalars or {}

    def rand(self, *shape: int) -> torch.Tensor:
        out = torch.as_tensor(self._rand, dtype=torch.float32).clone()
        return out.reshape(self.batch_size, *shape)

    def randn(self, *shape: int) -> torch.Tensor:
        out = torch.as_tensor(self._randn, dtype=torch.float32).clone()
        return out.reshape(self.batch_size, *shape)

    def uniform(self, name: str, low: float, high: float) -> torch.Tensor:
        return torch.as_tensor(self._scalars[name], dtype=torch.float64).reshape(-1)


def _photo(h: int = 48, w: int = 56, n: int = 2, seed: int = 0) -> torch.Tensor:
    """Natural-looking test images: smooth colour blobs plus fine detail, 8-bit values."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, 6, 7, generator=g)
    smooth = torch.nn.functional.interpolate(coarse, size=(h, w), mode="bicubic")
    x = (0.8 * smooth + 0.2 * torch.rand(n, 3, h, w, generator=g)).clamp(0, 1)
    x[0, :, :4, :4] = 0.5  # grey pixels (saturation 0)
    x[0, :, 4:6, :4] = 0.0  # black
    return torch.round(x * 255) / 255


def _hwc(x: torch.Tensor) -> np.ndarray:
    return x.permute(0, 2, 3, 1).double().numpy()


def _params(name: str, severity: int, h: int = 224, w: int = 224) -> dict[str, float]:
    return resolve_params(CORRUPTIONS.get(name), severity, "imagenet-c", h, w)


# ------------------------------------------------------------------------- contrast, HSV family


@pytest.mark.parametrize("severity", [1, 3, 5])
def test_contrast_by_hand(severity: int) -> None:
    x = _photo()
    c = [0.4, 0.3, 0.2, 0.1, 0.05][severity - 1]
    xn = _hwc(x)
    mean = xn.mean(axis=(1, 2), keepdims=True)  # per image and channel
    want = np.clip((xn - mean) * c + mean, 0, 1)
    got = _hwc(corrupt(x, "contrast", severity, spec="imagenet-c"))
    np.testing.assert_allclose(got, want, atol=1e-6)


@pytest.mark.parametrize("severity", [1, 2, 3, 4, 5])
def test_brightness_matches_skimage_hsv_round_trip(severity: int) -> None:
    x = _photo()
    c = [0.1, 0.2, 0.3, 0.4, 0.5][severity - 1]
    got = _hwc(corrupt(x, "brightness", severity, spec="imagenet-c"))
    for i, img in enumerate(_hwc(x)):
        hsv = skcolor.rgb2hsv(img)
        hsv[..., 2] = np.clip(hsv[..., 2] + c, 0, 1)
        np.testing.assert_allclose(got[i], np.clip(skcolor.hsv2rgb(hsv), 0, 1), atol=2e-6)


def test_brightness_on_greyscale_adds_to_the_grey_level() -> None:
    x = _photo()[:, :1]
    got = corrupt(x, "brightness", 4, spec="imagenet-c")
    torch.testing.assert_close(got, (x + 0.4).clamp(0, 1), atol=1e-6, rtol=0)


@pytest.mark.parametrize("severity", [1, 2, 3, 4, 5])
def test_saturate_matches_skimage_hsv_round_trip(severity: int) -> None:
    x = _photo()
    a, b = [(0.3, 0), (0.1, 0), (2, 0), (5, 0.1), (20, 0.2)][severity - 1]
    got = _hwc(corrupt(x, "saturate", severity, spec="imagenet-c"))
    for i, img in enumerate(_hwc(x)):
        hsv = skcolor.rgb2hsv(img)
        hsv[..., 1] = np.clip(hsv[..., 1] * a + b, 0, 1)
        np.testing.assert_allclose(got[i], np.clip(skcolor.hsv2rgb(hsv), 0, 1), atol=2e-6)


def test_saturate_turns_grey_pixels_red_when_shifted_and_leaves_greyscale_alone() -> None:
    x = torch.full((1, 3, 8, 8), 0.6)
    y = corrupt(x, "saturate", 5, spec="imagenet-c")  # S' = 0.2 for grey pixels (hue 0)
    torch.testing.assert_close(y[0, :, 0, 0], torch.tensor([0.6, 0.48, 0.48]))
    grey = _photo()[:, :1]
    assert torch.equal(corrupt(grey, "saturate", 5), grey)


def test_ops_hsv_conversions_match_skimage_with_ties_and_greys() -> None:
    from robustcv.corruptions.ops import hsv_to_rgb, rgb_to_hsv

    x = _photo()
    x[1, 0, :3, :] = x[1, 1, :3, :]  # red == green (a tie for the maximum)
    x[1, 2, 3:6, :] = x[1, 1, 3:6, :]  # green == blue
    hsv = rgb_to_hsv(x)
    for i, img in enumerate(_hwc(x)):
        np.testing.assert_allclose(_hwc(hsv)[i], skcolor.rgb2hsv(img), atol=1e-6)
        ref = skcolor.hsv2rgb(_hwc(hsv)[i])
        np.testing.assert_allclose(_hwc(hsv_to_rgb(hsv))[i], ref, atol=1e-6)


# ------------------------------------------------------------------------------------- pixelate


@pytest.mark.parametrize(("h", "w"), [(224, 224), (37, 53), (8, 9), (100, 61)])
@pytest.mark.parametrize("c", [0.6, 0.25, 0.95, 0.85])
def test_pixelate_matches_pillow_box_then_nearest(h: int, w: int, c: float) -> None:
    x = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(h * w))
    got = digital._pixelate(x, {"c": c}, FakeRNG(1))  # the CPU path (Pillow, threaded)
    lh, lw = max(int(h * c), 1), max(int(w * c), 1)
    torch_path = digital._pixelate_torch(x, lh, lw)  # the path CUDA batches take
    for ch in range(3):
        img = Image.fromarray(x[0, ch].numpy(), mode="F")
        ref = img.resize((lw, lh), Image.Resampling.BOX).resize((w, h), Image.Resampling.NEAREST)
        np.testing.assert_allclose(got[0, ch].numpy(), np.asarray(ref), atol=1e-6)
        np.testing.assert_allclose(torch_path[0, ch].numpy(), np.asarray(ref), atol=1e-6)


def test_pixelate_torch_path_upsamples_like_pillow_whatever_torch_rounds() -> None:
    # sizes where torch's float32 nearest-exact indices differ from Pillow's accumulated ones
    bad = [
        (lo, n)
        for n in range(8, 90)
        for lo in range(1, n)
        if not digital._nearest_exact_is_pillow(lo, n, "cpu")
    ]
    assert bad, "expected some sizes where torch and Pillow pick different pixels"
    lo, n = bad[0]
    x = torch.rand(2, 1, n, n)
    c = (lo + 0.5) / n
    got = digital._pixelate_torch(x, lo, lo)
    want = digital._pixelate(x, {"c": c}, FakeRNG(2))
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)


def test_pixelate_index_rules_match_pillow_for_many_sizes() -> None:
    rng = np.random.default_rng(0)
    for n_out in range(1, 120, 7):
        for n_in in range(n_out, 260, 11):
            ramp = np.arange(n_in, dtype=np.int32)[None, :].repeat(2, 0)
            near = Image.fromarray(ramp, mode="I").resize(
                (n_out * 2 + 1, 2), Image.Resampling.NEAREST
            )
            assert (
                np.asarray(near)[0].tolist() == digital._nearest_index(n_in, n_out * 2 + 1).tolist()
            )
            row = rng.random((1, n_in)).astype(np.float32)
            box = Image.fromarray(row, mode="F").resize((n_out, 1), Image.Resampling.BOX)
            starts, counts = digital._box_groups(n_in, n_out)
            pairs = zip(starts.tolist(), counts.tolist(), strict=True)
            ours = [row[0, a : a + k].mean() for a, k in pairs]
            np.testing.assert_allclose(ours, np.asarray(box)[0], atol=1e-6)


# ----------------------------------------------------------------------------------------- JPEG


@pytest.fixture(params=["simplejpeg", "pillow"])
def jpeg_decoder(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a JPEG test with each decoder: simplejpeg (the fast extra) and Pillow."""
    if request.param == "pillow":
        monkeypatch.setattr(digital, "_simplejpeg", None)
    elif digital._simplejpeg is None:
        pytest.skip("simplejpeg is not installed (pip install -e '.[fast]')")
    return str(request.param)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("quality", [5, 30, 75, 95])
def test_simplejpeg_decodes_exactly_as_pillow(channels: int, quality: int) -> None:
    sj = pytest.importorskip("simplejpeg")
    g = torch.Generator().manual_seed(quality + channels)
    for h, w in [(224, 224), (37, 53), (9, 13), (300, 17)]:
        base = torch.rand(channels, 4, 4, generator=g)
        img = F.interpolate(base[None], size=(h, w), mode="bilinear", align_corners=False)[0]
        img = (img + 0.2 * torch.rand(channels, h, w, generator=g)).clamp(0, 1)
        arr = (img.numpy() * 255 + 0.5).astype(np.uint8)
        pil = Image.fromarray(arr[0] if channels == 1 else arr.transpose(1, 2, 0))
        buf = io.BytesIO()
        pil.save(buf, format="JPEG", quality=quality)
        want = np.asarray(Image.open(io.BytesIO(buf.getvalue())))
        got = digital._decode_jpeg(buf, channels)
        assert got.reshape(want.shape).tobytes() == want.tobytes(), (h, w)
        assert digital._simplejpeg is sj


@pytest.mark.parametrize("quality", [7, 25, 80])
def test_jpeg_matches_pillow_rgb_and_grey(quality: int, jpeg_decoder: str) -> None:
    x = _photo(64, 72)
    p = {"quality": float(quality)}
    got = digital._jpeg(x, p, FakeRNG(2))
    for i, img in enumerate((_hwc(x) * 255).round().astype(np.uint8)):
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=quality)
        ref = np.asarray(Image.open(buf)).astype(np.float64) / 255
        np.testing.assert_allclose(_hwc(got)[i], ref, atol=1e-6)
    # greyscale: one-channel JPEG == the reference's RGB round trip converted back to L
    grey = x[:, :1]
    got_grey = digital._jpeg(grey, p, FakeRNG(2))
    for i in range(2):
        arr = (grey[i, 0].numpy() * 255).round().astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(arr).convert("RGB").save(buf, format="JPEG", quality=quality)
        ref = np.asarray(Image.open(buf).convert("L")).astype(np.float64) / 255
        assert np.abs(got_grey[i, 0].numpy() - ref).max() <= 1.5 / 255


# heights that exercise every mosaic case: whole MCUs, odd heights (padding rows equal the last
# row), even heights that end mid-MCU (encoded alone) and images smaller than one MCU
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize(("h", "w"), [(8, 8), (9, 13), (28, 28), (37, 53), (32, 17), (100, 61)])
def test_jpeg_mosaic_equals_encoding_each_image_alone(
    channels: int, h: int, w: int, jpeg_decoder: str
) -> None:
    # smooth images with texture, so that colour rows differ and edge errors would show
    g = torch.Generator().manual_seed(h * 100 + w)
    base = torch.rand(5, channels, 3, 3, generator=g)
    x = F.interpolate(base, size=(h, w), mode="bilinear", align_corners=False)
    x = (x + 0.15 * torch.rand(5, channels, h, w, generator=g)).clamp(0.0, 1.0)
    got = digital._jpeg(x, {"quality": 10.0}, FakeRNG(0))
    for i in range(5):
        planes = (x[i].numpy() * 255 + 0.5).astype(np.uint8)
        img = (
            Image.fromarray(planes[0])
            if channels == 1
            else Image.fromarray(planes.transpose(1, 2, 0))
        )
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=10)
        ref = np.asarray(Image.open(buf)).astype(np.float64) / 255
        ref = ref[None] if channels == 1 else ref.transpose(2, 0, 1)
        np.testing.assert_allclose(got[i].numpy(), ref, atol=1e-6)
    # and each image's result does not depend on its neighbours in the batch
    torch.testing.assert_close(digital._jpeg(x[2:3], {"quality": 10.0}, FakeRNG(0)), got[2:3])


def test_jpeg_mosaic_chunks_respect_the_jpeg_height_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    # many tiny images: chunks must stay below 65535 rows, and results must not change
    x = torch.rand(40, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    want = digital._jpeg(x, {"quality": 30.0}, FakeRNG(0))
    monkeypatch.setattr(digital, "_JPEG_MAX_ROWS", 3 * 48)  # 3 images of 16 + 2 bands per chunk
    chunks = digital._chunks(
        40, 48, 16, pixels=digital._JPEG_PIXELS, max_rows=digital._JPEG_MAX_ROWS
    )
    assert max(e - s for s, e in chunks) == 3
    torch.testing.assert_close(digital._jpeg(x, {"quality": 30.0}, FakeRNG(0)), want)


@pytest.mark.parametrize(("h", "w", "c"), [(6, 10, 0.7), (32, 40, 0.892), (224, 224, 0.4)])
def test_pixelate_is_batch_independent_to_the_bit(h: int, w: int, c: float) -> None:
    # 6 -> 4 rows has a pixel centre exactly on a group boundary (1.5 = 1 * 6 / 4)
    x = torch.rand(5, 3, h, w, generator=torch.Generator().manual_seed(h))
    got = digital._pixelate(x, {"c": c}, FakeRNG(0))
    for i in range(5):
        assert torch.equal(got[i : i + 1], digital._pixelate(x[i : i + 1], {"c": c}, FakeRNG(0)))
        for ch in range(3):
            img = Image.fromarray(x[i, ch].numpy(), mode="F")
            low = img.resize((max(int(w * c), 1), max(int(h * c), 1)), Image.Resampling.BOX)
            ref = np.asarray(low.resize((w, h), Image.Resampling.NEAREST))
            np.testing.assert_allclose(got[i, ch].numpy(), ref, atol=1e-6)


# ------------------------------------------------------------------------------------- elastic


def test_elastic_with_zero_alpha_is_the_identity() -> None:
    x = _photo()
    noise = torch.rand(2, 2, 48, 56)
    torch.testing.assert_close(digital.elastic_from_noise(x, noise, 0.0, 0.01, 0.005), x)


@pytest.mark.parametrize(("h", "w", "alpha", "sigma"), [(48, 56, 30.0, 0.01), (40, 33, 20.0, 0.05)])
def test_elastic_matches_scipy_map_coordinates(h: int, w: int, alpha: float, sigma: float) -> None:
    x = _photo(h, w, n=1)
    g = torch.Generator().manual_seed(1)
    noise = torch.rand(1, 2, h, w, generator=g, dtype=torch.float64)
    got = digital.elastic_from_noise(x, noise.float(), alpha, sigma, 0.05)[0]
    amp = 0.05 * h
    s = (sigma * h, sigma * w)
    dx = ndi.gaussian_filter(noise[0, 0].numpy() * 2 * amp - amp, s, mode="reflect", truncate=3)
    dy = ndi.gaussian_filter(noise[0, 1].numpy() * 2 * amp - amp, s, mode="reflect", truncate=3)
    yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    for c in range(3):
        ref = ndi.map_coordinates(
            x[0, c].double().numpy(), [yy + alpha * dy, xx + alpha * dx], order=1, mode="reflect"
        )
        np.testing.assert_allclose(got[c].numpy(), ref, atol=2e-5)


def test_elastic_auto_spec_is_milder_on_small_images() -> None:
    p32 = resolve_params(CORRUPTIONS.get("elastic_transform"), 5, "auto", 32, 32)
    p224 = resolve_params(CORRUPTIONS.get("elastic_transform"), 5, "auto", 224, 224)
    assert p32["sigma"] == 0.03 and p224 == _params("elastic_transform", 5)
    x = _photo(32, 32, n=4)
    change = [
        float((corrupt(x, "elastic_transform", 5, spec=spec) - x).abs().mean())
        for spec in ("cifar-10-c", "imagenet-c")
    ]
    assert change[0] < 0.7 * change[1]


# ----------------------------------------------------------------------------------------- fog


def _plasma_loops(u: np.ndarray, decay: float) -> np.ndarray:
    """Diamond-square written with explicit loops and modular neighbours (reference)."""
    n = u.shape[0]
    m = np.zeros((n, n))
    step, wibble = n, 100.0
    while step >= 2:
        h = step // 2
        amp = wibble * wibble
        for i in range(h, n, step):  # squares: the four corners
            for j in range(h, n, step):
                s = sum(m[(i + a) % n, (j + b) % n] for a in (-h, h) for b in (-h, h))
                m[i, j] = s / 4 + amp * (2 * u[i, j] - 1)
        for i in range(0, n, step):  # diamonds on corner rows
            for j in range(h, n, step):
                s = m[(i - h) % n, j] + m[(i + h) % n, j] + m[i, j - h] + m[i, (j + h) % n]
                m[i, j] = s / 4 + amp * (2 * u[i, j] - 1)
        for i in range(h, n, step):  # diamonds on centre rows
            for j in range(0, n, step):
                s = m[i, (j - h) % n] + m[i, (j + h) % n] + m[i - h, j] + m[(i + h) % n, j]
                m[i, j] = s / 4 + amp * (2 * u[i, j] - 1)
        step //= 2
        wibble /= decay
    m -= m.min()
    return m / m.max()


def test_plasma_fractal_matches_a_loop_implementation() -> None:
    u = torch.rand(2, 16, 16, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    got = weather.plasma_fractal(u, 1.7)
    for i in range(2):
        np.testing.assert_allclose(got[i].numpy(), _plasma_loops(u[i].numpy(), 1.7), atol=1e-5)
    with pytest.raises(ValueError, match="power-of-two"):
        weather.plasma_fractal(torch.rand(1, 12, 12), 2.0)


def test_fog_formula_with_given_noise() -> None:
    x = _photo(20, 30)
    u = torch.rand(2, 32, 32, generator=torch.Generator().manual_seed(4))
    p = _params("fog", 3)
    got = weather._fog(x, p, FakeRNG(2, rand=u))
    for i in range(2):
        plasma = _plasma_loops(u[i].double().numpy(), p["decay"])[:20, :30]
        xn = x[i].double().numpy()
        peak = xn.max()
        want = np.clip((xn + p["c"] * plasma) * peak / (peak + p["c"]), 0, 1)
        np.testing.assert_allclose(got[i].numpy(), want, atol=2e-5)


# ---------------------------------------------------------------------------------------- snow


def test_line_blur_taps_follow_the_reference_kernel() -> None:
    taps = weather.line_blur_taps(3, 2.0, -90.0, 64, 64)
    assert [(dy, dx) for dy, dx, _ in taps] == [(i, 0) for i in range(7)]
    weights = np.exp(-(np.arange(7) ** 2) / 8.0)
    np.testing.assert_allclose([t[2] for t in taps], weights / weights.sum())
    # the kernel stops where a shift would leave the image (no renormalisation)
    short = weather.line_blur_taps(3, 2.0, -90.0, 4, 64)
    assert len(short) == 4 and sum(t[2] for t in short) < 1


def _snow_reference(x: np.ndarray, noise: np.ndarray, angle: float, p: dict) -> np.ndarray:
    """Snow in numpy/scipy from the reference algorithm (x: H, W, 3)."""
    h, w = noise.shape
    layer = p["mean"] + p["std"] * noise
    z = p["zoom"]
    ch, cw = math.ceil(h / z), math.ceil(w / z)
    top, left = (h - ch) // 2, (w - cw) // 2
    layer = ndi.zoom(layer[top : top + ch, left : left + cw], z, order=1)
    layer[layer < p["threshold"]] = 0
    layer = np.clip(layer, 0, 1)
    blurred = np.zeros_like(layer)
    for dy, dx, wt in weather.line_blur_taps(int(p["radius"]), p["sigma"], angle, *layer.shape):
        rows = np.clip(np.arange(layer.shape[0]) - dy, 0, layer.shape[0] - 1)
        cols = np.clip(np.arange(layer.shape[1]) - dx, 0, layer.shape[1] - 1)
        blurred += wt * layer[rows][:, cols]
    layer = (np.round(blurred * 255) / 255)[:h, :w, None]
    grey = (x @ np.array([0.299, 0.587, 0.114]))[..., None]
    base = p["blend"] * x + (1 - p["blend"]) * np.maximum(x, grey * 1.5 + 0.5)
    return np.clip(base + layer + layer[::-1, ::-1], 0, 1)


@pytest.mark.parametrize("severity", [1, 3, 5])
def test_snow_matches_a_scipy_implementation(severity: int) -> None:
    x = _photo(60, 70, n=1)
    noise = torch.randn(1, 60, 70, generator=torch.Generator().manual_seed(severity))
    p = _params("snow", severity)
    rng = FakeRNG(1, randn=noise, scalars={"angle": [-100.0]})
    got = _hwc(weather._snow(x, p, rng))[0]
    want = _snow_reference(_hwc(x)[0], noise[0].double().numpy(), -100.0, p)
    # the 8-bit rounding of the layer may flip by one level where float sums differ
    assert np.abs(got - want).max() <= 2.5 / 255
    assert np.mean(np.abs(got - want) > 1e-5) < 0.01


# ------------------------------------------------------------------------------------- spatter


def test_chamfer_distance_is_the_5x5_chamfer_norm_to_the_nearest_edge() -> None:
    g = torch.Generator().manual_seed(0)
    zero = torch.rand(2, 1, 23, 31, generator=g) < 0.03
    zero[1] = False
    zero[1, 0, 11, 15] = True  # a single point: distances are the chamfer norm itself
    got = weather._chamfer_distance(zero)
    a, b, c = 1.0, 1.4, 2.1969

    def norm(dy: int, dx: int) -> float:
        dy, dx = sorted((abs(dy), abs(dx)))  # dy <= dx
        if 2 * dy <= dx:  # knight moves and straight steps
            return c * dy + a * (dx - 2 * dy)
        return c * (dx - dy) + b * (2 * dy - dx)  # knight moves and diagonal steps

    for i in range(2):
        pts = np.argwhere(zero[i, 0].numpy())
        want = np.array(
            [[min(norm(y - py, x - px) for py, px in pts) for x in range(31)] for y in range(23)]
        )
        np.testing.assert_allclose(got[i, 0].numpy(), want, atol=1e-4)


def test_equalize_follows_the_opencv_formula() -> None:
    levels = torch.tensor([[3, 3, 5, 7, 7, 7, 9, 3]], dtype=torch.float32).reshape(1, 1, 2, 4)
    got = weather._equalize(levels).flatten().tolist()
    # first level 3 (3 pixels) -> 0; others: round(255 * (#pixels in (3, v]) / (8 - 3))
    lut = {3: 0, 5: round(255 * 1 / 5), 7: round(255 * 4 / 5), 9: 255}
    assert got == [lut[int(v)] for v in levels.flatten().tolist()]
    flat = torch.full((1, 1, 3, 3), 4.0)
    assert torch.equal(weather._equalize(flat), flat)


def test_canny_keeps_weak_edges_only_when_connected_to_strong_ones() -> None:
    img = torch.zeros(1, 1, 24, 24)
    img[:, :, :, 12:] = 200.0  # strong vertical step
    img[:, :, 2:8, :6] = 15.0  # a weak isolated step (|grad| ~ 60 > 50 but < 150)
    edges = weather._canny(img, 50.0, 150.0)[0, 0]
    assert edges[:, 11:13].any(dim=1).all()  # the strong edge, every row
    assert not edges[:, :9].any()  # the isolated weak one is dropped
    assert edges.sum() <= 2 * 24  # thin (non-maximum suppression)


def test_water_chain_matches_opencv_when_available() -> None:
    cv2 = pytest.importorskip("cv2")
    g = torch.Generator().manual_seed(5)
    liquid = torch.randn(2, 1, 64, 64, generator=g) * 0.3 + 0.65
    w = ndi.gaussian_filter
    got = []
    for i in range(2):
        layer = w(liquid[i, 0].double().numpy(), 2.0, mode="nearest", truncate=4.0)
        layer[layer < 0.68] = 0
        level = (layer * 255).astype(np.uint8)
        dist = cv2.distanceTransform(255 - cv2.Canny(level, 50, 150), cv2.DIST_L2, 5)
        _, dist = cv2.threshold(dist, 20, 20, cv2.THRESH_TRUNC)
        dist = cv2.equalizeHist(cv2.blur(dist, (3, 3)).astype(np.uint8))
        kernel = np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]])
        dist = cv2.blur(cv2.filter2D(dist, cv2.CV_8U, kernel), (3, 3)).astype(np.float32)
        m = level * dist
        got.append((m / m.max(), torch.from_numpy(layer).float()[None, None]))
    for want, layer in got:
        ours = weather._water_layer(layer)[0, 0].numpy()
        assert np.abs(ours - want).max() < 0.02


def test_mud_matches_scipy_with_given_noise() -> None:
    x = _photo(40, 40, n=1)
    noise = torch.randn(1, 1, 40, 40, generator=torch.Generator().manual_seed(2))
    p = _params("spatter", 5)
    got = _hwc(weather._spatter(x, p, FakeRNG(1, randn=noise)))[0]
    liquid = ndi.gaussian_filter(
        p["mean"] + p["std"] * noise[0, 0].double().numpy(), p["sigma"], mode="nearest", truncate=4
    )
    mask = ndi.gaussian_filter(
        (liquid >= p["threshold"]).astype(float), p["intensity"], mode="nearest", truncate=4
    )
    mask[mask < 0.8] = 0
    brown = np.array([63, 42, 20]) / 255
    want = np.clip(_hwc(x)[0] * (1 - mask[..., None]) + mask[..., None] * brown, 0, 1)
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_spatter_on_greyscale_adds_the_grey_level_of_the_colour() -> None:
    x = _photo(40, 40, n=1)
    noise = torch.randn(1, 1, 40, 40, generator=torch.Generator().manual_seed(2))
    p = _params("spatter", 5)
    rgb = weather._spatter(torch.zeros(1, 3, 40, 40), p, FakeRNG(1, randn=noise))
    grey = weather._spatter(x[:, :1] * 0, p, FakeRNG(1, randn=noise))
    luma = (rgb[0] * torch.tensor([0.2989, 0.587, 0.114])[:, None, None]).sum(0)
    torch.testing.assert_close(grey[0, 0], luma, atol=1e-5, rtol=0)


# ---------------------------------------------------------------------------------------- frost


def test_frost_textures_are_deterministic_and_match_their_target_statistics() -> None:
    textures = frost.frost_textures()
    assert len(textures) == 5
    again = frost.make_frost_texture("needles", 64, 80, seed=4)
    assert torch.equal(again, frost.make_frost_texture("needles", 64, 80, seed=4))
    for tex, target in zip(textures, frost._TARGETS, strict=True):
        assert tex.shape == (3, target.height, target.width)
        assert float(tex.min()) >= 0.0 and float(tex.max()) <= 1.0
        q = frost.crop_quantiles(tex)
        want_q = torch.tensor(target.quantiles, dtype=torch.float64)
        # mean brightness and spread (quantiles), per channel
        assert float((q[:, 1:-1] - want_q[:, 1:-1]).abs().max()) < 0.03
        # spatial spectrum of 204-pixel crops: octaves 1..6 within 25%
        ratio = frost.crop_band_power(tex) / torch.tensor(target.bands)[:, 3:]
        assert float((ratio[:, 1:7] - 1).abs().max()) < 0.25, ratio
        # average brightness gradient across a crop (lit from above)
        slopes = frost.crop_slopes(tex)
        want_s = torch.tensor(target.slopes, dtype=torch.float64)
        assert float((slopes - want_s).abs().max() * frost.CROP) < 0.03


def test_frost_textures_look_like_frost_not_noise() -> None:
    for tex in frost.frost_textures():
        lum = tex.mean(0)
        assert 0.3 < float(lum.mean()) < 0.85 and 0.04 < float(lum.std()) < 0.2
        assert float(tex[2].mean()) >= float(tex[0].mean())  # bluish white, never warm
        # structure: neighbouring pixels are strongly correlated (unlike white noise)
        a, b = lum[:, :-1].flatten(), lum[:, 1:].flatten()
        assert float(torch.corrcoef(torch.stack((a, b)))[0, 1]) > 0.5


def test_frost_is_the_reference_blend_of_a_texture_crop() -> None:
    x = _photo(60, 50)
    y, draws = corrupt_with_draws(x, "frost", 3, seed=2, spec="imagenet-c")
    p = _params("frost", 3, 60, 50)
    for i in range(2):
        k = int(draws["texture"][i])
        th, tw = frost.frost_textures()[k].shape[1:]
        scale = max(p["scale"], 1.1 * max(60 / th, 50 / tw))
        sh, sw = math.ceil(th * scale), math.ceil(tw * scale)
        tex = weather._scaled_texture(k, sh, sw, "cpu")
        oy = int(float(draws["crop_y"][i]) * (sh - 60))
        ox = int(float(draws["crop_x"][i]) * (sw - 50))
        crop = tex[:, oy : oy + 60, ox : ox + 50]
        want = (p["c_image"] * x[i] + p["c_frost"] * crop).clamp(0, 1)
        torch.testing.assert_close(y[i], want)
    grey = corrupt(x[:, :1], "frost", 3, seed=2)
    assert grey.shape == (2, 1, 60, 50)


def test_frost_scales_textures_to_cover_large_images() -> None:
    x = torch.rand(1, 3, 700, 1000)
    y = corrupt(x, "frost", 1, seed=0)
    assert y.shape == x.shape and float((y - x).abs().mean()) > 0.05


# ------------------------------------------------------------------------------ tables and specs


def test_auto_spec_interpolates_pixel_lengths_between_the_tables() -> None:
    snow = CORRUPTIONS.get("snow")
    mid = resolve_params(snow, 5, "auto", 128, 128)
    small = resolve_params(snow, 5, "cifar-10-c", 128, 128)
    big = resolve_params(snow, 5, "imagenet-c", 128, 128)
    for key in ("zoom", "sigma", "blend"):
        assert mid[key] == pytest.approx((small[key] + big[key]) / 2)
    assert mid["radius"] == round((small["radius"] + big["radius"]) / 2)
    q = resolve_params(CORRUPTIONS.get("jpeg_compression"), 1, "auto", 128, 128)["quality"]
    assert q == round((80 + 25) / 2)
    f = resolve_params(CORRUPTIONS.get("frost"), 1, "auto", 32, 32)
    assert f["scale"] == 0.2  # CIFAR-10-C shrank its frost photos to 0.2


@pytest.mark.parametrize("name", ["brightness", "contrast", "pixelate", "jpeg_compression"])
def test_cifar_tables_are_milder_on_small_images(name: str) -> None:
    x = _photo(32, 32, n=2)
    for s in (1, 5):
        small = float((corrupt(x, name, s, spec="cifar-10-c") - x).abs().mean())
        big = float((corrupt(x, name, s, spec="imagenet-c") - x).abs().mean())
        assert small < big


@pytest.mark.parametrize("c", [0.6, 0.4, 0.3, 0.25])
def test_pixelate_means_of_white_stay_exactly_white(c: float) -> None:
    # window means are divided, not multiplied by 1 / count, so a mean of ones is exactly 1
    x = torch.ones(2, 3, 224, 224)
    got = digital._pixelate(x, {"c": c}, FakeRNG(0))
    assert float(got.max()) == 1.0 and float(got.min()) == 1.0


def test_jpeg_restores_pillows_block_cache_and_file_kind_does_not_matter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = Image.core.get_blocks_max()
    x = torch.rand(6, 3, 40, 48, generator=torch.Generator().manual_seed(5))
    got = digital._jpeg(x, {"quality": 20.0}, FakeRNG(0))
    assert Image.core.get_blocks_max() == before
    monkeypatch.setattr(digital, "_scratch_file", lambda parallel=True: io.BytesIO())  # portable
    assert torch.equal(digital._jpeg(x, {"quality": 20.0}, FakeRNG(0)), got)


def test_small_pixelate_batches_stay_on_one_thread() -> None:
    """Below 2 x min_pixels one chunk (a hand-over cost more than it saved at batch 1-4)."""
    import torch

    from robustcv.corruptions.digital import _chunks

    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert _chunks(3, 224, 224, pixels=1_200_000, min_pixels=400_000) == [(0, 3)]
        assert _chunks(12, 224, 224, pixels=1_200_000, min_pixels=400_000) == [(0, 12)]
        assert _chunks(24, 224, 224, pixels=1_200_000, min_pixels=400_000) == [(0, 12), (12, 24)]
        assert _chunks(3, 224, 224, pixels=1_200_000) == [(0, 1), (1, 3)]  # no minimum: split
    finally:
        torch.set_num_threads(threads)
