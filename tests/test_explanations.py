"""robustcv.explanations: the methods' defining properties, invariances, errors and cleanup."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from robustcv.core.errors import GradientUnavailableError, InputError
from robustcv.core.model import Model
from robustcv.explanations import METHODS, ReluRule, explain
from robustcv.explanations.gradients import quadrature
from robustcv.explanations.perturbation import ridge_fit

ALL = [e.name for e in METHODS]
RANDOM = [e.name for e in METHODS if e.obj.random]
FAST = {  # small parameters so that every method runs in well under a second
    "smoothgrad": {"samples": 6},
    "smoothgrad-sq": {"samples": 6},
    "vargrad": {"samples": 6},
    "integrated-gradients": {"steps": 8},
    "lime": {"samples": 40, "segments": 16},
    "kernel-shap": {"samples": 40, "segments": 16},
    "occlusion": {"window": 4, "stride": 4},
}


class SmallNet(nn.Module):
    """A small CNN; ``style`` picks how its ReLUs are written."""

    def __init__(self, style: str = "functional") -> None:
        super().__init__()
        self.style = style
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 6, 3, padding=1)
        self.fc = nn.Linear(6 * 4 * 4, 5)
        self.act1 = nn.ReLU(inplace=style == "inplace")
        self.act2 = nn.ReLU(inplace=style == "inplace")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.conv1(x)
        if self.style == "functional":
            a = F.relu(a)
        elif self.style == "method":
            a = a.relu()
        else:
            a = self.act1(a)
        a = F.max_pool2d(a, 2)
        b = self.conv2(a)
        if self.style == "functional":
            b = torch.relu(b)
        elif self.style == "method":
            b = b.relu_()
        else:
            b = self.act2(b)
        return self.fc(F.max_pool2d(b, 2).flatten(1))


def make_net(style: str = "functional", seed: int = 0) -> SmallNet:
    torch.manual_seed(seed)
    return SmallNet(style)


def images(n: int = 4, seed: int = 1, size: int = 16) -> torch.Tensor:
    return torch.rand(n, 1, size, size, generator=torch.Generator().manual_seed(seed))


class SmoothNet(nn.Module):
    """A smooth (tanh) network: integrated gradients converge cleanly with steps."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.body = nn.Sequential(
            nn.Flatten(), nn.Linear(36, 16), nn.Tanh(), nn.Linear(16, 3), nn.Tanh()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 4.0 * self.body(x)


# ---------------------------------------------------------------------- integrated gradients


def test_quadrature_weights_sum_to_one_and_points_lie_on_the_path() -> None:
    for rule in ("riemann-left", "riemann-right", "riemann-middle", "riemann-trapezoid"):
        alphas, weights = quadrature(rule, 10)
        assert float(weights.sum()) == pytest.approx(1.0, abs=1e-6)
        assert float(alphas.min()) >= 0.0 and float(alphas.max()) <= 1.0
    alphas, weights = quadrature("gauss-legendre", 5)
    # exact for polynomials of degree 9: integral of t^9 over [0, 1] is 1/10
    assert float((weights.double() * alphas.double() ** 9).sum()) == pytest.approx(0.1, abs=1e-6)


@pytest.mark.parametrize("rule", ["riemann-middle", "riemann-trapezoid", "gauss-legendre"])
def test_ig_completeness_delta_shrinks_with_steps(rule: str) -> None:
    net = SmoothNet()
    x = images(3, size=6)
    f = net(x).detach()
    deltas = []
    for steps in (1, 2, 3) if rule == "gauss-legendre" else (2, 8, 32):
        e = explain(net, x, target=1, method="integrated-gradients", steps=steps, rule=rule)
        # delta is what it says: sum of attributions - (f(x) - f(baseline = zeros))
        expected = e.maps.flatten(1).sum(1) - (f[:, 1] - net(torch.zeros_like(x)).detach()[:, 1])
        assert torch.allclose(e.delta, expected, atol=1e-5)
        deltas.append(float(e.delta.abs().max()))
    assert deltas[0] > deltas[1] > deltas[2] or deltas[2] < 1e-6
    assert deltas[0] > 10 * deltas[2]
    assert deltas[2] < 1e-3 * float((f[:, 1]).abs().max())


