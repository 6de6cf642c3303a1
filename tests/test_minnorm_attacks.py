"""Minimum-norm gradient attacks: DeepFool (L2, L-inf), DDN (L2) and Carlini & Wagner (L2)."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from robustcv.attacks import ATTACKS, AttackContext, attack, get_threat
from robustcv.attacks.base import content_keys
from robustcv.core.errors import InputError
from robustcv.core.model import Model

PAIRS = [("deepfool", "l2"), ("deepfool", "linf"), ("ddn", "l2"), ("cw", "l2")]
FAST = {"deepfool": {}, "ddn": {"steps": 50}, "cw": {"steps": 30, "search_steps": 6}}


def _net(seed: int = 0, classes: int = 4) -> Model:
    g = torch.Generator().manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, classes)
    )
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return Model(net, num_classes=classes)


def _data(n: int = 12, classes: int = 4, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 8, 8, generator=g), torch.randint(0, classes, (n,), generator=g)


def _linear(w: torch.Tensor, b: torch.Tensor) -> Model:
    """A linear classifier on 1x4x4 images with class weights ``w`` (K, 16) and biases ``b``."""
    lin = nn.Linear(w.shape[1], w.shape[0])
    with torch.no_grad():
        lin.weight.copy_(w)
        lin.bias.copy_(b)
    return Model(nn.Sequential(nn.Flatten(), lin), num_classes=w.shape[0])


def _linear_binary(seed: int = 0) -> tuple[Model, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A binary linear model, images near 0.5 (far from the box) and f = w.x + b per image."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(16, generator=g)
    b = torch.tensor(0.3)
    model = _linear(torch.stack([torch.zeros(16), w]), torch.stack([torch.tensor(0.0), b]))
    x = 0.5 + 0.05 * (torch.rand(8, 1, 4, 4, generator=g) * 2 - 1)
    f = x.flatten(1) @ w + b
    return model, x, (f > 0).long(), w


# ----------------------------------------------------------------------------- contract


def test_registered_specs() -> None:
    for name, norms, targeted in [
        ("deepfool", ("linf", "l2"), False),
        ("ddn", ("l2",), True),
        ("cw", ("l2",), True),
    ]:
        spec = ATTACKS.get(name)
        assert spec.kind == "gradient" and spec.minimum_norm
        assert spec.norms == norms and spec.targeted is targeted
    assert ATTACKS.get("deepfool").params == {"steps": 50, "overshoot": 0.02, "candidates": 10}
    ddn = ATTACKS.get("ddn").params
    assert (ddn["steps"], ddn["gamma"], ddn["init_norm"], ddn["quantize"]) == (
        100,
        0.05,
        1.0,
        False,
    )
    cw = ATTACKS.get("cw").params
    assert (cw["steps"], cw["search_steps"], cw["initial_const"], cw["lr"], cw["confidence"]) == (
        100,
        9,
        1e-3,
        0.01,
        0.0,
    )


@pytest.mark.parametrize(("name", "norm"), PAIRS)
def test_success_bounds_and_reported_norms(name: str, norm: str) -> None:
    model = _net()
    x, _ = _data(16)
    y = model.predict(x)
    y[:2] = (y[:2] + 1) % 4  # two samples misclassified from the start
    x0, y0 = x.clone(), y.clone()
    res = attack(model, x, y, name, norm=norm, **FAST[name])
    assert torch.equal(x, x0) and torch.equal(y, y0)
    assert res.eps is None and res.success_rate >= 0.9
    assert float(res.x_adv.min()) >= 0.0 and float(res.x_adv.max()) <= 1.0
    measured = get_threat(norm).norm(res.x_adv - x)
    ok = res.success
    assert torch.allclose(res.norms[ok], measured[ok], atol=1e-6)
    assert bool(torch.isinf(res.norms[~ok]).all())
    assert torch.equal(
        model.predict(res.x_adv)[ok] != y[ok], torch.ones_like(y[ok], dtype=torch.bool)
    )
    # already misclassified: the clean image itself, norm 0
    assert torch.equal(res.x_adv[:2], x[:2]) and bool((res.norms[:2] == 0).all())
    assert res.backward_passes > 0


@pytest.mark.parametrize(("name", "norm"), PAIRS)
def test_the_attack_itself_respects_the_cap(name: str, norm: str) -> None:
    """Without the runner's re-projection, every returned point is inside the eps-ball."""
    model = _net()
    x, y = _data(12)
    threat = get_threat(norm)
    free = attack(model, x, y, name, norm=norm, **FAST[name])
    eps = float(free.norms[free.success].median())
    cap = torch.full((12,), eps)
    ctx = AttackContext(model, threat, cap, None, 0, content_keys(x))
    params = {**ATTACKS.get(name).params, **FAST[name]}
    out = ATTACKS.get(name).fn(ctx, x.clone(), y, **params)
    assert bool((threat.norm(out - x) <= eps * (1 + 1e-4) + 1e-6).all())
    capped = attack(model, x, y, name, norm=norm, eps=eps, **FAST[name])
    assert bool((capped.norms <= eps * (1 + 1e-4) + 1e-6).all())
    # samples whose unbounded minimal norm is well inside the cap stay broken
    inside = free.norms < 0.5 * eps
    assert bool(capped.success[inside].all())


