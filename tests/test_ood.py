"""OOD scores and metrics vs scikit-learn / numpy references; the score registry; derived sets."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scipy.special import logsumexp as np_logsumexp
from scipy.special import softmax as np_softmax
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve
from torch import nn

from robustcv.core.errors import GradientUnavailableError, InputError
from robustcv.core.model import Model
from robustcv.core.seeding import make_generator
from robustcv.core.stats import bootstrap_indices
from robustcv.diagnostics.ood import (
    DEFAULT_DERIVED_OOD,
    DERIVED_OOD_SETS,
    OOD_SCORES,
    MahalanobisDetector,
    derived_ood_sets,
    energy,
    max_logit,
    msp,
    odin,
    ood_metrics,
)


def _sklearn_reference(s_in: np.ndarray, s_out: np.ndarray) -> dict[str, float]:
    y = np.r_[np.ones(len(s_in)), np.zeros(len(s_out))]
    s = np.r_[s_in, s_out]
    fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
    return {
        "auroc": roc_auc_score(y, s),
        "aupr_in": average_precision_score(y, s),
        "aupr_out": average_precision_score(1 - y, -s),
        "fpr95": float(fpr[np.argmax(tpr >= 0.95)]),
    }


def _cases() -> list[tuple[str, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    return [
        ("gaussian", rng.normal(1.0, 1.0, 400), rng.normal(0.0, 1.0, 300)),
        ("tied-integers", rng.integers(0, 5, 97).astype(float), rng.integers(-1, 4, 61) * 1.0),
        ("heavy-ties", np.r_[np.zeros(30), np.ones(70)], np.r_[np.zeros(50), np.ones(10)]),
        ("separated", rng.uniform(5, 6, 20), rng.uniform(0, 1, 20)),
        ("reversed", rng.uniform(0, 1, 20), rng.uniform(5, 6, 33)),
        ("tiny", np.array([0.3]), np.array([0.1, 0.3, 0.9])),
    ]


@pytest.mark.parametrize(("name", "s_in", "s_out"), _cases(), ids=[c[0] for c in _cases()])
def test_metrics_match_sklearn(name: str, s_in: np.ndarray, s_out: np.ndarray) -> None:
    ref = _sklearn_reference(s_in, s_out)
    res = ood_metrics(s_in, s_out, n_boot=20)
    assert res.auroc == pytest.approx(ref["auroc"], abs=1e-12)
    assert res.aupr_in == pytest.approx(ref["aupr_in"], abs=1e-12)
    assert res.aupr_out == pytest.approx(ref["aupr_out"], abs=1e-12)
    assert res.fpr_at_95_tpr == pytest.approx(ref["fpr95"], abs=1e-12)
    assert res.n_in == len(s_in) and res.n_out == len(s_out)


def test_hand_example_and_all_tied() -> None:
    # ID 0.9 0.8 0.7 0.4, OOD 0.1 0.5 0.3: 11 of 12 pairs ordered -> AUROC 11/12.
    # AUPR-in: precision at each ID hit 1, 1, 1, 4/5 -> (1 + 1 + 1 + 0.8) / 4 = 0.95.
    # 95% of ID needs all 4 accepted -> threshold 0.4 -> OOD 0.5 accepted -> FPR 1/3.
    res = ood_metrics([0.9, 0.8, 0.7, 0.4], [0.1, 0.5, 0.3], n_boot=0)
    assert res.auroc == pytest.approx(11 / 12)
    assert res.aupr_in == pytest.approx(0.95)
    assert res.fpr_at_95_tpr == pytest.approx(1 / 3)
    assert math.isnan(res.auroc_ci.low) and res.auroc_ci.method == "none"
    tied = ood_metrics([2.0] * 5, [2.0] * 3, n_boot=10)
    assert tied.auroc == 0.5 and tied.fpr_at_95_tpr == 1.0
    assert tied.aupr_in == pytest.approx(5 / 8)


def test_sign_convention_flip_mirrors_auroc() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.normal(1, 1, 200), rng.normal(0, 1, 150)
    assert ood_metrics(a, b).auroc == pytest.approx(1 - ood_metrics(-a, -b).auroc)
    assert ood_metrics(a, b).auroc > 0.7  # higher = more ID


def test_bootstrap_matches_loop_reference_and_is_seeded() -> None:
    rng = np.random.default_rng(4)
    a, b = rng.normal(0.8, 1, 90).round(1), rng.normal(0, 1, 70).round(1)  # with ties
    res = ood_metrics(a, b, seed=9, n_boot=40)
    gen = make_generator(9)
    idx_in = bootstrap_indices(90, 40, gen).numpy()
    idx_out = bootstrap_indices(70, 40, gen).numpy()
    reps = [
        roc_auc_score(np.r_[np.ones(90), np.zeros(70)], np.r_[a[i], b[j]])
        for i, j in zip(idx_in, idx_out, strict=True)
    ]
    low, high = np.quantile(reps, [0.025, 0.975])
    assert res.auroc_ci.low == pytest.approx(low, abs=1e-12)
    assert res.auroc_ci.high == pytest.approx(high, abs=1e-12)
    assert res.auroc_ci.value == res.auroc and res.auroc_ci.n == 160
    assert ood_metrics(a, b, seed=9, n_boot=40).auroc_ci == res.auroc_ci
    assert ood_metrics(a, b, seed=10, n_boot=40).auroc_ci != res.auroc_ci


def test_curves_and_histograms_for_the_report() -> None:
    rng = np.random.default_rng(5)
    a, b = rng.normal(1, 1, 3000), rng.normal(0, 1, 2000)
    res = ood_metrics(a, b, n_boot=10, hist_bins=25)
    assert len(res.roc_fpr) == len(res.roc_tpr) <= 200
    assert (res.roc_fpr[0], res.roc_tpr[0]) == (0.0, 0.0)
    assert res.roc_fpr[-1] == pytest.approx(1.0) and res.roc_tpr[-1] == pytest.approx(1.0)
    assert np.all(np.diff(res.roc_fpr) >= 0) and np.all(np.diff(res.roc_tpr) >= 0)
    # the downsampled curve still integrates to about the AUROC
    assert np.trapezoid(res.roc_tpr, res.roc_fpr) == pytest.approx(res.auroc, abs=0.01)
    assert len(res.hist_edges) == 26 and sum(res.hist_in) == 3000 and sum(res.hist_out) == 2000
    data = json.loads(json.dumps(res.to_dict(), allow_nan=False))
    assert "ID positive" in data["convention"] and data["auroc_ci"]["n"] == 5000
    assert float(res) == res.auroc
    const = ood_metrics([1.0, 1.0], [1.0], n_boot=0)
    assert sum(const.hist_in) == 2 and const.hist_edges[0] < 1.0 < const.hist_edges[-1]


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (([], [0.1]), "scores_in is empty"),
        (([0.1, float("nan")], [0.2]), "NaN or infinite"),
        (([0.1], [float("inf")]), "scores_out contains 1 NaN"),
        ((np.zeros((3, 2)), [0.1]), r"scores_in.flatten\(\)"),
        ((["a"], [0.1]), "could not be read"),
    ],
)
def test_metrics_bad_input(args: tuple[object, object], match: str) -> None:
    with pytest.raises(InputError, match=match):
        ood_metrics(*args)


def test_metrics_bad_options() -> None:
    with pytest.raises(InputError, match="n_boot must be an int >= 0"):
        ood_metrics([0.1], [0.2], n_boot=-1)
    with pytest.raises(InputError, match="hist_bins"):
        ood_metrics([0.1], [0.2], hist_bins=0)


# --------------------------------------------------------------------------- logit scores
def test_logit_scores_match_numpy() -> None:
    rng = np.random.default_rng(6)
    z = rng.normal(size=(50, 7)) * 3
    assert msp(z).numpy() == pytest.approx(np_softmax(z, axis=1).max(1), abs=1e-12)
    assert msp(z, temperature=4.0).numpy() == pytest.approx(
        np_softmax(z / 4, axis=1).max(1), abs=1e-12
    )
    assert max_logit(z).numpy() == pytest.approx(z.max(1))
    assert energy(z).numpy() == pytest.approx(np_logsumexp(z, axis=1), abs=1e-12)
    assert energy(z, temperature=2.0).numpy() == pytest.approx(
        2 * np_logsumexp(z / 2, axis=1), abs=1e-12
    )
    with pytest.raises(InputError, match="NaN"):
        energy(np.array([[0.0, np.nan]]))
    with pytest.raises(InputError, match="positive finite"):
        msp(z, temperature=-1.0)


# --------------------------------------------------------------------------- models
def _linear_model(*, differentiable: bool = True, features: bool = True) -> Model:
    torch.manual_seed(0)  # only the weights of this toy net; scores never use the global RNG
    net = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    return Model(
        net,
        features="0" if features else None,  # the Flatten output: features are the input
        differentiable=differentiable,
        name="toy",
        num_classes=3,
    )


def _clusters(n: int, shift: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Three Gaussian classes in 4-D, as (n, 1, 2, 2) images in [0, 1]."""
    g = make_generator(seed)
    centres = torch.tensor([[0.3, 0.3, 0.5, 0.5], [0.6, 0.3, 0.4, 0.5], [0.4, 0.6, 0.5, 0.4]])
    y = torch.randint(0, 3, (n,), generator=g)
    cov_root = torch.tensor(
        [[0.05, 0.02, 0, 0], [0, 0.03, 0, 0], [0, 0, 0.04, 0.01], [0, 0, 0, 0.02]]
    )
    f = centres[y] + torch.randn(n, 4, generator=g) @ cov_root + shift
    return f.clamp(0, 1).view(n, 1, 2, 2), y