def test_ig_on_relu_cnn_is_complete_to_a_small_delta_for_every_baseline() -> None:
    net = make_net()
    x = images(3)
    for baseline in ("zeros", "blur", "uniform", 0.5, torch.full((1, 16, 16), 0.25)):
        e = explain(net, x, method="integrated-gradients", steps=64, baseline=baseline)
        gap = float((e.maps.flatten(1).sum(1) - e.delta).abs().max())
        assert float(e.delta.abs().max()) < 0.05 * max(gap, 1e-3), baseline


def test_ig_bounds_memory_with_internal_batch_size() -> None:
    net, x = make_net(), images(3)
    ref = explain(net, x, method="integrated-gradients", steps=10)
    for rows in (1, 7, 10, 25):
        e = explain(net, x, method="integrated-gradients", steps=10, internal_batch_size=rows)
        assert torch.allclose(e.maps, ref.maps, atol=1e-6, rtol=1e-5), rows


# ---------------------------------------------------------------------- grad-cam


class CamNet(nn.Module):
    """A hand-set conv layer followed by global average pooling and a hand-set linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 2, stride=2, bias=False)
        self.head = nn.Linear(2, 3, bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(
                torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]], [[[0.0, 2.0], [-1.0, 0.0]]]])
            )
            self.head.weight.copy_(torch.tensor([[1.0, -0.5], [-2.0, 1.0], [0.5, 0.5]]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv(x).mean((2, 3)))


def test_grad_cam_equals_the_hand_computed_map() -> None:
    net = CamNet()
    x = images(2, size=8)
    a = net.conv(x).detach()  # (B, 2, 4, 4)
    for target in (0, 1, 2):
        # d score / d A_k = head[t, k] / (h*w): the channel weights are head[t, k] / 16
        weights = net.head.weight[target].detach().view(1, 2, 1, 1) / 16.0
        hand = (weights * a).sum(1, keepdim=True).clamp_min(0.0)
        e = explain(net, x, target=target, method="grad-cam", upsample=None)
        assert e.maps.shape == (2, 1, 4, 4)
        assert torch.allclose(e.maps, hand, atol=1e-6)
        up = explain(net, x, target=target, method="grad-cam")
        assert up.maps.shape == (2, 1, 8, 8)
        expected = F.interpolate(hand, size=(8, 8), mode="bilinear", align_corners=False)
        assert torch.allclose(up.maps, expected, atol=1e-6)
        assert "bilinear" in up.notes["maps"] and "4x4" in up.notes["maps"]
        raw = explain(net, x, target=target, method="grad-cam", upsample=None, relu=False)
        assert torch.allclose(raw.maps, (weights * a).sum(1, keepdim=True), atol=1e-6)


def test_grad_cam_plus_plus_equals_the_hand_computed_map() -> None:
    net = CamNet()
    x = images(2, size=8)
    a = net.conv(x).detach()
    target = 1
    g = (net.head.weight[target].detach() / 16.0).view(1, 2, 1, 1).expand_as(a)
    alpha = g**2 / (2 * g**2 + a.sum((2, 3), keepdim=True) * g**3)
    weights = (alpha * g.clamp_min(0)).sum((2, 3), keepdim=True)
    hand = (weights * a).sum(1, keepdim=True).clamp_min(0.0)
    e = explain(net, x, target=target, method="grad-cam++", upsample=None)
    assert torch.allclose(e.maps, hand, atol=1e-6)


def test_grad_cam_default_layer_is_the_last_conv_and_can_be_named() -> None:
    net, x = make_net("module"), images(2)
    e = explain(net, x, method="grad-cam", upsample=None)
    assert e.maps.shape == (2, 1, 8, 8) and "conv2" in e.notes["layer"]
    e1 = explain(net, x, method="grad-cam", layer="conv1", upsample=None)
    assert e1.maps.shape == (2, 1, 16, 16)


class Shared(nn.Module):
    """One ReLU module called after both convs: hooking it would see two outputs."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.c1 = nn.Conv2d(1, 4, 3, padding=1)
        self.c2 = nn.Conv2d(4, 4, 3, padding=1)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.relu(self.c2(self.relu(self.c1(x)))).mean((2, 3)))


