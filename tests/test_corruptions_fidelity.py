"""Fidelity of the 19 ImageNet-C corruptions against imagecorruptions 1.1.2 (the reference).

Reference values are fixtures made by ``benchmarks/make_fixtures.py`` (imagecorruptions 1.1.2,
shimmed for current numpy/scikit-image) on two scikit-image sample photos at 224x224; robustcv
never produces them. robustcv runs with ``spec="imagenet-c"``. Definitions of the statistics are
in ``tests/corruption_stats.py`` (plain numpy, shared with the fixture script).

Rules (each failure message lists every photo/severity that broke a rule):

* **Deterministic corruptions** (contrast, brightness, saturate, pixelate, jpeg_compression,
  defocus_blur, gaussian_blur, zoom_blur): PSNR >= 35 dB between robustcv's float output and the
  reference output (rounded to uint8, see the fixture script) for each photo and severity.
* **Random corruptions** (the other 11), over many independent draws per photo and severity:
  the mean over draws of the mean absolute change ``|y - x|`` within 15% of the reference's, and
  the mean over draws of the octave power of the change within 25% of the reference's in every
  octave band that holds at least 1% of the reference's total power of the change for that photo
  and severity (bands with less carry too little of the change to matter and are too noisy to
  compare; the fixture records the reference's band powers and their seed-to-seed spread).
  Independent draws: robustcv keys each sample's random stream on its content, so a batch holds
  K copies of each photo that differ in one pixel by k * 2^-20 (k = 0..K-1, invisible in the
  statistics), run with ``seed=j`` for j = 0..J-1: N = J * K draws in J batched calls.
* **Monotonicity** (all 19), on the mean absolute change m_s per photo, for each step s -> s+1:
  with the reference's relative step ``d_ref = m_ref[s+1] / m_ref[s] - 1`` and robustcv's
  ``d = m[s+1] / m[s] - 1``, whose sampling standard error is ``se`` (0 for deterministic
  corruptions; from the spread over draws for random ones):

  - the reference grows (``d_ref > +2%``): robustcv must grow, ``d > -2 se`` (strictly ``d > 0``
    for a deterministic corruption);
  - the reference shrinks (``d_ref < -2%``, e.g. saturate 2->3, frost 3->4): robustcv must shrink,
    ``d < +2 se``;
  - the reference is flat (``|d_ref| <= 2%``, e.g. snow 2->3, fog 3->4): robustcv must stay flat,
    ``|d| <= 5% + 2 se``.

A corruption that is not registered fails each test with "not implemented". The draws for the
random corruptions are the heavy part (marked slow).
"""

from __future__ import annotations

import importlib
import json
import math
from functools import cache
from pathlib import Path
from typing import Any

import corruption_stats as cs
import numpy as np
import pytest
import torch
from PIL import Image

from robustcv.core.errors import InputError
from robustcv.corruptions import CORRUPTIONS, corrupt

# Register every corruption module that exists, whether or not the package imports it yet.
for _mod in ("noise", "blur", "weather", "digital"):
    try:
        importlib.import_module(f"robustcv.corruptions.{_mod}")
    except ModuleNotFoundError as _err:
        if _err.name != f"robustcv.corruptions.{_mod}":
            raise

FIXTURES = Path(__file__).parent / "fixtures" / "corruptions"
REF: dict[str, Any] = json.loads((FIXTURES / "reference.json").read_text())
PHOTOS: list[str] = list(REF["photos"])
DETERMINISTIC: list[str] = REF["deterministic"]
RANDOM: list[str] = REF["random"]
SEVERITIES = (1, 2, 3, 4, 5)

PSNR_MIN = 35.0
MAC_TOL = 0.15
BAND_TOL = 0.25
BAND_MIN_SHARE = 0.01
FLAT = 0.02
FLAT_ALLOWED = 0.05

#: Draws per photo and severity (J seeds x K copies). More where the reference is noisy.
#: Frost (texture choice and crop), fog (a few random Fourier components carry most of its lowest
#: octave) and spatter (rare splashes at severity 1) vary most from draw to draw.
DRAWS: dict[str, tuple[int, int]] = {
    "frost": (4, 32),
    "fog": (4, 32),
    "spatter": (4, 32),
}
DEFAULT_DRAWS = (2, 16)


def _defn_or_fail(name: str) -> None:
    try:
        CORRUPTIONS.get(name)
        return
    except InputError:
        pass
    pytest.fail(
        f"corruption '{name}' is not implemented (not registered in "
        f"robustcv.corruptions.CORRUPTIONS)",
        pytrace=False,
    )


@cache
def _photos() -> tuple[np.ndarray, torch.Tensor]:
    """Input photos as (P, H, W, 3) float64 and (P, 3, H, W) float32, both in [0, 1]."""
    arr = np.stack([np.asarray(Image.open(FIXTURES / f"input_{p}.png")) for p in PHOTOS])
    x64 = arr.astype(np.float64) / 255.0
    x32 = torch.from_numpy(arr.astype(np.float32) / 255.0).permute(0, 3, 1, 2).contiguous()
    return x64, x32


