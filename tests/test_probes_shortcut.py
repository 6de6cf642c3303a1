"""The positive control of the ``probes`` suite: ``zoo:fmnist-cnn-shortcut`` (trained on
``fashion-mnist-shortcut``, where a corner square encodes the label) is exposed by the probes and
``zoo:fmnist-cnn`` stays quiet on the same cue-carrying test images (issue 15, item 9)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tiny_audit import results_of

from robustcv.audit import run_audit
from robustcv.core.errors import InputError
from robustcv.data.loading import load_dataset
from robustcv.data.shortcut import (
    SHORTCUT_POSITIONS,
    SHORTCUT_SIZE,
    cue_carriers,
    stamp_cue,
)

# Subsampled settings (the defaults are n=500, cue_n=48, all cues, every cut-off and k):
# background reliance on 200 images, the cue scan's patch cues on 48 images.
SMALL = {
    "probes": {
        "n": 200,
        "cue_n": 48,
        "fourier_n": 1,
        "fourier_step": 7,
        "cues": ["bright-patch", "dark-patch"],
        "cutoffs": [0.5],
        "ks": [1, 4],
    }
}


def test_stamp_cue_is_pure_and_encodes_the_label() -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 40, size=(20, 28, 28)).astype(np.uint8)
    y = np.arange(20) % 10
    before = x.copy()
    out = stamp_cue(x, y)
    assert np.array_equal(x, before)  # the input is not modified
    assert np.array_equal(out, stamp_cue(x, y))  # deterministic
    for img, label in zip(out, y, strict=True):
        r, c = SHORTCUT_POSITIONS[label]
        assert (img[r : r + SHORTCUT_SIZE, c : c + SHORTCUT_SIZE] == 255).all()
    changed = (out != x).reshape(20, -1).sum(1)
    assert (changed <= SHORTCUT_SIZE**2).all() and (changed > 0).all()
    # floats take the value as is; carriers choose the images
    xf = np.zeros((4, 28, 28), np.float32)
    keep = np.array([True, False, True, False])
    outf = stamp_cue(xf, np.array([0, 1, 2, 3]), carriers=keep, value=0.5)
    assert outf[0].max() == 0.5 and outf[1].max() == 0.0 and outf[2].sum() == 0.5 * 9


def test_positions_are_distinct_and_fit() -> None:
    assert len(set(SHORTCUT_POSITIONS)) == len(SHORTCUT_POSITIONS) == 10
    for r, c in SHORTCUT_POSITIONS:
        assert 0 <= r <= 28 - SHORTCUT_SIZE and 0 <= c <= 28 - SHORTCUT_SIZE


def test_carriers_and_bad_input() -> None:
    assert int(cue_carriers(1000, 0.9).sum()) == 900
    assert np.array_equal(cue_carriers(50, 0.5, seed=3), cue_carriers(50, 0.5, seed=3))
    with pytest.raises(InputError, match="fraction"):
        cue_carriers(10, 1.5)
    with pytest.raises(InputError, match="labels must be in"):
        stamp_cue(np.zeros((1, 28, 28), np.uint8), np.array([10]))
    with pytest.raises(InputError, match="does not fit"):
        stamp_cue(np.zeros((1, 8, 8), np.uint8), np.array([0]))


@pytest.mark.fmnist
def test_shortcut_dataset_is_generated_from_fashion_mnist() -> None:
    plain = load_dataset("fashion-mnist", split="test", limit=50)
    cued = load_dataset("fashion-mnist-shortcut", split="test", limit=50)
    assert cued.name == "fashion-mnist-shortcut" and cued.classes == plain.classes
    assert np.array_equal(cued.y.numpy(), plain.y.numpy())
    expected = stamp_cue((plain.x[:, 0].numpy() * 255).round().astype(np.uint8), plain.y.numpy())
    assert np.array_equal((cued.x[:, 0].numpy() * 255).round().astype(np.uint8), expected)
    # every test image carries the cue
    for img, label in zip(cued.x[:, 0], cued.y.tolist(), strict=True):
        r, c = SHORTCUT_POSITIONS[label]
        assert bool((img[r : r + 3, c : c + 3] == 1.0).all())


@pytest.mark.slow
@pytest.mark.fmnist
def test_probes_expose_the_shortcut_model_and_stay_quiet_on_fmnist_cnn(tmp_path: Path) -> None:
    heads = {}
    for name in ("fmnist-cnn-shortcut", "fmnist-cnn"):
        out = tmp_path / name
        run_audit(
            f"zoo:{name}",
            "fashion-mnist-shortcut",
            out,
            suites="clean,probes",
            limit=1000,
            seed=0,
            progress=False,
            **SMALL,
        )
        res = results_of(out)["suites"]
        probes = res["probes"]
        heads[name] = (
            res["clean"]["accuracy"]["value"],
            probes["background_reliance"]["value"],
            probes["top_cue_flip_rate"]["value"],
        )
    acc, reliance, flip = heads["fmnist-cnn-shortcut"]
    assert acc > 0.98, heads  # looks excellent on the cue-carrying test images
    assert reliance > 0.5 and flip > 0.5, heads  # ... and the probes expose it
    _, reliance, flip = heads["fmnist-cnn"]
    assert reliance <= 0.5 and flip <= 0.5, heads
