"""Calibration metrics against numbers worked out by hand, numpy and scipy references."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest
import torch
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax as np_log_softmax

from robustcv.core.errors import InputError
from robustcv.core.seeding import make_generator
from robustcv.core.stats import Estimate, bootstrap_indices
from robustcv.diagnostics.calibration import (
    TemperatureScaler,
    calibration,
    fit_temperature,
)


def _binary_logits(confs: list[float], pred_one: list[bool]) -> torch.Tensor:
    """2-class logits whose top-1 softmax is ``conf`` (class 1 when pred_one)."""
    rows = []
    for p, one in zip(confs, pred_one, strict=True):
        d = 100.0 if p == 1.0 else math.log(p / (1 - p))
        rows.append([0.0, d] if one else [d, 0.0])
    return torch.tensor(rows, dtype=torch.float64)


# --------------------------------------------------------------------------- a case by hand
# n_bins = 4, edges 0, .25, .5, .75, 1 (right edges inclusive).
#   sample  conf  pred label correct  width-bin
#   A       0.60  1    1     yes      (.5, .75]
#   B       0.70  1    0     no       (.5, .75]
#   C       0.90  1    1     yes      (.75, 1]
#   D       0.95  1    0     no       (.75, 1]
#   E       0.50  0    0     yes      (.25, .5]   <- on an edge: goes to the lower bin
#   F       1.00  1    1     yes      (.75, 1]    <- exactly 1.0: the last bin, no extra bin
# width bins: (.25,.5]: n=1 conf .5 acc 1 gap .5; (.5,.75]: n=2 conf .65 acc .5 gap .15;
#             (.75,1]: n=3 conf .95 acc 2/3 gap .283333
# ECE = (1*.5 + 2*.15 + 3*.283333) / 6 = 1.65 / 6 = 0.275; MCE = 0.5
# equal-mass (sizes 2,2,1,1 over E,A | B,C | D | F): gaps .45, .3, .95, 0
#   ECE_mass = (2*.45 + 2*.3 + .95) / 6 = 2.45 / 6 = 0.408333
# Brier (binary: 2(1-p)^2 if correct else 2p^2): .32 + .98 + .02 + 1.805 + .5 + 0 = 3.625 / 6
# NLL: -(log .6 + log .3 + log .9 + log .05 + log .5 + 0) / 6 = 5.509039 / 6 = 0.918173
HAND_CONF = [0.6, 0.7, 0.9, 0.95, 0.5, 1.0]
HAND_PRED_ONE = [True, True, True, True, False, True]
HAND_LABELS = torch.tensor([1, 0, 1, 0, 0, 1])


def test_hand_computed_case() -> None:
    res = calibration(_binary_logits(HAND_CONF, HAND_PRED_ONE), HAND_LABELS, n_bins=4)
    assert res.ece == pytest.approx(0.275, abs=1e-12)
    assert res.mce == pytest.approx(0.5, abs=1e-12)
    assert res.ece_equal_mass == pytest.approx(2.45 / 6, abs=1e-12)
    assert res.brier == pytest.approx(3.625 / 6, abs=1e-12)
    assert res.nll == pytest.approx(0.918173, abs=1e-6)
    assert res.accuracy == pytest.approx(4 / 6)
    assert res.n == 6 and res.n_bins == 4
    table = res.reliability
    assert table.count == [0, 1, 2, 3]
    assert table.edges == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert math.isnan(table.accuracy[0]) and math.isnan(table.confidence[0])
    assert table.accuracy[1:] == pytest.approx([1.0, 0.5, 2 / 3])
    assert table.confidence[1:] == pytest.approx([0.5, 0.65, 0.95])


def test_confidence_one_and_single_bin() -> None:
    # every confidence is exactly 1.0: all in the last bin (torchmetrics#3510 put them in a
    # hidden extra bin)
    logits = torch.tensor([[0.0, 200.0], [300.0, 0.0], [0.0, 500.0]])
    res = calibration(logits, torch.tensor([1, 0, 0]), n_bins=10)
    assert res.reliability.count[-1] == 3 and sum(res.reliability.count) == 3
    assert res.ece == pytest.approx(1 / 3)
    one = calibration(logits, torch.tensor([1, 0, 0]), n_bins=1)
    assert one.ece == pytest.approx(abs(2 / 3 - 1.0))
    assert one.ece == pytest.approx(one.ece_equal_mass) == pytest.approx(one.mce)


# --------------------------------------------------------------------------- numpy reference
def _np_reference(z: np.ndarray, y: np.ndarray, n_bins: int) -> dict[str, Any]:
    log_p = np_log_softmax(z, axis=1)
    p = np.exp(log_p)
    conf = p.max(1)
    correct = (p.argmax(1) == y).astype(float)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    ece, mce, counts = 0.0, 0.0, []
    for b in range(n_bins):
        lo, hi = edges[b], edges[b + 1]
        mask = (conf > lo) & (conf <= hi) if b > 0 else (conf >= lo) & (conf <= hi)
        counts.append(int(mask.sum()))
        if mask.any():
            gap = abs(correct[mask].mean() - conf[mask].mean())
            ece += mask.mean() * gap
            mce = max(mce, gap)
    order = np.lexsort((correct, conf))
    ece_mass = 0.0
    for group in np.array_split(order, n_bins):
        if len(group):
            ece_mass += len(group) / len(y) * abs(correct[group].mean() - conf[group].mean())
    onehot = np.eye(z.shape[1])[y]
    return {
        "ece": ece,
        "mce": mce,
        "counts": counts,
        "ece_mass": ece_mass,
        "brier": float(((p - onehot) ** 2).sum(1).mean()),
        "nll": float(-log_p[np.arange(len(y)), y].mean()),
        "acc": float(correct.mean()),
    }


@pytest.mark.parametrize(
    ("seed", "n", "k", "n_bins", "scale"),
    [
        (0, 1000, 10, 15, 3.0),
        (1, 37, 3, 10, 1.0),
        (2, 500, 2, 1, 5.0),
        (3, 5, 4, 20, 2.0),  # fewer samples than bins: empty equal-mass bins
    ],
)
def test_matches_numpy_reference(seed: int, n: int, k: int, n_bins: int, scale: float) -> None:
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, k)) * scale
    y = rng.integers(0, k, size=n)
    # make about half the predictions right so the bins are not all wrong
    y[: n // 2] = z[: n // 2].argmax(1)
    ref = _np_reference(z, y, n_bins)
    res = calibration(z, y, n_bins=n_bins, n_boot=0)
    assert res.ece == pytest.approx(ref["ece"], abs=1e-12)
    assert res.mce == pytest.approx(ref["mce"], abs=1e-12)
    assert res.reliability.count == ref["counts"]
    assert res.ece_equal_mass == pytest.approx(ref["ece_mass"], abs=1e-12)
    assert res.brier == pytest.approx(ref["brier"], abs=1e-12)
    assert res.nll == pytest.approx(ref["nll"], abs=1e-12)
    assert res.accuracy == pytest.approx(ref["acc"])
    assert math.isnan(res.ece_ci.low) and res.ece_ci.method == "none"


def test_equal_mass_is_order_invariant_with_ties() -> None:
    # six tied confidences (sigmoid(0.4) = 0.599), three right and three wrong, two bins: the
    # split must not depend on the input order. Sorting by (confidence, correct) puts the three
    # wrong ones first: gaps 0.599 and 1 - 0.599 -> ECE_mass = (3 * 0.599 + 3 * 0.401) / 6 = 0.5.
    z = torch.tensor([[0.4, 0.0]] * 6, dtype=torch.float64)
    y = torch.tensor([0, 1, 0, 1, 0, 1])
    for seed in range(4):
        perm = torch.randperm(6, generator=make_generator(seed))
        res = calibration(z[perm], y[perm], n_bins=2, n_boot=0)
        assert res.ece_equal_mass == pytest.approx(0.5, abs=1e-12)
        assert res.ece == pytest.approx(abs(0.5 - 1 / (1 + math.exp(-0.4))), abs=1e-12)


def test_temperature_argument_equals_dividing_logits() -> None:
    rng = np.random.default_rng(5)
    z = torch.from_numpy(rng.normal(size=(300, 6)) * 4)
    y = torch.from_numpy(rng.integers(0, 6, size=300))
    a = calibration(z, y, temperature=2.5, n_boot=0)
    b = calibration(z / 2.5, y, n_boot=0)
    assert a.ece == pytest.approx(b.ece) and a.nll == pytest.approx(b.nll)
    assert a.temperature == 2.5 and "T = 2.5" in a.convention


# --------------------------------------------------------------------------- bootstrap
def test_bootstrap_matches_loop_reference_and_is_seeded() -> None:
    rng = np.random.default_rng(7)
    z = rng.normal(size=(120, 4)) * 2
    y = rng.integers(0, 4, size=120)
    res = calibration(z, y, n_bins=5, seed=11, n_boot=50)
    idx = bootstrap_indices(120, 50, make_generator(11)).numpy()
    reps = [_np_reference(z[i], y[i], 5)["ece"] for i in idx]
    low, high = np.quantile(reps, [0.025, 0.975])
    assert res.ece_ci.low == pytest.approx(low, abs=1e-12)
    assert res.ece_ci.high == pytest.approx(high, abs=1e-12)
    assert res.ece_ci.value == res.ece and res.ece_ci.n == 120
    again = calibration(z, y, n_bins=5, seed=11, n_boot=50)
    assert again.ece_ci == res.ece_ci
    other = calibration(z, y, n_bins=5, seed=12, n_boot=50)
    assert other.ece_ci.low != res.ece_ci.low


def test_accuracy_estimate_and_json() -> None:
    res = calibration(_binary_logits(HAND_CONF, HAND_PRED_ONE), HAND_LABELS, n_bins=4)
    assert isinstance(res.accuracy_ci, Estimate)
    assert res.accuracy_ci.method == "clopper-pearson" and res.accuracy_ci.n == 6
    assert res.accuracy_ci.low < res.accuracy < res.accuracy_ci.high
    data = json.loads(json.dumps(res.to_dict(), allow_nan=False))
    assert data["reliability"]["accuracy"][0] is None
    assert data["ece_ci"]["method"].startswith("percentile bootstrap")
    assert float(res) == res.ece


# --------------------------------------------------------------------------- temperature
def _scipy_temperature(z: np.ndarray, y: np.ndarray) -> float:
    def nll(log_t: float) -> float:
        return float(-np_log_softmax(z / math.exp(log_t), axis=1)[np.arange(len(y)), y].mean())

    grid = np.linspace(math.log(1e-2), math.log(1e2), 201)
    i = int(np.argmin([nll(g) for g in grid]))
    bracket = (grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)])
    out = minimize_scalar(nll, bounds=bracket, method="bounded", options={"xatol": 1e-9})
    return math.exp(out.x)


@pytest.mark.parametrize(("seed", "scale"), [(0, 3.0), (1, 0.4), (2, 1.0)])
def test_fit_temperature_matches_scipy(seed: int, scale: float) -> None:
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(800, 5, generator=g, dtype=torch.float64) * 2
    y = torch.distributions.Categorical(logits=base).sample()
    z = (base * scale).numpy()
    t = fit_temperature(z, y.numpy())
    ref = _scipy_temperature(z, y.numpy())
    assert t == pytest.approx(ref, rel=1e-3)
    assert t == pytest.approx(scale, rel=0.3)  # labels were drawn at T = 1 on base
    before = calibration(z, y, n_boot=0).nll
    after = calibration(z, y, temperature=t, n_boot=0).nll
    assert after <= before + 1e-12


def test_fit_temperature_separable_hits_lower_bound_and_scaler() -> None:
    z = torch.tensor([[5.0, 0.0], [0.0, 5.0]] * 5)
    y = torch.tensor([0, 1] * 5)
    assert fit_temperature(z, y) == pytest.approx(1e-2)
    assert fit_temperature(z, y, bounds=(0.5, 3.0)) == pytest.approx(0.5)
    scaler = TemperatureScaler().fit(z, y)
    assert scaler.fitted and scaler.temperature == pytest.approx(1e-2)
    probs = scaler.probabilities(z)
    assert torch.allclose(probs.sum(1), torch.ones(10, dtype=torch.float64))


# --------------------------------------------------------------------------- bad input
GOOD_Z = torch.randn(4, 3)
GOOD_Y = torch.tensor([0, 1, 2, 0])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"labels": torch.tensor([0, 1, 2])}, "one label per row"),
        ({"logits": torch.tensor([[0.0, float("nan"), 1.0]] * 4)}, "NaN or infinite.*drop those"),
        ({"logits": torch.empty(0, 3), "labels": torch.empty(0, dtype=torch.long)}, "at least one"),
        ({"n_bins": 0}, "n_bins must be an int >= 1"),
        ({"n_bins": 2.5}, "n_bins must be an int"),
        ({"temperature": 0.0}, "positive finite"),
        ({"labels": torch.tensor([0, 1, 3, 0])}, "check that model and data match"),
        ({"labels": torch.tensor([0, -1, 2, 0])}, "negative"),
        ({"labels": torch.tensor([0.0, 1.0, 2.0, 0.0])}, r"labels.long\(\)"),
        ({"logits": torch.randn(4)}, r"\(N, num_classes\)"),
        ({"logits": torch.randn(4, 1)}, "at least 2 classes"),
        ({"n_boot": -1}, "n_boot must be an int >= 0"),
        ({"seed": -3}, "out of range"),
    ],
)
def test_bad_input_names_the_fix(kwargs: dict[str, object], match: str) -> None:
    args: dict[str, object] = {"logits": GOOD_Z, "labels": GOOD_Y}
    args.update(kwargs)
    with pytest.raises(InputError, match=match):
        calibration(**args)  # type: ignore[arg-type]


def test_fit_temperature_bad_input() -> None:
    with pytest.raises(InputError, match="one label per row"):
        fit_temperature(GOOD_Z, torch.tensor([0, 1]))
    with pytest.raises(InputError, match="0 < low < high"):
        fit_temperature(GOOD_Z, GOOD_Y, bounds=(2.0, 1.0))


# --------------------------------------------------------------------------- real data
@pytest.mark.fmnist
def test_temperature_scaling_on_fashion_mnist(fmnist_test) -> None:  # type: ignore[no-untyped-def]
    """Fit T on held-out images (test images disjoint from the 500 evaluated); NLL and ECE drop.

    Measured (fmnist-cnn, test[:500] evaluated, T fitted on test[5000:7000]): T = 1.184,
    NLL 0.2008 -> 0.1984, ECE 0.0300 -> 0.0225. Fitting on 2000 images the model was trained on
    instead gives T = 0.908 and a *worse* NLL (0.2053): the fit split must be held out from
    training as well as from evaluation.
    """
    from robustcv.data import load_dataset
    from robustcv.models import load_model

    model = load_model("zoo:fmnist-cnn")
    evaluated = fmnist_test.subset(np.arange(0, 500))
    held_out = fmnist_test.subset(np.arange(5000, 7000))
    z_eval = model.predict_logits(evaluated.x)
    t = fit_temperature(model.predict_logits(held_out.x), held_out.y)
    before = calibration(z_eval, evaluated.y)
    after = calibration(z_eval, evaluated.y, temperature=t)
    assert 1.05 < t < 1.4
    assert after.nll < before.nll - 0.001
    assert after.ece < before.ece - 0.004
    assert before.accuracy > 0.88
    assert before.ece_ci.low <= before.ece <= before.ece_ci.high

    seen = load_dataset("fashion-mnist", split="train").subset(np.arange(2000))
    t_seen = fit_temperature(model.predict_logits(seen.x), seen.y)
    assert t_seen < t - 0.15  # fitted on training images: biased towards overconfidence


def test_diagnostics_modules_are_not_hidden_by_functions() -> None:
    import importlib
    import types
    import warnings

    import robustcv
    import robustcv.diagnostics as diagnostics
    import robustcv.diagnostics.accuracy as accuracy_module
    import robustcv.diagnostics.calibration as calibration_module

    for module, name in ((accuracy_module, "accuracy"), (calibration_module, "calibration")):
        assert isinstance(module, types.ModuleType)
        assert module is importlib.import_module(f"robustcv.diagnostics.{name}")
        assert getattr(diagnostics, name) is module
        assert callable(getattr(module, name)) and name in diagnostics.__all__
    assert calibration_module.calibration is calibration
    assert robustcv.accuracy is accuracy_module.accuracy
    # old code that called the package attribute still runs for one release, with a warning
    logits, labels = torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 0])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = diagnostics.calibration(logits, labels, n_boot=10)  # type: ignore[operator]
    assert res.ece == calibration(logits, labels, n_boot=10).ece
    assert caught[0].category is DeprecationWarning
    assert "robustcv.diagnostics.calibration.calibration" in str(caught[0].message)
