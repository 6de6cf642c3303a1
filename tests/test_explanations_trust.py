"""Trust checks for explanations: sanity, faithfulness, fragility, overinterpretation.

The model is a small CNN trained here in a few seconds on synthetic images (a bright square in
one of four quadrants on a noisy background; the class is the quadrant), so every property is
checked on a network that learned something, without the real dataset.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from robustcv.core.errors import InputError
from robustcv.core.model import Model
from robustcv.explanations import explain
from robustcv.explanations.base import METHODS, MethodOutput, MethodSpec, register_method
from robustcv.explanations.faithfulness import (
    FaithfulnessConfig,
    deletion_insertion,
    infidelity,
    sensitivity_max,
)
from robustcv.explanations.fragility import (
    FragilityConfig,
    MisleadingConfig,
    SoftplusRelu,
    average_fragility,
    fragility_attack,
    misleading_attack,
)
from robustcv.explanations.overinterpretation import (
    SubsetConfig,
    keep_top_pixels,
    sufficient_subsets,
)
from robustcv.explanations.sanity import (
    LabelRandomizationConfig,
    SanityConfig,
    label_randomization_check,
    sanity_check,
)
from robustcv.explanations.similarity import spearman, ssim, topk_intersection

SIZE = 16


def quadrant_data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Images with a bright 5x5 square in one quadrant (the label), noisy background."""
    gen = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 4, (n,), generator=gen)
    x = torch.rand(n, 1, SIZE, SIZE, generator=gen) * 0.3
    off = torch.randint(0, 3, (n, 2), generator=gen)
    for i in range(n):
        r0 = (int(y[i]) // 2) * 8 + int(off[i, 0])
        c0 = (int(y[i]) % 2) * 8 + int(off[i, 1])
        x[i, 0, r0 : r0 + 5, c0 : c0 + 5] = 0.7 + 0.3 * torch.rand(5, 5, generator=gen)
    return x, y


class SmallCNN(nn.Module):
    """Functional relu in forward (the surrogate must see it) and an nn.ReLU module."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.act = nn.ReLU()
        self.fc = nn.Linear(8 * 4 * 4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = F.max_pool2d(F.relu(self.conv1(x)), 2)
        b = F.max_pool2d(self.act(self.conv2(a)), 2)
        return self.fc(b.flatten(1))


@pytest.fixture(scope="module")
def trained() -> tuple[Model, torch.Tensor, torch.Tensor]:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = SmallCNN()
    x, y = quadrant_data(512, 0)
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    for _ in range(3):
        for i in range(0, 512, 64):
            opt.zero_grad()
            F.cross_entropy(net(x[i : i + 64]), y[i : i + 64]).backward()
            opt.step()
    net.eval()
    xt, yt = quadrant_data(64, 1)
    model = Model(net, name="quadrants")
    acc = float((model(xt).argmax(1) == yt).float().mean())
    assert acc > 0.9, f"the test model did not learn the quadrants (accuracy {acc:.2f})"
    return model, xt, yt


@pytest.fixture
def edge_method() -> Iterator[str]:
    """A 'method' that ignores the model: the image's gradient magnitude (Sobel)."""

    def fn(ctx, x, targets, cfg):  # type: ignore[no-untyped-def]
        kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]).view(1, 1, 3, 3)
        gx = F.conv2d(x.sum(1, keepdim=True), kx, padding=1)
        gy = F.conv2d(x.sum(1, keepdim=True), kx.transpose(2, 3), padding=1)
        return MethodOutput((gx.square() + gy.square()).sqrt().expand_as(x).contiguous())

    from dataclasses import dataclass

    @dataclass(frozen=True)
    class NoConfig:
        pass

    register_method(
        MethodSpec("test-edges", fn, NoConfig, "perturbation", False, "edges", "image edges")
    )
    try:
        yield "test-edges"
    finally:
        METHODS.remove("test-edges")


def _net(model: Model) -> nn.Module:
    assert isinstance(model.net, nn.Module)
    return model.net


def _state(model: Model) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in _net(model).state_dict().items()}


# ---------------------------------------------------------------------- sanity


