"""The Square attack: score-only, budget, query accounting, determinism, targeted mode, strength."""

from __future__ import annotations

import itertools
import time

import pytest
import torch
from torch import nn

from robustcv.attacks import ATTACKS, attack, get_threat
from robustcv.attacks.square import _step_l2, meta_pattern, p_schedule, square_side
from robustcv.core.model import Model


def _linear(classes: int = 4, shape: tuple[int, ...] = (1, 8, 8), seed: int = 0) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    n = 1
    for d in shape:
        n *= d
    net = nn.Sequential(nn.Flatten(), nn.Linear(n, classes))
    with torch.no_grad():
        net[1].weight.copy_(torch.randn(classes, n, generator=g))
        net[1].bias.zero_()
    return net


def _data(
    n: int = 10, shape: tuple[int, ...] = (1, 8, 8), seed: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, *shape, generator=g), torch.randint(0, 4, (n,), generator=g)


def _free(net: nn.Module, classes: int = 4) -> Model:
    """A gradient-free model: a plain callable, marked differentiable=False."""

    def forward(z: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return net(z)

    return Model(forward, differentiable=False, num_classes=classes)


def test_registered_spec() -> None:
    spec = ATTACKS.get("square")
    assert spec.kind == "score" and not spec.minimum_norm and spec.targeted
    assert spec.norms == ("linf", "l2")
    assert spec.params == {"queries": 5000, "p_init": 0.8}


@pytest.mark.parametrize(("norm", "eps"), [("linf", 0.1), ("l2", 1.0)])
def test_gradient_free_model_is_broken_within_budget(norm: str, eps: float) -> None:
    net = _linear()
    model = _free(net)
    x, _ = _data(12)
    y = model.predict(x)  # every sample starts correct
    x0 = x.clone()
    res = attack(model, x, y, "square", eps=eps, norm=norm, queries=300)
    assert torch.equal(x, x0)
    assert res.backward_passes == 0
    assert res.success_rate >= 0.9, res.success_rate
    assert float(res.x_adv.min()) >= 0.0 and float(res.x_adv.max()) <= 1.0
    assert bool((get_threat(norm).norm(res.x_adv - x) <= eps * (1 + 1e-5)).all())
    assert torch.equal(res.success, model.predict(res.x_adv) != y)


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("shape", [(3, 6, 10), (1, 2, 2), (2, 5, 3)])
def test_budget_and_box_on_odd_shapes(norm: str, shape: tuple[int, int, int]) -> None:
    model = Model(_linear(shape=shape), num_classes=4)
    x, y = _data(6, shape)
    x[0] = 0.0  # corners of the box: clipping everywhere
    x[1] = 1.0
    eps = 0.3 if norm == "linf" else 2.0
    res = attack(model, x, y, "square", eps=eps, norm=norm, queries=60)
    assert res.x_adv.shape == x.shape
    assert float(res.x_adv.min()) >= 0.0 and float(res.x_adv.max()) <= 1.0
    assert bool((res.norms <= eps * (1 + 1e-5)).all())
    assert res.forward_passes <= 62 * len(y)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_queries_are_counted_and_capped(norm: str) -> None:
    # constant logits: nothing can be broken, so every sample spends the full budget
    logits = torch.tensor([[4.0, 0.0, -1.0]])
    model = Model(lambda z: logits.expand(z.shape[0], 3), differentiable=False, num_classes=3)
    x = torch.rand(5, 1, 8, 8)
    y = torch.zeros(5, dtype=torch.long)
    res = attack(model, x, y, "square", eps=0.1, norm=norm, queries=40)
    # the runner's own clean and final passes (2 per sample) plus exactly `queries` per sample
    assert res.forward_passes == 5 * 40 + 2 * 5
    assert res.success_rate == 0.0 and res.robust_accuracy == 1.0


def test_early_stopping_saves_queries_and_misclassified_are_untouched() -> None:
    model = Model(_linear())
    x, _ = _data(10)
    y = model.predict(x)
    y[:3] = (y[:3] + 1) % 4  # already misclassified: returned as they are after one query
    res = attack(model, x, y, "square", eps=0.3, queries=500)
    assert torch.equal(res.x_adv[:3], x[:3])
    assert bool(res.success.all())
    assert res.forward_passes < 0.2 * 500 * len(y)


def test_eps_zero_returns_clean_images() -> None:
    model = Model(_linear())
    x, y = _data(4)
    res = attack(model, x, y, "square", eps=0.0, queries=20)
    assert torch.equal(res.x_adv, x)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_determinism_and_batch_order_invariance(norm: str) -> None:
    model = _free(_linear(seed=2))
    x, _ = _data(9)
    y = model.predict(x)
    eps = 0.04 if norm == "linf" else 0.4  # small: most samples survive, trajectories are long
    kw = {"eps": eps, "norm": norm, "queries": 150, "seed": 5}
    a = attack(model, x, y, "square", **kw)
    b = attack(model, x, y, "square", **kw)
    assert torch.equal(a.x_adv, b.x_adv)
    perm = torch.randperm(9, generator=torch.Generator().manual_seed(0))
    c = attack(model, x[perm], y[perm], "square", **kw)
    assert torch.allclose(c.x_adv, a.x_adv[perm], atol=1e-6)
    d = attack(model, x[:4], y[:4], "square", **kw)
    assert torch.allclose(d.x_adv, a.x_adv[:4], atol=1e-6)
    other = attack(model, x, y, "square", **{**kw, "seed": 6})
    assert not torch.equal(other.x_adv, a.x_adv)


def test_targeted_mode_reaches_targets() -> None:
    model = _free(_linear(classes=5), classes=5)
    x, _ = _data(12)
    y = model.predict(x)
    targets = (y + 2) % 5
    res = attack(model, x, y, "square", eps=0.3, targets=targets, queries=400)
    assert res.targeted
    assert res.success_rate >= 0.9, res.success_rate
    assert torch.equal(res.success, model.predict(res.x_adv) == targets)


def test_bad_parameters() -> None:
    model = Model(_linear())
    x, y = _data(2)
    with pytest.raises(ValueError, match="p_init"):
        attack(model, x, y, "square", eps=0.1, p_init=1.5)
    with pytest.raises(ValueError, match="queries must be a positive int"):
        attack(model, x, y, "square", eps=0.1, queries=0)
    with pytest.raises(ValueError, match="supports norms linf, l2"):
        attack(model, x, y, "square", eps=1.0, norm="l1")
    with pytest.raises(ValueError, match="needs a budget"):
        attack(model, x, y, "square")


def test_p_schedule_and_side() -> None:
    ps = [p_schedule(i, 5000, 0.8) for i in range(5000)]
    assert ps[0] == 0.8 and ps[-1] == pytest.approx(0.8 / 512)
    assert all(a >= b for a, b in itertools.pairwise(ps))
    assert len(set(ps)) == 10  # nine halvings
    assert p_schedule(6, 5000, 0.8) == 0.4  # iteration 12 of 10 000
    for p in (0.8, 0.1, 0.01, 0.0001):
        s = square_side(p, 32, 32, "l2")
        assert s % 2 == 1 and 3 <= s <= 32
        assert 1 <= square_side(p, 32, 32, "linf") <= 32
    assert square_side(0.8, 4, 100, "linf") == 4  # capped at the short side


def test_meta_pattern_shape() -> None:
    for side in (1, 2, 3, 6, 9):
        pat = meta_pattern(side)
        assert pat.shape == (side, side)
        assert float(pat.norm()) == pytest.approx(1.0)
    pat = meta_pattern(7)
    assert float(pat[:3].sum()) > 0 > float(pat[3:].sum())
    assert int(pat[:3].abs().argmax()) == 1 * 7 + 3  # peak at the centre of the top block


def test_l2_step_fills_the_budget_and_empties_window_two() -> None:
    x = torch.full((3, 2, 12, 12), 0.5)  # mid-grey: no clipping at this budget
    eps = torch.tensor([0.6, 0.8, 0.8])
    delta = torch.randn(3, 2, 12, 12, generator=torch.Generator().manual_seed(0))
    delta = delta / delta.flatten(1).norm(dim=1).view(-1, 1, 1, 1) * 0.3  # part of the budget
    u = torch.rand(3, 7, generator=torch.Generator().manual_seed(1))
    cand = _step_l2(x, x + delta, eps, u, 5, meta_pattern(5))
    out = cand - x
    norms = out.flatten(1).norm(dim=1)
    assert torch.allclose(norms, eps, rtol=1e-4)
    # window 2 is zeroed where it does not overlap window 1; outside both, the direction is kept
    span = 12 - 5 + 1
    for b in range(3):
        t1, l1 = int(u[b, 0] * span), int(u[b, 1] * span)
        t2, l2 = int(u[b, 2] * span), int(u[b, 3] * span)
        in1 = torch.zeros(12, 12, dtype=torch.bool)
        in1[t1 : t1 + 5, l1 : l1 + 5] = True
        in2 = torch.zeros(12, 12, dtype=torch.bool)
        in2[t2 : t2 + 5, l2 : l2 + 5] = True
        assert bool((out[b][:, in2 & ~in1] == 0).all())
        rest = ~(in1 | in2)
        scale = (out[b][:, rest] / delta[b][:, rest]).median()
        assert torch.allclose(out[b][:, rest], scale * delta[b][:, rest], atol=1e-6)


@pytest.mark.fmnist
@pytest.mark.slow
@pytest.mark.parametrize(("norm", "eps"), [("linf", 0.2), ("l2", 2.0)])
def test_strength_on_zoo_model(norm: str, eps: float, fmnist_test) -> None:  # type: ignore[no-untyped-def]
    from robustcv import load_model

    model = load_model("zoo:fmnist-cnn")
    x, y = fmnist_test.x[:500], fmnist_test.y[:500]
    start = time.perf_counter()
    res = attack(model, x, y, "square", eps=eps, norm=norm)  # default budget: 5000 queries
    took = time.perf_counter() - start
    print(f"square {norm} eps={eps}: robust accuracy {res.robust_accuracy:.3f} in {took:.1f}s")
    assert res.backward_passes == 0
    assert res.forward_passes <= (5000 + 2) * len(y)
    assert res.robust_accuracy <= 0.5, res.robust_accuracy