def test_mahalanobis_separates_a_shifted_cluster_and_matches_numpy() -> None:
    model = _linear_model()
    x_fit, y_fit = _clusters(600, 0.0, 1)
    x_in, _ = _clusters(300, 0.0, 2)
    x_out, _ = _clusters(300, 0.25, 3)
    det = MahalanobisDetector().fit(model, x_fit, y_fit)
    s_in, s_out = det.score(model, x_in), det.score(model, x_out)
    assert s_in.dtype == torch.float64 and s_in.shape == (300,)
    assert ood_metrics(s_in, s_out, n_boot=0).auroc > 0.95
    # numpy reference: class means, pooled covariance / N, min squared distance
    f = x_fit.flatten(1).double().numpy()
    yv = y_fit.numpy()
    means = np.stack([f[yv == c].mean(0) for c in range(3)])
    cent = f - means[yv]
    prec = np.linalg.inv(cent.T @ cent / len(f))
    q = x_in.flatten(1).double().numpy()
    d = np.stack([np.einsum("nd,de,ne->n", q - m, prec, q - m) for m in means], 1)
    assert s_in.numpy() == pytest.approx(-d.min(1), rel=1e-4)
    # the same features through layer= give the same scores
    by_layer = MahalanobisDetector().fit(_linear_model(features=False), x_fit, y_fit, layer="0")
    assert torch.allclose(by_layer.score(_linear_model(features=False), x_in), s_in)