def test_sanity_passes_saliency_and_flags_a_model_free_method(
    trained: tuple[Model, torch.Tensor, torch.Tensor], edge_method: str
) -> None:
    model, x, _ = trained
    before = _state(model)
    _net(model).train()
    sal = sanity_check(model, x[:16], "saliency", seed=0)
    edges = sanity_check(model, x[:16], edge_method, seed=0)
    assert _net(model).training  # the mode is restored
    _net(model).eval()
    after = _state(model)
    assert all(torch.equal(before[k], after[k]) for k in before), "the model was modified"
    assert sal.layers == ["fc", "conv2", "conv1"]
    assert sal.passed, sal.verdict
    assert sal.final["spearman_abs"]["value"] < 0.5
    assert not edges.passed, edges.verdict
    assert edges.final["spearman_abs"]["value"] > 0.99
    # cascading curves start at 1 and saliency's falls with depth of randomisation
    assert sal.cascading["spearman_abs"][0] == 1.0
    assert sal.cascading["spearman_abs"][-1] < sal.cascading["spearman_abs"][1] + 0.05
    assert len(sal.independent["ssim"]) == 3
    assert "test-edges" not in sal.to_json()


def test_label_randomization_flags_a_model_free_method(
    trained: tuple[Model, torch.Tensor, torch.Tensor], edge_method: str
) -> None:
    model, x, _ = trained
    tx, ty = quadrant_data(256, 2)
    cfg = LabelRandomizationConfig(steps=150, lr=1e-2)
    before = _state(model)
    sal = label_randomization_check(model, x[:12], "saliency", tx, ty, seed=0, config=cfg)
    edges = label_randomization_check(model, x[:12], edge_method, tx, ty, seed=0, config=cfg)
    assert all(torch.equal(before[k], v) for k, v in _state(model).items())
    assert sal.true_accuracy < 0.6  # the copy forgot the quadrants
    assert sal.passed, sal.verdict
    assert not edges.passed and edges.similarity["spearman_abs"]["value"] > 0.99
    with pytest.raises(InputError, match="train_y must be"):
        label_randomization_check(model, x[:4], "saliency", tx, ty[:3], config=cfg)


@pytest.mark.slow
def test_sanity_is_deterministic(trained: tuple[Model, torch.Tensor, torch.Tensor]) -> None:
    model, x, _ = trained
    cfg = SanityConfig(modes=("cascading",))
    a = sanity_check(model, x[:6], "smoothgrad", seed=3, config=cfg, samples=4).to_dict()
    b = sanity_check(model, x[:6], "smoothgrad", seed=3, config=cfg, samples=4).to_dict()
    c = sanity_check(model, x[:6], "smoothgrad", seed=4, config=cfg, samples=4).to_dict()
    for r in (a, b, c):
        r.pop("seconds")
    assert a == b
    assert a != c


# ---------------------------------------------------------------------- faithfulness


