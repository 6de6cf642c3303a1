"""Gradient-masking sanity checks: each fires on a named masked model and stays quiet on the zoo."""

from __future__ import annotations

import warnings

import pytest
import torch

import robustcv
from robustcv import Model
from robustcv.attacks import robust_accuracy

pytestmark = [pytest.mark.fmnist, pytest.mark.slow]

MEMBER = [("apgd-ce", {"steps": 20})]


@pytest.fixture(scope="module")
def setup(fmnist_test):  # type: ignore[no-untyped-def]
    torch.manual_seed(0)  # the noisy masked model below draws from the global RNG on purpose
    base = robustcv.load_model("zoo:fmnist-cnn")
    return base, fmnist_test.x[:100], fmnist_test.y[:100]


def _pre(z: torch.Tensor) -> torch.Tensor:
    return (z - 0.286) / 0.353


def _masked(base: Model, kind: str, memory: torch.Tensor, labels: torch.Tensor) -> Model:
    net = base.net
    if kind == "noisy":
        return Model(lambda z: net(_pre(z)) + 0.5 * torch.randn(z.shape[0], 10), num_classes=10)
    if kind == "softmax":
        return Model(lambda z: net(_pre(z)).softmax(1), num_classes=10)
    if kind == "quantised":
        return Model(lambda z: net(_pre(torch.round(z * 3) / 3)), num_classes=10)
    if kind == "saturated":
        return Model(lambda z: net(_pre(z)) * 1e4, num_classes=10)
    if kind == "distance-gated":
        # answers with the memorised label once the input is far (> 0.08 L-inf) from every
        # memorised image: larger budgets look *more* robust
        def gated(z: torch.Tensor) -> torch.Tensor:
            dist = (z.flatten(1)[:, None, :] - memory.flatten(1)[None]).abs().amax(2)
            near, which = dist.min(1)
            snap = torch.nn.functional.one_hot(labels[which], 10).float() * 20
            return torch.where((near > 0.08)[:, None], snap, net(_pre(z)))

        return Model(gated, num_classes=10)
    raise ValueError(kind)


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("noisy", {"stochastic-forward"}),
        ("softmax", {"probability-outputs"}),
        ("quantised", {"zero-gradients", "large-budget", "black-box-beats-white-box"}),
        ("saturated", {"zero-gradients", "large-budget"}),
        ("distance-gated", {"not-monotone"}),
    ],
)
def test_checks_fire_on_masked_models(setup, kind: str, expected: set[str]) -> None:  # type: ignore[no-untyped-def]
    base, x, y = setup
    model = _masked(base, kind, x, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = robust_accuracy(model, x, y, eps=[0.05, 0.1, 0.2], attacks=MEMBER, sanity_subset=50)
    fired = {f.check for f in res.warnings}
    assert expected <= fired, (kind, fired)
    for f in res.warnings:
        assert f.explanation and f.action


def test_more_iterations_fires_on_an_unconverged_evaluation(setup) -> None:  # type: ignore[no-untyped-def]
    base, x, y = setup
    res = robust_accuracy(
        base,
        x,
        y,
        eps=[0.02, 0.03, 0.05],
        attacks=[("pgd", {"steps": 2, "rel_step": 0.1})],
        sanity_subset=100,
    )
    assert "more-iterations-help" in {f.check for f in res.warnings}


def test_fgsm_beats_pgd_fires_when_pgd_is_crippled(setup) -> None:  # type: ignore[no-untyped-def]
    base, x, y = setup
    # a PGD that takes one tiny step never leaves the clean point's neighbourhood
    res = robust_accuracy(
        base,
        x,
        y,
        eps=[0.1],
        attacks=[("pgd", {"steps": 1, "rel_step": 0.01, "random_start": False})],
        sanity_subset=50,
    )
    assert "fgsm-beats-pgd" in {f.check for f in res.warnings}


@pytest.mark.parametrize("name", ["fmnist-cnn", "fmnist-cnn-at"])
def test_checks_are_quiet_on_zoo_models(setup, name: str) -> None:  # type: ignore[no-untyped-def]
    _, x, y = setup
    model = robustcv.load_model(f"zoo:{name}")
    # a converged white-box evaluation (a 20-step APGD alone is not: Square then finds more)
    strong = [("apgd-ce", {"steps": 100}), ("apgd-t", {"steps": 100, "n_targets": 3})]
    res = robust_accuracy(model, x, y, eps=[0.05, 0.1, 0.2], attacks=strong, sanity_subset=50)
    assert res.warnings == [], [(f.check, f.explanation) for f in res.warnings]
    assert len(res.sanity) == 8
    assert res.to_dict()["sanity"][0]["check"] == "stochastic-forward"
