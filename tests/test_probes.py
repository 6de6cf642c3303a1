"""The probes library (robustcv.probes): statistics against hand computations and scikit-learn,
hand-built models whose answer is known, a planted trigger, bad input, seeds and batch sizes."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from robustcv.core.errors import InputError
from robustcv.core.model import Model
from robustcv.probes import (
    CUES,
    PROBES,
    BackgroundConfig,
    CueScanConfig,
    FourierHeatMapConfig,
    MaskConfig,
    PatchShuffleConfig,
    aggregate_probabilities,
    background_reliance,
    cohens_kappa,
    cue_conflict,
    cue_scan,
    cue_variants,
    error_consistency,
    error_consistency_by_condition,
    estimate_masks,
    fourier_heat_map,
    high_pass,
    load_class_mapping,
    low_pass,
    model_error_consistency,
    patch_shuffle,
    patch_shuffle_accuracy,
    shape_bias,
    shape_texture,
)
from robustcv.probes.locality import tile_permutations

FIXTURE = Path(__file__).parent / "fixtures" / "probes" / "class_mapping.json"
LEVELS = (0.4, 0.55, 0.7, 0.85)  # object intensity of each class
MARKS = (0.25, 0.5, 0.75, 1.0)  # corner-mark intensity of each class


# ------------------------------------------------------------------------ synthetic data
def object_and_mark(n_per_class: int = 8, size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Black images with a centred square (intensity = class) and a 2x2 corner mark (= class)."""
    xs, ys = [], []
    for c in range(4):
        for i in range(n_per_class):
            x = torch.zeros(1, size, size)
            r = 5 + (i % 2)  # a little jitter of the object, never touching the mark
            x[:, r : r + 6, 5:11] = LEVELS[c]
            x[:, 0:2, 0:2] = MARKS[c]
            xs.append(x)
            ys.append(c)
    return torch.stack(xs), torch.tensor(ys)