def test_mahalanobis_errors() -> None:
    model = _linear_model(features=False)
    x, y = _clusters(20, 0.0, 0)
    with pytest.raises(InputError, match="features='layer_name'"):
        MahalanobisDetector().fit(model, x, y)
    with pytest.raises(InputError, match="no submodule 'nope'"):
        MahalanobisDetector().fit(model, x, y, layer="nope")
    with pytest.raises(InputError, match="not fitted"):
        MahalanobisDetector().score(_linear_model(), x)
    det = MahalanobisDetector().fit_features(torch.randn(20, 3), y)
    with pytest.raises(InputError, match="same model and layer"):
        det.score_features(torch.randn(5, 4))
    with pytest.raises(InputError, match="one label per row"):
        MahalanobisDetector().fit_features(torch.randn(20, 3), y[:5])


def test_odin_raises_for_gradient_free_model() -> None:
    model = _linear_model(differentiable=False)
    x = torch.rand(4, 1, 2, 2, generator=make_generator(0))
    with pytest.raises(GradientUnavailableError, match="epsilon=0"):
        odin(model, x)
    # without the gradient step it runs and equals temperature-scaled MSP
    s = odin(model, x, epsilon=0.0)
    assert torch.allclose(s, msp(model.predict_logits(x), temperature=1000.0))


def test_odin_step_raises_the_scaled_softmax() -> None:
    model = _linear_model()
    x = 0.2 + 0.6 * torch.rand(64, 1, 2, 2, generator=make_generator(1))  # no clipping
    base = odin(model, x, epsilon=0.0, temperature=10.0)
    stepped = odin(model, x, epsilon=0.01, temperature=10.0, batch_size=16)
    assert bool((stepped > base).all())  # a sign error would lower every score
    before = model.counts().backward
    odin(model, x, epsilon=0.01)
    assert model.counts().backward - before == 64


