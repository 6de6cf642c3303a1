"""Corruption metrics: CE / mCE / relative mCE / mPC / rPC against hand-derived values."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from robustcv.core.errors import InputError
from robustcv.corruptions import metrics as M

# ImageNet-C AlexNet errors in the published (positional) order (note section 2)
PUBLISHED_ORDER = (
    "gaussian_noise shot_noise impulse_noise defocus_blur glass_blur motion_blur zoom_blur "
    "snow frost fog brightness contrast elastic_transform pixelate jpeg_compression"
).split()
PUBLISHED_VALUES = (
    ".886428 .894468 .922640 .819880 .826268 .785948 .798360 .866816 .826572 .819324 "
    ".564592 .853204 .646056 .717840 .606500"
).split()


def test_alexnet_table_is_keyed_by_name() -> None:
    assert dict(M.ALEXNET_ERRORS) == dict(
        zip(PUBLISHED_ORDER, map(float, PUBLISHED_VALUES), strict=True)
    )
    assert tuple(M.ALEXNET_ERRORS) == M.BENCHMARK_CORRUPTIONS
    assert len(M.IMAGENET_C_CORRUPTIONS) == 19
    assert not set(M.HELD_OUT_CORRUPTIONS) & set(M.ALEXNET_ERRORS)
    with pytest.raises(TypeError):
        M.ALEXNET_ERRORS["fog"] = 0.0  # type: ignore[index]


def test_alexnet_against_itself_is_100() -> None:
    assert M.mce(M.ALEXNET_ERRORS, M.ALEXNET_ERRORS) == pytest.approx(100.0, abs=1e-12)
    per_sev = {c: dict.fromkeys(range(1, 6), e) for c, e in M.ALEXNET_ERRORS.items()}
    assert M.mce(per_sev, M.ALEXNET_ERRORS) == pytest.approx(100.0, abs=1e-12)
    assert all(v == pytest.approx(100.0) for v in M.ce(per_sev, M.ALEXNET_ERRORS).values())


def test_two_corruption_example_by_hand() -> None:
    # model: fog errors .1 .2 .3 .4 .5 (sum 1.5), snow .5 x 5 (sum 2.5)
    # baseline: fog .5 x 5 (sum 2.5), snow 1.0 x 5 (sum 5.0)
    # CE_fog = 1.5 / 2.5 = 60 %, CE_snow = 2.5 / 5 = 50 %, mCE = 55 %
    model = {
        "fog": {1: 0.1, 2: 0.2, 3: 0.3, 4: 0.4, 5: 0.5},
        "snow": dict.fromkeys(range(1, 6), 0.5),
    }
    base = {"fog": dict.fromkeys(range(1, 6), 0.5), "snow": dict.fromkeys(range(1, 6), 1.0)}
    ces = M.ce(model, base)
    assert ces == {"fog": pytest.approx(60.0), "snow": pytest.approx(50.0)}
    assert M.mce(model, base, corruptions=["fog", "snow"]) == pytest.approx(55.0)
    # the same through accuracies
    acc = {c: {s: 1 - e for s, e in row.items()} for c, row in model.items()}
    assert M.ce(M.corruption_errors(acc), base) == ces
    # mean-form baseline gives the same CE
    assert M.ce(model, {"fog": 0.5, "snow": 1.0}) == ces


def test_mce_does_not_depend_on_order() -> None:
    rng = random.Random(0)
    model = {c: {s: rng.uniform(0.2, 0.9) for s in range(1, 6)} for c in M.BENCHMARK_CORRUPTIONS}
    items = list(model.items())
    rng.shuffle(items)
    shuffled = dict(items)
    assert M.mce(model, M.ALEXNET_ERRORS) == pytest.approx(M.mce(shuffled, M.ALEXNET_ERRORS))
    # and equals the AugMix-style formula 100 * mean_s(err) / alexnet[c], averaged
    want = np.mean([100 * np.mean(list(model[c].values())) / M.ALEXNET_ERRORS[c] for c in model])
    assert M.mce(shuffled, M.ALEXNET_ERRORS) == pytest.approx(want)


def test_mce_errors_name_the_fix() -> None:
    model = {c: 0.5 for c in M.BENCHMARK_CORRUPTIONS}
    partial = dict(model)
    del partial["fog"]
    with pytest.raises(InputError, match="errors_model has no value for 'fog'"):
        M.mce(partial, M.ALEXNET_ERRORS)
    typo = dict(partial, fgo=0.5)
    with pytest.raises(InputError, match="did you mean 'fgo'"):
        M.mce(typo, M.ALEXNET_ERRORS)
    with pytest.raises(
        InputError, match=r"baseline has no value for .*'spatter', 'saturate'; ALEXNET"
    ):
        M.mce(dict.fromkeys(M.IMAGENET_C_CORRUPTIONS, 0.5), M.ALEXNET_ERRORS, corruptions="all")
    with pytest.raises(InputError, match="baseline has no value for 'spatter'"):
        M.ce({"spatter": 0.5}, M.ALEXNET_ERRORS)
    per_sev = {c: {1: 0.5, 2: 0.5} for c in M.BENCHMARK_CORRUPTIONS}
    with pytest.raises(InputError, match="missing severity 3, 4, 5"):
        M.mce(per_sev, M.ALEXNET_ERRORS)
    with pytest.raises(InputError, match="severities"):
        M.ce({"fog": {1: 0.5}}, {"fog": {1: 0.5, 2: 0.6}})
    with pytest.raises(InputError, match="divide percentages by 100"):
        M.ce({"fog": 55.0}, M.ALEXNET_ERRORS)
    with pytest.raises(InputError, match="not an integer"):
        M.ce({"fog": {"one": 0.5}}, M.ALEXNET_ERRORS)
    with pytest.raises(InputError, match="below 1"):
        M.ce({"fog": {0: 0.5}}, {"fog": {0: 0.5}})
    with pytest.raises(InputError, match="is empty"):
        M.mce({}, M.ALEXNET_ERRORS)
    with pytest.raises(InputError, match="appears twice"):
        M.ce({"gaussian_noise": 0.5, "gaussian-noise": 0.4}, M.ALEXNET_ERRORS)
    with pytest.raises(InputError, match="not a group"):
        M.mce(model, M.ALEXNET_ERRORS, corruptions="benchmarks")
    with pytest.raises(InputError, match="not a number"):
        M.ce({"fog": True}, M.ALEXNET_ERRORS)


def test_names_and_json_keys_are_normalised() -> None:
    table = {"Gaussian-Noise": {"1": 0.5, "2": 0.25}}
    assert M.corruption_errors(table) == {"gaussian_noise": {1: 0.5, 2: 0.75}}
    roundtrip = json.loads(
        json.dumps({c: dict.fromkeys(range(1, 6), e) for c, e in M.ALEXNET_ERRORS.items()})
    )
    assert M.mce(roundtrip, M.ALEXNET_ERRORS) == pytest.approx(100.0)
    assert M.canonical_name("mvh_low_pass") == "mvh-low-pass"


def test_relative_mce_by_hand() -> None:
    # model clean error .2; fog errors .3 .4 .5 .6 .7 -> sum (E - clean) = 2.5 - 1.0 = 1.5
    # baseline clean .4; fog errors .9 x 5 -> sum (E - clean) = 2.5; rCE = 60 %
    model = {"fog": {1: 0.3, 2: 0.4, 3: 0.5, 4: 0.6, 5: 0.7}}
    base = {"fog": dict.fromkeys(range(1, 6), 0.9)}
    assert M.relative_ce(model, 0.2, base, 0.4) == {"fog": pytest.approx(60.0)}
    assert M.relative_mce(
        model, 0.2, base, clean_error_baseline=0.4, corruptions=["fog"]
    ) == pytest.approx(60.0)
    with pytest.raises(TypeError):
        M.relative_mce(model, 0.2, base, corruptions=["fog"])  # type: ignore[call-arg]
    with pytest.raises(InputError, match="not above its clean error"):
        M.relative_ce(model, 0.2, base, 0.95)
    with pytest.raises(InputError, match="clean_error_model"):
        M.relative_ce(model, 20.0, base, 0.4)
    # AlexNet against itself, any clean error below its errors: 100
    assert M.relative_mce(
        M.ALEXNET_ERRORS, 0.4, M.ALEXNET_ERRORS, clean_error_baseline=0.4
    ) == pytest.approx(100.0)


def test_mpc_rpc_match_the_detection_benchmark_formula() -> None:
    # robust-detection-benchmark: results[corruption, severity (0 = clean), metric];
    # mPC = mean(results[:15, 1:]), rPC = mPC / P (P = clean)
    rng = np.random.default_rng(0)
    results = rng.uniform(10, 40, size=(19, 6))
    clean = 42.0
    table = {
        c: {s: float(results[i, s]) for s in range(1, 6)}
        for i, c in enumerate(M.IMAGENET_C_CORRUPTIONS)
    }
    want = results[:15, 1:].mean()
    assert M.mpc(table) == pytest.approx(want)
    assert M.rpc(table, clean) == pytest.approx(want / clean)
    assert M.mpc(table, corruptions="held-out") == pytest.approx(results[15:, 1:].mean())
    assert M.mpc(table, severities=(1, 2)) == pytest.approx(results[:15, 1:3].mean())
    del table["fog"][3]
    with pytest.raises(InputError, match="'fog' is missing severity 3"):
        M.mpc(table)
    with pytest.raises(InputError, match="clean > 0"):
        M.rpc({"fog": {1: 1.0}}, 0.0, corruptions=["fog"], severities=(1,))
    with pytest.raises(InputError, match=">= 0"):
        M.mpc({"fog": {1: -1.0}}, corruptions=["fog"], severities=(1,))


def test_mean_accuracy_weighs_corruptions_equally() -> None:
    table = {"fog": {1: 1.0, 2: 0.5, 3: 0.0}, "snow": {1: 0.25}}
    # fog mean .5, snow .25 -> .375 (a plain mean over the 4 cells would be .4375)
    assert M.mean_accuracy(table) == pytest.approx(0.375)
    assert M.per_corruption_mean(table) == {"fog": 0.5, "snow": 0.25}
    assert M.mean_accuracy(table, corruptions=["snow"]) == pytest.approx(0.25)
    with pytest.raises(InputError, match="no value for 'gaussian_noise'"):
        M.mean_accuracy(table, corruptions="benchmark")
    with pytest.raises(InputError, match="outside"):
        M.mean_accuracy({"fog": {1: 1.5}})
    with pytest.raises(InputError, match="not a dict"):
        M.mean_accuracy({"fog": 0.5})  # type: ignore[dict-item]
    with pytest.raises(InputError, match="must be a dict"):
        M.mean_accuracy([0.5])  # type: ignore[arg-type]
