"""Contract tests over the whole corruption registry (every registered corruption and severity).

For each corruption, at every severity (every level for the ``mvh-`` degradations), on RGB and
greyscale batches: shape, dtype float32, values in [0, 1], no NaN, the input left untouched,
same seed same output, a different seed a different output (random corruptions), the output of
an image independent of its batch, the smallest accepted size and a non-square one, and replay
of the logged scalar draws. Then the bad inputs, each an ``InputError`` that names the fix.

Images are small (2x3x32x40) so the whole file stays fast.
"""

from __future__ import annotations

import importlib

import pytest
import torch

from robustcv.core.errors import InputError
from robustcv.corruptions import CORRUPTIONS, corrupt, corrupt_with_draws

# Register every corruption module that exists, whether or not the package imports it yet.
for _mod in ("noise", "blur", "weather", "digital", "mvh"):
    try:
        importlib.import_module(f"robustcv.corruptions.{_mod}")
    except ModuleNotFoundError as _err:
        if _err.name != f"robustcv.corruptions.{_mod}":
            raise

NAMES = CORRUPTIONS.names()


def _images(channels: int, h: int = 32, w: int = 40, n: int = 3, seed: int = 0) -> torch.Tensor:
    """Smooth-ish random images (a blurred noise field plus a gradient), never constant."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, channels, max(2, h // 4), max(2, w // 4), generator=g)
    smooth = torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear")
    fine = torch.rand(n, channels, h, w, generator=g)
    return (0.7 * smooth + 0.3 * fine).clamp(0.0, 1.0).contiguous()


def _severities(name: str) -> range:
    return range(1, CORRUPTIONS.get(name).severities + 1)


def _check_output(name: str, x: torch.Tensor, y: torch.Tensor) -> None:
    assert y.shape == x.shape, f"{name}: shape {tuple(y.shape)} != {tuple(x.shape)}"
    assert y.dtype == torch.float32, f"{name}: dtype {y.dtype}"
    assert y.device == x.device
    assert bool(torch.isfinite(y).all()), f"{name}: NaN/inf in the output"
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0, f"{name}: values outside [0, 1]"


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("channels", [3, 1])
def test_every_severity_keeps_the_contract(name: str, channels: int) -> None:
    defn = CORRUPTIONS.get(name)
    x = _images(channels)
    x0 = x.clone()
    for s in _severities(name):
        y = corrupt(x, name, s, seed=0)
        _check_output(f"{name} s{s}", x, y)
        assert torch.equal(x, x0), f"{name} s{s} modified its input"
        # same seed, same output; an image's output does not depend on its batch
        assert torch.equal(y, corrupt(x, name, s, seed=0)), f"{name} s{s}: not reproducible"
        assert torch.equal(y[1:], corrupt(x[1:], name, s, seed=0)), (
            f"{name} s{s}: output depends on the batch (corrupt(x)[1:] != corrupt(x[1:]))"
        )
        # a model-vs-human level list may start at zero strength (e.g. no noise at all)
        strong = defn.family != "mvh" or s == defn.severities
        if defn.random and strong:
            assert not torch.equal(y, corrupt(x, name, s, seed=1)), (
                f"{name} s{s}: a different seed gave the same output"
            )


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_corruptions_ignore_the_seed(name: str) -> None:
    if CORRUPTIONS.get(name).random:
        pytest.skip("random corruption")
    x = _images(3)
    for s in _severities(name):
        assert torch.equal(corrupt(x, name, s, seed=0), corrupt(x, name, s, seed=5))


@pytest.mark.parametrize("name", NAMES)
def test_smallest_and_non_square_sizes(name: str) -> None:
    m = CORRUPTIONS.get(name).min_size
    for h, w in ((m, m), (m, m + 5), (m + 7, m)):
        for channels in (1, 3):
            x = _images(channels, h, w, n=2, seed=h * 31 + w)
            for s in _severities(name):
                _check_output(f"{name} s{s} {h}x{w}", x, corrupt(x, name, s, seed=3))


@pytest.mark.parametrize("name", NAMES)
def test_specs_and_both_tables(name: str) -> None:
    x = _images(3, 24, 28, n=2)
    for spec in ("imagenet-c", "cifar-10-c", "auto"):
        y = corrupt(x, name, 1, seed=0, spec=spec)
        _check_output(f"{name} {spec}", x, y)


@pytest.mark.parametrize("name", NAMES)
def test_replayed_draws_reproduce_the_output(name: str) -> None:
    x = _images(3)
    s = min(3, CORRUPTIONS.get(name).severities)
    y, draws = corrupt_with_draws(x, name, s, seed=0)
    for key, value in draws.items():
        assert value.shape == (x.shape[0],), f"{name}: draw '{key}' is not one value per image"
    y2, _ = corrupt_with_draws(x, name, s, seed=0, replay=draws)
    assert torch.equal(y, y2)
    # replayed draws are used as given, whatever the seed
    _, draws3 = corrupt_with_draws(x, name, s, seed=7, replay=draws)
    assert set(draws3) == set(draws)
    for key in draws:
        assert torch.equal(draws3[key], draws[key]), f"{name}: draw '{key}' not replayed"


def test_registry_has_the_ic_noise_and_blur_corruptions() -> None:
    for name in (
        "gaussian_noise",
        "shot_noise",
        "impulse_noise",
        "speckle_noise",
        "defocus_blur",
        "glass_blur",
        "motion_blur",
        "zoom_blur",
        "gaussian_blur",
    ):
        assert name in CORRUPTIONS
    held_out = {"speckle_noise", "gaussian_blur"}
    for entry in CORRUPTIONS:
        if entry.name in held_out:
            assert not entry.obj.benchmark


@pytest.mark.parametrize("name", NAMES)
def test_definitions_are_documented(name: str) -> None:
    defn = CORRUPTIONS.get(name)
    assert defn.summary, f"{name}: no summary for 'robustcv list corruptions'"
    assert defn.greyscale, f"{name}: no note on greyscale images"
    assert set(defn.integer_params) <= set(defn.param_names)


# ------------------------------------------------------------------------------ bad input


def test_unknown_name_suggests_a_close_match() -> None:
    x = _images(3)
    with pytest.raises(InputError, match="did you mean 'gaussian_noise'"):
        corrupt(x, "gausian_noise", 1)
    with pytest.raises(InputError, match="unknown corruption"):
        corrupt(x, "no-such-thing", 1)
    # dashes and underscores are interchangeable
    assert torch.equal(corrupt(x, "zoom-blur", 1), corrupt(x, "zoom_blur", 1))


@pytest.mark.parametrize("severity", [0, 6, -1])
def test_severity_out_of_range_names_the_valid_range(severity: int) -> None:
    with pytest.raises(InputError, match=r"1\.\.5") as err:
        corrupt(_images(3), "gaussian_noise", severity)
    assert str(severity) in str(err.value)


@pytest.mark.parametrize("severity", ["3", 3.0, True, None])
def test_severity_must_be_an_int(severity: object) -> None:
    with pytest.raises(InputError, match="severity must be an int"):
        corrupt(_images(3), "gaussian_noise", severity)  # type: ignore[arg-type]


def test_non_string_name_and_unknown_spec() -> None:
    x = _images(3)
    with pytest.raises(InputError, match="corruption name"):
        corrupt(x, 3, 1)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="imagenet-c"):
        corrupt(x, "gaussian_noise", 1, spec="imagenet")


@pytest.mark.parametrize("name", NAMES)
def test_image_smaller_than_min_size(name: str) -> None:
    m = CORRUPTIONS.get(name).min_size
    x = _images(3, m - 1, m + 3, n=1)
    with pytest.raises(InputError, match=f"{m}x{m}"):
        corrupt(x, name, 1)


def test_values_outside_unit_range_say_how_to_fix_them() -> None:
    x = _images(3) * 255.0
    with pytest.raises(InputError, match=r"divide by 255"):
        corrupt(x, "defocus_blur", 1)
    with pytest.raises(InputError, match=r"outside \[0, 1\]"):
        corrupt(_images(3) - 0.5, "defocus_blur", 1)
    bad = _images(3)
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(InputError, match="NaN"):
        corrupt(bad, "defocus_blur", 1)


def test_wrong_dtype_and_rank_say_how_to_fix_them() -> None:
    x = _images(3)
    with pytest.raises(InputError, match=r"\.float\(\) / 255"):
        corrupt((x * 255).to(torch.uint8), "motion_blur", 1)
    with pytest.raises(InputError, match=r"\.float\(\)"):
        corrupt(x.double(), "motion_blur", 1)
    with pytest.raises(InputError, match="unsqueeze"):
        corrupt(x[0], "motion_blur", 1)
    with pytest.raises(InputError, match=r"torch\.Tensor"):
        corrupt(x.numpy(), "motion_blur", 1)  # type: ignore[arg-type]


def test_replay_from_another_batch_size_is_refused() -> None:
    x = _images(3)
    _, draws = corrupt_with_draws(x, "motion_blur", 2)
    with pytest.raises(InputError, match="same batch"):
        corrupt_with_draws(x[:2], "motion_blur", 2, replay=draws)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", NAMES)
def test_cuda_matches_the_contract(name: str) -> None:
    x = _images(3).cuda()
    for s in _severities(name):
        y = corrupt(x, name, s, seed=0)
        _check_output(f"{name} s{s} cuda", x, y)
        assert torch.equal(y[1:], corrupt(x[1:], name, s, seed=0))
        if not CORRUPTIONS.get(name).random:
            ref = corrupt(x.cpu(), name, s, seed=0)
            assert (y.cpu() - ref).abs().max() < 2e-2, f"{name} s{s}: CUDA differs from CPU"


# ------------------------------------------------------------------------ memory layouts


def _layouts(channels: int, h: int, w: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """A contiguous batch of 4 and the same images in the layouts users hand in."""
    big = _images(channels, 2 * h, 2 * w, n=4, seed=7)
    x = big[:, :, ::2, ::2].contiguous()
    nhwc = x.permute(0, 2, 3, 1).contiguous().numpy()  # what an HWC numpy pipeline holds
    views = {
        "channels-last (from_numpy(nhwc).permute)": torch.from_numpy(nhwc).permute(0, 3, 1, 2),
        "channels_last memory format": x.contiguous(memory_format=torch.channels_last),
        "strided view x[:, :, ::2, ::2]": big[:, :, ::2, ::2],
        "batch slice x[1:3]": x[1:3],
        "batch of one x[2:3]": x[2:3],
        "cropped view": _images(channels, h + 3, w + 5, n=4, seed=7)[:, :, 1 : h + 1, 2 : w + 2],
    }
    return x, views


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("channels", [3, 1])
def test_every_layout_gives_the_contiguous_result(name: str, channels: int) -> None:
    """Channels-last, strided and sliced views and a batch of one: same output as
    ``.contiguous()`` (to 1e-6), the input untouched, randomness keyed by content only."""
    defn = CORRUPTIONS.get(name)
    m = max(defn.min_size, 16)
    x, views = _layouts(channels, m, m + 8)
    severities = sorted({1, defn.severities})
    for label, v in views.items():
        v0 = v.clone()
        for s in severities:
            got = corrupt(v, name, s, seed=2)
            want = corrupt(v.contiguous(), name, s, seed=2)
            assert got.shape == v.shape and got.dtype == torch.float32
            diff = float((got - want).abs().max())
            assert diff <= 1e-6, f"{name} s{s} {label}: differs from .contiguous() by {diff}"
            assert torch.equal(v, v0), f"{name} s{s} {label}: modified its input"
    # a batch of one gives each image what it gets inside the batch
    for s in severities:
        full = corrupt(x, name, s, seed=2)
        for i in (0, 3):
            one = corrupt(x[i : i + 1], name, s, seed=2)
            diff = float((one - full[i : i + 1]).abs().max())
            assert diff <= 1e-6, f"{name} s{s}: image {i} alone differs by {diff} from its batch"


@pytest.mark.parametrize("channels", [2, 4, 5])
def test_only_grey_or_rgb_images_are_corrupted(channels: int) -> None:
    x = torch.rand(2, channels, 32, 32)
    for name in ("frost", "gaussian_noise", "fog", "mvh-contrast"):
        with pytest.raises(InputError, match=f"{channels} channels.*1 channel.*3 channel"):
            corrupt(x, name, 1)


def test_meta_tensors_are_refused() -> None:
    with pytest.raises(InputError, match="meta"):
        corrupt(torch.empty(2, 3, 32, 32, device="meta"), "fog", 1)
