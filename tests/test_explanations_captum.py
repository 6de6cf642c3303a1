"""Reference check: robustcv.explain against Captum 0.9 (the dev extra) on a small CNN.

The network writes its ReLUs functionally (``F.relu``); Captum's guided backprop and
deconvolution only see ``nn.ReLU`` modules, so they get a twin with the same weights written
with modules. Tolerance: max |robustcv - Captum| <= 1e-4 of max |Captum| per image (the issue's
parity bar). Captum's ``riemann_trapezoid`` weights sum to (n-1)/n, so that rule is compared after
rescaling by n/(n-1) (and the unscaled difference is asserted to be that factor, so the test
notices if either side changes).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from robustcv.explanations import explain

captum_attr = pytest.importorskip("captum.attr")
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # Captum's notes on its hooks

Setup = tuple[nn.Module, nn.Module, torch.Tensor, torch.Tensor]


class Functional(nn.Module):
    def __init__(self, modules: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv1 = nn.Conv2d(1, 6, 3, padding=1)
        self.conv2 = nn.Conv2d(6, 8, 3, padding=1)
        self.fc = nn.Linear(8 * 4 * 4, 5)
        self.modules_ = modules
        self.r1, self.r2 = nn.ReLU(), nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.r1(self.conv1(x)) if self.modules_ else F.relu(self.conv1(x))
        a = F.max_pool2d(a, 2)
        b = self.r2(self.conv2(a)) if self.modules_ else torch.relu(self.conv2(a))
        return self.fc(F.max_pool2d(b, 2).flatten(1))


def rel(ours: torch.Tensor, ref: torch.Tensor) -> float:
    ours, ref = ours.detach(), ref.detach()
    num = (ours - ref).flatten(1).abs().amax(1)
    den = ref.flatten(1).abs().amax(1).clamp_min(1e-12)
    return float((num / den).max())


@pytest.fixture(scope="module")
def setup() -> Setup:
    net, twin = Functional().eval(), Functional(modules=True).eval()
    twin.load_state_dict(net.state_dict())
    x = torch.rand(6, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([0, 1, 2, 3, 4, 0])
    return net, twin, x, t


def test_gradient_methods_equal_captum(setup: Setup) -> None:
    net, _, x, t = setup
    ours = explain(net, x, t, "saliency").maps
    assert rel(ours, captum_attr.Saliency(net).attribute(x, target=t)) <= 1e-4
    ours = explain(net, x, t, "input-x-gradient").maps
    assert rel(ours, captum_attr.InputXGradient(net).attribute(x, target=t)) <= 1e-4


@pytest.mark.parametrize(
    ("rule", "theirs"),
    [
        ("gauss-legendre", "gausslegendre"),
        ("riemann-left", "riemann_left"),
        ("riemann-right", "riemann_right"),
        ("riemann-middle", "riemann_middle"),
    ],
)
def test_integrated_gradients_equal_captum(setup: Setup, rule: str, theirs: str) -> None:
    net, _, x, t = setup
    e = explain(net, x, t, "integrated-gradients", steps=50, rule=rule)
    ref = captum_attr.IntegratedGradients(net).attribute(x, target=t, n_steps=50, method=theirs)
    assert rel(e.maps, ref) <= 1e-4


def test_trapezoid_differs_from_captum_by_its_weight_sum(setup: Setup) -> None:
    net, _, x, t = setup
    n = 50
    e = explain(net, x, t, "integrated-gradients", steps=n, rule="riemann-trapezoid")
    ref = captum_attr.IntegratedGradients(net).attribute(
        x, target=t, n_steps=n, method="riemann_trapezoid"
    )
    assert rel(e.maps, ref * n / (n - 1)) <= 1e-4
    assert rel(e.maps, ref) == pytest.approx(1 / (n - 1), rel=1e-2)


def test_occlusion_equals_captum(setup: Setup) -> None:
    net, _, x, t = setup
    ours = explain(net, x, t, "occlusion", window=4, stride=2, baseline=0.0).maps
    ref = captum_attr.Occlusion(net).attribute(
        x, target=t, sliding_window_shapes=(1, 4, 4), strides=(1, 2, 2), baselines=0.0
    )
    assert rel(ours, ref) <= 1e-4


@pytest.mark.parametrize("name", ["GuidedBackprop", "Deconvolution"])
def test_guided_rules_on_functional_relu_equal_captum_on_module_twin(
    setup: Setup, name: str
) -> None:
    net, twin, x, t = setup
    method = "guided-backprop" if name == "GuidedBackprop" else "deconvolution"
    ours = explain(net, x, t, method).maps
    cls = getattr(captum_attr, name)
    assert rel(ours, cls(twin).attribute(x, target=t)) <= 1e-4
    # Captum on the functional network misses the relus: the comparison can fail
    assert rel(ours, cls(net).attribute(x, target=t)) > 1e-2


def test_grad_cam_equals_captum(setup: Setup) -> None:
    net, _, x, t = setup
    ours = explain(net, x, t, "grad-cam", layer="conv2").maps
    cam = captum_attr.LayerGradCam(net, net.conv2).attribute(x, target=t, relu_attributions=True)
    ref = captum_attr.LayerAttribution.interpolate(cam, (16, 16), "bilinear")
    assert rel(ours, ref) <= 1e-4
