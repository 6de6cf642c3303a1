"""corruption_accuracy: tables, counts, intervals, seeding, modes, baselines, bad input."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from robustcv import accuracy, load_dataset, load_model
from robustcv.core.errors import InputError
from robustcv.core.model import Model
from robustcv.core.seeding import derive_seed
from robustcv.core.stats import binomial_ci
from robustcv.corruptions import CORRUPTIONS, corrupt, corruption_accuracy
from robustcv.corruptions.base import CorruptionDef, Params, SampleRNG, register_corruption
from robustcv.corruptions.evaluate import CorruptionAccuracyResult, select_corruptions
from robustcv.data.dataset import ArraySource, Dataset

FAKE = ("test-identity", "test-black", "test-noise")


def _identity(x: torch.Tensor, p: Params, rng: SampleRNG) -> torch.Tensor:
    return x.clone()


def _black(x: torch.Tensor, p: Params, rng: SampleRNG) -> torch.Tensor:
    return torch.zeros_like(x)


def _noise(x: torch.Tensor, p: Params, rng: SampleRNG) -> torch.Tensor:
    return (x + p["sigma"] * rng.randn(*x.shape[1:])).clamp(0, 1)


@pytest.fixture(autouse=True)
def fake_corruptions() -> Iterator[None]:
    """Register three fake corruptions for the test, and remove them afterwards."""
    rows = tuple((0.1 * s,) for s in range(1, 6))
    for name, fn, random in zip(
        FAKE, (_identity, _black, _noise), (False, False, True), strict=True
    ):
        register_corruption(
            CorruptionDef(
                name,
                fn,
                "noise",
                False,
                ("sigma",),
                {"imagenet-c": rows, "cifar-10-c": rows},
                random=random,
            )
        )
    yield
    for name in FAKE:
        CORRUPTIONS._entries.pop(name, None)
        for alias in [a for a, target in CORRUPTIONS._aliases.items() if target == name]:
            del CORRUPTIONS._aliases[alias]


class Recorder(nn.Module):
    """A tiny classifier with dropout that records the training flag it ran under."""

    def __init__(self, c: int = 3, size: int = 8, k: int = 4) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.drop = nn.Dropout(0.5)
        self.fc = nn.Linear(c * size * size, k)
        self.seen: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(self.training)
        return self.fc(self.drop(x.flatten(1)))


def _data(n: int = 40, c: int = 3, size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.rand(n, c, size, size, generator=g), torch.randint(0, 4, (n,), generator=g)


def test_table_counts_and_intervals() -> None:
    net = Recorder()
    model = Model(net)
    x, y = _data()
    res = corruption_accuracy(
        model, x, y, corruptions=["test-identity", "test-black"], progress=False
    )
    clean = accuracy(model, x, y).accuracy
    black_pred = net.eval()(torch.zeros(1, 3, 8, 8)).argmax(1).item()
    black_acc = float((y == black_pred).float().mean())
    assert res.n == 40 and res.clean_accuracy == pytest.approx(clean)
    assert res.clean_correct == round(clean * 40)
    assert res.corruptions == ["test-identity", "test-black"]
    assert res.severities == {"test-identity": [1, 2, 3, 4, 5], "test-black": [1, 2, 3, 4, 5]}
    for s in range(1, 6):
        assert res.accuracy["test-identity"][s] == pytest.approx(clean)
        assert res.accuracy["test-black"][s] == pytest.approx(black_acc)
        k = res.correct["test-black"][s]
        assert k == round(black_acc * 40) and res.ci95["test-black"][s] == binomial_ci(k, 40)
    assert res.clean_ci95 == binomial_ci(res.clean_correct, 40)
    assert res.corruption_mean == {
        "test-identity": pytest.approx(clean),
        "test-black": pytest.approx(black_acc),
    }
    assert res.mean_accuracy == pytest.approx((clean + black_acc) / 2) == float(res)
    assert res.mce is None and res.ce is None and res.baseline is None
    d = res.to_dict()
    assert d["accuracy"]["test-black"]["3"] == pytest.approx(black_acc)
    assert isinstance(res.to_json(), str)


def test_seed_batch_size_and_replay() -> None:
    x, y = _data(48)
    model = Model(Recorder())
    kw: dict[str, Any] = {"corruptions": ["test-noise"], "severities": (2, 5), "progress": False}
    a = corruption_accuracy(model, x, y, seed=3, batch_size=7, **kw)
    b = corruption_accuracy(model, x, y, seed=3, batch_size=48, **kw)
    assert a.accuracy == b.accuracy and a.correct == b.correct
    # documented seeding: condition (c, s) corrupts with derive_seed(seed, c, s)
    for s in (2, 5):
        xc = corrupt(x, "test-noise", s, seed=derive_seed(3, "test-noise", s))
        want = int((model.predict(xc) == y).sum())
        assert a.correct["test-noise"][s] == want


def test_mode_restored_eval_used_and_inputs_untouched() -> None:
    net = Recorder()
    net.train()
    net.drop.eval()  # a mixed state must come back exactly
    x, y = _data(10)
    x0, y0 = x.clone(), y.clone()
    corruption_accuracy(Model(net), x, y, corruptions=["test-noise"], progress=True)
    assert net.seen and not any(net.seen)
    assert net.training and not net.drop.training and net.fc.training
    assert torch.equal(x, x0) and torch.equal(y, y0)


def test_dataset_input_matches_tensor_input() -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(30, 8, 8, 3), dtype=np.uint8)
    labels = rng.integers(0, 4, size=30)
    ds = Dataset("toy", "test", ["a", "b", "c", "d"], ArraySource(images, labels))
    model = Model(Recorder())
    kw: dict[str, Any] = {
        "corruptions": "test-noise,test-black",
        "severities": (1, 4),
        "progress": False,
    }
    a = corruption_accuracy(model, ds, batch_size=8, **kw)
    b = corruption_accuracy(model, ds.x, ds.y, **kw)
    assert a.accuracy == b.accuracy and a.clean_accuracy == b.clean_accuracy and a.n == 30
    with pytest.raises(InputError, match="not a Dataset and y"):
        corruption_accuracy(model, ds, ds.y, **kw)


def test_baseline_table_gives_ce_mce_and_relative() -> None:
    net = Recorder()
    x, _ = _data()
    y = net.eval()(x).argmax(1)  # clean accuracy 1
    model = Model(net)
    base = {"test-black": 0.8, "test-noise": {s: 0.5 for s in range(1, 6)}}
    res = corruption_accuracy(
        model,
        x,
        y,
        corruptions=["test-black", "test-noise"],
        baseline=base,
        baseline_clean_error=0.1,
        progress=False,
    )
    err_black = 1 - res.corruption_mean["test-black"]
    err_noise = 1 - res.corruption_mean["test-noise"]
    assert res.clean_accuracy == 1.0
    assert res.ce == {
        "test-black": pytest.approx(100 * err_black / 0.8),
        "test-noise": pytest.approx(100 * err_noise / 0.5),
    }
    assert res.mce == pytest.approx((100 * err_black / 0.8 + 100 * err_noise / 0.5) / 2)
    assert res.mce_corruptions == ["test-black", "test-noise"]
    assert any("not comparable" in n for n in res.notes)
    assert res.relative_ce is not None and res.relative_mce is not None
    assert res.relative_ce["test-black"] == pytest.approx(100 * err_black / (0.8 - 0.1))
    # an earlier result as baseline: the model against itself scores 100
    again = corruption_accuracy(
        model, x, y, corruptions=["test-black", "test-noise"], baseline=res, progress=False
    )
    assert again.mce == pytest.approx(100.0) and again.relative_mce == pytest.approx(100.0)
    assert again.baseline == f"model {model.name}"


def test_bad_input_fails_before_any_work() -> None:
    model = Model(Recorder())
    x, y = _data(6)
    cases: list[tuple[dict[str, object], str]] = [
        ({"corruptions": ["test-nosie"]}, "did you mean 'test-noise'"),
        ({"corruptions": ["test-noise"], "severities": (1, 6)}, r"severity 6 is outside 1\.\.5"),
        ({"corruptions": ["mvh-colour"]}, "severities='all'"),
        ({"corruptions": ["test-noise"], "baseline": "alexnet"}, "no value for any evaluated"),
        ({"corruptions": ["test-noise"], "baseline": "resnet"}, "use 'alexnet'"),
        (
            {"corruptions": ["test-noise"], "baseline": {"test-noise": 0.5}, "severities": (1,)},
            "missing severity 2, 3, 4, 5",
        ),
        ({"corruptions": ["test-noise"], "baseline_clean_error": 0.4}, "without a baseline"),
        ({"corruptions": ["test-noise"], "spec": "imagenet"}, "unknown spec"),
        ({"corruptions": ["test-noise"], "seed": -1}, "out of range"),
        ({"corruptions": ["test-noise"], "batch_size": 0}, "batch_size"),
        ({"corruptions": []}, "empty"),
        ({"corruptions": ["test-noise", "test_noise"]}, "twice"),
        ({"corruptions": ["test-noise"], "severities": "some"}, "'all'"),
    ]
    for kwargs, message in cases:
        with pytest.raises(InputError, match=message):
            corruption_accuracy(model, x, y, progress=False, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="labels y are required"):
        corruption_accuracy(model, x, corruptions=["test-noise"], progress=False)
    with pytest.raises(InputError, match=r"wrap it with robustcv\.Model"):
        corruption_accuracy(Recorder(), x, y, corruptions=["test-noise"])  # type: ignore[arg-type]
    with pytest.raises(InputError, match="outside"):
        corruption_accuracy(model, x * 2, y, corruptions=["test-noise"], progress=False)
    assert model.counts().forward == 0


def test_selection_groups() -> None:
    mvh = select_corruptions("mvh")
    assert len(mvh) == 10 and all(n.startswith("mvh-") for n in mvh)
    assert select_corruptions("test-noise, test_black") == ["test-noise", "test-black"]
    assert select_corruptions(["MVH_Low_Pass"]) == ["mvh-low-pass"]
    with pytest.raises(InputError, match="must be"):
        select_corruptions(3)  # type: ignore[arg-type]


def test_mvh_all_levels_on_random_images() -> None:
    net = Recorder(c=3, size=16)
    x = torch.rand(12, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    y = net.eval()(x).argmax(1)
    res = corruption_accuracy(Model(net), x, y, corruptions="mvh", severities="all", progress=False)
    assert isinstance(res, CorruptionAccuracyResult)
    assert res.severities["mvh-contrast"] == list(range(1, 9))
    assert res.severities["mvh-rotation"] == [1, 2, 3, 4]
    # the controls that leave colour images untouched keep the clean accuracy (1.0 here)
    assert res.accuracy["mvh-colour"][1] == 1.0 and res.accuracy["mvh-false-colour"][1] == 1.0


@pytest.mark.fmnist
def test_fashion_mnist_end_to_end() -> None:
    data = load_dataset("fashion-mnist", split="test", limit=200)
    model = load_model("zoo:fmnist-cnn")
    res = corruption_accuracy(
        model,
        data,
        corruptions=["mvh-contrast", "mvh-uniform-noise"],
        severities="all",
        progress=False,
    )
    clean = accuracy(model, data).accuracy
    assert res.n == 200 and res.clean_accuracy == pytest.approx(clean) and clean > 0.8
    # contrast 1 on a grey image is the image itself
    assert res.accuracy["mvh-contrast"][1] == pytest.approx(clean)
    assert res.accuracy["mvh-contrast"][8] < clean - 0.3  # 1% contrast
    assert res.accuracy["mvh-uniform-noise"][8] < clean - 0.3  # width .9 at 30% contrast
    lo, hi = res.ci95["mvh-contrast"][8]
    assert lo <= res.accuracy["mvh-contrast"][8] <= hi


@pytest.mark.fmnist
def test_fashion_mnist_gaussian_noise() -> None:
    if "gaussian_noise" not in CORRUPTIONS:
        pytest.skip("gaussian_noise is not registered yet")
    data = load_dataset("fashion-mnist", split="test", limit=200)
    model = load_model("zoo:fmnist-cnn")
    res = corruption_accuracy(
        model, data, corruptions=["gaussian_noise"], severities=(1, 5), progress=False
    )
    assert res.accuracy["gaussian_noise"][5] < res.clean_accuracy
    assert res.accuracy["gaussian_noise"][5] <= res.accuracy["gaussian_noise"][1]