@pytest.mark.parametrize("inplace", [False, True])
def test_grad_cam_default_layer_is_the_activation_after_the_last_conv(inplace: bool) -> None:
    def block_net() -> nn.Module:
        torch.manual_seed(0)
        return nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1),
            nn.Conv2d(4, 4, 3, padding=1),
            nn.BatchNorm2d(4),
            nn.ReLU(inplace=inplace),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(4, 3),
        ).eval()

    x = images(3, size=8)
    e = explain(block_net(), x, target=1, method="grad-cam", upsample=None)
    assert e.notes["layer"] == "3 (ReLU)"  # BatchNorm between the conv and its ReLU skipped
    named = explain(block_net(), x, target=1, method="grad-cam", layer="3", upsample=None)
    assert torch.equal(e.maps, named.maps)
    conv = explain(block_net(), x, target=1, method="grad-cam", layer="1", upsample=None)
    assert not torch.equal(e.maps, conv.maps)  # a different layer: the test can fail
    # a shared activation module runs twice: the default stays on the conv output
    shared = explain(Shared(), x, method="grad-cam", internal_batch_size=1)
    assert shared.notes["layer"] == "c2 (Conv2d)"


# ---------------------------------------------------------------------- guided backprop


@pytest.mark.parametrize("method", ["guided-backprop", "deconvolution"])
@pytest.mark.parametrize("style", ["functional", "method", "inplace"])
def test_guided_rules_treat_functional_relu_like_relu_modules(method: str, style: str) -> None:
    x, t = images(4), torch.tensor([0, 1, 2, 3])
    ref = explain(make_net("module"), x, t, method=method)
    other = explain(make_net(style), x, t, method=method)
    assert torch.allclose(other.maps, ref.maps, atol=1e-6)
    assert "2 relu calls" in other.notes["relu"]
    plain = explain(make_net(style), x, t, method="saliency", abs=False)
    assert not torch.allclose(other.maps, plain.maps, atol=1e-4)  # the rule changed something


def test_guided_backprop_hand_checked_on_one_relu() -> None:
    x = torch.tensor([-1.0, 2.0, 3.0], requires_grad=True)
    with ReluRule("guided"):
        y = F.relu(x)
    (g,) = torch.autograd.grad(y, x, torch.tensor([5.0, -1.0, 4.0]))
    assert g.tolist() == [0.0, 0.0, 4.0]  # input <= 0 or gradient <= 0: stopped


# ---------------------------------------------------------------------- occlusion


def test_occlusion_with_a_whole_image_window_equals_the_output_drop() -> None:
    net, x = make_net(), images(3)
    t = torch.tensor([0, 2, 4])
    for base in (0.0, 0.5):
        e = explain(net, x, t, method="occlusion", window=16, stride=16, baseline=base)
        with torch.no_grad():
            drop = net(x)[torch.arange(3), t] - net(torch.full_like(x, base))[torch.arange(3), t]
        assert torch.allclose(e.maps, drop.view(3, 1, 1, 1).expand_as(x), atol=1e-5)


def test_occlusion_averages_the_drops_of_the_windows_covering_each_pixel() -> None:
    net = nn.Sequential(nn.Flatten(), nn.Linear(9, 2))
    x = images(1, size=3)
    e = explain(net, x, target=0, method="occlusion", window=2, stride=1)
    f = net(x)[0, 0].item()
    total, count = torch.zeros(3, 3), torch.zeros(3, 3)
    for i in range(2):
        for j in range(2):
            occ = x.clone()
            occ[..., i : i + 2, j : j + 2] = 0.0
            total[i : i + 2, j : j + 2] += f - net(occ)[0, 0].item()
            count[i : i + 2, j : j + 2] += 1
    assert torch.allclose(e.maps[0, 0], total / count, atol=1e-5)


# ---------------------------------------------------------------------- lime and kernel shap


def linear_model() -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(5)
    net = nn.Sequential(nn.Flatten(), nn.Linear(36, 3))
    return net, net[1].weight.detach()


def test_lime_noise_recovers_the_weights_of_a_linear_model() -> None:
    net, weight = linear_model()
    x = images(2, size=6)
    e = explain(net, x, target=2, method="lime", perturbation="noise", samples=400, seed=0)
    # coefficients are logit per unit of pixel value: the weights themselves (ridge shrinks
    # them by about n / (n + alpha) = 0.998)
    for i in range(2):
        assert torch.allclose(e.maps[i].flatten(), weight[2], rtol=0.02, atol=0.02 * 0.4)
    assert bool((e.extras["r2"] > 0.999).all())


