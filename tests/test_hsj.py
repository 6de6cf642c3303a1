"""HopSkipJump: decision-only queries, bounds, norms, determinism, query cap, accuracy, strength."""

from __future__ import annotations

import time

import pytest
import torch
from torch import nn

from robustcv.attacks import ATTACKS, attack, get_threat
from robustcv.core.errors import InputError
from robustcv.core.model import Model


def _net(seed: int = 0, classes: int = 4) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, classes)
    )
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return net


def _free_model(classes: int = 4) -> Model:
    """A gradient-free model (labels are all HSJ needs)."""
    net = _net(classes=classes)

    def forward(z: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return net(z)

    return Model(forward, differentiable=False, num_classes=classes)


def _data(n: int = 12, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed))


def _linear(d_side: int = 10, n: int = 8) -> tuple[Model, torch.Tensor, torch.Tensor, float]:
    """A binary linear classifier ``sign(w.x + b)`` and points well inside the box."""
    g = torch.Generator().manual_seed(0)
    w = torch.randn(d_side * d_side, generator=g)
    x = 0.3 + 0.4 * torch.rand(n, 1, d_side, d_side, generator=g)
    b = -float((x.flatten(1) @ w).mean())

    def forward(z: torch.Tensor) -> torch.Tensor:
        s = z.flatten(1) @ w + b
        return torch.stack([-s, s], 1)

    return Model(forward, differentiable=False, num_classes=2), x, w, b


def test_spec_is_registered_as_decision_based_minimum_norm() -> None:
    spec = ATTACKS.get("hsj")
    assert spec.kind == "decision" and spec.minimum_norm and spec.targeted
    assert spec.norms == ("l2", "linf")
    assert spec.params == {
        "steps": 40,
        "init_evals": 100,
        "max_evals": 1000,
        "max_queries": 20000,
        "starts": None,
    }


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_gradient_free_model_bounds_and_reported_norms(norm: str) -> None:
    model = _free_model()
    x = _data(12)
    y = model.predict(x)  # every sample starts correctly classified
    x0 = x.clone()
    res = attack(model, x, y, "hsj", norm=norm, steps=8)
    assert torch.equal(x, x0)
    assert res.backward_passes == 0 and res.forward_passes > 0
    assert res.success_rate >= 0.8
    assert float(res.x_adv.min()) >= 0.0 and float(res.x_adv.max()) <= 1.0
    ok = res.success
    measured = get_threat(norm).norm(res.x_adv - x)
    assert torch.allclose(res.norms[ok], measured[ok], atol=1e-6)
    assert bool((res.norms[ok] > 0).all())
    assert bool(torch.isinf(res.norms[~ok]).all())
    assert bool((model.predict(res.x_adv)[ok] != y[ok]).all())


def test_already_misclassified_samples_cost_one_query_and_get_norm_zero() -> None:
    model = _free_model()
    x = _data(6)
    wrong = (model.predict(x) + 1) % 4
    res = attack(model, x, wrong, "hsj", norm="l2", steps=3)
    assert bool(res.success.all()) and bool((res.norms == 0).all())
    assert res.forward_passes == 3 * len(x)  # runner clean pass + one attack query + final pass


def test_same_seed_same_result_and_batch_size_order_invariance() -> None:
    model = _free_model()
    x = _data(10)
    y = model.predict(x)
    a = attack(model, x, y, "hsj", norm="l2", steps=6, seed=3)
    b = attack(model, x, y, "hsj", norm="l2", steps=6, seed=3)
    assert torch.equal(a.x_adv, b.x_adv)
    other = attack(model, x, y, "hsj", norm="l2", steps=6, seed=4)
    assert not torch.equal(a.x_adv, other.x_adv)
    perm = torch.tensor([7, 2, 9, 0, 4, 1, 8, 3, 6, 5])
    parts = [attack(model, x[p], y[p], "hsj", norm="l2", steps=6, seed=3) for p in perm.split(3)]
    norms = torch.cat([p.norms for p in parts])
    assert torch.allclose(norms, a.norms[perm], atol=1e-5)


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_query_cap_is_respected(norm: str) -> None:
    model = _free_model()
    x = _data(8)
    y = model.predict(x)
    cap = 700
    res = attack(model, x, y, "hsj", norm=norm, steps=40, max_queries=cap)
    # the attack spends at most `cap` per sample; the runner adds a clean and a final pass
    assert res.forward_passes <= len(x) * (cap + 2)
    assert res.forward_passes >= len(x) * cap * 0.9  # the budget (not the steps) was the limit
    more = attack(model, x, y, "hsj", norm=norm, steps=40, max_queries=2 * cap)
    assert more.forward_passes <= len(x) * (2 * cap + 2)
    ok = res.success & more.success
    assert float(more.norms[ok].median()) <= float(res.norms[ok].median()) * 1.05


