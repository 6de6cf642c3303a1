"""load_model for every spec kind, safe weight loading, and preprocessing through load_model."""

from __future__ import annotations

import importlib.util
import sys
import textwrap
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from robustcv.attacks import attack
from robustcv.core.errors import GradientUnavailableError, InputError
from robustcv.core.model import Model
from robustcv.models import OnnxNet, load_model, load_weights, read_state_dict


@pytest.fixture(autouse=True)
def _one_thread_for_tiny_work(request: pytest.FixtureRequest) -> Iterator[None]:
    """Tiny tensors run faster on one thread (and do not spin against other CPU users)."""
    if request.node.get_closest_marker("fmnist") is not None:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


# A small CNN for 3x8x8 images and 5 classes. The same source is exec'd for the reference
# network and written to disk for the `file.py:factory` / `package.module:factory` specs.
NET_SRC = textwrap.dedent(
    """
    from torch import nn


    class TinyCNN(nn.Module):
        def __init__(self, width=4):
            super().__init__()
            self.conv = nn.Sequential(
                nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten()
            )
            self.embed = nn.Sequential(nn.Linear(width * 16, 16), nn.ReLU())
            self.head = nn.Linear(16, 5)

        def forward(self, x):
            return self.head(self.embed(self.conv(x)))


    def factory():
        return TinyCNN()


    def wide():
        return TinyCNN(width=6)


    def not_a_module():
        return 42


    NOT_CALLABLE = 3
    """
)


pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:torch.jit")

_MODULE: dict[str, Any] = {}