def test_lime_superpixels_recover_weight_times_contrast_of_a_linear_model() -> None:
    net, weight = linear_model()
    x = images(1, size=6)
    e = explain(net, x, target=0, method="lime", segments=36, samples=300, alpha=0.01)
    # one pixel per superpixel: switching pixel j off changes the logit by w_j * (x_j - 0)
    expected = weight[0] * x.flatten()
    assert torch.allclose(e.maps.flatten(), expected, atol=2e-3)


def test_kernel_shap_is_exact_on_a_linear_model_and_efficient() -> None:
    net, weight = linear_model()
    x = images(2, size=6)
    e = explain(net, x, target=1, method="kernel-shap", segments=9, samples=64, baseline=0.25)
    contrib = (weight[1] * (x.flatten(1) - 0.25)).view(2, 6, 6)
    for i in range(2):
        for r in range(3):
            for c in range(3):
                cell = contrib[i, 2 * r : 2 * r + 2, 2 * c : 2 * c + 2].sum()
                assert float(e.maps[i, 0, 2 * r, 2 * c]) == pytest.approx(float(cell), abs=1e-4)
    phi = e.maps[:, 0, ::2, ::2].flatten(1).sum(1)  # one pixel per superpixel
    assert torch.allclose(phi, e.scores - e.extras["base_value"], atol=1e-4)


def test_ridge_fit_weights_and_dual_form() -> None:
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(2, 20, 50, generator=gen)  # more features than samples: the dual form
    beta_true = torch.randn(2, 50, generator=gen)
    y = (z @ beta_true[..., None])[..., 0]
    beta, intercept, r2 = ridge_fit(z, y, torch.ones(2, 20), 1e-6)
    assert torch.allclose((z @ beta[..., None])[..., 0] + intercept[:, None], y, atol=1e-3)
    assert bool((r2 > 0.999).all())


# ---------------------------------------------------------------------- invariances


def run(method: str, net: nn.Module, x: torch.Tensor, **kw: object) -> torch.Tensor:
    return explain(net, x, method=method, seed=kw.pop("seed", 0), **FAST.get(method, {}), **kw).maps


@pytest.mark.parametrize("method", ALL)
def test_batch_size_and_layout_invariance_and_inputs_untouched(method: str) -> None:
    net, x = make_net(), images(4)
    before = x.clone()
    ref = run(method, net, x, target=torch.tensor([0, 1, 2, 3]))
    assert ref.dtype == torch.float32 and ref.device.type == "cpu"
    expected = (4, 1, 16, 16)
    assert tuple(ref.shape) == expected
    halves = torch.cat(
        [
            run(method, net, x[:1], target=torch.tensor([0])),
            run(method, net, x[1:], target=torch.tensor([1, 2, 3])),
        ]
    )
    assert torch.allclose(halves, ref, atol=1e-5, rtol=1e-4)
    cl = x.contiguous(memory_format=torch.channels_last)
    assert torch.allclose(run(method, net, cl, target=torch.tensor([0, 1, 2, 3])), ref, atol=1e-5)
    big = torch.zeros(4, 1, 20, 20)
    big[:, :, 2:18, 3:19] = x
    view = big[:, :, 2:18, 3:19]
    assert not view.is_contiguous()
    assert torch.allclose(run(method, net, view, target=torch.tensor([0, 1, 2, 3])), ref, atol=1e-5)
    assert torch.equal(x, before) and torch.equal(big[:, :, 2:18, 3:19], before)


def test_rgb_images_give_maps_shaped_like_the_images() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
    x = torch.rand(2, 3, 8, 8)
    for method in ALL:
        maps = run(method, net, x)
        layer = METHODS.get(method).kind == "layer"
        assert tuple(maps.shape) == ((2, 1, 8, 8) if layer else (2, 3, 8, 8)), method


@pytest.mark.parametrize("method", [*RANDOM, "integrated-gradients"])
def test_randomness_only_through_seed(method: str) -> None:
    net, x = make_net(), images(3)
    extra = {"baseline": "uniform"} if method == "integrated-gradients" else {}
    a = run(method, net, x, seed=7, **extra)
    b = run(method, net, x, seed=7, **extra)
    c = run(method, net, x, seed=8, **extra)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_deterministic_methods_ignore_the_seed_and_the_global_rng() -> None:
    net, x = make_net(), images(2)
    a = run("integrated-gradients", net, x, seed=1)
    torch.manual_seed(123)
    assert torch.equal(a, run("integrated-gradients", net, x, seed=2))


