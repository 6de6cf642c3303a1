"""Model-vs-human degradations: contract, and reference checks against numpy / scipy / skimage."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import ndimage
from skimage import color, data
from skimage.transform import resize

import robustcv.corruptions.mvh as mvh
from robustcv.core.errors import InputError
from robustcv.corruptions import CORRUPTIONS, corrupt

BG = 0.4423
LEVELS = {
    "mvh-colour": 2,
    "mvh-contrast": 8,
    "mvh-uniform-noise": 8,
    "mvh-low-pass": 8,
    "mvh-high-pass": 8,
    "mvh-phase-noise": 7,
    "mvh-power-equalisation": 2,
    "mvh-false-colour": 2,
    "mvh-rotation": 4,
    "mvh-salt-and-pepper": 8,
}
RANDOM = {"mvh-uniform-noise", "mvh-phase-noise", "mvh-salt-and-pepper"}
CASES = [(name, s) for name, n in LEVELS.items() for s in range(1, n + 1)]


def _photo(size: int = 64) -> torch.Tensor:
    """scikit-image's astronaut, centre-cropped and resized: (1, 3, size, size) in [0, 1]."""
    img = resize(data.astronaut(), (size, size), anti_aliasing=True)
    return torch.from_numpy(img).permute(2, 0, 1)[None].float().clamp(0, 1)


def _grey_np(x: torch.Tensor) -> np.ndarray:
    """skimage rgb2gray of each image of a (B, 3, H, W) batch -> (B, H, W) float64."""
    arr = x.permute(0, 2, 3, 1).double().numpy()
    return np.stack([color.rgb2gray(a) for a in arr])


# ---------------------------------------------------------------------------- registry


def test_registry_lists_every_degradation_with_published_levels() -> None:
    names = [n for n in CORRUPTIONS.names() if n.startswith("mvh-")]
    assert sorted(names) == sorted(LEVELS)
    for name, count in LEVELS.items():
        d = CORRUPTIONS.get(name)
        assert d.family == "mvh" and not d.benchmark
        assert set(d.tables) == {"levels"} and d.severities == count
        assert d.random == (name in RANDOM)
        excl = mvh.MVH_EXCLUDED_LEVELS[name]
        assert all(1 <= s <= count for s in excl)
        joined = " ".join(d.notes)
        assert "1-based index" in joined
        if excl:
            assert f"severities {', '.join(map(str, excl))}" in joined
    # spot-check the published lists and exclusions (note section 3)
    contrast = [r[0] for r in CORRUPTIONS.get("mvh-contrast").tables["levels"]]
    assert contrast == [1.0, 0.5, 0.3, 0.15, 0.1, 0.05, 0.03, 0.01]
    high = [r[0] for r in CORRUPTIONS.get("mvh-high-pass").tables["levels"]]
    assert math.isinf(high[0]) and high[1:] == [3.0, 1.5, 1.0, 0.7, 0.55, 0.45, 0.4]
    assert mvh.MVH_EXCLUDED_LEVELS["mvh-high-pass"] == (1, 6, 7, 8)
    assert mvh.MVH_EXCLUDED_LEVELS["mvh-phase-noise"] == (1, 6, 7)
    sp = CORRUPTIONS.get("mvh-salt-and-pepper").tables["levels"]
    assert [r[0] for r in sp] == [0.0, 0.1, 0.2, 0.35, 0.5, 0.65, 0.8, 0.95]


def test_level_out_of_range_is_a_clear_error() -> None:
    with pytest.raises(InputError, match=r"level index 3 is outside 1\.\.2"):
        corrupt(torch.rand(1, 3, 16, 16), "mvh-colour", 3)
    with pytest.raises(InputError, match="unknown corruption"):
        corrupt(torch.rand(1, 3, 16, 16), "mvh-contrats", 1)


# ---------------------------------------------------------------------------- contract


@pytest.mark.parametrize(("name", "severity"), CASES)
def test_contract_every_level(name: str, severity: int) -> None:
    g = torch.Generator().manual_seed(severity)
    for shape in [(3, 3, 13, 21), (2, 1, 8, 8)]:
        x = torch.rand(*shape, generator=g)
        before = x.clone()
        y = corrupt(x, name, severity, seed=5)
        assert y.shape == x.shape and y.dtype == torch.float32
        assert bool(torch.isfinite(y).all()) and float(y.min()) >= 0 and float(y.max()) <= 1
        assert torch.equal(x, before)
        assert torch.equal(y, corrupt(x, name, severity, seed=5))
        # batch-size and position independence
        assert torch.allclose(y[1:], corrupt(x[1:], name, severity, seed=5), atol=1e-6)
        assert torch.allclose(y[:1], corrupt(x[:1], name, severity, seed=5), atol=1e-6)
        keeps_colour = (name == "mvh-colour" and severity == 1) or name == "mvh-false-colour"
        if shape[1] == 3 and not keeps_colour:  # grey replicated to every channel
            assert torch.equal(y[:, 0], y[:, 1]) and torch.equal(y[:, 0], y[:, 2])
        if name in RANDOM and severity > 1:
            assert not torch.equal(y, corrupt(x, name, severity, seed=6))