@pytest.fixture(scope="module", autouse=True)
def _reference_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Import NET_SRC from a real file (torch.jit.script needs the source)."""
    path = tmp_path_factory.mktemp("refnet") / "rcv_reference_net.py"
    path.write_text(NET_SRC)
    spec = importlib.util.spec_from_file_location("rcv_reference_net", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["rcv_reference_net"] = module
    spec.loader.exec_module(module)
    _MODULE.update(vars(module))
    yield
    sys.modules.pop("rcv_reference_net", None)
    _MODULE.clear()


def _ns() -> dict[str, Any]:
    return _MODULE


def _reference(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return _ns()["factory"]().eval()


def _images(n: int = 10, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 3, 8, 8, generator=torch.Generator().manual_seed(seed))


def _ref_logits(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return net(x)


def _model_logits(model: Model, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x)


@pytest.fixture
def net_file(tmp_path: Path) -> Path:
    path = tmp_path / "tinynet.py"
    path.write_text(NET_SRC)
    return path


def _save_weights(net: nn.Module, path: Path) -> Path:
    if path.suffix == ".safetensors":
        save_file({k: v.detach().contiguous() for k, v in net.state_dict().items()}, str(path))
    else:
        torch.save(net.state_dict(), path)
    return path


def _export_onnx(net: nn.Module, path: Path, *, dynamic: bool) -> Path:
    kwargs: dict[str, Any] = {"input_names": ["x"], "output_names": ["logits"]}
    if dynamic:
        kwargs["dynamic_axes"] = {"x": {0: "batch"}, "logits": {0: "batch"}}
    with warnings.catch_warnings():  # the legacy exporter warns that it is deprecated
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (_images(4),), str(path), dynamo=False, **kwargs)
    return path


# ----------------------------------------------------------------------------- spec kinds


@pytest.mark.parametrize("how,suffix", [("script", ".pt"), ("trace", ".pt"), ("script", ".ts")])
def test_torchscript_same_logits(tmp_path: Path, how: str, suffix: str) -> None:
    net = _reference()
    x = _images()
    scripted = torch.jit.script(net) if how == "script" else torch.jit.trace(net, _images(2))
    path = tmp_path / f"model{suffix}"
    scripted.save(str(path))
    model = load_model(path)
    assert isinstance(model, Model)
    assert model.differentiable
    assert model.name == path.name
    out = _model_logits(model, x)
    assert out.shape == (10, 5)
    assert torch.allclose(out, _ref_logits(net, x), atol=1e-5)
    assert model.num_classes == 5
    # a str spec works as well as a Path
    assert torch.allclose(_model_logits(load_model(str(path)), x), out, atol=0)


@pytest.mark.parametrize("dynamic", [True, False], ids=["dynamic-batch", "fixed-batch-4"])
def test_onnx_same_logits(tmp_path: Path, dynamic: bool) -> None:
    net = _reference()
    path = _export_onnx(net, tmp_path / "model.onnx", dynamic=dynamic)
    model = load_model(path)
    assert isinstance(model.net, OnnxNet)
    assert model.net.fixed_batch == (None if dynamic else 4)
    assert model.differentiable is False
    for n in (10, 4, 3, 1):  # 10 = 4 + 4 + 2 (padded chunk), 3 < fixed batch
        x = _images(n, seed=n)
        out = _model_logits(model, x)
        assert out.shape == (n, 5)
        assert out.dtype == torch.float32
        assert torch.allclose(out, _ref_logits(net, x), atol=1e-5)


def test_onnx_fixed_batch_chunks_and_pads_without_mixing_rows(tmp_path: Path) -> None:
    net = _reference()
    path = _export_onnx(net, tmp_path / "fixed.onnx", dynamic=False)
    onnx_net = OnnxNet(path)
    calls: list[tuple[int, ...]] = []
    run = onnx_net._run

    def spy(arr: Any) -> Any:
        calls.append(tuple(arr.shape))
        return run(arr)

    onnx_net._run = spy  # type: ignore[method-assign]
    x = _images(10, seed=3)
    out = onnx_net(x)
    assert calls == [(4, 3, 8, 8)] * 3
    # each row depends only on its own image (padding rows are dropped)
    for i in range(10):
        assert torch.allclose(out[i], _ref_logits(net, x[i : i + 1])[0], atol=1e-5)


def test_onnx_refuses_input_gradients(tmp_path: Path) -> None:
    model = load_model(_export_onnx(_reference(), tmp_path / "m.onnx", dynamic=True))
    x = _images(4).requires_grad_(True)
    with pytest.raises(GradientUnavailableError) as info:
        model(x)
    assert isinstance(info.value, ValueError)
    msg = str(info.value)
    assert "gradient" in msg and "m.onnx" in msg and "ONNX" in msg
    with pytest.raises(GradientUnavailableError, match="PGD"):
        model.require_gradients("the PGD attack")
    # an attack that needs gradients is refused up front, naming the attacks that work
    with pytest.raises(InputError, match=r"needs input gradients.*square"):
        attack(model, _images(4), torch.zeros(4, dtype=torch.long), "pgd", eps=0.1, steps=2)
    # without gradients it still works
    assert model(_images(4)).shape == (4, 5)


@pytest.mark.parametrize("suffix", [".safetensors", ".pt", ".pth"])
def test_file_factory_with_weights(net_file: Path, tmp_path: Path, suffix: str) -> None:
    net = _reference(seed=3)
    weights = _save_weights(net, tmp_path / f"weights{suffix}")
    model = load_model(f"{net_file}:factory", weights=weights)
    assert model.name == "factory"
    x = _images()
    assert torch.allclose(_model_logits(model, x), _ref_logits(net, x), atol=1e-5)
    # weights given as a str path behave the same
    model2 = load_model(f"{net_file}:factory", weights=str(weights))
    assert torch.equal(_model_logits(model2, x), _model_logits(model, x))


def test_file_factory_without_weights_is_the_factory_output(net_file: Path) -> None:
    torch.manual_seed(11)
    model = load_model(f"{net_file}:factory")
    torch.manual_seed(11)
    ref = _ns()["factory"]().eval()
    x = _images()
    assert torch.allclose(_model_logits(model, x), _ref_logits(ref, x), atol=1e-6)


def test_wrapped_checkpoint_is_unwrapped(net_file: Path, tmp_path: Path) -> None:
    net = _reference(seed=4)
    path = tmp_path / "ckpt.pt"
    torch.save({"state_dict": net.state_dict(), "epoch": 3}, path)
    model = load_model(f"{net_file}:factory", weights=path)
    x = _images()
    assert torch.allclose(_model_logits(model, x), _ref_logits(net, x), atol=1e-5)


def test_package_module_factory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = f"rcv_testpkg_{abs(hash(str(tmp_path))) % 10**8}"
    (tmp_path / pkg).mkdir()
    (tmp_path / pkg / "__init__.py").write_text("")
    (tmp_path / pkg / "nets.py").write_text(NET_SRC)
    monkeypatch.syspath_prepend(str(tmp_path))
    net = _reference(seed=5)
    weights = _save_weights(net, tmp_path / "w.safetensors")
    try:
        model = load_model(f"{pkg}.nets:factory", weights=weights)
        x = _images()
        assert torch.allclose(_model_logits(model, x), _ref_logits(net, x), atol=1e-5)
        with pytest.raises(InputError, match="cannot import module"):
            load_model(f"{pkg}.missing_module:factory")
    finally:
        for name in [m for m in sys.modules if m == pkg or m.startswith(pkg + ".")]:
            del sys.modules[name]


def test_nn_module_spec_and_model_passthrough(tmp_path: Path) -> None:
    net = _reference(seed=6)
    weights = _save_weights(net, tmp_path / "w.safetensors")
    fresh = _reference(seed=99)
    model = load_model(fresh, weights=weights)
    x = _images()
    assert torch.allclose(_model_logits(model, x), _ref_logits(net, x), atol=1e-5)
    assert load_model(model) is model


def test_factory_returning_model_is_used_as_is(tmp_path: Path) -> None:
    path = tmp_path / "wrapped.py"
    path.write_text(
        NET_SRC
        + textwrap.dedent(
            """
            from robustcv import Model

            def wrapped():
                return Model(TinyCNN(), mean=0.5, name="custom")
            """
        )
    )
    model = load_model(f"{path}:wrapped")
    assert model.name == "custom"
    with pytest.raises(InputError, match="load weights inside it"):
        load_model(f"{path}:wrapped", weights=tmp_path / "w.safetensors")


def test_features_and_device_kwargs(net_file: Path, tmp_path: Path) -> None:
    net = _reference(seed=7)
    weights = _save_weights(net, tmp_path / "w.safetensors")
    model = load_model(f"{net_file}:factory", weights=weights, features="embed", device="cpu")
    x = _images(6)
    logits, feats = model.logits_and_features(x)
    assert feats.shape == (6, 16)
    with torch.no_grad():
        ref_feats = net.embed(net.conv(x))
    assert torch.allclose(feats, ref_feats, atol=1e-5)
    assert torch.allclose(logits, _ref_logits(net, x), atol=1e-5)
    assert model.device == torch.device("cpu")


# ----------------------------------------------------------------------------- preprocessing


PREPROCESSING = [
    (
        {"mean": [0.4, 0.5, 0.6], "std": [0.2, 0.25, 0.3]},
        lambda x: (x - _c(0.4, 0.5, 0.6)) / _c(0.2, 0.25, 0.3),
    ),
    ({"mean": 0.5, "std": 0.25}, lambda x: (x - 0.5) / 0.25),
    ({"input_range": (0.0, 255.0)}, lambda x: x * 255.0),
    (
        {"input_range": (-1.0, 1.0), "mean": [0.1, 0.0, -0.1], "std": [0.5, 0.5, 0.5]},
        lambda x: (x * 2.0 - 1.0 - _c(0.1, 0.0, -0.1)) / 0.5,
    ),
]


def _c(*values: float) -> torch.Tensor:
    return torch.tensor(values).view(1, -1, 1, 1)


@pytest.mark.parametrize("kind", ["factory", "torchscript", "onnx"])
@pytest.mark.parametrize("idx", range(len(PREPROCESSING)))
def test_preprocessing_kwargs_match_manual_normalisation(
    net_file: Path, tmp_path: Path, kind: str, idx: int
) -> None:
    kwargs, by_hand = PREPROCESSING[idx]
    net = _reference(seed=8)
    if kind == "factory":
        spec: Any = f"{net_file}:factory"
        weights: Path | None = _save_weights(net, tmp_path / "w.safetensors")
    elif kind == "torchscript":
        spec = tmp_path / "m.pt"
        torch.jit.script(net).save(str(spec))
        weights = None
    else:
        spec = _export_onnx(net, tmp_path / "m.onnx", dynamic=True)
        weights = None
    model = load_model(spec, weights=weights, **kwargs)
    x = _images(7, seed=idx)
    expected = _ref_logits(net, by_hand(x))
    got = _model_logits(model, x)
    assert torch.allclose(got, expected, atol=1e-4)
    # the preprocessing really changes the outputs (the test would catch it being ignored)
    assert not torch.allclose(got, _ref_logits(net, x), atol=1e-3)


def test_bad_preprocessing_values_are_refused(net_file: Path) -> None:
    with pytest.raises(InputError, match="std must be positive"):
        load_model(f"{net_file}:factory", std=[0.0])
    with pytest.raises(InputError, match="input_range"):
        load_model(f"{net_file}:factory", input_range=(1.0, 0.0))


# ----------------------------------------------------------------------------- safety


class _Custom:
    def __init__(self) -> None:
        self.payload = "anything"


@pytest.mark.parametrize("what", ["custom-object", "whole-module"])
def test_pickled_objects_are_refused(net_file: Path, tmp_path: Path, what: str) -> None:
    path = tmp_path / "evil.pt"
    net = _reference()
    if what == "custom-object":
        torch.save({"weights": net.state_dict(), "obj": _Custom()}, path)
    else:
        torch.save(net, path)
    with pytest.raises(InputError) as info:
        load_model(f"{net_file}:factory", weights=path)
    msg = str(info.value)
    assert "state_dict" in msg
    assert "refused" in msg
    with pytest.raises(InputError, match="state_dict"):
        read_state_dict(path)


def test_non_tensor_values_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "mixed.pt"
    torch.save({"w": torch.zeros(2), "epoch": 3}, path)
    with pytest.raises(InputError, match="does not hold a state_dict"):
        read_state_dict(path)
    path2 = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), path2)
    with pytest.raises(InputError, match="does not hold a state_dict"):
        read_state_dict(path2)


def _truncate(path: Path, keep: float = 0.5) -> Path:
    data = path.read_bytes()
    out = path.with_name("trunc_" + path.name)
    out.write_bytes(data[: int(len(data) * keep)])
    return out


def test_truncated_safetensors(net_file: Path, tmp_path: Path) -> None:
    full = _save_weights(_reference(), tmp_path / "w.safetensors")
    for keep in (0.5, 0.001):
        bad = _truncate(full, keep)
        with pytest.raises(InputError, match=r"truncated or corrupt") as info:
            load_model(f"{net_file}:factory", weights=bad)
        assert bad.name in str(info.value)


def test_truncated_state_dict_checkpoint(net_file: Path, tmp_path: Path) -> None:
    bad = _truncate(_save_weights(_reference(), tmp_path / "w.pt"))
    with pytest.raises(InputError, match="truncated") as info:
        load_model(f"{net_file}:factory", weights=bad)
    assert bad.name in str(info.value)


def test_truncated_torchscript(tmp_path: Path) -> None:
    path = tmp_path / "m.pt"
    torch.jit.script(_reference()).save(str(path))
    bad = _truncate(path)
    assert not zipfile.is_zipfile(bad)
    with pytest.raises(InputError, match="truncated or corrupt") as info:
        load_model(bad)
    assert "state_dict" not in str(info.value)  # not the misleading plain-state_dict hint


def test_state_dict_given_as_torchscript_gets_factory_hint(tmp_path: Path) -> None:
    path = _save_weights(_reference(), tmp_path / "weights.pt")
    with pytest.raises(InputError) as info:
        load_model(path)
    msg = str(info.value)
    assert "not a TorchScript file" in msg
    assert "file.py:factory --weights weights.pt" in msg


def test_wrong_shapes_name_the_keys(net_file: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    wide = _ns()["wide"]()
    path = _save_weights(wide, tmp_path / "wide.safetensors")
    with pytest.raises(InputError) as info:
        load_model(f"{net_file}:factory", weights=path)
    msg = str(info.value)
    assert "shape mismatches" in msg
    assert "conv.0.weight: file (6, 3, 3, 3) vs model (4, 3, 3, 3)" in msg


def test_missing_and_unexpected_keys_are_named(net_file: Path, tmp_path: Path) -> None:
    state = _reference().state_dict()
    del state["head.bias"]
    state["extra.weight"] = torch.zeros(2)
    path = tmp_path / "partial.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    with pytest.raises(InputError) as info:
        load_model(f"{net_file}:factory", weights=path)
    msg = str(info.value)
    assert "missing keys ['head.bias']" in msg
    assert "unexpected keys ['extra.weight']" in msg
    # load_weights directly leaves the network untouched on failure
    net = _reference(seed=1)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with pytest.raises(InputError, match=r"head\.bias"):
        load_weights(net, path)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


# ----------------------------------------------------------------------------- bad specs


def test_bad_specs(net_file: Path, tmp_path: Path) -> None:
    weights = _save_weights(_reference(), tmp_path / "w.safetensors")
    cases: list[tuple[Any, dict[str, Any], str]] = [
        (tmp_path / "missing.pt", {}, "does not exist"),
        (f"{tmp_path / 'missing.py'}:factory", {}, "does not exist"),
        (tmp_path / "missing.onnx", {}, "does not exist"),
        (f"{net_file}:nope", {}, "no callable named 'nope'"),
        (f"{net_file}:NOT_CALLABLE", {}, "no callable named"),
        (f"{net_file}:not_a_module", {}, "returned int"),
        (f"{net_file}:", {}, "cannot parse model spec"),
        (tmp_path / "model.bin", {}, "cannot tell how to load"),
        (f"{net_file}:factory", {"weights": tmp_path / "nope.safetensors"}, "does not exist"),
        ("zoo:fmnist-cnn", {"weights": weights}, "zoo models carry their own"),
        ("zoo:fmnist-cnn", {"mean": [0.5]}, "drop \\['mean'\\]"),
        ("zoo:no-such-model", {}, "unknown zoo model"),
    ]
    for spec, kwargs, pattern in cases:
        with pytest.raises(InputError, match=pattern):
            load_model(spec, **kwargs)


def test_weights_refused_for_self_contained_files(tmp_path: Path) -> None:
    net = _reference()
    ts = tmp_path / "m.pt"
    torch.jit.script(net).save(str(ts))
    onnx = _export_onnx(net, tmp_path / "m.onnx", dynamic=True)
    weights = _save_weights(net, tmp_path / "w.safetensors")
    with pytest.raises(InputError, match="TorchScript file holds its own weights"):
        load_model(ts, weights=weights)
    with pytest.raises(InputError, match="ONNX file holds its own weights"):
        load_model(onnx, weights=weights)


def test_corrupt_onnx_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.onnx"
    path.write_bytes(b"this is not an onnx model")
    with pytest.raises(InputError, match="cannot load ONNX model"):
        load_model(path)