def test_random_methods_do_not_touch_the_global_rng() -> None:
    net, x = make_net(), images(2)
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    for method in [*RANDOM, "integrated-gradients"]:
        run(method, net, x, **({"baseline": "uniform"} if method == "integrated-gradients" else {}))
    assert torch.equal(torch.rand(3), expected)


# ---------------------------------------------------------------------- the result


def test_result_targets_normalisation_and_json() -> None:
    net, x = make_net(), images(3)
    e = explain(Model(net), x, method="saliency")
    assert torch.equal(e.targets, net(x).argmax(1))
    assert e.notes["normalize"].startswith("none")
    n = explain(net, x, target=2, method="input-x-gradient", normalize="max-abs")
    assert torch.allclose(n.maps.flatten(1).abs().amax(1), torch.ones(3))
    assert "largest" in n.notes["normalize"]
    p = explain(net, x, target=2, method="input-x-gradient", normalize="percentile")
    assert float(p.maps.abs().max()) <= 1.0
    payload = json.loads(e.to_json())
    assert payload["method"] == "saliency" and "maps" not in payload
    assert payload["params"]["abs"] is True and payload["backward_passes"] == 3
    e2 = explain(net, x, target=torch.tensor(1), method="saliency")
    assert e2.targets.tolist() == [1, 1, 1]


def test_perturbation_methods_run_on_gradient_free_models() -> None:
    model = Model(make_net(), differentiable=False)
    x = images(2)
    for method in ("occlusion", "lime", "kernel-shap"):
        e = explain(model, x, method=method, **FAST[method])
        assert e.backward_passes == 0 and e.maps.shape == x.shape


# ---------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("call", "mentions"),
    [
        (lambda n, x: explain(n, x, method="integrated-gradient"), ["did you mean", "integrated"]),
        (lambda n, x: explain(n, x, method="saliency", ab=True), ["'ab'", "did you mean 'abs'"]),
        (lambda n, x: explain(n, x, target=5), ["target=5", "[0, 4]"]),
        (lambda n, x: explain(n, x, target=-1), ["[0, 4]"]),
        (lambda n, x: explain(n, x, target=torch.tensor([0, 9])), ["[0, 4]", "rows [1]"]),
        (lambda n, x: explain(n, x, target=torch.tensor([0, 1, 2])), ["shape (3,)", "(2,)"]),
        (lambda n, x: explain(n, x, target=torch.tensor([0.0, 1.0])), [".long()"]),
        (lambda n, x: explain(n, x, method="grad-cam", layer="conv3"), ["conv3", "conv2"]),
        (lambda n, x: explain(n, x, method="grad-cam", layer="fc"), ["(B,K,h,w)", "fc"]),
        (lambda n, x: explain(n, x, method="occlusion", window=20), ["larger", "16"]),
        (lambda n, x: explain(n, x, rule="simpson"), ["rule", "gauss-legendre"]),
        (lambda n, x: explain(n, x, steps=0), ["steps", ">= 1"]),
        (lambda n, x: explain(n, x, baseline="black"), ["baseline", "zeros"]),
        (lambda n, x: explain(n, x, baseline=torch.zeros(3, 5, 5)), ["baseline", "(1, 16, 16)"]),
        (lambda n, x: explain(n, x, normalize="l2"), ["normalize", "max-abs"]),
        (lambda n, x: explain(n, x * 255), ["outside [0, 1]"]),
        (lambda n, x: explain(n, x[0]), ["unsqueeze(0)"]),
        (lambda n, x: explain(n, x, seed=-1), ["seed"]),
        (lambda n, x: explain(lambda v: v, x), ["robustcv.Model", "nn.Module"]),
        (lambda n, x: explain(n, x, method="lime", perturbation="blur"), ["perturbation"]),
        (lambda n, x: explain(n, x, method="kernel-shap", superpixels="quickshift"), ["grid"]),
    ],
)
def test_bad_input_names_the_problem_and_the_fix(call, mentions: list[str]) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError) as err:
        call(make_net("module"), images(2))
    for text in mentions:
        assert text.lower() in str(err.value).lower(), (text, str(err.value))