def _hwc(y: torch.Tensor) -> np.ndarray:
    return y.detach().to("cpu", torch.float64).permute(0, 2, 3, 1).numpy()


def _reference_outputs(name: str, photo: str) -> np.ndarray:
    """(5, H, W, 3) float64 in [0, 1]: the stored reference at severities 1..5."""
    stacked = np.asarray(Image.open(FIXTURES / f"{name}_{photo}.png")).astype(np.float64) / 255.0
    return stacked.reshape(5, -1, *stacked.shape[1:])


@cache
def _deterministic_outputs(name: str) -> np.ndarray:
    """robustcv outputs (5, P, H, W, 3) at severities 1..5 for the photos."""
    _, x = _photos()
    return np.stack([_hwc(corrupt(x, name, s, seed=0, spec="imagenet-c")) for s in SEVERITIES])


def _copies(x: torch.Tensor, k: int) -> torch.Tensor:
    """(P*k, C, H, W): k copies of each photo, copy i nudged by i * 2^-20 in one pixel."""
    xs = x.repeat_interleave(k, dim=0).clone()
    nudge = torch.arange(k, dtype=torch.float32).repeat(x.shape[0]) * 2.0**-20
    sign = torch.where(xs[:, 0, 0, 0] > 0.5, -1.0, 1.0)
    xs[:, 0, 0, 0] += sign * nudge
    return xs