@pytest.mark.parametrize("name", ["ddn", "cw"])
def test_targeted_success_and_batch_invariance(name: str) -> None:
    model = _net()
    x, _ = _data(12)
    y = model.predict(x)
    targets = (y + 1) % 4
    res = attack(model, x, y, name, norm="l2", targets=targets, **FAST[name])
    assert res.targeted and res.success_rate >= 0.9
    ok = res.success
    assert torch.equal(model.predict(res.x_adv)[ok], targets[ok])
    parts = [
        attack(
            model,
            x[i : i + 5],
            y[i : i + 5],
            name,
            norm="l2",
            targets=targets[i : i + 5],
            **FAST[name],
        )
        for i in range(0, 12, 5)
    ]
    assert torch.allclose(torch.cat([p.norms for p in parts]), res.norms, atol=1e-4)


def test_bad_input() -> None:
    model = _net()
    x, y = _data(4)
    with pytest.raises(InputError, match="no targeted mode"):
        attack(model, x, y, "deepfool", norm="l2", targets=(y + 1) % 4)
    with pytest.raises(InputError, match="supports norms l2"):
        attack(model, x, y, "ddn", norm="linf")
    with pytest.raises(InputError, match="supports norms l2"):
        attack(model, x, y, "cw", norm="l1")
    with pytest.raises(InputError, match="supports norms linf, l2"):
        attack(model, x, y, "deepfool", norm="l1")
    with pytest.raises(InputError, match="candidates"):
        attack(model, x, y, "deepfool", norm="l2", candidates=1)
    with pytest.raises(InputError, match="overshoot"):
        attack(model, x, y, "deepfool", norm="l2", overshoot=-0.1)
    with pytest.raises(InputError, match="gamma"):
        attack(model, x, y, "ddn", norm="l2", gamma=1.5)
    with pytest.raises(InputError, match="init_norm"):
        attack(model, x, y, "ddn", norm="l2", init_norm=0.0)
    with pytest.raises(InputError, match="search_steps"):
        attack(model, x, y, "cw", norm="l2", search_steps=0)
    with pytest.raises(InputError, match="confidence"):
        attack(model, x, y, "cw", norm="l2", confidence=-1.0)


# ----------------------------------------------------------------------------- reference checks


@pytest.mark.parametrize(("norm", "dual"), [("l2", 2.0), ("linf", 1.0)])
def test_deepfool_on_a_linear_binary_classifier_is_exact(norm: str, dual: float) -> None:
    """Distance to the hyperplane w.x + b = 0 is |w.x + b| / ||w||_q (q = 2 for L2, 1 for L-inf);
    DeepFool reaches it in one step, times (1 + overshoot)."""
    model, x, y, w = _linear_binary()
    f = x.flatten(1) @ w + 0.3
    distance = f.abs() / torch.linalg.vector_norm(w, ord=dual)
    assert float(distance.max()) < 0.3  # the step stays far inside the [0, 1] box
    for overshoot in (0.02, 0.1):
        res = attack(model, x, y, "deepfool", norm=norm, overshoot=overshoot)
        assert bool(res.success.all())
        assert torch.allclose(res.norms, (1 + overshoot) * distance, rtol=1e-4, atol=1e-6)
        assert res.backward_passes == len(y)  # one linearisation per sample


