"""robustcv.Model: preprocessing, eval-mode handling, pass counting, features, output checks."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from robustcv.core.errors import GradientUnavailableError
from robustcv.core.model import Model, PassCounts, ProbabilityOutputWarning


def _seed(n: int = 0) -> None:
    torch.manual_seed(n)


def _images(b: int = 4, c: int = 1, h: int = 4, w: int = 4, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, c, h, w, generator=torch.Generator().manual_seed(seed))


class Recorder(nn.Module):
    """Records its input; returns fixed logits derived from it (never probabilities)."""

    def __init__(self, num_classes: int = 3) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.detach().clone())
        flat = x.flatten(1)
        return torch.stack([flat.sum(1) * (k + 1) - 7.0 for k in range(self.num_classes)], 1)


class ModeProbe(nn.Module):
    """Records ``self.training`` of itself at every call."""

    def __init__(self) -> None:
        super().__init__()
        self.modes: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.modes.append(self.training)
        return x


def _linear_net(in_features: int = 16, classes: int = 3) -> nn.Module:
    _seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(in_features, classes))


# ---------------------------------------------------------------------------- preprocessing


def test_default_preprocessing_is_identity():
    net = Recorder()
    model = Model(net)
    x = _images()
    model(x)
    assert torch.equal(net.seen[0], x)


def test_input_range_and_per_channel_mean_std_match_hand_computation():
    net = Recorder()
    mean = [120.0, 110.0, 100.0]
    std = [60.0, 50.0, 40.0]
    model = Model(net, input_range=(0, 255), mean=mean, std=std)
    x = _images(b=2, c=3, h=2, w=3)
    model(x)
    got = net.seen[0]
    # hand computation, element by element
    expected = torch.empty_like(x)
    for b in range(2):
        for c in range(3):
            for i in range(2):
                for j in range(3):
                    v = float(x[b, c, i, j]) * 255.0
                    expected[b, c, i, j] = (v - mean[c]) / std[c]
    assert torch.allclose(got, expected, atol=1e-4, rtol=0)
    # a pixel of value 0 in channel 2 maps to -100/40 exactly
    z = torch.zeros(1, 3, 1, 1)
    model(z)
    assert net.seen[-1].flatten().tolist() == pytest.approx([-2.0, -2.2, -2.5])


def test_input_range_minus_one_to_one():
    net = Recorder()
    model = Model(net, input_range=(-1.0, 1.0))
    x = torch.tensor([0.0, 0.25, 0.5, 1.0]).view(1, 1, 2, 2)
    model(x)
    assert net.seen[0].flatten().tolist() == pytest.approx([-1.0, -0.5, 0.0, 1.0])


def test_scalar_mean_std_broadcast_over_channels():
    net = Recorder()
    model = Model(net, mean=0.5, std=0.25)
    x = _images(b=2, c=3)
    model(x)
    assert torch.allclose(net.seen[0], (x - 0.5) / 0.25, atol=1e-6)


def test_mean_only_and_std_only():
    net = Recorder()
    x = _images(b=1, c=2)
    Model(net, mean=[0.1, 0.2])(x)
    assert torch.allclose(net.seen[-1], x - torch.tensor([0.1, 0.2]).view(1, 2, 1, 1))
    Model(net, std=torch.tensor([2.0, 4.0]))(x)
    assert torch.allclose(net.seen[-1], x / torch.tensor([2.0, 4.0]).view(1, 2, 1, 1))


def test_preprocess_method_matches_forward_input():
    net = Recorder()
    model = Model(net, input_range=(0, 255), mean=[100.0], std=[50.0])
    x = _images()
    model(x)
    assert torch.allclose(model.preprocess(x), net.seen[0])


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"std": [1.0, 0.0, 1.0]}, r"std must be positive"),
        ({"std": -1.0}, r"std must be positive"),
        ({"mean": [float("nan")]}, r"mean contains NaN or infinite"),
        ({"std": [float("inf")]}, r"std contains NaN or infinite"),
        ({"mean": []}, r"mean is empty"),
        ({"input_range": (1.0, 0.0)}, r"input_range must be \(low, high\) with high > low"),
        ({"input_range": (0.0, 0.0)}, r"input_range must be"),
        ({"input_range": (0.0, 1.0, 2.0)}, r"input_range must be"),
        ({"num_classes": 1}, r"num_classes must be an int >= 2"),
        ({"num_classes": True}, r"num_classes must be an int >= 2"),
        ({"device": "nonsense"}, r"unknown device 'nonsense'"),
        ({"features": 3}, r"features must be a layer name, a callable or None"),
    ],
)
def test_bad_constructor_arguments(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        Model(_linear_net(), **kwargs)


def test_non_callable_net_rejected():
    with pytest.raises(ValueError, match=r"net must be an nn\.Module or a callable.*got int"):
        Model(42)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- input handling


def test_input_is_validated():
    model = Model(_linear_net())
    with pytest.raises(ValueError, match=r"outside \[0, 1\]: divide by 255"):
        model(torch.full((1, 1, 4, 4), 200.0))
    with pytest.raises(ValueError, match=r"unsqueeze"):
        model(torch.rand(1, 4, 4))
    # validate=False skips the contract check
    out = model(torch.full((1, 1, 4, 4), 2.0), validate=False)
    assert out.shape == (1, 3)


def test_input_tensors_never_mutated():
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16, 3))
    model = Model(
        net, input_range=(0, 255), mean=[1.0, 2.0, 3.0], std=[2.0, 3.0, 4.0], features="1"
    )
    x = _images(b=5, c=3)
    before = x.clone()
    model(x)
    model.predict_logits(x, batch_size=2)
    model.predict(x)
    model.features(x)
    model.preprocess(x)
    xg = x.clone().requires_grad_(True)
    model(xg).sum().backward()
    assert torch.equal(x, before)
    assert torch.equal(xg.detach(), before)
    assert xg.is_leaf and xg.grad is not None and xg.grad.shape == x.shape


def test_gradient_flows_through_preprocessing():
    # d/dx of sum((255 x - m) / s) is 255 / s per channel
    net = Recorder(num_classes=2)
    model = Model(net, input_range=(0, 255), mean=[10.0, 20.0], std=[5.0, 17.0])
    x = _images(b=2, c=2).requires_grad_(True)
    logits = model(x)
    logits[:, 0].sum().backward()
    assert torch.allclose(x.grad[:, 0], torch.full((2, 4, 4), 255.0 / 5.0))
    assert torch.allclose(x.grad[:, 1], torch.full((2, 4, 4), 255.0 / 17.0))


def test_predict_logits_in_batches_equals_one_big_batch():
    _seed(1)
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 16, 5)
    )
    model = Model(net, mean=0.3, std=0.2)
    x = _images(b=11)
    with torch.no_grad():
        big = model(x)
    for bs in (1, 3, 4, 11, 256):
        got = model.predict_logits(x, batch_size=bs)
        assert got.shape == (11, 5)
        assert not got.requires_grad
        assert torch.allclose(got, big, atol=1e-6, rtol=1e-6)
        pred = model.predict(x, batch_size=bs)
        assert pred.dtype == torch.int64
        assert torch.equal(pred, big.argmax(1))


def test_predict_logits_validates_and_checks_batch_size():
    model = Model(_linear_net())
    with pytest.raises(ValueError, match=r"batch_size must be >= 1, got 0"):
        model.predict_logits(_images(), batch_size=0)
    with pytest.raises(ValueError, match=r"dtype torch\.uint8"):
        model.predict(torch.zeros(2, 1, 4, 4, dtype=torch.uint8))


def test_predict_logits_runs_without_gradients():
    model = Model(_linear_net())
    x = _images().requires_grad_(True)
    out = model.predict_logits(x)
    assert not out.requires_grad
    assert model.counts() == PassCounts(4, 0)


# ---------------------------------------------------------------------------- outputs


def test_num_classes_inferred_from_first_output():
    model = Model(_linear_net(classes=7))
    with pytest.raises(ValueError, match=r"num_classes is not known yet"):
        _ = model.num_classes
    model(_images(b=2))
    assert model.num_classes == 7
    assert "num_classes=7" in repr(model)


def test_num_classes_mismatch_raises():
    model = Model(_linear_net(classes=3), num_classes=5)
    assert model.num_classes == 5
    with pytest.raises(ValueError, match=r"returned 3 logits but num_classes=5"):
        model(_images())


def test_output_must_be_a_2d_tensor_per_image():
    with pytest.raises(ValueError, match=r"returned a tuple; it must return a logits tensor"):
        Model(lambda x: (x.flatten(1), None))(_images())
    with pytest.raises(ValueError, match=r"returned shape \(4,\) for a batch of 4"):
        Model(lambda x: x.flatten(1).sum(1))(_images())
    with pytest.raises(ValueError, match=r"returned shape \(1, 3\) for a batch of 4"):
        Model(lambda x: x.flatten(1)[:1, :3])(_images())
    with pytest.raises(ValueError, match=r"fewer than 2 outputs"):
        Model(lambda x: x.flatten(1)[:, :1])(_images())


def test_probability_outputs_warn_once():
    _seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 4), nn.Softmax(dim=1))
    model = Model(net, name="softmaxed")
    with pytest.warns(ProbabilityOutputWarning, match=r"'softmaxed' outputs rows that sum to 1"):
        model(_images())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model(_images(seed=1))
    assert not [w for w in caught if issubclass(w.category, ProbabilityOutputWarning)]


def test_logits_do_not_warn():
    model = Model(_linear_net())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model(_images())
    assert not [w for w in caught if issubclass(w.category, ProbabilityOutputWarning)]


def test_non_negative_outputs_not_summing_to_one_do_not_warn():
    model = Model(lambda x: torch.full((x.shape[0], 4), 0.5))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model(_images())
    assert not [w for w in caught if issubclass(w.category, ProbabilityOutputWarning)]


# ---------------------------------------------------------------------------- eval mode


def _mode_net() -> nn.Module:
    _seed(0)
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(16, 8),
        nn.BatchNorm1d(8),
        nn.Dropout(0.5),
        ModeProbe(),
        nn.Linear(8, 3),
    )


def _modes(net: nn.Module) -> dict[str, bool]:
    return {name: m.training for name, m in net.named_modules()}


def test_train_mode_net_runs_in_eval_and_is_restored():
    net = _mode_net()
    net.train()
    bn = net[2]
    running = bn.running_mean.clone()
    model = Model(net)
    x = _images(b=8)
    out1 = model(x)
    out2 = model(x)
    # eval mode: dropout off (deterministic), BN statistics untouched
    assert torch.equal(out1, out2)
    assert torch.equal(bn.running_mean, running)
    assert net[4].modes == [False, False]
    assert all(_modes(net).values())


def test_mixed_modes_restored_per_submodule():
    net = _mode_net()
    net.train()
    net[2].eval()  # frozen BN inside a training net
    net[4].eval()
    before = _modes(net)
    assert before[""] is True and before["2"] is False
    model = Model(net)
    model(_images(b=3))
    assert _modes(net) == before
    assert net[4].modes == [False]

    # parent in eval, one child in train mode
    net.eval()
    net[3].train()
    before = _modes(net)
    model(_images(b=3))
    assert _modes(net) == before
    assert net[3].training is True
    assert net[4].modes == [False, False]


def test_eval_net_stays_eval():
    net = _mode_net().eval()
    Model(net).predict(_images(b=5), batch_size=2)
    assert not any(_modes(net).values())


def test_mode_restored_when_forward_raises():
    class Boom(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("boom")

    net = nn.Sequential(nn.Linear(2, 2), Boom()).train()
    net[0].eval()
    before = _modes(net)
    with pytest.raises(RuntimeError, match="boom"):
        Model(net)(_images(b=1, h=1, w=2))
    assert _modes(net) == before


def test_eval_mode_context_manager_restores():
    net = _mode_net().train()
    model = Model(net)
    with model.eval_mode():
        assert not any(_modes(net).values())
    assert all(_modes(net).values())


# ---------------------------------------------------------------------------- pass counting


def test_forward_counts_images():
    model = Model(_linear_net())
    assert model.counts() == PassCounts(0, 0)
    model(_images(b=4))
    model(_images(b=3))
    model.predict(_images(b=10), batch_size=4)
    assert model.counts() == PassCounts(17, 0)
    model.reset_counts()
    assert model.counts() == PassCounts(0, 0)


def test_no_backward_counted_without_input_gradients():
    net = _linear_net()
    model = Model(net)
    x = _images(b=4)  # parameters have gradients, the input does not
    model(x).sum().backward()
    assert net[1].weight.grad is not None
    assert model.counts() == PassCounts(4, 0)


def test_backward_counts_one_per_image_per_pass():
    model = Model(_linear_net())
    x = _images(b=4).requires_grad_(True)
    model(x).sum().backward()
    assert model.counts() == PassCounts(4, 4)
    for _ in range(2):
        x.grad = None
        model(x).sum().backward()
    assert model.counts() == PassCounts(12, 12)


def test_backward_not_cumulative_over_repeated_forwards_of_same_leaf():
    model = Model(_linear_net())
    x = _images(b=5).requires_grad_(True)
    for _ in range(3):
        out = model(x)  # three graphs from the same leaf, only the last is backpropagated
    out.sum().backward()
    assert model.counts() == PassCounts(15, 5)
    # a later single forward+backward costs exactly one more pass per image
    snap = model.counts()
    model(x).sum().backward()
    assert model.counts() - snap == PassCounts(5, 5)


def test_backward_counted_with_autograd_grad_and_unvalidated_calls():
    model = Model(_linear_net())
    x = _images(b=3).requires_grad_(True)
    (g,) = torch.autograd.grad(model(x, validate=False).sum(), x)
    assert g.shape == x.shape
    assert model.counts() == PassCounts(3, 3)


def test_backward_through_non_leaf_input():
    model = Model(_linear_net())
    delta = torch.zeros(2, 1, 4, 4, requires_grad=True)
    x = (_images(b=2) * 0.5 + delta).clamp(0, 1)
    model(x).sum().backward()
    assert delta.grad is not None
    assert model.counts() == PassCounts(2, 2)


def test_no_grad_forward_registers_no_backward_hook():
    model = Model(_linear_net())
    x = _images(b=2).requires_grad_(True)
    with torch.no_grad():
        out = model(x)
    assert not out.requires_grad
    assert model.counts() == PassCounts(2, 0)


def test_pass_counts_subtract():
    assert PassCounts(10, 4) - PassCounts(3, 1) == PassCounts(7, 3)


# ---------------------------------------------------------------------------- gradients


def test_require_gradients_with_differentiable_false():
    model = Model(_linear_net(), differentiable=False, name="onnx-thing")
    with pytest.raises(
        GradientUnavailableError,
        match=r"the PGD attack needs input gradients, "
        r"but model 'onnx-thing' is gradient-free",
    ):
        model.require_gradients("the PGD attack")
    assert issubclass(GradientUnavailableError, ValueError)
    # forward without input gradients is fine
    assert model(_images()).shape == (4, 3)
    with pytest.raises(GradientUnavailableError, match=r"computing input gradients"):
        model(_images().requires_grad_(True))
    assert "differentiable=False" in repr(model)


def test_require_gradients_passes_when_differentiable():
    Model(_linear_net()).require_gradients("the PGD attack")


# ---------------------------------------------------------------------------- features


class Body(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        _seed(2)
        self.body = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.body(x)).flatten(1))


def test_features_by_layer_name_match_manual_hook():
    net = Body()
    model = Model(net, features="pool", mean=0.5, std=0.5)
    x = _images(b=3)
    logits, feats = model.logits_and_features(x)

    captured = []
    handle = net.pool.register_forward_hook(lambda _m, _i, out: captured.append(out))
    with torch.no_grad():
        ref_logits = net((x - 0.5) / 0.5)
    handle.remove()
    assert feats.shape == (3, 8)
    assert torch.allclose(feats, captured[0].flatten(1), atol=1e-6)
    assert torch.allclose(logits, ref_logits, atol=1e-6)
    assert torch.allclose(model.features(x), feats)
    assert model.has_features
    # one forward pass per image per call, and the hook is removed afterwards
    assert model.counts().forward == 6
    assert not net.pool._forward_hooks


def test_features_by_nested_layer_name():
    net = Body()
    model = Model(net, features="body.1")
    x = _images(b=2)
    feats = model.features(x)
    assert torch.allclose(feats, torch.relu(net.body[0](x)).flatten(1), atol=1e-6)


def test_features_by_callable():
    net = Body()

    def penultimate(n: nn.Module, x_pre: torch.Tensor) -> torch.Tensor:
        return n.pool(n.body(x_pre))

    model = Model(net, features=penultimate, input_range=(0, 2))
    x = _images(b=2)
    logits, feats = model.logits_and_features(x)
    with torch.no_grad():
        ref = net.pool(net.body(x * 2)).flatten(1)
        assert torch.allclose(logits, net(x * 2), atol=1e-6)
    assert feats.shape == (2, 8)
    assert torch.allclose(feats, ref, atol=1e-6)
    assert model.num_classes == 3


def test_bad_layer_name_lists_known_names():
    with pytest.raises(
        ValueError,
        match=r"no submodule 'poool'; known names include "
        r"\['body', 'body\.0', 'body\.1', 'pool', 'head'\]",
    ):
        Model(Body(), features="poool")


def test_layer_name_needs_module():
    with pytest.raises(ValueError, match=r"layer name needs an nn\.Module"):
        Model(lambda x: x.flatten(1), features="fc")


def test_layer_not_called_is_reported():
    net = Body()
    net.unused = nn.Linear(2, 2)
    model = Model(net, features="unused")
    with pytest.raises(ValueError, match=r"layer 'unused' was not called"):
        model.features(_images(b=1))


def test_no_features_configured():
    model = Model(_linear_net(), name="plain")
    assert not model.has_features
    with pytest.raises(ValueError, match=r"model 'plain' exposes no features"):
        model.features(_images())


# ---------------------------------------------------------------------------- device


def test_device_defaults_to_parameter_device_and_cpu_for_callables():
    assert Model(_linear_net()).device == torch.device("cpu")
    assert Model(lambda x: x.flatten(1)).device == torch.device("cpu")
    assert Model(nn.Flatten()).device == torch.device("cpu")


def test_buffer_only_module_device():
    class BufOnly(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("w", torch.ones(16, 3))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.flatten(1) @ self.w - 1.0

    model = Model(BufOnly(), device=torch.device("cpu"))
    assert model.device == torch.device("cpu")
    assert model(_images()).shape == (4, 3)


def test_explicit_device_moves_module_and_outputs_on_cpu():
    net = _linear_net()
    model = Model(net, device="cpu", mean=0.5)
    assert model.device == torch.device("cpu")
    assert net[1].weight.device == torch.device("cpu")
    out = model.predict_logits(_images())
    assert out.device == torch.device("cpu")
    assert "device=cpu" in repr(model)


def test_parameter_free_callable_works():
    weight = torch.arange(48, dtype=torch.float32).view(16, 3) / 48 - 0.3
    model = Model(lambda x: x.flatten(1) @ weight, name="fn")
    x = _images(b=2)
    assert torch.allclose(model(x), x.flatten(1) @ weight)
    with model.eval_mode():  # no-op for callables
        pass
    assert model.name == "fn"


def test_default_name_is_class_name():
    assert Model(_linear_net()).name == "Sequential"


# ---------------------------------------------------------------------------- channels_last


def _conv_net(c: int = 3) -> nn.Module:
    _seed(3)
    return nn.Sequential(
        nn.Conv2d(c, 8, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(8 * 5 * 4, 4),
    )


@pytest.mark.parametrize("batch", [1, 5])
def test_channels_last_matches_the_default_layout(batch: int) -> None:
    import copy

    base = _conv_net()
    plain = Model(copy.deepcopy(base), mean=[0.4, 0.5, 0.6], std=0.25)
    fast = Model(copy.deepcopy(base), mean=[0.4, 0.5, 0.6], std=0.25, channels_last=True)
    assert fast.net[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert not plain.net[0].weight.is_contiguous(memory_format=torch.channels_last)
    x = _images(batch, 3, 10, 9, seed=batch)
    pre = fast.preprocess(x)
    assert pre.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(pre, plain.preprocess(x))  # same values, another layout
    grads = []
    for model in (plain, fast):
        xi = x.clone().requires_grad_(True)
        out = model.logits(xi)
        (g,) = torch.autograd.grad(out.logsumexp(1).sum(), xi)
        grads.append((out.detach(), g))
    torch.testing.assert_close(grads[1][0], grads[0][0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(grads[1][1], grads[0][1], atol=1e-5, rtol=1e-5)
    assert fast.counts().backward == batch  # the pass counting still sees the input


def test_channels_last_must_be_a_bool() -> None:
    from robustcv.core.errors import InputError

    with pytest.raises(InputError, match="channels_last must be True or False"):
        Model(_conv_net(), channels_last="yes")  # type: ignore[arg-type]
    with pytest.raises(InputError, match=r"channels_last=True needs an nn\.Module"):
        Model(lambda z: z.flatten(1)[:, :3], channels_last=True)


def test_load_model_passes_channels_last_to_zoo_models() -> None:
    from robustcv.models import load_model

    model = load_model("zoo:fmnist-cnn", channels_last=True)
    assert model.channels_last
    convs = [m for m in model.net.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)
    plain = load_model("zoo:fmnist-cnn")
    x = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(model(x), plain(x), atol=1e-5, rtol=1e-5)