# --------------------------------------------------------------------------- registry
def test_registry_contract() -> None:
    assert set(OOD_SCORES.names()) == {"msp", "max-logit", "energy", "odin", "mahalanobis"}
    model = _linear_model()
    x_fit, y_fit = _clusters(60, 0.0, 5)
    x, _ = _clusters(10, 0.0, 6)
    logits = model.predict_logits(x)
    for entry in OOD_SCORES:
        spec = entry.obj
        assert spec.name == entry.name and spec.summary
        scorer = spec.create().fit(model, x_fit, y_fit)
        s = scorer.score(model, x, batch_size=4)
        assert s.shape == (10,) and s.dtype == torch.float64 and bool(torch.isfinite(s).all())
        if spec.from_logits is not None:
            assert not (spec.needs_gradients or spec.needs_features or spec.needs_fit)
            assert torch.allclose(spec.from_logits(logits), s)
        assert spec.unavailable_reason(model) is None
        no_grad = _linear_model(differentiable=False)
        no_feat = _linear_model(features=False)
        assert (spec.unavailable_reason(no_grad) is not None) == spec.needs_gradients
        assert (spec.unavailable_reason(no_feat) is not None) == spec.needs_features
    assert OOD_SCORES.get("mds") is OOD_SCORES.get("mahalanobis")
    assert OOD_SCORES.get("odin").create(epsilon=0.0).epsilon == 0.0  # type: ignore[attr-defined]
    with pytest.raises(InputError, match="did you mean 'energy'"):
        OOD_SCORES.get("enrgy")


# --------------------------------------------------------------------------- derived sets
def test_derived_sets_are_seeded_and_well_formed() -> None:
    x = torch.rand(6, 3, 5, 4, generator=make_generator(0))
    sets = derived_ood_sets(x, seed=3, kinds=DERIVED_OOD_SETS)
    assert tuple(sets) == DERIVED_OOD_SETS
    again = derived_ood_sets(x, seed=3, kinds=DERIVED_OOD_SETS)
    other = derived_ood_sets(x, seed=4, kinds=DERIVED_OOD_SETS)
    for kind, imgs in sets.items():
        assert imgs.shape == x.shape and imgs.dtype == torch.float32
        assert float(imgs.min()) >= 0.0 and float(imgs.max()) <= 1.0
        assert torch.equal(imgs, again[kind])
        if kind != "inverted":
            assert not torch.equal(imgs, other[kind])
    # per-image keys: a subset or a reordering gets the same derived images
    sub = derived_ood_sets(x[[4, 1]], seed=3, kinds=DERIVED_OOD_SETS)
    for kind in DERIVED_OOD_SETS:
        assert torch.equal(sub[kind], sets[kind][[4, 1]])
    assert torch.equal(sets["inverted"], 1 - x)
    flat_x, flat_p = x.flatten(2), sets["pixel-permuted"].flatten(2)
    assert torch.equal(flat_x.sort(-1).values, flat_p.sort(-1).values)
    # one permutation per image, shared by its channels
    for i in range(6):
        order = [int((flat_x[i, 0] == v).nonzero()[0, 0]) for v in flat_p[i, 0]]
        assert torch.equal(flat_p[i, 1], flat_x[i, 1, order])
    assert not torch.equal(flat_p, flat_x)
    assert tuple(derived_ood_sets(x)) == DEFAULT_DERIVED_OOD


def test_derived_sets_bad_input() -> None:
    with pytest.raises(InputError, match="choose from"):
        derived_ood_sets(torch.rand(2, 1, 4, 4), kinds=("fog",))
    with pytest.raises(InputError, match="outside"):
        derived_ood_sets(torch.full((2, 1, 4, 4), 2.0))


# --------------------------------------------------------------------------- real data
@pytest.mark.fmnist
def test_ood_on_fashion_mnist(fmnist_test) -> None:  # type: ignore[no-untyped-def]
    """fmnist-cnn on 500 test images against uniform noise.

    Measured: MSP AUROC 0.839 [0.816, 0.865] (not > 0.9: the CNN is confident on noise);
    Mahalanobis (fitted on train[:2000]) 0.934; max-logit 0.905, energy 0.907, ODIN 0.942.
    """
    from robustcv.data import load_dataset
    from robustcv.models import load_model

    model = load_model("zoo:fmnist-cnn")
    ds = fmnist_test.subset(np.arange(500))
    noise = derived_ood_sets(ds.x, seed=0, kinds=("uniform-noise",))["uniform-noise"]
    s_in = msp(model.predict_logits(ds.x))
    res = ood_metrics(s_in, msp(model.predict_logits(noise)))
    assert res.auroc > 0.8
    assert res.auroc_ci.low < res.auroc < res.auroc_ci.high
    fit = load_dataset("fashion-mnist", split="train").subset(np.arange(2000))
    det = MahalanobisDetector().fit(model, fit.x, fit.y)
    maha = ood_metrics(det.score(model, ds.x), det.score(model, noise), n_boot=0)
    assert maha.auroc > 0.9