def test_deepfool_multiclass_linear_takes_the_closest_candidate() -> None:
    """For a linear model the minimal L2 distance is min_k |f_k| / ||w_k - w_y||; with
    candidates=2 only the best other clean class is considered."""
    g = torch.Generator().manual_seed(3)
    w, b = torch.randn(5, 16, generator=g), torch.randn(5, generator=g) * 0.2
    model = _linear(w, b)
    x = 0.5 + 0.05 * (torch.rand(10, 1, 4, 4, generator=g) * 2 - 1)
    logits = x.flatten(1) @ w.T + b
    y = logits.argmax(1)
    gap = logits - logits.gather(1, y[:, None])  # f_k = z_k - z_y <= 0
    dist = gap.abs() / torch.linalg.vector_norm(w[None] - w[y][:, None], dim=2).clamp_min(1e-12)
    dist = dist.scatter(1, y[:, None], float("inf"))
    res = attack(model, x, y, "deepfool", norm="l2")
    assert torch.allclose(res.norms, 1.02 * dist.amin(1), rtol=1e-4)
    runner_up = gap.scatter(1, y[:, None], float("-inf")).argmax(1)
    only_top = attack(model, x, y, "deepfool", norm="l2", candidates=2, steps=1)
    expected = 1.02 * dist.gather(1, runner_up[:, None]).squeeze(1)
    ok = only_top.success
    assert bool(ok.any())
    assert torch.allclose(only_top.norms[ok], expected[ok], rtol=1e-4)


@pytest.mark.parametrize(("name", "rel"), [("ddn", 0.03), ("cw", 0.03)])
def test_l2_attacks_close_to_the_analytic_minimum(name: str, rel: float) -> None:
    """On the linear binary model nothing adversarial lies closer than |f| / ||w||_2, and DDN and
    C&W get within a few percent of it."""
    model, x, y, w = _linear_binary()
    distance = (x.flatten(1) @ w + 0.3).abs() / w.norm()
    res = attack(model, x, y, name, norm="l2")
    assert bool(res.success.all())
    assert bool((res.norms >= distance * (1 - 1e-4)).all())
    assert bool((res.norms <= distance * (1 + rel)).all()), (res.norms / distance).max()


def test_cw_never_worse_than_its_own_first_feasible_point() -> None:
    """The runs are deterministic, so a shorter search is a prefix of a longer one: the result
    can only improve with more search steps (or Adam steps), never fall behind the first
    adversarial point found."""
    model = _net()
    x, y = _data(12)
    by_search = [
        attack(model, x, y, "cw", norm="l2", steps=20, search_steps=s).norms for s in range(1, 7)
    ]
    for shorter, longer in itertools.pairwise(by_search):
        assert bool((longer <= shorter + 1e-6).all())
    first = torch.full((12,), float("inf"))
    for norms in by_search:  # the first feasible search step of each sample
        first = torch.where(torch.isinf(first), norms, first)
    assert bool((by_search[-1] <= first + 1e-6).all())
    # within one run, with a fixed schedule (no early abort), more Adam steps never hurt either
    by_steps = [
        attack(
            model,
            x,
            y,
            "cw",
            norm="l2",
            steps=k,
            search_steps=1,
            initial_const=10.0,
            abort_early=False,
        ).norms
        for k in (5, 10, 20, 40)
    ]
    assert bool(torch.isfinite(by_steps[-1]).any())
    for shorter, longer in itertools.pairwise(by_steps):
        assert bool((longer <= shorter + 1e-6).all())


def test_ddn_quantize_gives_8bit_images() -> None:
    model = _net()
    g = torch.Generator().manual_seed(5)
    x = torch.randint(0, 256, (8, 1, 8, 8), generator=g).float() / 255
    y = model.predict(x)
    res = attack(model, x, y, "ddn", norm="l2", steps=50, quantize=True)
    assert res.success_rate >= 0.8
    levels = res.x_adv[res.success] * 255
    assert torch.allclose(levels, levels.round(), atol=1e-4)


def test_fewer_passes_for_deepfool_than_for_ddn_and_cw() -> None:
    model = _net()
    x, y = _data(16)
    cost = {
        name: attack(model, x, y, name, norm="l2").backward_passes for name in ("deepfool", "ddn")
    }
    assert cost["deepfool"] < cost["ddn"]


# ----------------------------------------------------------------------------- the zoo model


@pytest.fixture(scope="module")
def zoo_fmn(fmnist_test):  # type: ignore[no-untyped-def]
    from robustcv import load_model

    model = load_model("zoo:fmnist-cnn")
    x, y = fmnist_test.x[:200], fmnist_test.y[:200]
    return model, x, y, attack(model, x, y, "fmn", norm="l2")