@pytest.mark.parametrize("method", [e.name for e in METHODS if e.obj.kind != "perturbation"])
def test_gradient_methods_on_a_gradient_free_model_name_the_alternatives(method: str) -> None:
    model = Model(make_net(), differentiable=False, name="net.onnx")
    with pytest.raises(GradientUnavailableError) as err:
        explain(model, images(2), method=method)
    text = str(err.value)
    assert "net.onnx" in text and "occlusion" in text and "lime" in text and "kernel-shap" in text


# ---------------------------------------------------------------------- cleanup after errors


class Exploding(SmallNet):
    """Raises in forward after ``fuse`` calls (so the runner's own first pass succeeds)."""

    def __init__(self, fuse: int) -> None:
        torch.manual_seed(0)
        super().__init__("module")
        self.fuse = fuse

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.fuse -= 1
        if self.fuse < 0:
            raise RuntimeError("boom")
        return super().forward(x)


def assert_clean(net: nn.Module, modes: list[bool]) -> None:
    assert all(p.requires_grad for p in net.parameters())
    assert [m.training for m in net.modules()] == modes
    assert all(not m._forward_hooks and not m._backward_hooks for m in net.modules())
    assert torch._C._len_torch_function_stack() == 0
    x = torch.tensor([-1.0, 2.0], requires_grad=True)
    (g,) = torch.autograd.grad(F.relu(x), x, torch.tensor([1.0, -1.0]))
    assert g.tolist() == [0.0, -1.0]  # the plain relu gradient again


@pytest.mark.parametrize("method", ALL)
def test_no_hooks_modes_flags_or_routing_left_behind_after_an_error(method: str) -> None:
    net = Exploding(fuse=1)
    net.train()
    net.conv2.eval()  # a mixed state, restored exactly
    modes = [m.training for m in net.modules()]
    with pytest.raises(RuntimeError, match="boom"):
        explain(net, images(2), method=method, **FAST.get(method, {}))
    assert_clean(net, modes)


def test_no_hooks_left_behind_after_a_bad_layer_and_after_success() -> None:
    net = make_net("module")
    modes = [m.training for m in net.modules()]
    with pytest.raises(InputError):
        explain(net, images(2), method="grad-cam", layer="fc")
    assert_clean(net, modes)
    for method in ALL:
        run(method, net, images(2))
        assert_clean(net, modes)


def test_grad_cam_says_when_the_layer_gives_blank_maps_and_what_to_try() -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(1, 3, 3, padding=1)
    net = nn.Sequential(conv, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 2))
    with torch.no_grad():
        conv.bias.fill_(-10.0)  # the conv output is negative everywhere: relu'd CAMs are 0
        conv.weight.clamp_(-0.1, 0.1)
    e = explain(net, images(2, size=8), target=0, method="grad-cam", layer="0")
    assert float(e.maps.abs().max()) == 0.0
    assert "2 of 2 maps" in e.notes["warning"] and "layer='1'" in e.notes["warning"]
    act = explain(net, images(2, size=8), target=0, method="grad-cam")  # default: the ReLU
    assert "1 (ReLU)" in act.notes["layer"] and "earlier layer" in act.notes["warning"]
    assert "warning" not in explain(make_net("module"), images(2), method="grad-cam").notes


def test_model_and_data_that_do_not_fit_get_the_shared_message() -> None:
    from robustcv.core import ModelDataMismatchError

    net = make_net("module")  # 1-channel 16x16
    with pytest.raises(ModelDataMismatchError, match="1-channel") as info:
        explain(net, torch.rand(2, 3, 16, 16), method="saliency")
    assert "3-channel" in str(info.value)


def test_blur_baseline_works_per_channel_on_rgb() -> None:
    from robustcv.explanations.gradients import gaussian_blur

    x = torch.rand(2, 3, 12, 12, generator=torch.Generator().manual_seed(4))
    blurred = gaussian_blur(x, 1.5)
    for ch in range(3):  # each channel blurred alone gives the same
        assert torch.allclose(blurred[:, ch : ch + 1], gaussian_blur(x[:, ch : ch + 1], 1.5))
    assert not torch.allclose(blurred[:, 0], blurred[:, 1])  # channels are not mixed
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 12 * 12, 4))
    e = explain(net, x, target=0, method="integrated-gradients", baseline="blur", steps=8)
    assert e.maps.shape == x.shape