def test_budget_stops_early_and_caps_norms() -> None:
    model = _free_model()
    x = _data(10)
    y = model.predict(x)
    free = attack(model, x, y, "hsj", norm="l2", steps=15)
    eps = float(free.norms.max()) * 1.5
    capped = attack(model, x, y, "hsj", norm="l2", steps=15, eps=eps)
    assert bool(capped.success.all())
    assert bool((capped.norms <= eps * (1 + 1e-5)).all())
    assert capped.forward_passes < free.forward_passes / 3


@pytest.mark.parametrize(("norm", "steps", "tol"), [("l2", 20, 0.1), ("linf", 25, 0.15)])
def test_linear_classifier_distance_is_close_to_analytic(norm: str, steps: int, tol: float) -> None:
    model, x, w, b = _linear()
    y = model.predict(x)
    res = attack(model, x, y, "hsj", norm=norm, steps=steps)
    assert bool(res.success.all())
    dual = torch.linalg.vector_norm(w, ord=2 if norm == "l2" else 1)
    exact = (x.flatten(1) @ w + b).abs() / dual
    assert bool((res.norms >= exact * (1 - 1e-3)).all())  # nothing beats the exact distance
    assert float((res.norms / exact - 1).max()) <= tol, (res.norms / exact).tolist()


def test_targeted_success_means_classified_as_target() -> None:
    model = _free_model()
    x = _data(12)
    y = model.predict(x)
    targets = (y + 1) % 4
    res = attack(model, x, y, "hsj", norm="l2", steps=5, targets=targets)
    assert res.targeted and res.success.any()
    ok = res.success
    assert bool((model.predict(res.x_adv)[ok] == targets[ok]).all())
    assert bool(torch.isinf(res.norms[~ok]).all())  # no noise image of the target: sample fails


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"init_evals": 0}, "init_evals must be a positive int"),
        ({"max_evals": 10}, "max_evals"),
        ({"max_queries": 5}, "max_queries=5 is too small"),
        ({"steps": 0}, "steps must be a positive int"),
    ],
)
def test_bad_params(params: dict[str, int], match: str) -> None:
    model = _free_model()
    x = _data(2)
    with pytest.raises(InputError, match=match):
        attack(model, x, model.predict(x), "hsj", norm="l2", **params)  # type: ignore[arg-type]


def test_l1_is_refused() -> None:
    model = _free_model()
    x = _data(2)
    with pytest.raises(InputError, match="supports norms l2, linf"):
        attack(model, x, model.predict(x), "hsj", norm="l1")


@pytest.mark.fmnist
@pytest.mark.slow
def test_l2_median_within_2x_of_fmn_on_zoo_model(fmnist_test) -> None:  # type: ignore[no-untyped-def]
    from robustcv import load_model

    model = load_model("zoo:fmnist-cnn")
    x, y = fmnist_test.x[:100], fmnist_test.y[:100]
    fmn = attack(model, x, y, "fmn", norm="l2")
    start = time.perf_counter()
    # a tenth of the default query budget (and half the probes per step, which converges faster
    # per query at such budgets) keeps the test near a minute; the default budget gets closer
    hsj = attack(model, x, y, "hsj", norm="l2", init_evals=50, max_queries=2000)
    seconds = time.perf_counter() - start
    fmn_median, hsj_median = float(fmn.norms.median()), float(hsj.norms.median())
    assert hsj.backward_passes == 0 and hsj.success_rate == 1.0
    assert hsj_median <= 2 * fmn_median, (hsj_median, fmn_median, seconds)


@pytest.mark.fmnist
@pytest.mark.slow
def test_l2_budget_breaks_most_samples_on_zoo_model(fmnist_test) -> None:  # type: ignore[no-untyped-def]
    from robustcv import load_model

    model = load_model("zoo:fmnist-cnn")
    x, y = fmnist_test.x[:100], fmnist_test.y[:100]
    res = attack(model, x, y, "hsj", norm="l2", eps=2.0)
    assert res.robust_accuracy <= 0.5, res.robust_accuracy
    assert bool((res.norms <= 2.0 * (1 + 1e-5)).all())


def test_targeted_with_a_pool_of_real_starts_succeeds_everywhere() -> None:
    model = _free_model()
    x = _data(12)
    y = model.predict(x)
    targets = (y + 1) % 4
    pool = _data(64)[12:]  # other images: enough of every class to start from
    have = set(model.predict(pool).tolist())
    res = attack(model, x, y, "hsj", norm="l2", steps=5, targets=targets, starts=pool)
    reachable = torch.tensor([int(t) in have for t in targets])
    assert bool(res.success[reachable].all())
    assert bool((model.predict(res.x_adv)[res.success] == targets[res.success]).all())
    assert res.config["starts"] == f"tensor{tuple(pool.shape)}"
    # batch-size independence holds with a pool
    half = attack(model, x[6:], y[6:], "hsj", norm="l2", steps=5, targets=targets[6:], starts=pool)
    assert torch.allclose(half.norms, res.norms[6:])


def test_pool_of_the_wrong_shape_is_refused() -> None:
    model = _free_model()
    x = _data(4)
    with pytest.raises(InputError, match="starts has images of shape"):
        attack(model, x, model.predict(x), "hsj", norm="l2", starts=torch.rand(3, 1, 5, 5))