class Linear(nn.Module):
    """Two logits: w . x and 0, so the class-0 evidence of pixel i is exactly w_i x_i."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = nn.Parameter(w.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = (x.flatten(1) * self.w.flatten()).sum(1) - 2.0
        return torch.stack([s, torch.zeros_like(s)], 1)


def test_deletion_area_of_an_oracle_is_below_random() -> None:
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(1, 1, 8, 8, generator=gen)
    x = torch.rand(12, 1, 8, 8, generator=gen)
    model = Model(Linear(w))
    oracle = w * x  # exact contribution of each pixel to the class-0 logit
    cfg = FaithfulnessConfig(steps=16)
    r = deletion_insertion(model, x, oracle, target=0, seed=0, config=cfg)
    assert r.deletion_area["value"] < r.random_deletion_area["value"] - 0.05
    assert r.insertion_area["value"] > r.random_insertion_area["value"] + 0.05
    assert r.deletion_gain["low"] > 0
    anti = deletion_insertion(model, x, -oracle, target=0, seed=0, config=cfg)
    assert anti.deletion_area["value"] > r.random_deletion_area["value"]
    again = deletion_insertion(model, x, oracle, target=0, seed=0, config=cfg).to_dict()
    other = deletion_insertion(model, x, oracle, target=0, seed=1, config=cfg).to_dict()
    for d in (again, other):
        d.pop("seconds")
    first = r.to_dict()
    first.pop("seconds")
    assert first == again
    assert first["random_deletion"] != other["random_deletion"]


@pytest.mark.filterwarnings("ignore::UserWarning")  # Captum's note on requires_grad
def test_infidelity_and_sensitivity_max_equal_captum(
    trained: tuple[Model, torch.Tensor, torch.Tensor],
) -> None:
    metrics = pytest.importorskip("captum.metrics")
    attr = pytest.importorskip("captum.attr")
    model, x, _ = trained
    x = 0.1 + 0.8 * x[:4]  # no pixel leaves [0, 1] under the noise: no clipping on our side
    t = model(x).argmax(1)
    maps = explain(model, x, t, method="saliency", abs=False).maps
    gen = torch.Generator().manual_seed(5)
    pert = torch.randn(4, 6, 1, SIZE, SIZE, generator=gen) * 0.05
    flat = pert.reshape(24, 1, SIZE, SIZE)

    def perturb(inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return flat, inputs - flat

    for normalize in (False, True):
        ours = infidelity(model, x, maps, target=t, perturbations=pert, normalize=normalize)
        ref = metrics.infidelity(
            model.net, perturb, x, maps, target=t, n_perturb_samples=6, normalize=normalize
        )
        torch.testing.assert_close(ours.float(), ref.float(), rtol=1e-4, atol=1e-6)

    u = (torch.rand(4, 6, 1, SIZE, SIZE, generator=gen) * 2 - 1) * 0.02

    def perturb_u(inputs: torch.Tensor, radius: float) -> torch.Tensor:
        return inputs + u.reshape(24, 1, SIZE, SIZE)

    ours_s = sensitivity_max(model, x, "saliency", target=t, perturbations=u)
    sal = attr.Saliency(model.net)
    ref_s = metrics.sensitivity_max(
        sal.attribute, x, perturb_func=perturb_u, n_perturb_samples=6, target=t
    )
    torch.testing.assert_close(ours_s.float(), ref_s.float(), rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------------- fragility


def test_softplus_surrogate_routes_functional_and_inplace_relu() -> None:
    x = torch.tensor([-1.0, 0.5], requires_grad=True)
    with SoftplusRelu(beta=2.0) as mode:
        a = F.relu(x)
        b = x.relu()
        c = (x * 1.0).relu_()
        d = nn.ReLU(inplace=True)(x * 1.0)
    assert mode.calls == 4
    expected = F.softplus(x, beta=2.0)
    for v in (a, b, c, d):
        torch.testing.assert_close(v, expected)
    assert torch.equal(F.relu(x), x.clamp_min(0))  # the mode has ended


@pytest.mark.slow
def test_fragility_attack_keeps_label_and_stays_in_the_ball(
    trained: tuple[Model, torch.Tensor, torch.Tensor],
) -> None:
    model, x, _ = trained
    xs = x[:12]
    y0 = model(xs).argmax(1)
    for objective in ("topk", "center"):
        cfg = FragilityConfig(eps=0.1, steps=8, objective=objective)
        r = fragility_attack(model, xs, "saliency", seed=0, config=cfg)
        assert torch.equal(model(r.x_adv).argmax(1), y0)
        assert float((r.x_adv - xs).abs().max()) <= 0.1 + 1e-6
        assert float(r.x_adv.min()) >= 0.0 and float(r.x_adv.max()) <= 1.0
        assert r.label_kept == 1.0 and r.accepted_steps > 0
        if objective == "topk":  # the attack does more damage than noise of the same norm
            assert r.topk_attack["value"] < r.topk_noise["value"]
        else:
            assert r.center_shift_attack["value"] > r.center_shift_noise["value"]
    # a large budget would flip labels if steps were not checked: they still hold
    big = fragility_attack(model, xs, "saliency", config=FragilityConfig(eps=0.5, steps=6))
    assert torch.equal(model(big.x_adv).argmax(1), y0)


@pytest.mark.slow
def test_misleading_attack_moves_the_map_towards_its_target(
    trained: tuple[Model, torch.Tensor, torch.Tensor],
) -> None:
    model, x, _ = trained
    xs = x[:8]
    y0 = model(xs).argmax(1)
    r = misleading_attack(model, xs, "saliency", config=MisleadingConfig(eps=0.1, steps=25))
    # this small net's saliency is nearly its first layer's weights, so it moves only so far
    assert r.distance_after["value"] < 0.9 * r.distance_before["value"]
    assert r.spearman_target_after["value"] > r.spearman_target_before["value"] + 0.1
    assert torch.equal(model(r.x_adv).argmax(1), y0) and r.label_kept == 1.0
    assert float((r.x_adv - xs).abs().max()) <= 0.1 + 1e-6


def test_average_fragility_and_attack_refusals(
    trained: tuple[Model, torch.Tensor, torch.Tensor],
) -> None:
    model, x, _ = trained
    before = _state(model)
    _net(model).train()
    r = average_fragility(model, x[:4], "saliency", samples=3, seed=0)
    fragility_attack(model, x[:2], "saliency", config=FragilityConfig(steps=2))
    sufficient_subsets(model, x[:2], config=SubsetConfig(chunk=0.1))
    assert _net(model).training  # every pass restored the train/eval mode
    _net(model).eval()
    assert all(torch.equal(before[k], v) for k, v in _state(model).items())
    assert r.max_sensitivity["value"] >= r.avg_sensitivity["value"] > 0
    assert r.to_dict() == average_fragility(model, x[:4], "saliency", samples=3, seed=0).to_dict()
    with pytest.raises(InputError, match="saliency, input-x-gradient"):
        fragility_attack(model, x[:2], "grad-cam")
    with pytest.raises(InputError, match="exceeds the image range"):
        FragilityConfig(eps=2.0)
    with pytest.raises(InputError, match="choose from topk, center"):
        FragilityConfig(objective="top-k")


# ---------------------------------------------------------------------- overinterpretation


def test_sufficient_subsets_are_sufficient(
    trained: tuple[Model, torch.Tensor, torch.Tensor],
) -> None:
    model, x, _ = trained
    xs = x[:16]
    cfg = SubsetConfig(threshold=0.9, chunk=0.02)
    r = sufficient_subsets(model, xs, config=cfg)
    assert r.n_confident > 8
    assert all(r.sufficient)
    probs = model(torch.where(r.masks, xs, 0.0)).softmax(1)
    pred = model(xs).argmax(1)
    p = probs.gather(1, pred[:, None]).squeeze(1)
    conf = torch.tensor([s == s for s in r.share])  # NaN share: no subset
    assert bool((p[conf] >= 0.9).all())
    assert 0.0 < r.median_share < 0.5  # a quadrant's square is a small part of the image


def test_keep_top_pixels(trained: tuple[Model, torch.Tensor, torch.Tensor]) -> None:
    model, x, y = trained
    maps = explain(model, x[:32], method="integrated-gradients", steps=16).maps
    r = keep_top_pixels(model, x[:32], y[:32], maps, seed=0)
    assert r.fractions == [0.05, 0.1, 0.2, 0.5]
    assert r.accuracy[2]["value"] > r.random_accuracy[2]["value"]


# ---------------------------------------------------------------------- similarity, bad input


def test_similarity_measures_match_references() -> None:
    stats = pytest.importorskip("scipy.stats")
    metrics = pytest.importorskip("skimage.metrics")
    gen = torch.Generator().manual_seed(0)
    a = torch.rand(3, 1, 12, 12, generator=gen).round(decimals=1)  # ties
    b = a + 0.3 * torch.rand(3, 1, 12, 12, generator=gen)
    ours = spearman(a, b)
    for i in range(3):
        ref = stats.spearmanr(a[i].flatten().numpy(), b[i].flatten().numpy()).statistic
        assert abs(float(ours[i]) - ref) < 1e-9
        lo_a, hi_a = a[i, 0].min(), a[i, 0].max()
        lo_b, hi_b = b[i, 0].min(), b[i, 0].max()
        na = ((a[i, 0] - lo_a) / (hi_a - lo_a)).double().numpy()
        nb = ((b[i, 0] - lo_b) / (hi_b - lo_b)).double().numpy()
        ref_s = metrics.structural_similarity(na, nb, data_range=1.0)
        assert abs(float(ssim(a, b)[i]) - ref_s) < 1e-6
    assert topk_intersection(a, a, 0.1).tolist() == [1.0, 1.0, 1.0]


def test_bad_input_names_the_fix(trained: tuple[Model, torch.Tensor, torch.Tensor]) -> None:
    model, x, _ = trained
    with pytest.raises(InputError, match="choose from cascading, independent"):
        SanityConfig(modes=("cascade",))
    with pytest.raises(InputError, match="at least 2 images"):
        sanity_check(model, x[:1], "saliency")
    with pytest.raises(InputError, match="did you mean"):
        sanity_check(model, x[:4], "salency")
    with pytest.raises(InputError, match="choose from"):
        sanity_check(model, x[:4], "saliency", config=SanityConfig(layers=("nope",)))
    with pytest.raises(InputError, match=r"explain\(model, x, \.\.\.\)\.maps"):
        deletion_insertion(model, x[:4], torch.zeros(4, 1, 8, 8))
    with pytest.raises(InputError, match="fill must"):
        FaithfulnessConfig(fill=2.0)
    with pytest.raises(InputError, match="threshold must be a number in"):
        SubsetConfig(threshold=1.5)
    with pytest.raises(InputError, match="one set of S perturbations per image"):
        infidelity(model, x[:4], torch.zeros(4, 1, SIZE, SIZE), perturbations=torch.zeros(3))
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        fragility_attack(model, x[:2] * 3.0, "saliency")
