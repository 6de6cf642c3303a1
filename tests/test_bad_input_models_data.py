"""Bad-input corpus for models, data, devices, user code and the contract (issue 12).

Each case is a mistake a real user makes with ``robustcv.core``, ``robustcv.models``,
``robustcv.data`` or ``robustcv.diagnostics`` (and ``robustcv eval`` / ``robustcv list`` on the
command line): it must raise the documented error type (an :class:`InputError` subclass) with a
message that names the argument, never a raw torch/numpy/onnxruntime traceback. See
``tests/badinput.py`` for the harness.
"""

from __future__ import annotations

import gzip
import json
import pickle
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from badinput import ApiCase, CliCase, bad_files, check_api, check_cli
from PIL import Image
from torch import nn

from robustcv.core import (
    Model,
    ModelDataMismatchError,
    NonFiniteLogitsWarning,
    UserCodeError,
    check_count,
    check_images,
    check_labels,
    check_model_fits,
    resolve_device,
)
from robustcv.core.errors import DataNotFoundError, InputError
from robustcv.data import Dataset, load_dataset
from robustcv.data.fetch import fetch_files
from robustcv.data.idx import write_idx
from robustcv.diagnostics.accuracy import accuracy
from robustcv.models import load_model

# ----------------------------------------------------------------------------- extra files

_CUDA = torch.cuda.is_available()
_GPUS = torch.cuda.device_count() if _CUDA else 0
_MPS = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())

FACTORIES = """
import sys
from torch import nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 8 * 8, 3)

    def forward(self, x):
        return self.fc(self.conv(x).flatten(1))

def net():
    return Net()

def needs_args(width, depth):
    return Net()

def returns_none():
    return None

def exits():
    sys.exit(3)

def zero():
    return 1 / 0

CONSTANT = 3

def bad_layer():
    return nn.Linear("wide", 2)
"""