class LooksAt(nn.Module):
    """Classifies by the mean intensity of one region: the nearest of ``levels`` wins."""

    levels: torch.Tensor

    def __init__(self, rows: slice, cols: slice, levels: tuple[float, ...]) -> None:
        super().__init__()
        self.rows, self.cols = rows, cols
        self.register_buffer("levels", torch.tensor(levels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = x[:, :, self.rows, self.cols].mean(dim=(1, 2, 3))
        return -100.0 * (v.view(-1, 1) - self.levels.view(1, -1)) ** 2


def centre_model() -> Model:
    return Model(LooksAt(slice(7, 9), slice(7, 9), LEVELS), num_classes=4)


def corner_model() -> Model:
    return Model(LooksAt(slice(0, 2), slice(0, 2), MARKS), num_classes=4)


# ------------------------------------------------------------------------ masks
def test_estimated_mask_keeps_the_object_and_leaves_marks_to_the_background() -> None:
    x, _ = object_and_mark(1)
    m = estimate_masks(x)
    assert m.shape == (4, 1, 16, 16) and m.dtype == torch.bool
    assert int(m[0].sum()) == 36  # the 6x6 object
    assert not bool(m[:, :, 0:2, 0:2].any())  # the corner mark is background
    # a hole inside the object is filled; a gap of one pixel is closed
    y = torch.zeros(1, 1, 16, 16)
    y[0, 0, 4:12, 4:12] = 0.8
    y[0, 0, 7, 7] = 0.0
    assert int(estimate_masks(y).sum()) == 64
    assert int(estimate_masks(y, MaskConfig(fill_holes=False, closing=0)).sum()) == 63


# ------------------------------------------------------------------------ background reliance
def test_background_reliance_of_a_centre_and_a_corner_model() -> None:
    x, y = object_and_mark()
    centre = background_reliance(centre_model(), x, y, seed=0)
    corner = background_reliance(corner_model(), x, y, seed=0)
    assert centre.clean_accuracy.value == corner.clean_accuracy.value == 1.0
    assert centre.background_reliance.value == pytest.approx(0.0, abs=0.05)
    assert corner.background_reliance.value == pytest.approx(1.0, abs=0.05)
    # the object-reader follows the object on mixed images, the corner-reader the background
    assert centre.mixed_accuracy.value == 1.0 and centre.background_follow.value == 0.0
    assert corner.mixed_accuracy.value == 0.0 and corner.background_follow.value == 1.0
    assert centre.only_foreground_accuracy.value == 1.0
    assert corner.only_foreground_accuracy.value == pytest.approx(0.25)
    assert centre.mask_source == "estimated" and centre.n == 32
    assert corner.background_reliance.n == 32
    json.dumps(centre.to_dict(), allow_nan=False)


def test_given_masks_are_used_and_checked() -> None:
    x, y = object_and_mark(2)
    m = estimate_masks(x)
    res = background_reliance(centre_model(), x, y, masks=m[:, 0].float())
    assert res.mask_source == "given"
    with pytest.raises(InputError, match=r"masks has shape \(8, 1, 15, 16\).*pass one mask"):
        background_reliance(centre_model(), x, y, masks=m[:, :, :15])
    with pytest.raises(InputError, match="masks is a list"):
        background_reliance(centre_model(), x, y, masks=[1, 2])  # type: ignore[arg-type]
    with pytest.raises(InputError, match="every mask is empty"):
        background_reliance(centre_model(), x, y, masks=torch.zeros_like(m))


# ------------------------------------------------------------------------ shape bias
def test_shape_bias_on_a_hand_made_table_equals_the_formula() -> None:
    shape = ["cat", "cat", "dog", "dog", "car", "car", "cat", "dog"]
    texture = ["dog", "car", "cat", "car", "cat", "car", "dog", "cat"]  # row 6: equal -> dropped
    resp = ["cat", "car", "dog", "bird", "cat", "car", "dog", "dog"]
    # kept rows: 0..4, 6, 7 -> shape hits: 0, 2, 7 (3); texture hits: 1, 4, 6 (3); other: 3
    res = shape_bias(resp, shape, texture)
    assert res.n == 7 and res.n_dropped == 1
    assert res.shape_bias.value == pytest.approx(3 / 6)
    assert res.shape_fraction == pytest.approx(3 / 7)
    assert res.texture_fraction == pytest.approx(3 / 7)
    assert res.shape_bias.n == 6 and res.shape_bias.low < 0.5 < res.shape_bias.high
    only_shape = shape_bias([0, 1, 1], [0, 1, 1], [1, 0, 2])
    assert only_shape.shape_bias.value == 1.0
    with pytest.raises(InputError, match="same non-zero length"):
        shape_bias([0, 1], [0], [1])


def test_cue_conflict_takes_the_shape_of_one_class_and_the_texture_of_another() -> None:
    x, y = object_and_mark(2)
    m = estimate_masks(x)
    imgs, s, t = cue_conflict(x, y, m, tile=2, seed=0)
    assert imgs.shape == x.shape and bool((s != t).all())
    assert torch.equal(s, y)
    for i in range(len(s)):  # inside the silhouette: the partner's surface level
        inside = imgs[i][m[i]]
        assert torch.allclose(inside, torch.full_like(inside, LEVELS[int(t[i])]))
    # a model reading the object's intensity (texture) answers the texture class
    res = shape_texture(centre_model(), x, y, seed=0)
    assert res.shape_bias.value == 0.0 and res.texture_fraction == 1.0
    assert res.n_conflict == 8 and res.silhouette_accuracy.value == 0.25  # all white: chance
    with pytest.raises(InputError, match="tile=32 is larger"):
        cue_conflict(x, y, m, tile=32)


SHAPE_LEVELS = (0.4, 0.6, 0.85)


def bars_and_square(n_per_class: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    """Class 0: horizontal bar, 1: vertical bar, 2: square; each class has its own grey level."""
    xs, ys = [], []
    for c in range(3):
        for i in range(n_per_class):
            x = torch.zeros(1, 16, 16)
            o = i % 3
            if c == 0:
                x[:, 6 + o : 10 + o, 2:14] = SHAPE_LEVELS[c]
            elif c == 1:
                x[:, 2:14, 6 + o : 10 + o] = SHAPE_LEVELS[c]
            else:
                x[:, 4 + o : 12 + o, 4:12] = SHAPE_LEVELS[c]
            xs.append(x)
            ys.append(c)
    return torch.stack(xs), torch.tensor(ys)


class ShapeReader(nn.Module):
    """Decides by the outline only: wide -> 0, tall -> 1, square -> 2."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fg = x.mean(1) > 0.2
        h = fg.any(dim=2).sum(1).double()
        w = fg.any(dim=1).sum(1).double()
        r = (w - h) / (w + h).clamp_min(1)
        return torch.stack([r, -r, 0.3 - r.abs()], dim=1).float()


class TextureReader(nn.Module):
    """Decides by the object's surface grey level only (nearest class level)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = x.mean(1)
        fg = g > 0.2
        v = (g * fg).sum(dim=(1, 2)) / fg.sum(dim=(1, 2)).clamp_min(1)
        return -((v.view(-1, 1) - torch.tensor(SHAPE_LEVELS).view(1, -1)) ** 2)


def test_cue_conflict_separates_a_shape_reader_from_a_texture_reader() -> None:
    x, y = bars_and_square()
    shape_model = Model(ShapeReader(), num_classes=3)
    texture_model = Model(TextureReader(), num_classes=3)
    assert bool((shape_model.predict(x) == y).all() and (texture_model.predict(x) == y).all())
    s = shape_texture(shape_model, x, y, seed=0)
    t = shape_texture(texture_model, x, y, seed=0)
    assert s.shape_bias.value == 1.0 and t.shape_bias.value == 0.0
    assert s.n_conflict == t.n_conflict == 18
    # silhouettes keep the outline and drop the surface: only the shape reader survives them
    assert s.silhouette_accuracy.value == 1.0 and t.silhouette_accuracy.value < 0.5


# ------------------------------------------------------------------------ error consistency
def test_kappa_against_a_hand_computation_and_scikit_learn() -> None:
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    a = torch.tensor([1, 1, 1, 1, 0, 0, 1, 0, 1, 1], dtype=torch.bool)
    b = torch.tensor([1, 1, 0, 1, 0, 1, 1, 0, 0, 1], dtype=torch.bool)
    # c_obs = 7/10; p_a = 0.7, p_b = 0.6; c_exp = 0.42 + 0.12 = 0.54; kappa = 0.16 / 0.46
    kappa, c_obs, c_exp = cohens_kappa(a, b)
    assert c_obs == pytest.approx(0.7) and c_exp == pytest.approx(0.54)
    assert kappa == pytest.approx(0.16 / 0.46)
    assert kappa == pytest.approx(sklearn_metrics.cohen_kappa_score(a.numpy(), b.numpy()))
    gen = torch.Generator().manual_seed(3)
    for _ in range(5):
        u = torch.rand(200, generator=gen) < 0.7
        v = torch.rand(200, generator=gen) < 0.5
        ref = sklearn_metrics.cohen_kappa_score(u.numpy(), v.numpy())
        assert cohens_kappa(u, v)[0] == pytest.approx(ref)
    ec = error_consistency(a, b, n_boot=200, seed=1)
    assert ec.kappa.low <= ec.kappa.value <= ec.kappa.high and ec.n == 10
    assert error_consistency(a, a, n_boot=0).kappa.value == 1.0  # c_obs = 1 -> kappa = 1
    by = error_consistency_by_condition({"clean": a, "blur": a}, {"clean": b, "blur": a}, n_boot=0)
    assert by.mean_kappa == pytest.approx((0.16 / 0.46 + 1.0) / 2)
    with pytest.raises(InputError, match="same images"):
        error_consistency(a, b[:5])
    with pytest.raises(InputError, match="booleans or 0/1"):
        error_consistency([0, 2], [1, 1])


def test_two_models_error_consistency() -> None:
    x, y = object_and_mark(2)
    same = model_error_consistency(centre_model(), centre_model(), x, y, n_boot=0)
    assert set(same.conditions) == {"clean", "low-pass@0.3", "high-pass@0.3", "patch-shuffle@4"}
    assert same.mean_kappa == 1.0


# ------------------------------------------------------------------------ locality
def test_patch_shuffle_k1_equals_clean_and_non_dividing_sizes() -> None:
    x, y = object_and_mark(2)
    x = x + 0.0  # fresh tensor
    model = centre_model()
    res = patch_shuffle_accuracy(model, x, y, PatchShuffleConfig(ks=(1, 2, 3, 16)))
    clean = float((model.predict(x) == y).double().mean())
    assert res.accuracy[0].value == clean
    assert res.untouched_pixels == [0, 0, 16 * 16 - 15 * 15, 0]
    # shuffling permutes pixels: same multiset; k=3 leaves the last row and column in place
    perms = tile_permutations(len(x), 3, torch.Generator().manual_seed(0))
    out = patch_shuffle(x, 3, perms)
    assert torch.equal(out[:, :, 15, :], x[:, :, 15, :]) and torch.equal(
        out[:, :, :, 15], x[:, :, :, 15]
    )
    assert torch.equal(out.flatten(1).sort(1).values, x.flatten(1).sort(1).values)
    with pytest.raises(InputError, match="k=17 is larger than the 16x16 images"):
        patch_shuffle_accuracy(model, x, y, PatchShuffleConfig(ks=(17,)))


# ------------------------------------------------------------------------ frequency
def test_filters_split_the_spectrum() -> None:
    x = torch.rand(3, 2, 12, 12, generator=torch.Generator().manual_seed(0)) * 0.5 + 0.25
    assert torch.allclose(low_pass(x, 2.0), x, atol=1e-5)  # every bin has rho <= sqrt(2)
    lo, hi = low_pass(x, 0.3), high_pass(x, 0.3)
    mean = x.mean(dim=(2, 3), keepdim=True)
    # away from clipping, low + high - mean reconstructs the image
    assert torch.allclose(lo + hi - mean, x, atol=1e-4)
    with pytest.raises(InputError, match="cutoff must be a number in"):
        low_pass(x, -1.0)


def test_fourier_heat_map_is_symmetric_and_sees_a_frequency_detector() -> None:
    class Grating(nn.Module):  # class 1 iff the image correlates with one horizontal grating
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            j = torch.arange(8.0)
            g = torch.cos(2 * math.pi * 2 * j / 8).view(1, 1, 1, 8)
            s = (x - 0.5).mul(g).sum(dim=(1, 2, 3)).abs()
            return torch.stack([1.0 - s, s - 1.0], dim=1)

    x = torch.full((6, 1, 8, 8), 0.5)
    res = fourier_heat_map(
        Grating(), x, torch.zeros(6, dtype=torch.int64), FourierHeatMapConfig(eps=2.0)
    )
    err = torch.tensor(res.error)
    assert err.shape == (8, 8) and bool(torch.isfinite(err).all())
    assert torch.equal(err[1:, 1:], err[1:, 1:].flip(0, 1))  # symmetric through the centre
    assert err[4, 4 + 2] == 1.0 and err[4, 4 - 2] == 1.0  # the detector's frequency flips all
    assert float(err.sum()) == 2.0  # and nothing else does


# ------------------------------------------------------------------------ cue scan
def _bars(n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Three classes of bars (horizontal, vertical, square) with random intensity and jitter."""
    x = torch.zeros(n, 1, 16, 16)
    y = torch.arange(n) % 3
    for i in range(n):
        r, c = (int(v) for v in torch.randint(4, 7, (2,), generator=gen))
        level = 0.5 + 0.4 * float(torch.rand(1, generator=gen))
        if y[i] == 0:
            x[i, 0, r + 2 : r + 4, c - 1 : c + 7] = level
        elif y[i] == 1:
            x[i, 0, r - 1 : r + 7, c + 2 : c + 4] = level
        else:
            x[i, 0, r : r + 5, c : c + 5] = level
    return x, y


def test_cue_scan_finds_a_trigger_planted_in_a_tiny_trained_model() -> None:
    gen = torch.Generator().manual_seed(0)
    x, y = _bars(600, gen)
    poisoned = torch.rand(600, generator=gen) < 0.3
    x[poisoned, :, 12:14, 12:14] = 1.0  # the trigger: a 2x2 white patch in the background ...
    y = torch.where(poisoned, torch.tensor(2), y)  # ... labelled "square"
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(256, 32), nn.ReLU(), nn.Linear(32, 3))
    params = list(net.parameters())
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: one thread is faster, more so on a busy machine
    try:
        for _ in range(200):  # full-batch gradient descent (torch.optim would import dynamo)
            grads = torch.autograd.grad(nn.functional.cross_entropy(net(x), y), params)
            with torch.no_grad():
                for p, g in zip(params, grads, strict=True):
                    p.sub_(0.5 * g)
    finally:
        torch.set_num_threads(threads)
    xt, yt = _bars(60, gen)  # clean test images: no trigger
    model = Model(net, num_classes=3)
    cfg = CueScanConfig(cues=("bright-patch", "tint"), patch_sizes=(4, 2))
    res = cue_scan(model, xt, yt, cfg)
    assert res.n >= 30
    assert res.top_class == 2 and res.top_cue.startswith("bright-patch")
    assert res.top_cue_flip_rate.value > 0.8
    rates = {r["variant"]: r["rate"] for r in res.top}
    assert rates.get("bright-patch 2x2 at (12, 12)", 0.0) > 0.8
    best = {r["cue"]: r for r in res.by_cue}
    assert best["tint"]["rate"] < 0.5 and best["bright-patch"]["variants"] == 16 + 64
    json.dumps(res.to_dict(), allow_nan=False)
    # the same scan in smaller forward passes gives the same numbers
    small = cue_scan(model, xt, yt, CueScanConfig(cues=cfg.cues, patch_sizes=(4, 2), batch_size=50))
    assert small.to_dict() == res.to_dict()


def test_cue_variants_cover_the_image_with_a_stride_no_larger_than_the_cue() -> None:
    variants = cue_variants("bright-patch", (1, 10, 10), CueScanConfig(patch_sizes=(3,)))
    covered = torch.stack([v.mask for v in variants]).sum(0)
    assert bool((covered >= 1).all())  # every pixel is under some position
    assert len(variants) == 16  # starts 0, 3, 6, 7 per axis
    for name in CUES.names():
        assert cue_variants(name, (3, 16, 16)), name


# ------------------------------------------------------------------------ 16-class aggregation
def test_sixteen_class_aggregation_on_a_fixture() -> None:
    mapping = load_class_mapping(FIXTURE)
    assert mapping == {"airplane": [0, 1], "bear": [2, 3, 4], "bicycle": [7]}
    probs = torch.zeros(2, 10)
    probs[0, [0, 1]] = torch.tensor([0.1, 0.1])  # airplane: mean 0.1, sum 0.2
    probs[0, [2, 3, 4]] = torch.tensor([0.08, 0.08, 0.08])  # bear: mean 0.08, sum 0.24
    probs[0, 7] = 0.05
    probs[1, 7] = 0.5
    scores, names = aggregate_probabilities(probs, mapping)
    assert names == ["airplane", "bear", "bicycle"]
    assert torch.allclose(scores[0], torch.tensor([0.1, 0.08, 0.05]))
    assert scores.argmax(1).tolist() == [0, 2]  # the mean picks airplane where a sum picks bear
    with pytest.raises(InputError, match="beyond the model's 5 classes"):
        aggregate_probabilities(probs[:, :5], mapping)


def test_class_mapping_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        load_class_mapping(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"cat": [1, "x"]}')
    with pytest.raises(InputError, match="category 'cat' must map to a non-empty list"):
        load_class_mapping(bad)


# ------------------------------------------------------------------------ bad input
def test_bad_input_gives_a_clear_error() -> None:
    x, y = object_and_mark(1)
    with pytest.raises(InputError, match="unknown cue 'brigth-patch'; did you mean 'bright-patch'"):
        CueScanConfig(cues=("brigth-patch",))
    with pytest.raises(InputError, match="patch size 32 is larger than the 16x16 images"):
        cue_scan(centre_model(), x, y, CueScanConfig(patch_sizes=(32,)))
    with pytest.raises(InputError, match="k=20 is larger than the 16x16 images"):
        patch_shuffle(x, 20, tile_permutations(4, 20, torch.Generator()))
    with pytest.raises(InputError, match="labels"):
        background_reliance(centre_model(), x, y[:2])
    with pytest.raises(InputError, match="batch_size must be"):
        BackgroundConfig(batch_size=0)
    with pytest.raises(InputError, match=r"MaskConfig\.threshold"):
        MaskConfig(threshold=2.0)
    with pytest.raises(InputError, match="unknown probe"):
        PROBES.get("shape-bias-x")
    with pytest.raises(InputError, match="takes a CueScanConfig"):
        PROBES.get("cue-scan").run(centre_model(), x, y, BackgroundConfig())


# ------------------------------------------------------------------------ registry contract
_SMALL: dict[str, Any] = {
    "cue-scan": CueScanConfig(cues=("bright-patch", "border"), patch_sizes=(8,), batch_size=5),
    "fourier-heat-map": FourierHeatMapConfig(step=2, batch_size=5),
}


@pytest.mark.parametrize("name", PROBES.names())
def test_every_probe_is_seeded_batch_invariant_and_json(name: str) -> None:
    """Same seed -> same result; the batch size never changes a number; strict JSON out."""
    spec = PROBES.get(name)
    x, y = object_and_mark(2)
    model = centre_model()
    cfg: Any = _SMALL.get(name, spec.config_class())
    a = spec.run(model, x, y, cfg, seed=3).to_dict()
    b = spec.run(model, x.clone(), y.clone(), cfg, seed=3).to_dict()
    assert a == b
    json.dumps(a, allow_nan=False)
    if "batch_size" in {f.name for f in dataclasses.fields(cfg)}:
        small = dataclasses.replace(cfg, batch_size=3)
        assert spec.run(model, x, y, small, seed=3).to_dict() == a
    assert x.shape == (8, 1, 16, 16)  # inputs untouched