def test_large_image_every_degradation() -> None:
    x = _photo(64)
    big = torch.nn.functional.interpolate(x, size=(1024, 1024), mode="bilinear")
    big = big.clamp(0, 1)
    for name, n in LEVELS.items():
        y = corrupt(big, name, n, seed=1)
        assert y.shape == big.shape and bool(torch.isfinite(y).all())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu_for_deterministic_degradations() -> None:
    x = _photo(48).repeat(2, 1, 1, 1)
    for name, n in LEVELS.items():
        for s in range(1, n + 1):
            y = corrupt(x.cuda(), name, s, seed=3)
            assert y.is_cuda and y.shape == x.shape
            if name not in RANDOM:
                assert torch.allclose(y.cpu(), corrupt(x, name, s, seed=3), atol=1e-5)


# ---------------------------------------------------------------------------- references


def test_greyscale_matches_skimage_rgb2gray() -> None:
    x = _photo(32)
    y = corrupt(x, "mvh-colour", 2)
    np.testing.assert_allclose(y[:, 0].double().numpy(), _grey_np(x), atol=1e-6)
    assert torch.equal(corrupt(x, "mvh-colour", 1), x)
    g = x.mean(1, keepdim=True)
    assert torch.equal(corrupt(g, "mvh-colour", 2), g)


@pytest.mark.parametrize("severity", range(1, 9))
def test_contrast_matches_formula(severity: int) -> None:
    c = [1, 0.5, 0.3, 0.15, 0.1, 0.05, 0.03, 0.01][severity - 1]
    x = _photo(32)
    want = (1 - c) / 2 + c * _grey_np(x)
    y = corrupt(x, "mvh-contrast", severity)
    np.testing.assert_allclose(y[:, 0].double().numpy(), want, atol=1e-6)


def test_uniform_noise_width_and_distribution() -> None:
    x = torch.full((2, 3, 64, 64), 0.5)
    base = (1 - 0.3) / 2 + 0.3 * 0.5  # grey at 30% contrast
    for severity, w in [(4, 0.1), (5, 0.2)]:
        noise = corrupt(x, "mvh-uniform-noise", severity, seed=2)[:, 0].double() - base
        assert float(noise.abs().max()) <= w + 1e-6
        assert abs(float(noise.mean())) < 0.05 * w
        # the variance of U[-w, w] is w^2 / 3
        assert float(noise.var()) == pytest.approx(w**2 / 3, rel=0.05)
        assert float(noise.min()) < -0.95 * w and float(noise.max()) > 0.95 * w
    assert torch.allclose(corrupt(x, "mvh-uniform-noise", 1), torch.full_like(x, base))


def test_salt_and_pepper_fractions() -> None:
    x = torch.full((1, 1, 128, 128), 0.5)
    base = 0.35 + 0.3 * 0.5
    for severity, p in [(2, 0.1), (5, 0.5), (8, 0.95)]:
        y = corrupt(x, "mvh-salt-and-pepper", severity, seed=1).flatten()
        n = y.numel()
        white = float((y == 1).float().mean())
        black = float((y == 0).float().mean())
        tol = 4 * math.sqrt(p / 2 * (1 - p / 2) / n)
        assert white == pytest.approx(p / 2, abs=tol) and black == pytest.approx(p / 2, abs=tol)
        rest = y[(y > 0) & (y < 1)]
        assert torch.allclose(rest, torch.full_like(rest, base))


@pytest.mark.parametrize("severity", range(1, 9))
def test_low_pass_matches_scipy(severity: int) -> None:
    sigma = [0, 1, 3, 5, 7, 10, 15, 40][severity - 1]
    x = torch.rand(2, 3, 40, 57, generator=torch.Generator().manual_seed(severity))
    y = corrupt(x, "mvh-low-pass", severity)
    for i, g in enumerate(_grey_np(x)):
        want = ndimage.gaussian_filter(g, sigma, mode="constant", cval=BG)
        np.testing.assert_allclose(y[i, 0].double().numpy(), np.clip(want, 0, 1), atol=2e-6)