def _onnx(path: Path, *, dynamic: bool) -> Path | None:
    """A 1-channel 8x8 ONNX classifier (None when this torch cannot export ONNX)."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.Flatten(), nn.Linear(2 * 64, 3)).eval()
    kwargs: dict[str, Any] = {"input_names": ["x"], "output_names": ["logits"]}
    if dynamic:
        kwargs["dynamic_axes"] = {"x": {0: "batch"}, "logits": {0: "batch"}}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(net, (torch.rand(2, 1, 8, 8),), str(path), dynamo=False, **kwargs)
    except Exception:  # pragma: no cover - torch builds without the exporter
        return None
    return path


def _make_extras(root: Path) -> dict[str, Path]:
    """Files the shared harness does not make: models, weights, -C layouts, IDX, CIFAR."""
    rng = np.random.default_rng(0)
    out: dict[str, Path] = {}

    def npz(name: str, **arrays: Any) -> None:
        np.savez(root / f"{name}.npz", **arrays)
        out[name] = root / f"{name}.npz"

    u8 = rng.integers(0, 256, (4, 8, 8), dtype=np.uint8)
    npz("labels_short", x=u8, y=np.array([0, 1]))
    npz("labels_negative", x=u8, y=np.array([0, -1, 2, 1]))
    npz("labels_float", x=u8, y=np.array([0.0, 0.5, 1.0, 2.0]))
    npz("labels_nan", x=u8, y=np.array([0.0, np.nan, 1.0, 2.0]))
    npz("labels_2d", x=u8, y=np.zeros((4, 2), np.int64))
    npz("labels_huge", x=u8, y=np.array([0, 1, 2, 10**12]))
    npz("labels_str", x=u8, y=np.array(["a", "b", "c", "d"]))
    nan = rng.random((4, 8, 8)).astype(np.float32)
    nan[0, 0, 0] = np.nan
    npz("images_nan", x=nan, y=np.arange(4))
    inf = rng.random((4, 8, 8)).astype(np.float32)
    inf[1, 2, 3] = np.inf
    npz("images_inf", x=inf, y=np.arange(4))
    npz("images_255", x=rng.random((4, 8, 8)).astype(np.float32) * 255, y=np.arange(4))
    npz("images_negative", x=rng.random((4, 8, 8)).astype(np.float32) - 0.5, y=np.arange(4))
    npz("images_5d", x=np.zeros((4, 1, 1, 8, 8), np.uint8), y=np.arange(4))
    npz("images_1d", x=np.zeros((4,), np.uint8), y=np.arange(4))
    npz("images_2ch", x=np.zeros((4, 8, 8, 2), np.uint8), y=np.arange(4))
    npz("images_rgba", x=np.zeros((4, 8, 8, 4), np.uint8), y=np.arange(4))
    npz("images_int64", x=np.zeros((4, 8, 8), np.int64), y=np.arange(4))
    npz("images_str", x=np.array(["a", "b", "c", "d"]), y=np.arange(4))
    npz("images_zero_size", x=np.zeros((4, 0, 8), np.uint8), y=np.arange(4))
    npz("gray8", x=u8, y=np.arange(4) % 3)
    np.save(root / "single.npy", u8)
    (root / "single_as.npz").write_bytes((root / "single.npy").read_bytes())
    out["single_as_npz"] = root / "single_as.npz"
    good = (root / "gray8.npz").read_bytes()
    (root / "truncated.npz").write_bytes(good[: len(good) // 2])
    out["truncated_npz"] = root / "truncated.npz"
    np.savez(root / "objects.npz", x=np.array([{"a": 1}], dtype=object), y=np.array([0]))
    out["objects_npz"] = root / "objects.npz"

    # image folders
    empty_classes = root / "folder_no_images"
    (empty_classes / "cat").mkdir(parents=True)
    (empty_classes / "cat" / "notes.txt").write_text("not an image")
    out["folder_no_images"] = empty_classes
    bad_png = root / "folder_bad_png"
    (bad_png / "cat").mkdir(parents=True)
    (bad_png / "cat" / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    out["folder_bad_png"] = bad_png
    sizes = root / "folder_sizes"
    for c, size in (("a", (4, 4)), ("b", (5, 6))):
        (sizes / c).mkdir(parents=True)
        Image.new("L", size, 0).save(sizes / c / "x.png")
    out["folder_sizes"] = sizes
    ok_folder = root / "folder_ok"
    for c in ("a", "b"):
        (ok_folder / c).mkdir(parents=True)
        Image.new("L", (8, 8), 0).save(ok_folder / c / "x.png")
    out["folder_ok"] = ok_folder

    # IDX
    idx_bad = root / "idx_bad_magic"
    idx_bad.mkdir()
    (idx_bad / "t10k-images-idx3-ubyte").write_bytes(b"\x01\x02\x03\x04rest")
    (idx_bad / "t10k-labels-idx1-ubyte").write_bytes(b"\x01\x02\x03\x04rest")
    out["idx_bad_magic"] = idx_bad
    idx_trunc = root / "idx_truncated"
    idx_trunc.mkdir()
    write_idx(idx_trunc / "t10k-images-idx3-ubyte", np.zeros((4, 8, 8), np.uint8))
    write_idx(idx_trunc / "t10k-labels-idx1-ubyte", np.arange(4, dtype=np.uint8))
    data = (idx_trunc / "t10k-images-idx3-ubyte").read_bytes()
    (idx_trunc / "t10k-images-idx3-ubyte").write_bytes(data[:-10])
    out["idx_truncated"] = idx_trunc
    idx_count = root / "idx_count"
    idx_count.mkdir()
    write_idx(idx_count / "t10k-images-idx3-ubyte", np.zeros((4, 8, 8), np.uint8))
    write_idx(idx_count / "t10k-labels-idx1-ubyte", np.arange(3, dtype=np.uint8))
    out["idx_count"] = idx_count
    idx_rank = root / "idx_rank"
    idx_rank.mkdir()
    write_idx(idx_rank / "t10k-images-idx3-ubyte", np.zeros((4,), np.uint8))
    write_idx(idx_rank / "t10k-labels-idx1-ubyte", np.arange(4, dtype=np.uint8))
    out["idx_rank"] = idx_rank
    idx_gz = root / "idx_bad_gzip"
    idx_gz.mkdir()
    (idx_gz / "t10k-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b" + b"\x00" * 30)
    (idx_gz / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x01"))
    out["idx_bad_gzip"] = idx_gz
    idx_empty = root / "idx_empty"
    idx_empty.mkdir()
    write_idx(idx_empty / "t10k-images-idx3-ubyte", np.zeros((0, 8, 8), np.uint8))
    write_idx(idx_empty / "t10k-labels-idx1-ubyte", np.zeros((0,), np.uint8))
    out["idx_empty"] = idx_empty

    # CIFAR-10 binary
    cifar_size = root / "cifar_size"
    cifar_size.mkdir()
    (cifar_size / "test_batch.bin").write_bytes(b"\x00" * 3000)
    out["cifar_size"] = cifar_size
    cifar_empty = root / "cifar_empty"
    cifar_empty.mkdir()
    (cifar_empty / "test_batch.bin").write_bytes(b"")
    out["cifar_empty"] = cifar_empty
    cifar_100 = root / "cifar_100"
    cifar_100.mkdir()
    rec = np.zeros((2, 3073), np.uint8)
    rec[:, 0] = [3, 42]
    (cifar_100 / "test_batch.bin").write_bytes(rec.tobytes())
    out["cifar_100"] = cifar_100

    # -C layouts
    cc = root / "cifar_c"
    cc.mkdir()
    np.save(cc / "fog.npy", np.zeros((10, 8, 8, 3), np.uint8))
    np.save(cc / "labels.npy", np.arange(10, dtype=np.int64) % 2)
    out["cifar_c"] = cc
    cc_nolabels = root / "cifar_c_nolabels"
    cc_nolabels.mkdir()
    np.save(cc_nolabels / "fog.npy", np.zeros((10, 8, 8, 3), np.uint8))
    out["cifar_c_nolabels"] = cc_nolabels
    cc_shape = root / "cifar_c_shape"
    cc_shape.mkdir()
    np.save(cc_shape / "fog.npy", np.zeros((7, 8, 8, 3), np.uint8))
    np.save(cc_shape / "labels.npy", np.zeros(7, np.int64))
    out["cifar_c_shape"] = cc_shape
    cc_garbage = root / "cifar_c_garbage"
    cc_garbage.mkdir()
    (cc_garbage / "fog.npy").write_bytes(b"\x93NUMPY garbage")
    np.save(cc_garbage / "labels.npy", np.zeros(10, np.int64))
    out["cifar_c_garbage"] = cc_garbage
    inc = root / "imagenet_c"
    for sev in ("1", "3"):
        (inc / "fog" / sev / "n01").mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(inc / "fog" / sev / "n01" / "00000.png")
    out["imagenet_c"] = inc

    # models and weights
    factories = root / "factories.py"
    factories.write_text(FACTORIES)
    out["factories"] = factories
    import_error = root / "import_error.py"
    import_error.write_text("import robustcv_no_such_dependency\n\ndef build():\n    pass\n")
    out["import_error"] = import_error
    raises_at_import = root / "raises_at_import.py"
    raises_at_import.write_text("x = 1\nraise ValueError('bad config at import')\n")
    out["raises_at_import"] = raises_at_import
    pkg = root / "pkgroot" / "rcv_badpkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "broken.py").write_text("def build():\n    return 1\nraise KeyError('oops')\n")
    out["pkgroot"] = root / "pkgroot"
    (root / "dir.py").mkdir()
    out["dir_py"] = root / "dir.py"
    state = nn.Linear(2, 2).state_dict()
    torch.save(state, root / "linear.pt")
    out["linear_pt"] = root / "linear.pt"
    torch.save({"conv.weight": torch.zeros(4, 3, 3, 3)}, root / "partial.pt")
    out["partial_pt"] = root / "partial.pt"
    full = (root / "linear.pt").read_bytes()
    (root / "truncated.pt").write_bytes(full[: len(full) // 2])
    out["truncated_pt"] = root / "truncated.pt"
    (root / "garbage.pt").write_bytes(b"definitely not a checkpoint")
    out["garbage_pt"] = root / "garbage.pt"
    (root / "garbage.safetensors").write_bytes(b"\x10\x00")
    out["garbage_safetensors"] = root / "garbage.safetensors"
    (root / "pickled.pt").write_bytes(pickle.dumps({"w": _Payload()}))
    out["pickled_pt"] = root / "pickled.pt"
    (root / "model.bin").write_bytes(b"\x00")
    out["model_bin"] = root / "model.bin"
    onnx_dyn = _onnx(root / "dyn.onnx", dynamic=True)
    onnx_fixed = _onnx(root / "fixed.onnx", dynamic=False)
    if onnx_dyn is not None and onnx_fixed is not None:
        out["onnx"] = onnx_dyn
        out["onnx_fixed"] = onnx_fixed
        raw = onnx_dyn.read_bytes()
        (root / "truncated.onnx").write_bytes(raw[: len(raw) // 3])
        out["onnx_truncated"] = root / "truncated.onnx"
    (root / "garbage.onnx").write_bytes(b"not an onnx model at all")
    out["onnx_garbage"] = root / "garbage.onnx"
    (root / "garbage_ts.pt").write_bytes(b"PK\x03\x04 not really a zip")
    out["ts_garbage"] = root / "garbage_ts.pt"
    rgb8 = root / "rgb8.npz"
    np.savez(rgb8, x=rng.integers(0, 256, (4, 8, 8, 3), dtype=np.uint8), y=np.arange(4) % 3)
    out["rgb8"] = rgb8
    return out


class _Payload:
    """An arbitrary object: pickling it into a weights file must be refused on load."""


@pytest.fixture(scope="module")
def extras(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return _make_extras(tmp_path_factory.mktemp("badinput-extras"))


@pytest.fixture
def files(tmp_path: Path, extras: dict[str, Path]) -> dict[str, Path]:
    return {**bad_files(tmp_path), **extras}


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


# ----------------------------------------------------------------------------- helpers


def _conv(channels: int = 1, size: int = 28, classes: int = 10) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(channels, 2, 3, padding=1),
        nn.Flatten(),
        nn.Linear(2 * size * size, classes),
    )


def _flat(features: int = 784, classes: int = 10) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(features, classes))


def _x(c: int = 1, h: int = 28, w: int | None = None, n: int = 4) -> torch.Tensor:
    return torch.rand(n, c, h, w or h, generator=torch.Generator().manual_seed(0))


def _y(n: int = 4, classes: int = 10) -> torch.Tensor:
    return torch.arange(n) % classes


def _acc(model: Model, x: Any, y: Any = None, **kw: Any) -> Any:
    return accuracy(model, x, y, **kw)


def _needs(key: str) -> Callable[[dict[str, Path]], Path]:
    def get(f: dict[str, Path]) -> Path:
        if key not in f:
            pytest.skip(f"{key} not available here (torch cannot export ONNX)")
        return f[key]

    return get


_onnx_file = _needs("onnx")
_onnx_fixed_file = _needs("onnx_fixed")
_onnx_truncated_file = _needs("onnx_truncated")


def _nan_net(x: torch.Tensor) -> torch.Tensor:
    out = torch.zeros(x.shape[0], 3)
    out[0, 1] = float("nan")
    return out


def _inf_net(x: torch.Tensor) -> torch.Tensor:
    out = torch.zeros(x.shape[0], 3)
    out[:, 2] = float("inf")
    return out


def _folder(path: Path) -> Path:
    path.mkdir()
    return path


def _tuple_net(x: torch.Tensor) -> Any:
    return x, x


def _import_pkg(f: dict[str, Path]) -> Any:
    sys.path.insert(0, str(f["pkgroot"]))
    try:
        return load_model("rcv_badpkg.broken:build")
    finally:
        sys.path.remove(str(f["pkgroot"]))
        for name in [n for n in sys.modules if n.startswith("rcv_badpkg")]:
            del sys.modules[name]


def _meta(*shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.empty(*shape, device="meta", dtype=dtype)


pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:torch.jit")

ZOO = "zoo:fmnist-cnn"
MISMATCH = ModelDataMismatchError

# ----------------------------------------------------------------------------- API cases

API_CASES: list[ApiCase] = [
    # --- model/data mismatches (one message format: the model takes ...; the data has ...)
    ApiCase(
        "zoo-rgb32-accuracy",
        lambda f: _acc(load_model(ZOO), _x(3, 32), _y()),
        ("the model takes 1-channel 28x28 images", "x has 3-channel 32x32 images", "resize"),
        MISMATCH,
    ),
    ApiCase(
        "zoo-gray32-accuracy",
        lambda f: _acc(load_model(ZOO), _x(1, 32), _y()),
        ("1-channel 28x28", "1-channel 32x32", "mat1 and mat2"),
        MISMATCH,
    ),
    ApiCase(
        "zoo-rgb28-accuracy",
        lambda f: _acc(load_model(ZOO), _x(3, 28), _y()),
        ("1-channel 28x28", "3-channel 28x28"),
        MISMATCH,
    ),
    ApiCase(
        "zoo-rgb32-dataset",
        lambda f: _acc(load_model(ZOO), load_dataset(f"npz:{f['rgb32']}")),
        ("1-channel 28x28", "the dataset 'rgb32' has 3-channel 32x32"),
        MISMATCH,
    ),
    ApiCase(
        "flat-rgb-accuracy",
        lambda f: _acc(Model(_flat(784)), _x(3, 28), _y()),
        ("1-channel 28x28", "3-channel 28x28"),
        MISMATCH,
    ),
    ApiCase(
        "conv-channels-logits",
        lambda f: Model(_conv(3, 8))(_x(1, 8)),
        ("takes 3-channel", "1-channel 8x8", "expected input"),
        MISMATCH,
    ),
    ApiCase(
        "conv-size-check-model-fits",
        lambda f: check_model_fits(Model(_conv(1, 8)), _x(1, 12), what="--data"),
        ("1-channel 8x8", "--data has 1-channel 12x12"),
        MISMATCH,
    ),
    ApiCase(
        "mean-length-accuracy",
        lambda f: _acc(Model(_flat(784), mean=[0.5, 0.5, 0.5]), _x(1, 28), _y()),
        ("mean has 3 values", "1-channel 28x28"),
        MISMATCH,
    ),
    ApiCase(
        "std-length-check-model-fits",
        lambda f: check_model_fits(Model(_conv(1, 8), std=[0.2, 0.3]), _x(1, 8)),
        ("std has 2 values", "1-channel 8x8"),
        MISMATCH,
    ),
    ApiCase(
        "mean-std-lengths-differ",
        lambda f: Model(_flat(), mean=[0.5, 0.5, 0.5], std=[0.2, 0.2]),
        ("mean has 3 values", "std has 2"),
    ),
    ApiCase(
        "features-mismatch",
        lambda f: Model(_conv(1, 8), features="1").features(_x(3, 8)),
        ("takes 1-channel", "3-channel 8x8"),
        MISMATCH,
    ),
    ApiCase(
        "onnx-wrong-channels",
        lambda f: _acc(load_model(_onnx_file(f)), _x(3, 8), _y(classes=3)),
        ("1-channel", "3-channel 8x8"),
        MISMATCH,
    ),
    ApiCase(
        "onnx-wrong-size-fits",
        lambda f: check_model_fits(load_model(_onnx_fixed_file(f)), _x(1, 10)),
        ("1-channel 8x8", "input signature", "1-channel 10x10"),
        MISMATCH,
    ),
    ApiCase(
        "check-model-fits-raw-module",
        lambda f: check_model_fits(_conv(), _x()),
        ("model is a Sequential", "robustcv.Model"),
    ),
    ApiCase(
        "check-model-fits-empty-dataset",
        lambda f: check_model_fits(
            Model(_conv(1, 8)), load_dataset(f"npz:{f['gray8']}").subset([])
        ),
        ("has no images",),
    ),
    ApiCase(
        "check-model-fits-bad-data",
        lambda f: check_model_fits(Model(_conv(1, 8)), np.zeros((1, 1, 8, 8))),
        ("is a ndarray", "torch.tensor"),
    ),
    # --- devices
    ApiCase(
        "model-device-garbage",
        lambda f: Model(_conv(), device="gpu"),
        ("unknown device 'gpu'", "available"),
    ),
    ApiCase(
        "model-device-float",
        lambda f: Model(_conv(), device=1.5),  # type: ignore[arg-type]
        ("device must be a device name", "float"),
    ),
    ApiCase(
        "resolve-device-meta",
        lambda f: resolve_device("meta"),
        ("meta", "available: cpu"),
    ),
    ApiCase(
        "resolve-device-bool",
        lambda f: resolve_device(True),
        ("device must be", "bool"),
    ),
    ApiCase(
        "resolve-device-xla",
        lambda f: resolve_device("xla"),
        ("xla", "available"),
    ),
    ApiCase(
        "load-model-device-garbage",
        lambda f: load_model(ZOO, device="cuda:x"),
        ("unknown device", "cuda:x"),
    ),
    # --- user code: factories, modules
    ApiCase(
        "factory-raises",
        lambda f: load_model(f"{f['factory']}:broken"),
        ("RuntimeError: my factory is broken", "factory.py:5", "broken"),
        UserCodeError,
    ),
    ApiCase(
        "factory-syntax-error",
        lambda f: load_model(f"{f['syntax']}:build"),
        ("SyntaxError", "syntax_error.py:1"),
        UserCodeError,
    ),
    ApiCase(
        "factory-missing-attribute",
        lambda f: load_model(f"{f['factory']}:nope"),
        ("no callable named 'nope'", "build"),
    ),
    ApiCase(
        "factory-not-callable",
        lambda f: load_model(f"{f['factories']}:CONSTANT"),
        ("no callable named 'CONSTANT'", "int"),
    ),
    ApiCase(
        "factory-returns-none",
        lambda f: load_model(f"{f['factories']}:returns_none"),
        ("returned NoneType", "nn.Module"),
        UserCodeError,
    ),
    ApiCase(
        "factory-needs-arguments",
        lambda f: load_model(f"{f['factories']}:needs_args"),
        ("needs arguments", "width"),
        UserCodeError,
    ),
    ApiCase(
        "factory-zero-division",
        lambda f: load_model(f"{f['factories']}:zero"),
        ("ZeroDivisionError", "factories.py:27"),
        UserCodeError,
    ),
    ApiCase(
        "factory-torch-error",
        lambda f: load_model(f"{f['factories']}:bad_layer"),
        ("TypeError", "factories.py:32", "bad_layer"),
        UserCodeError,
    ),
    ApiCase(
        "factory-sys-exit",
        lambda f: load_model(f"{f['factories']}:exits"),
        ("SystemExit", "factories.py:24"),
        UserCodeError,
    ),
    ApiCase(
        "factory-file-import-error",
        lambda f: load_model(f"{f['import_error']}:build"),
        ("ModuleNotFoundError", "robustcv_no_such_dependency", "import_error.py:1"),
        UserCodeError,
    ),
    ApiCase(
        "factory-file-raises-at-import",
        lambda f: load_model(f"{f['raises_at_import']}:build"),
        ("ValueError: bad config at import", "raises_at_import.py:2"),
        UserCodeError,
    ),
    ApiCase(
        "module-factory-raises-at-import",
        _import_pkg,
        ("KeyError", "oops", "broken.py:3"),
        UserCodeError,
    ),
    ApiCase(
        "module-missing",
        lambda f: load_model("rcv_no_such_package.models:build"),
        ("cannot import module 'rcv_no_such_package.models'",),
    ),
    ApiCase(
        "factory-file-missing",
        lambda f: load_model(f"{f['tmp']}/missing.py:build"),
        ("missing.py", "does not exist"),
    ),
    ApiCase(
        "factory-file-is-folder",
        lambda f: load_model(f"{f['dir_py']}:build"),
        ("dir.py", "folder"),
    ),
    ApiCase("model-spec-empty", lambda f: load_model("  "), ("model spec is empty",)),
    ApiCase(
        "model-spec-none",
        lambda f: load_model(None),  # type: ignore[arg-type]
        ("model spec is a NoneType",),
    ),
    ApiCase(
        "model-spec-unknown-kind",
        lambda f: load_model(f["model_bin"]),
        ("cannot tell how to load", "model.bin"),
    ),
    ApiCase(
        "zoo-unknown",
        lambda f: load_model("zoo:fmnist-cnm"),
        ("unknown zoo model", "fmnist-cnn"),
    ),
    # --- weights and model files
    ApiCase(
        "weights-missing",
        lambda f: load_model(f"{f['factories']}:net", weights=f["tmp"] / "none.pt"),
        ("weights file", "does not exist"),
    ),
    ApiCase(
        "weights-garbage",
        lambda f: load_model(f"{f['factories']}:net", weights=f["garbage_pt"]),
        ("garbage.pt", "not a pytorch checkpoint"),
        UserCodeError,
    ),
    ApiCase(
        "weights-truncated",
        lambda f: load_model(f"{f['factories']}:net", weights=f["truncated_pt"]),
        ("truncated.pt", "truncated"),
        UserCodeError,
    ),
    ApiCase(
        "weights-safetensors-garbage",
        lambda f: load_model(f"{f['factories']}:net", weights=f["garbage_safetensors"]),
        ("safetensors", "truncated or corrupt"),
        UserCodeError,
    ),
    ApiCase(
        "weights-pickle-refused",
        lambda f: load_model(f"{f['factories']}:net", weights=f["pickled_pt"]),
        ("never unpickles",),
    ),
    ApiCase(
        "weights-wrong-keys",
        lambda f: load_model(f"{f['factories']}:net", weights=f["linear_pt"]),
        ("do not match", "missing keys", "unexpected keys"),
    ),
    ApiCase(
        "weights-wrong-shape",
        lambda f: load_model(f"{f['factories']}:net", weights=f["partial_pt"]),
        ("do not match", "shape mismatches"),
    ),
    ApiCase(
        "weights-not-a-path",
        lambda f: load_model(f"{f['factories']}:net", weights=3),  # type: ignore[arg-type]
        ("weights must be a file path",),
    ),
    ApiCase(
        "weights-for-torchscript-state-dict",
        lambda f: load_model(f["linear_pt"]),
        ("not a torchscript file", "--weights"),
    ),
    ApiCase(
        "torchscript-garbage",
        lambda f: load_model(f["ts_garbage"]),
        ("garbage_ts.pt", "truncated or corrupt"),
    ),
    ApiCase(
        "onnx-truncated",
        lambda f: load_model(_onnx_truncated_file(f)),
        ("truncated.onnx", "truncated or not an onnx model", "onnxruntime raised"),
        UserCodeError,
    ),
    ApiCase(
        "onnx-garbage",
        lambda f: load_model(f["onnx_garbage"]),
        ("garbage.onnx", "onnxruntime raised"),
        UserCodeError,
    ),
    ApiCase(
        "onnx-missing",
        lambda f: load_model(f["tmp"] / "none.onnx"),
        ("none.onnx", "does not exist"),
    ),
    # --- dataset specs
    ApiCase(
        "data-missing-path",
        lambda f: load_dataset(f"npz:{f['tmp']}/missing.npz"),
        ("missing.npz", "does not exist"),
        DataNotFoundError,
    ),
    ApiCase(
        "data-unknown-kind",
        lambda f: load_dataset(f"nzp:{f['good']}"),
        ("unknown dataset kind 'nzp'", "did you mean 'npz'"),
    ),
    ApiCase("data-kind-no-path", lambda f: load_dataset("npz:"), ("names no path", "npz:")),
    ApiCase("data-spec-empty", lambda f: load_dataset(""), ("dataset spec is empty",)),
    ApiCase(
        "data-spec-int",
        lambda f: load_dataset(3),  # type: ignore[arg-type]
        ("dataset spec is a int",),
    ),
    ApiCase(
        "data-garbage-npz",
        lambda f: load_dataset(f"npz:{f['garbage']}"),
        ("garbage.npz", "not a valid .npz"),
    ),
    ApiCase(
        "data-truncated-npz",
        lambda f: load_dataset(f"npz:{f['truncated_npz']}"),
        ("truncated.npz", "truncated"),
    ),
    ApiCase(
        "data-npz-is-npy",
        lambda f: load_dataset(f"npz:{f['single_as_npz']}"),
        ("single_as.npz", "single array"),
    ),
    ApiCase(
        "data-npz-object-arrays",
        lambda f: load_dataset(f"npz:{f['objects_npz']}"),
        ("objects.npz", "object arrays"),
    ),
    ApiCase(
        "data-npz-without-y",
        lambda f: load_dataset(f"npz:{f['nolabels']}"),
        ("nolabels.npz", "'x'", "'y'"),
    ),
    ApiCase(
        "data-npz-is-folder",
        lambda f: load_dataset(f"npz:{f['folder']}"),
        ("folder", "not a .npz file"),
    ),
    ApiCase(
        "labels-wrong-length",
        lambda f: load_dataset(f"npz:{f['labels_short']}"),
        ("4 images", "labels of shape (2,)"),
    ),
    ApiCase(
        "labels-negative",
        lambda f: load_dataset(f"npz:{f['labels_negative']}"),
        ("labels contain the negative value -1",),
    ),
    ApiCase(
        "labels-fractional",
        lambda f: load_dataset(f"npz:{f['labels_float']}"),
        ("labels must be integer class indices", "0.5"),
    ),
    ApiCase(
        "labels-nan",
        lambda f: load_dataset(f"npz:{f['labels_nan']}"),
        ("labels must be integer class indices", "nan"),
    ),
    ApiCase(
        "labels-2d",
        lambda f: load_dataset(f"npz:{f['labels_2d']}"),
        ("labels of shape (4, 2)",),
    ),
    ApiCase(
        "labels-huge",
        lambda f: load_dataset(f"npz:{f['labels_huge']}"),
        ("labels go up to 1000000000000", "class indices"),
    ),
    ApiCase(
        "labels-strings",
        lambda f: load_dataset(f"npz:{f['labels_str']}"),
        ("labels have dtype", "integer class indices"),
    ),
    ApiCase("data-empty-npz", lambda f: load_dataset(f"npz:{f['empty']}"), ("has no images",)),
    ApiCase(
        "images-nan",
        lambda f: load_dataset(f"npz:{f['images_nan']}"),
        ("images contain 1 nan",),
    ),
    ApiCase(
        "images-inf",
        lambda f: load_dataset(f"npz:{f['images_inf']}"),
        ("images contain 1 nan or infinite",),
    ),
    ApiCase(
        "images-float-255",
        lambda f: load_dataset(f"npz:{f['images_255']}"),
        ("float images have values in", "divide by 255"),
    ),
    ApiCase(
        "images-float-negative",
        lambda f: load_dataset(f"npz:{f['images_negative']}"),
        ("float images have values in", "[0, 1]"),
    ),
    ApiCase(
        "images-5d",
        lambda f: load_dataset(f"npz:{f['images_5d']}"),
        ("images have 5 dimensions", "(n,h,w)"),
    ),
    ApiCase(
        "images-1d",
        lambda f: load_dataset(f"npz:{f['images_1d']}"),
        ("images have 1 dimensions",),
    ),
    ApiCase(
        "images-2-channels",
        lambda f: load_dataset(f"npz:{f['images_2ch']}"),
        ("2 channels", "1 (grey) or 3 (rgb)"),
    ),
    ApiCase(
        "images-rgba",
        lambda f: load_dataset(f"npz:{f['images_rgba']}"),
        ("4 channels", "rgba", "alpha"),
    ),
    ApiCase(
        "images-int64",
        lambda f: load_dataset(f"npz:{f['images_int64']}"),
        ("images have dtype int64", "uint8"),
    ),
    ApiCase(
        "images-strings",
        lambda f: load_dataset(f"npz:{f['images_str']}"),
        ("images have dtype <u1", "uint8"),
    ),
    ApiCase(
        "images-zero-size",
        lambda f: load_dataset(f"npz:{f['images_zero_size']}"),
        ("1x1 pixels",),
    ),
    ApiCase(
        "folder-no-images",
        lambda f: load_dataset(f"folder:{f['folder_no_images']}"),
        ("holds no images", "<class name>"),
    ),
    ApiCase(
        "folder-empty",
        lambda f: load_dataset(f"folder:{f['folder']}"),
        ("holds no images",),
    ),
    ApiCase(
        "folder-bad-png",
        lambda f: load_dataset(f"folder:{f['folder_bad_png']}"),
        ("cannot read image", "a.png"),
    ),
    ApiCase(
        "folder-mixed-sizes",
        lambda f: load_dataset(f"folder:{f['folder_sizes']}"),
        ("different sizes", "image_size"),
    ),
    ApiCase(
        "folder-is-file",
        lambda f: load_dataset(f"folder:{f['file']}"),
        ("file.txt", "not a folder"),
    ),
    ApiCase(
        "idx-bad-magic",
        lambda f: load_dataset(f"idx:{f['idx_bad_magic']}"),
        ("not an idx file", "magic"),
    ),
    ApiCase(
        "idx-truncated",
        lambda f: load_dataset(f"idx:{f['idx_truncated']}"),
        ("truncated or corrupt",),
    ),
    ApiCase(
        "idx-label-count",
        lambda f: load_dataset(f"idx:{f['idx_count']}"),
        ("4 images", "3 labels"),
    ),
    ApiCase(
        "idx-rank",
        lambda f: load_dataset(f"idx:{f['idx_rank']}"),
        ("shape (4,)", "(n, h, w)"),
    ),
    ApiCase(
        "idx-bad-gzip",
        lambda f: load_dataset(f"idx:{f['idx_bad_gzip']}"),
        ("cannot read idx file", "truncated or corrupt"),
    ),
    ApiCase("idx-empty", lambda f: load_dataset(f"idx:{f['idx_empty']}"), ("has no images",)),
    ApiCase(
        "idx-no-files",
        lambda f: load_dataset(f"idx:{f['folder']}"),
        ("has no idx files", "t10k-images-idx3-ubyte"),
    ),
    ApiCase(
        "cifar-wrong-size",
        lambda f: load_dataset(f"cifar10:{f['cifar_size']}"),
        ("3000 bytes", "3073-byte"),
    ),
    ApiCase(
        "cifar-empty",
        lambda f: load_dataset(f"cifar10:{f['cifar_empty']}"),
        ("no images",),
    ),
    ApiCase(
        "cifar-labels-above-9",
        lambda f: load_dataset(f"cifar10:{f['cifar_100']}"),
        ("labels above 9", "cifar-100"),
    ),
    ApiCase(
        "cifar-split",
        lambda f: load_dataset(f"cifar10:{f['cifar_100']}", split="val"),
        ("splits 'train' and 'test'", "val"),
    ),
    ApiCase(
        "cifar-c-missing-severity",
        lambda f: load_dataset(f"cifar-c:{f['cifar_c']}#fog"),
        ("pick one corruption and severity", "#fog/3"),
    ),
    ApiCase(
        "cifar-c-severity-6",
        lambda f: load_dataset(f"cifar-c:{f['cifar_c']}#fog/6"),
        ("no severity 6", "1-5"),
    ),
    ApiCase(
        "cifar-c-superscript-severity",
        lambda f: load_dataset(f"cifar-c:{f['cifar_c']}#fog/\u00b2"),
        ("cannot parse the severity",),
    ),
    ApiCase(
        "cifar-c-huge-severity",
        lambda f: load_dataset(f"cifar-c:{f['cifar_c']}#fog/" + "9" * 5000),
        ("cannot parse the severity",),
    ),
    ApiCase(
        "cifar-c-no-labels",
        lambda f: load_dataset(f"cifar-c:{f['cifar_c_nolabels']}#fog/1"),
        ("labels.npy",),
        DataNotFoundError,
    ),
    ApiCase(
        "cifar-c-bad-shape",
        lambda f: load_dataset(f"cifar-c:{f['cifar_c_shape']}#fog/1"),
        ("(7, 8, 8, 3)", "cifar-c file is"),
    ),
    ApiCase(
        "cifar-c-garbage",
        lambda f: load_dataset(f"cifar-c:{f['cifar_c_garbage']}#fog/1"),
        ("fog.npy", "damaged"),
    ),
    ApiCase(
        "cifar-c-unknown-corruption",
        lambda f: load_dataset(f"cifar-c:{f['cifar_c']}#fgo/1"),
        ("no corruption 'fgo'", "did you mean 'fog'"),
    ),
    ApiCase(
        "imagenet-c-missing-severity",
        lambda f: load_dataset(f"imagenet-c:{f['imagenet_c']}#fog/2"),
        ("no severity 2 of 'fog'", "1,3"),
    ),
    ApiCase(
        "imagenet-c-none-picked",
        lambda f: load_dataset(f"imagenet-c:{f['imagenet_c']}"),
        ("pick one corruption and severity", "fog 1,3"),
    ),
    # --- counts
    ApiCase(
        "limit-float",
        lambda f: load_dataset(f"npz:{f['good']}", limit=2.5),  # type: ignore[arg-type]
        ("limit must be an int", "2.5"),
    ),
    ApiCase(
        "limit-bool",
        lambda f: load_dataset(f"npz:{f['good']}", limit=True),
        ("limit must be an int", "true"),
    ),
    ApiCase("limit-zero", lambda f: load_dataset(f"npz:{f['good']}", limit=0), ("limit", ">= 1")),
    ApiCase(
        "limit-negative",
        lambda f: load_dataset(f"npz:{f['good']}", limit=-3),
        ("limit", "-3"),
    ),
    ApiCase(
        "limit-string",
        lambda f: load_dataset(f"npz:{f['good']}", limit="5"),  # type: ignore[arg-type]
        ("limit must be an int", "'5'"),
    ),
    ApiCase(
        "dataset-limit-float",
        lambda f: load_dataset(f"npz:{f['good']}").limit(2.5),  # type: ignore[arg-type]
        ("limit must be an int",),
    ),
    ApiCase(
        "seed-string",
        lambda f: load_dataset(f"npz:{f['good']}", limit=2, seed="a"),  # type: ignore[arg-type]
        ("seed must be an int",),
    ),
    ApiCase(
        "image-size-zero",
        lambda f: load_dataset(f"folder:{f['folder_ok']}", image_size=(0, 8)),
        ("image_size", "(0, 8)"),
    ),
    ApiCase(
        "image-size-scalar",
        lambda f: load_dataset(f"folder:{f['folder_ok']}", image_size=8),  # type: ignore[arg-type]
        ("image_size must be (height, width)",),
    ),
    ApiCase(
        "channels-2",
        lambda f: load_dataset(f"folder:{f['folder_ok']}", channels=2),
        ("channels must be 1 or 3", "2"),
    ),
    ApiCase(
        "channels-bool",
        lambda f: load_dataset(f"folder:{f['folder_ok']}", channels=True),
        ("channels must be 1 or 3", "true"),
    ),
    ApiCase(
        "split-empty",
        lambda f: load_dataset(f"npz:{f['good']}", split=""),
        ("split must be a non-empty string",),
    ),
    ApiCase(
        "batch-size-zero",
        lambda f: _acc(Model(_flat()), _x(), _y(), batch_size=0),
        ("batch_size must be >= 1", "0"),
    ),
    ApiCase(
        "batch-size-float",
        lambda f: _acc(Model(_flat()), _x(), _y(), batch_size=2.5),
        ("batch_size must be an int", "2.5"),
    ),
    ApiCase(
        "batch-size-bool",
        lambda f: _acc(Model(_flat()), _x(), _y(), batch_size=True),
        ("batch_size must be an int", "true"),
    ),
    ApiCase(
        "batches-negative",
        lambda f: list(load_dataset(f"npz:{f['good']}").batches(-1)),
        ("batch_size must be >= 1", "-1"),
    ),
    ApiCase(
        "predict-batch-size-float",
        lambda f: Model(_flat()).predict(_x(), batch_size=1.5),  # type: ignore[arg-type]
        ("batch_size must be an int", "1.5"),
    ),
    ApiCase(
        "subset-float-indices",
        lambda f: load_dataset(f"npz:{f['good']}").subset(np.array([0.5, 1.5])),
        ("subset indices must be integers", "float64"),
    ),
    ApiCase("check-count-none", lambda f: check_count(None, "n_images"), ("n_images", "none")),
    # --- non-finite logits
    ApiCase(
        "nan-logits-accuracy",
        lambda f: _acc(Model(_nan_net), _x(1, 8), _y(classes=3)),
        ("nan or infinite logits for 1 of 4 images", "nonfinite='warn'"),
    ),
    ApiCase(
        "inf-logits-logits",
        lambda f: Model(_inf_net)(_x(1, 8)),
        ("nan or infinite logits for 4 of 4",),
    ),
    ApiCase(
        "nonfinite-option-bad",
        lambda f: Model(_flat(), nonfinite="ignore"),
        ("nonfinite must be 'raise' or 'warn'", "ignore"),
    ),
    # --- meta tensors, dtypes, ranks and other contract breaches
    ApiCase(
        "check-images-meta",
        lambda f: check_images(_meta(2, 1, 8, 8)),
        ("x is on the meta device", "cpu"),
    ),
    ApiCase(
        "accuracy-meta",
        lambda f: _acc(Model(_flat(64)), _meta(2, 1, 8, 8), _y(2)),
        ("meta device",),
    ),
    ApiCase(
        "check-labels-meta",
        lambda f: check_labels(_meta(2, dtype=torch.int64)),
        ("y is on the meta device",),
    ),
    ApiCase(
        "logits-meta",
        lambda f: Model(_flat(64))(_meta(2, 1, 8, 8)),
        ("meta device",),
    ),
    ApiCase(
        "check-images-sparse",
        lambda f: check_images(torch.zeros(1, 1, 2, 2).to_sparse()),
        ("sparse", "to_dense"),
    ),
    ApiCase(
        "check-images-float64",
        lambda f: check_images(torch.rand(1, 1, 4, 4, dtype=torch.float64)),
        ("dtype torch.float64", ".float()"),
    ),
    ApiCase(
        "check-images-uint8",
        lambda f: check_images(torch.zeros(1, 1, 4, 4, dtype=torch.uint8)),
        ("dtype torch.uint8", "/ 255"),
    ),
    ApiCase(
        "check-images-bool",
        lambda f: check_images(torch.zeros(1, 1, 4, 4, dtype=torch.bool)),
        ("dtype torch.bool",),
    ),
    ApiCase(
        "check-images-rank3",
        lambda f: check_images(torch.rand(1, 4, 4)),
        ("3 dimensions", "unsqueeze(0)"),
    ),
    ApiCase(
        "check-images-rank5",
        lambda f: check_images(torch.rand(1, 1, 1, 4, 4)),
        ("5 dimensions", "reshape"),
    ),
    ApiCase(
        "check-images-numpy",
        lambda f: check_images(np.zeros((1, 1, 4, 4), np.float32)),
        ("x is a ndarray", "torch.from_numpy"),
    ),
    ApiCase(
        "check-images-list",
        lambda f: check_images([[0.0]]),
        ("x is a list", "torch.tensor"),
    ),
    ApiCase(
        "check-images-empty",
        lambda f: check_images(torch.rand(0, 1, 4, 4)),
        ("empty batch",),
    ),
    ApiCase(
        "check-images-channels-last",
        lambda f: check_images(torch.rand(2, 32, 32, 3)),
        ("channels-last", "permute(0, 3, 1, 2)"),
    ),
    ApiCase(
        "check-images-nan",
        lambda f: check_images(torch.full((1, 1, 2, 2), float("nan"))),
        ("4 nan or infinite",),
    ),
    ApiCase(
        "check-images-255",
        lambda f: check_images(torch.full((1, 1, 2, 2), 200.0)),
        ("outside [0, 1]", "divide by 255"),
    ),
    ApiCase(
        "accuracy-float64",
        lambda f: _acc(Model(_flat()), _x().double(), _y()),
        ("dtype torch.float64",),
    ),
    ApiCase(
        "accuracy-float-labels",
        lambda f: _acc(Model(_flat()), _x(), _y().float()),
        ("y has dtype torch.float32", ".long()"),
    ),
    ApiCase(
        "accuracy-onehot-labels",
        lambda f: _acc(Model(_flat()), _x(), torch.eye(4, dtype=torch.int64)),
        ("y has shape (4, 4)", "argmax(1)"),
    ),
    ApiCase(
        "accuracy-label-count",
        lambda f: _acc(Model(_flat()), _x(), _y(3)),
        ("3 labels but there are 4 images",),
    ),
    ApiCase(
        "accuracy-label-range",
        lambda f: _acc(Model(_flat(784, 3)), _x(), torch.tensor([0, 1, 2, 7])),
        ("labels go up to 7", "3 classes"),
    ),
    ApiCase(
        "accuracy-not-a-model",
        lambda f: _acc(_flat(), _x(), _y()),  # type: ignore[arg-type]
        ("model is a sequential", "robustcv.model"),
    ),
    ApiCase(
        "accuracy-dataset-and-y",
        lambda f: _acc(Model(_flat()), load_dataset(f"npz:{f['good']}"), _y()),
        ("not a dataset and y",),
    ),
    ApiCase(
        "accuracy-no-y",
        lambda f: _acc(Model(_flat()), _x()),
        ("labels y are required",),
    ),
    ApiCase(
        "accuracy-progress-string",
        lambda f: _acc(Model(_flat()), _x(), _y(), progress="yes"),
        ("progress must be true, false or none",),
    ),
    ApiCase(
        "accuracy-empty-dataset",
        lambda f: _acc(
            Model(_flat()),
            Dataset("e", "test", ["a"], load_dataset(f"npz:{f['good']}").source).subset([]),
        ),
        ("has no images",),
    ),
    ApiCase(
        "model-input-range-reversed",
        lambda f: Model(_flat(), input_range=(1, 0)),
        ("input_range must be (low, high)",),
    ),
    ApiCase(
        "model-input-range-strings",
        lambda f: Model(_flat(), input_range=("a", "b")),  # type: ignore[arg-type]
        ("input_range must be (low, high)",),
    ),
    ApiCase(
        "model-mean-string",
        lambda f: Model(_flat(), mean="abc"),  # type: ignore[arg-type]
        ("mean must be a number",),
    ),
    ApiCase(
        "model-num-classes-float",
        lambda f: Model(_flat(), num_classes=2.5),  # type: ignore[arg-type]
        ("num_classes must be an int", "2.5"),
    ),
    ApiCase(
        "npz-image-size-ignored",
        lambda f: load_dataset(f"npz:{f['gray8']}", image_size=(4, 4)),
        ("image_size=", "image folders", "npz"),
    ),
    ApiCase(
        "cifar-c-channels-ignored",
        lambda f: load_dataset(f"cifar-c:{f['cifar_c']}#fog/1", channels=1),
        ("channels=", "cifar-c"),
    ),
    ApiCase(
        "cifar-c-corruption-int",
        lambda f: load_dataset(f"cifar-c:{f['cifar_c']}", corruption=3, severity=1),  # type: ignore[arg-type]
        ("corruption must be a name", "int"),
    ),
    ApiCase(
        "fmnist-split-val",
        lambda f: load_dataset("fashion-mnist", split="val"),
        ("split='val'", "train, test"),
    ),
    ApiCase(
        "torchscript-path-is-folder",
        lambda f: load_model(_folder(f["tmp"] / "dir.pt")),
        ("dir.pt", "folder"),
    ),
    ApiCase(
        "model-returns-int-logits",
        lambda f: Model(lambda x: torch.zeros(x.shape[0], 3, dtype=torch.long))(_x(1, 4)),
        ("dtype torch.int64", "float logits"),
    ),
    ApiCase(
        "fetch-dest-is-file",
        lambda f: fetch_files({"a.bin": "0" * 64}, "file:///nowhere/", f["file"], quiet=True),
        ("destination", "file.txt", "is a file"),
    ),
    ApiCase(
        "fetch-dest-empty",
        lambda f: fetch_files({"a.bin": "0" * 64}, "file:///nowhere/", "", quiet=True),
        ("destination folder is empty",),
    ),
    ApiCase(
        "model-returns-tuple",
        lambda f: Model(_tuple_net)(_x(1, 4)),
        ("returned a tuple", "logits tensor"),
    ),
]

if not _CUDA:
    API_CASES += [
        ApiCase(
            "model-device-cuda",
            lambda f: Model(_conv(), device="cuda"),
            ("cuda is not available on this machine", "available: cpu"),
        ),
        ApiCase(
            "load-model-device-cuda",
            lambda f: load_model(ZOO, device="cuda"),
            ("cuda is not available", "available: cpu"),
        ),
        ApiCase(
            "load-onnx-device-cuda",
            lambda f: load_model(f["onnx_garbage"], device="cuda:0"),
            ("cuda", "available: cpu"),
        ),
    ]
if _GPUS < 4:
    API_CASES.append(
        ApiCase(
            "model-device-cuda-3",
            lambda f: Model(_conv(), device="cuda:3"),
            ("cuda:3", "available"),
        )
    )
if not _MPS:
    API_CASES.append(
        ApiCase(
            "model-device-mps",
            lambda f: Model(_conv(), device="mps"),
            ("mps", "not available", "available: cpu"),
        )
    )


@pytest.mark.parametrize("case", API_CASES, ids=[c.id for c in API_CASES])
def test_api(case: ApiCase, files: dict[str, Path]) -> None:
    check_api(case, files)


def test_corpus_ids_are_unique() -> None:
    ids = [c.id for c in API_CASES] + [c.id for c in CLI_CASES]
    assert len(ids) == len(set(ids))
    assert len(API_CASES) >= 60


# ----------------------------------------------------------------------------- CLI cases

EVAL = ["eval", "--quiet"]

CLI_CASES: list[CliCase] = [
    CliCase(
        "eval-rgb32-into-zoo",
        [*EVAL, "--model", ZOO, "--data", "npz:{rgb32}"],
        ("the model takes 1-channel 28x28 images", "3-channel 32x32"),
    ),
    CliCase(
        "eval-mean-length",
        [
            *EVAL,
            "--model",
            "{factories}:net",
            "--preprocess",
            "mean=0.5,0.5,0.5",
            "--data",
            "npz:{gray8}",
        ],
        ("mean has 3 values", "1-channel 8x8"),
    ),
    CliCase("eval-empty-npz", [*EVAL, "--model", ZOO, "--data", "npz:{empty}"], ("no images",)),
    CliCase(
        "eval-garbage-npz",
        [*EVAL, "--model", ZOO, "--data", "npz:{garbage}"],
        ("garbage.npz", "not a valid .npz"),
    ),
    CliCase(
        "eval-npz-without-labels",
        [*EVAL, "--model", ZOO, "--data", "npz:{nolabels}"],
        ("nolabels.npz", "'y'"),
    ),
    CliCase(
        "eval-missing-data",
        [*EVAL, "--model", ZOO, "--data", "npz:{tmp}/missing.npz"],
        ("missing.npz", "does not exist"),
    ),
    CliCase(
        "eval-unknown-data-kind",
        [*EVAL, "--model", ZOO, "--data", "nzp:{good}"],
        ("unknown dataset kind 'nzp'",),
    ),
    CliCase(
        "eval-rgba-npz",
        [*EVAL, "--model", ZOO, "--data", "npz:{images_rgba}"],
        ("4 channels", "alpha"),
    ),
    CliCase(
        "eval-factory-raises",
        [*EVAL, "--model", "{factory}:broken", "--data", "npz:{good}"],
        ("my factory is broken", "factory.py:5"),
    ),
    CliCase(
        "eval-factory-syntax-error",
        [*EVAL, "--model", "{syntax}:build", "--data", "npz:{good}"],
        ("syntaxerror", "syntax_error.py:1"),
    ),
    CliCase(
        "eval-factory-missing",
        [*EVAL, "--model", "{factory}:nope", "--data", "npz:{good}"],
        ("no callable named 'nope'",),
    ),
    CliCase(
        "eval-factory-returns-none",
        [*EVAL, "--model", "{factories}:returns_none", "--data", "npz:{good}"],
        ("returned nonetype",),
    ),
    CliCase(
        "eval-garbage-weights",
        [*EVAL, "--model", "{factories}:net", "--weights", "{garbage_pt}", "--data", "npz:{gray8}"],
        ("garbage.pt", "not a pytorch checkpoint"),
    ),
    CliCase(
        "eval-garbage-onnx",
        [*EVAL, "--model", "{onnx_garbage}", "--data", "npz:{good}"],
        ("garbage.onnx", "onnxruntime"),
    ),
    CliCase(
        "eval-labels-negative",
        [*EVAL, "--model", ZOO, "--data", "npz:{labels_negative}"],
        ("negative value -1",),
    ),
    CliCase(
        "eval-cifar-c-no-severity",
        [*EVAL, "--model", ZOO, "--data", "cifar-c:{cifar_c}#fog"],
        ("pick one corruption and severity",),
    ),
    CliCase(
        "eval-device-garbage",
        [*EVAL, "--model", ZOO, "--data", "npz:{good}", "--device", "gpu"],
        ("gpu",),
    ),
    CliCase(
        "eval-limit-zero",
        [*EVAL, "--model", ZOO, "--data", "npz:{good}", "--limit", "0"],
        ("limit",),
    ),
    CliCase(
        "eval-batch-size-zero",
        [*EVAL, "--model", ZOO, "--data", "npz:{good}", "--batch-size", "0"],
        ("batch",),
    ),
    CliCase("list-unknown-section", ["list", "modles"], ("modles",)),
]
if not _CUDA:
    CLI_CASES.append(
        CliCase(
            "eval-device-cuda",
            [*EVAL, "--model", ZOO, "--data", "npz:{good}", "--device", "cuda"],
            ("cuda", "available"),
        )
    )


@pytest.mark.parametrize("case", CLI_CASES, ids=[c.id for c in CLI_CASES])
def test_cli(case: CliCase, files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    check_cli(case, files, capsys)


# ----------------------------------------------------------------------------- opt-ins


def test_nonfinite_warn_counts_as_wrong() -> None:
    model = Model(_nan_net, nonfinite="warn")
    y = torch.tensor([1, 0, 0, 0])  # row 0 has NaN at class 1: argmax would call it right
    with pytest.warns(NonFiniteLogitsWarning, match="1 of 4"):
        res = accuracy(model, _x(1, 8), y)
    assert res.nonfinite == 1
    assert res.correct == 3
    assert res.to_dict()["nonfinite"] == 1


def test_check_model_fits_accepts_what_fits_and_counts_nothing(files: dict[str, Path]) -> None:
    model = load_model(ZOO)
    check_model_fits(model, _x(1, 28))
    check_model_fits(model, load_dataset(f"npz:{files['good']}"))
    assert model.counts().forward == 0
    # a 2- or 4-channel model is legal: the contract does not fix the channel count
    check_model_fits(Model(_conv(4, 8, 3)), _x(4, 8))


def test_onnx_fits_and_takes_its_signature(files: dict[str, Path]) -> None:
    path = _onnx_file(files)
    model = load_model(path)
    check_model_fits(model, _x(1, 8))
    assert getattr(model.net, "input_shape", None) == (None, 1, 8, 8)
    assert accuracy(model, _x(1, 8), _y(classes=3)).n == 4


def test_messages_share_one_format() -> None:
    """The mismatch from Model.logits and from check_model_fits read the same way."""
    model = Model(_conv(1, 8))
    with pytest.raises(ModelDataMismatchError) as direct:
        model(_x(3, 8))
    with pytest.raises(ModelDataMismatchError) as checked:
        check_model_fits(model, _x(3, 8))
    for info in (direct, checked):
        text = str(info.value)
        assert text.startswith("the model takes 1-channel")
        assert "; the data has 3-channel 8x8 images: resize/convert the data" in text


def test_user_code_error_is_an_input_error() -> None:
    assert issubclass(UserCodeError, InputError)
    assert issubclass(ModelDataMismatchError, InputError)


def test_manifest_with_wrong_types_is_refused(tmp_path: Path) -> None:
    inc = tmp_path / "inc"
    (inc / "fog" / "1" / "n01").mkdir(parents=True)
    Image.new("L", (4, 4)).save(inc / "fog" / "1" / "n01" / "0.png")
    (inc / "robustcv_manifest.json").write_text(
        json.dumps({"format": "imagenet-c", "config": {"classes": 3}, "done": []})
    )
    with pytest.raises(InputError, match="lacks the dataset name or class names"):
        load_dataset(f"imagenet-c:{inc}#fog/1")