@cache
def _random_draws(name: str, severity: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-draw mean absolute change (P, N) and octave power (P, N, 8) of robustcv's output."""
    seeds, k = DRAWS.get(name, DEFAULT_DRAWS)
    _, x = _photos()
    xs = _copies(x, k)
    xs64 = _hwc(xs)
    mac, bands = [], []
    for j in range(seeds):
        y = _hwc(corrupt(xs, name, severity, seed=j, spec="imagenet-c"))
        mac.append(cs.mean_abs_change(xs64, y).reshape(len(PHOTOS), k))
        bands.append(cs.octave_power(xs64, y).reshape(len(PHOTOS), k, -1))
    m = np.concatenate(mac, axis=1)
    if np.ptp(m, axis=1).max() == 0.0:
        pytest.fail(
            f"{name}: all {m.shape[1]} draws of a photo are identical; per-sample randomness "
            "should differ between images and seeds",
            pytrace=False,
        )
    return m, np.concatenate(bands, axis=1)


def _mac_curve(name: str) -> tuple[np.ndarray, np.ndarray]:
    """robustcv's mean absolute change (P, 5) per photo and severity and its standard error."""
    if name in DETERMINISTIC:
        x64, _ = _photos()
        out = _deterministic_outputs(name)
        m = np.stack([cs.mean_abs_change(x64, out[i]) for i in range(5)], axis=1)
        return m, np.zeros_like(m)
    means, ses = [], []
    for s in SEVERITIES:
        m, _ = _random_draws(name, s)
        means.append(m.mean(axis=1))
        ses.append(m.std(axis=1, ddof=1) / math.sqrt(m.shape[1]))
    return np.stack(means, axis=1), np.stack(ses, axis=1)


def _param(name: str) -> Any:
    return pytest.param(name, marks=pytest.mark.slow) if name in RANDOM else name


# ------------------------------------------------------------------------------ deterministic


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_deterministic_psnr(name: str) -> None:
    _defn_or_fail(name)
    out = _deterministic_outputs(name)
    bad, seen = [], []
    for pi, photo in enumerate(PHOTOS):
        ref = _reference_outputs(name, photo)
        for si, s in enumerate(SEVERITIES):
            value = cs.psnr(out[si, pi], ref[si])
            seen.append(f"{photo} s{s}: {value:.1f}")
            if not value >= PSNR_MIN:
                bad.append(f"{photo} s{s}: {value:.2f} dB")
    assert not bad, (
        f"{name}: PSNR below {PSNR_MIN} dB vs imagecorruptions: {', '.join(bad)} "
        f"(all: {', '.join(seen)})"
    )


# ------------------------------------------------------------------------------ random


@pytest.mark.slow
@pytest.mark.parametrize("name", RANDOM)
def test_random_statistics(name: str) -> None:
    _defn_or_fail(name)
    bad = []
    for s in SEVERITIES:
        mac, bands = _random_draws(name, s)
        for pi, photo in enumerate(PHOTOS):
            ref = REF["random_stats"][name][photo][s - 1]
            n = mac.shape[1]
            ratio = float(mac[pi].mean()) / ref["mean_abs_change"]
            se = float(mac[pi].std(ddof=1)) / math.sqrt(n) / ref["mean_abs_change"]
            if not abs(ratio - 1.0) <= MAC_TOL:
                bad.append(f"{photo} s{s}: mean |change| ratio {ratio:.3f} (se {se:.3f})")
            ref_bands = np.asarray(ref["octave_power"])
            ours = bands[pi].mean(axis=0)
            ours_se = bands[pi].std(axis=0, ddof=1) / math.sqrt(n)
            for b in np.flatnonzero(ref_bands >= BAND_MIN_SHARE * ref_bands.sum()):
                r = float(ours[b] / ref_bands[b])
                if not abs(r - 1.0) <= BAND_TOL:
                    lo, hi = cs.BANDS[b]
                    bad.append(
                        f"{photo} s{s}: octave [{lo},{hi}) power ratio {r:.3f} "
                        f"(se {ours_se[b] / ref_bands[b]:.3f})"
                    )
    assert not bad, (
        f"{name}: outside tolerance (mean |change| {MAC_TOL:.0%}, octave power {BAND_TOL:.0%}) "
        f"vs imagecorruptions: " + "; ".join(bad)
    )


# ------------------------------------------------------------------------------ monotonicity


def _order_violations(ref: np.ndarray, m: np.ndarray, se: np.ndarray) -> list[str]:
    """Steps s -> s+1 where the curve ``m`` (standard errors ``se``) does not follow ``ref``."""
    bad = []
    for s in range(len(ref) - 1):
        d_ref = ref[s + 1] / ref[s] - 1.0
        d = m[s + 1] / m[s] - 1.0
        sd = math.hypot(se[s] / m[s], se[s + 1] / m[s + 1])
        if d_ref > FLAT:
            ok, want = d > -2 * sd if sd > 0 else d > 0, "grow"
        elif d_ref < -FLAT:
            ok, want = d < 2 * sd if sd > 0 else d < 0, "shrink"
        else:
            ok, want = abs(d) <= FLAT_ALLOWED + 2 * sd, "stay flat"
        if not ok:
            bad.append(
                f"s{s + 1}->s{s + 2}: reference {d_ref:+.1%}, robustcv {d:+.1%} "
                f"(should {want}; 2 se = {2 * sd:.1%})"
            )
    return bad


@pytest.mark.parametrize("name", [_param(n) for n in DETERMINISTIC + RANDOM])
def test_severity_order_follows_reference(name: str) -> None:
    _defn_or_fail(name)
    m, se = _mac_curve(name)
    bad = []
    for pi, photo in enumerate(PHOTOS):
        ref = np.asarray(REF["mean_abs_change"][name][photo])
        bad += [f"{photo} {v}" for v in _order_violations(ref, m[pi], se[pi])]
    assert not bad, f"{name}: severity order differs from imagecorruptions: " + "; ".join(bad)


def test_order_rule_catches_reversed_and_flattened_curves() -> None:
    ref = np.array([0.10, 0.12, 0.119, 0.10, 0.15])  # grow, flat, shrink, grow
    zero = np.zeros(5)
    assert _order_violations(ref, ref * 1.3, zero) == []
    assert _order_violations(ref, ref + np.array([0, 0, 0.004, 0, 0]), zero) == []  # flat: +3.4%
    assert len(_order_violations(ref, ref[::-1].copy(), zero)) == 4
    assert len(_order_violations(ref, np.full(5, 0.1), zero)) == 3  # constant: 2 grows, 1 shrink
    moved = np.array([0.10, 0.12, 0.13, 0.10, 0.15])  # the flat step jumps by +8%
    assert len(_order_violations(ref, moved, zero)) == 1
    # small reversals within two standard errors pass for a random corruption, not without se
    noisy = np.array([0.10, 0.099, 0.1, 0.1, 0.15])
    assert _order_violations(ref, noisy, np.full(5, 0.002)) == []
    assert len(_order_violations(ref, noisy, zero)) == 2


# ------------------------------------------------------------------------------ the fixtures


def test_fixtures_cover_all_19_corruptions() -> None:
    assert len(DETERMINISTIC) == 8 and len(RANDOM) == 11
    assert set(REF["mean_abs_change"]) == set(DETERMINISTIC) | set(RANDOM)
    assert REF["versions"]["imagecorruptions"] == "1.1.2"
    for name in DETERMINISTIC:
        for photo in PHOTOS:
            ref = _reference_outputs(name, photo)
            assert ref.shape == (5, REF["size"], REF["size"], 3)
            # the stored images and the recorded statistics come from the same run
            x64, _ = _photos()
            mac = cs.mean_abs_change(x64[PHOTOS.index(photo)], ref)
            np.testing.assert_allclose(mac, REF["mean_abs_change"][name][photo], atol=2.5e-3)


def test_octave_power_adds_up_to_the_variance_of_the_change() -> None:
    rng = np.random.default_rng(0)
    x = rng.random((2, 224, 224, 3))
    y = x + rng.normal(0, 0.1, x.shape)
    bands = cs.octave_power(x, y)
    d = y - x
    np.testing.assert_allclose(bands.sum(-1), d.var(axis=(1, 2)).mean(-1), rtol=1e-10)
    # white noise: power per band proportional to the number of frequencies in it
    r = cs.radial_frequency(224, 224)
    counts = np.array([((r >= lo) & (r < hi)).sum() for lo, hi in cs.BANDS])
    np.testing.assert_allclose(
        bands[0, 4:] / bands[0, 4:].sum(), counts[4:] / counts[4:].sum(), rtol=0.05
    )