@pytest.mark.fmnist
@pytest.mark.slow
@pytest.mark.parametrize(("name", "norm"), PAIRS)
def test_strength_on_zoo_model(name: str, norm: str, zoo_fmn) -> None:  # type: ignore[no-untyped-def]
    model, x, y, fmn = zoo_fmn
    start = time.perf_counter()
    res = attack(model, x, y, name, norm=norm)
    seconds = time.perf_counter() - start
    med = float(res.norms.median())
    ref = float(fmn.norms.median())
    ok = res.clean_correct
    ref_txt = f"; FMN {ref:.4f}" if norm == "l2" else ""
    print(
        f"{name}/{norm}: success {res.success_rate:.3f}, median {med:.4f} "
        f"(clean-correct {float(res.norms[ok].median()):.4f}{ref_txt}), {seconds:.1f}s"
    )
    assert res.success_rate >= 0.95, (name, norm, res.success_rate)
    if name in ("ddn", "cw"):
        assert med <= 1.25 * ref, (name, med, ref)
        assert float(res.norms[ok].median()) <= 1.25 * float(fmn.norms[ok].median())


@pytest.mark.fmnist
@pytest.mark.slow
def test_fmn_l0_on_zoo_model_is_sparse_and_beats_random_pixels(fmnist_test) -> None:  # type: ignore[no-untyped-def]
    from robustcv import load_model

    model = load_model("zoo:fmnist-cnn")
    x, y = fmnist_test.x[:100], fmnist_test.y[:100]
    res = attack(model, x, y, "fmn", norm="l0")
    ok = res.success & res.clean_correct
    counts = res.norms[ok]
    assert res.success_rate >= 0.95, res.success_rate
    # every reported count is the number of changed pixel values, and far below the 784 pixels
    changed = ((res.x_adv - x).flatten(1) != 0).sum(1).float()
    assert torch.equal(changed[ok], counts)
    med = float(counts.median())
    assert 1 <= med <= 60, med
    # random pixels with the same budget break far fewer correctly classified images
    noise = attack(model, x, y, "noise-uniform", norm="l0", eps=med)
    fmn_share = float((ok & (res.norms <= med)).float().mean())
    noise_share = float((noise.success & res.clean_correct).float().mean())
    print(f"fmn/l0: median {med:.0f} values, breaks {fmn_share:.2f}; random: {noise_share:.2f}")
    assert noise_share <= 0.5 * fmn_share, (noise_share, fmn_share)


# ----------------------------------------------------------------------------- proven optima


def _milp_fixture() -> tuple[Model, torch.Tensor, torch.Tensor, np.ndarray]:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from minimum_norm_vs_milp import load_fixture

    net, x, y, exact = load_fixture()
    return Model(net, num_classes=10), x, y, exact


def test_fmn_against_the_milp_optimum() -> None:
    """No attack may beat a proven optimum; FMN lands close to it, closer with targets."""
    model, x, y, exact = _milp_fixture()
    assert len(exact) == 40 and bool(np.all(exact > 0))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: one thread is fastest (and never spins)
    try:
        plain = attack(model, x, y, "fmn", norm="linf", steps=300).norms.numpy()
        targeted = attack(model, x, y, "fmn", norm="linf", steps=300, n_targets=2).norms.numpy()
    finally:
        torch.set_num_threads(threads)
    for found in (plain, targeted):
        assert bool(np.all(found >= exact * (1 - 1e-4))), "below a proven optimum"
    assert float(np.mean(plain / exact)) <= 1.10  # measured 1.053
    assert float(np.mean(targeted / exact)) <= 1.03  # measured 1.015
    assert bool(np.all(targeted <= plain + 1e-7))  # the untargeted run is one of the candidates


def test_the_milp_fixture_is_exact_for_a_sample() -> None:
    """Re-solve one sample's MILP (scipy's HiGHS) and compare with the stored optimum."""
    pytest.importorskip("scipy")
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from make_milp_fixture import min_linf

    model, x, y, exact = _milp_fixture()
    net = model.net
    i = int(np.argmin(exact))
    t, x_opt = min_linf(net, x[i].flatten().double().numpy(), int(y[i]), float(exact[i]) * 1.01)
    assert t == pytest.approx(float(exact[i]), rel=1e-5)
    with torch.no_grad():
        z = net(torch.tensor(x_opt, dtype=torch.float32).view(1, 1, 7, 7))[0]
    other = z.clone()
    other[int(y[i])] = -1e9
    assert float(other.max() - z[int(y[i])]) > -1e-4  # on the decision boundary