@pytest.mark.parametrize("severity", range(1, 9))
def test_high_pass_matches_scipy(severity: int) -> None:
    sigma = [math.inf, 3, 1.5, 1, 0.7, 0.55, 0.45, 0.4][severity - 1]
    x = torch.rand(2, 3, 33, 30, generator=torch.Generator().manual_seed(severity))
    y = corrupt(x, "mvh-high-pass", severity)
    for i, g in enumerate(_grey_np(x)):
        if math.isinf(sigma):
            low = np.full_like(g, BG)
        else:
            low = ndimage.gaussian_filter(g, sigma, mode="constant", cval=BG)
        high = g - low
        want = np.clip(high + (BG - high.mean()), 0, 1)
        np.testing.assert_allclose(y[i, 0].double().numpy(), want, atol=2e-6)


def test_phase_field_is_antisymmetric() -> None:
    for h, w in [(8, 8), (9, 12), (7, 5)]:
        u = torch.rand(3, h * w, dtype=torch.float64) * 2 - 1
        phi = mvh._antisymmetric(u, h, w).view(3, h, w)
        flipped = torch.roll(torch.flip(phi, dims=(-2, -1)), shifts=(1, 1), dims=(-2, -1))
        assert torch.allclose(phi, -flipped)  # phi(-f) = -phi(f)
        assert float(phi[:, 0, 0].abs().max()) == 0.0
        assert float(phi.abs().max()) <= 1.0


def test_phase_noise_keeps_amplitudes_and_bounds_phase_shift() -> None:
    # low contrast, so no pixel is clipped and the output is exactly the scrambled image
    x = 0.5 + 0.05 * (_photo(32) - 0.5)
    g = torch.from_numpy(_grey_np(x))
    f_in = torch.fft.fft2(g)
    assert torch.allclose(corrupt(x, "mvh-phase-noise", 1)[:, 0].double(), g, atol=1e-6)
    for severity, width in [(2, 30.0), (4, 90.0), (7, 180.0)]:
        y = corrupt(x, "mvh-phase-noise", severity, seed=4)[:, 0].double()
        assert 0 < float(y.min()) and float(y.max()) < 1
        f_out = torch.fft.fft2(y)
        assert torch.allclose(f_out.abs(), f_in.abs(), atol=2e-4 * float(f_in.abs().max()))
        ac = f_in.abs().clone()
        ac[..., 0, 0] = 0
        strong = ac > 0.05 * float(ac.max())
        shift = torch.angle(f_out[strong] / f_in[strong]).abs()
        assert float(shift.max()) <= math.radians(width) + 1e-3
        if width < 180:
            assert float(shift.max()) > math.radians(width) * 0.5


def test_power_equalisation_sets_the_procedural_spectrum() -> None:
    x = _photo(48)
    g = torch.from_numpy(_grey_np(x))[:, None]
    eq = mvh._equalised(g)
    amp = mvh.mean_amplitude_spectrum(48, 48).double()
    f = torch.fft.fft2(eq[:, 0])
    assert torch.allclose(f.abs(), amp.expand_as(f.abs()), atol=1e-8 * float(amp.max()))
    keep = torch.fft.fft2(g[:, 0]).abs() > 1e-6
    assert torch.allclose(torch.angle(f)[keep], torch.angle(torch.fft.fft2(g[:, 0]))[keep])
    assert float(eq.mean()) == pytest.approx(BG, abs=1e-9)
    assert float(eq.std(unbiased=False)) == pytest.approx(mvh.POWER_SPECTRUM_RMS, abs=1e-6)
    y = corrupt(x, "mvh-power-equalisation", 2)
    assert torch.allclose(y[:, 0].double(), eq[:, 0].clamp(0, 1), atol=1e-6)
    assert torch.allclose(corrupt(x, "mvh-power-equalisation", 1)[:, 0].double(), g[:, 0])
    # the amplitude falls as 1/f: doubling the frequency halves it
    assert float(amp[0, 4] / amp[0, 8]) == pytest.approx(2.0)


def test_false_colour_sRGB_steps_match_skimage_xyz() -> None:
    x = _photo(16)
    lin = mvh._srgb_to_linear(x.double())
    xyz = torch.einsum("ij,bjhw->bihw", torch.from_numpy(mvh._XYZ_FROM_RGB), lin)
    want = color.rgb2xyz(x[0].permute(1, 2, 0).double().numpy())
    np.testing.assert_allclose(xyz[0].permute(1, 2, 0).numpy(), want, atol=1e-6)
    back = mvh._linear_to_srgb(lin)
    assert torch.allclose(back, x.double(), atol=1e-6)


def _false_colour_reference(rgb: np.ndarray) -> np.ndarray:
    """Independent numpy version: sRGB -> XYZ (skimage) -> HPE LMS -> DKL flip -> back."""
    lms_from_xyz = np.array([[0.4002, 0.7076, -0.0808], [-0.2263, 1.1653, 0.0457], [0, 0, 0.9182]])
    xyz = color.rgb2xyz(rgb)
    cones = xyz @ lms_from_xyz.T
    mid = 1.055 * 0.5 ** (1 / 2.4) - 0.055  # sRGB code of linear 0.5
    white_xyz = color.rgb2xyz(np.full((1, 1, 3), mid))
    lw, mw, sw = (white_xyz @ lms_from_xyz.T)[0, 0]
    delta = cones - np.array([lw, mw, sw])
    lum = delta[..., 0] + delta[..., 1]
    lm = delta[..., 0] - lw / mw * delta[..., 1]
    s = delta[..., 2] - sw / (lw + mw) * lum
    lm, s = -lm, -s  # the false-colour flip
    # invert the opponent map by hand
    dm = (lum - lm) / (1 + lw / mw)
    dl = lum - dm
    ds = s + sw / (lw + mw) * lum
    new_cones = np.stack([dl, dm, ds], -1) + np.array([lw, mw, sw])
    new_xyz = new_cones @ np.linalg.inv(lms_from_xyz).T
    return np.clip(color.xyz2rgb(new_xyz), 0, 1)


def test_false_colour_matches_independent_reference() -> None:
    x = _photo(24)
    y = corrupt(x, "mvh-false-colour", 2)
    want = _false_colour_reference(x[0].permute(1, 2, 0).double().numpy())
    np.testing.assert_allclose(y[0].permute(1, 2, 0).double().numpy(), want, atol=2e-4)
    assert torch.equal(corrupt(x, "mvh-false-colour", 1), x)


def test_false_colour_properties() -> None:
    greys = torch.linspace(0, 1, 64).view(1, 1, 8, 8).expand(1, 3, 8, 8).contiguous()
    assert torch.allclose(corrupt(greys, "mvh-false-colour", 2), greys, atol=1e-6)
    single = torch.rand(2, 1, 8, 8)
    assert torch.equal(corrupt(single, "mvh-false-colour", 2), single)
    # near-grey colours stay in gamut, so the map is an involution there
    near = 0.5 + 0.08 * (torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0)) - 0.5)
    once = corrupt(near, "mvh-false-colour", 2)
    assert torch.allclose(corrupt(once, "mvh-false-colour", 2), near, atol=1e-5)
    assert not torch.allclose(once, near, atol=1e-3)
    # reddish becomes greenish (L-M inverted), bluish becomes yellowish (S inverted)
    red = torch.tensor([0.7, 0.45, 0.45]).view(1, 3, 1, 1).expand(1, 3, 8, 8).contiguous()
    out = corrupt(red, "mvh-false-colour", 2)[0, :, 0, 0]
    assert float(out[1]) > float(out[0])
    blue = torch.tensor([0.45, 0.45, 0.7]).view(1, 3, 1, 1).expand(1, 3, 8, 8).contiguous()
    out = corrupt(blue, "mvh-false-colour", 2)[0, :, 0, 0]
    assert float(out[2]) < min(float(out[0]), float(out[1]))


def test_rotation_square_matches_numpy_rot90() -> None:
    x = _photo(20)
    g = _grey_np(x)[0]
    for severity, k in [(1, 0), (2, 1), (3, 2), (4, 3)]:
        y = corrupt(x, "mvh-rotation", severity)[0, 0].double().numpy()
        np.testing.assert_allclose(y, np.rot90(g, k), atol=1e-6)


def test_rotation_non_square() -> None:
    x = torch.rand(1, 1, 10, 16, generator=torch.Generator().manual_seed(1))
    g = x[0, 0].double().numpy()
    np.testing.assert_allclose(
        corrupt(x, "mvh-rotation", 3)[0, 0].double().numpy(), g[::-1, ::-1], atol=1e-7
    )
    y = corrupt(x, "mvh-rotation", 2)[0, 0].double().numpy()
    np.testing.assert_allclose(y[:, 3:13], np.rot90(g[:, 3:13]), atol=1e-7)
    np.testing.assert_allclose(y[:, :3], BG, atol=1e-7)
    np.testing.assert_allclose(y[:, 13:], BG, atol=1e-7)
    tall = x.transpose(-1, -2).contiguous()  # 16 x 10
    y = corrupt(tall, "mvh-rotation", 4)[0, 0].double().numpy()
    t = tall[0, 0].double().numpy()
    np.testing.assert_allclose(y[3:13], np.rot90(t[3:13], 3), atol=1e-7)
    np.testing.assert_allclose(y[:3], BG, atol=1e-7)
