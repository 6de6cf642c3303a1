"""robustcv.accuracy: hand-computed values, per-class accuracy, intervals and input checks."""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from torch import nn

from robustcv.core.errors import InputError
from robustcv.core.model import Model
from robustcv.core.stats import binomial_ci
from robustcv.data.dataset import ArraySource, Dataset
from robustcv.diagnostics.accuracy import AccuracyResult, accuracy


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


N, CLASSES = 103, 4


def _net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(36, 16), nn.ReLU(), nn.Linear(16, CLASSES)).eval()


def _data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(N, 6, 6), dtype=np.uint8)
    labels = rng.integers(0, CLASSES, size=N)
    labels[:CLASSES] = np.arange(CLASSES)  # every class present
    return images, labels


def _tensors(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = _data(seed)
    x = torch.from_numpy(images).float().div(255.0)[:, None]
    return x, torch.from_numpy(labels).long()


def _dataset(seed: int = 0, n_classes: int = CLASSES) -> Dataset:
    images, labels = _data(seed)
    return Dataset("toy", "test", [f"c{i}" for i in range(n_classes)], ArraySource(images, labels))


def _by_hand(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return net(x).argmax(1) == y


@pytest.mark.parametrize("batch_size", [1, 7, 256])
def test_matches_hand_computation(batch_size: int) -> None:
    net = _net()
    x, y = _tensors()
    res = accuracy(Model(net), x, y, batch_size=batch_size, progress=False)
    hits = _by_hand(net, x, y)
    assert isinstance(res, AccuracyResult)
    assert res.n == N
    assert res.correct == int(hits.sum())
    assert res.accuracy == int(hits.sum()) / N
    assert float(res) == res.accuracy
    assert 0 < res.correct < N  # a random net on random labels: neither all right nor all wrong
    assert res.seconds >= 0


def test_per_class_and_interval() -> None:
    net = _net(1)
    x, y = _tensors(1)
    res = accuracy(Model(net), x, y, progress=False)
    hits = _by_hand(net, x, y)
    assert sorted(res.per_class) == list(range(CLASSES))
    for c in range(CLASSES):
        assert res.per_class[c] == pytest.approx(float(hits[y == c].float().mean()), abs=1e-12)
    lo, hi = res.ci95
    assert 0.0 <= lo < res.accuracy < hi <= 1.0
    assert (lo, hi) == pytest.approx(binomial_ci(res.correct, N))


def test_per_class_omits_absent_classes() -> None:
    net = _net()
    x, y = _tensors()
    keep = y != 2
    res = accuracy(Model(net), x[keep], y[keep], progress=False)
    assert 2 not in res.per_class
    assert sorted(res.per_class) == [0, 1, 3]


def test_perfect_and_zero_accuracy_intervals() -> None:
    net = _net()
    x, _ = _tensors()
    with torch.no_grad():
        pred = net(x).argmax(1)
    right = accuracy(Model(net), x, pred, progress=False)
    assert right.accuracy == 1.0 and right.correct == N
    assert right.ci95[1] == 1.0 and right.ci95[0] < 1.0
    wrong = accuracy(Model(net), x, (pred + 1) % CLASSES, progress=False)
    assert wrong.accuracy == 0.0 and wrong.ci95[0] == 0.0 and wrong.ci95[1] > 0.0


def test_dataset_and_tensors_agree() -> None:
    net = _net(2)
    ds = _dataset(2)
    x, y = _tensors(2)
    a = accuracy(Model(net), ds, batch_size=10, progress=False)
    b = accuracy(Model(net), x, y, batch_size=33, progress=False)
    assert (a.correct, a.n, a.per_class, a.ci95) == (b.correct, b.n, b.per_class, b.ci95)
    assert a.correct == int(_by_hand(net, x, y).sum())
    # a limited dataset counts only its images
    part = accuracy(Model(net), ds.limit(20), progress=False)
    assert part.n == 20
    assert part.correct == int(_by_hand(net, x[:20], y[:20]).sum())


def test_result_is_json_serialisable() -> None:
    res = accuracy(Model(_net()), *_tensors(), progress=True)
    data = json.loads(res.to_json())
    assert data["n"] == N and data["correct"] == res.correct
    assert set(data["per_class"]) == {str(c) for c in range(CLASSES)}


def test_preprocessing_inside_model_is_used() -> None:
    net = _net(3)
    x, y = _tensors(3)
    res = accuracy(Model(net, mean=0.5, std=0.2), x, y, progress=False)
    assert res.correct == int(_by_hand(net, (x - 0.5) / 0.2, y).sum())


def test_model_stays_in_training_mode_it_had() -> None:
    net = nn.Sequential(nn.Flatten(), nn.Linear(36, CLASSES), nn.Dropout(0.9))
    torch.manual_seed(0)
    net.train()
    x, y = _tensors()
    a = accuracy(Model(net), x, y, progress=False)
    b = accuracy(Model(net), x, y, progress=False)
    assert a.correct == b.correct  # dropout off during evaluation: deterministic
    assert net.training


def test_labels_out_of_range_for_the_model() -> None:
    x, y = _tensors()
    y = y.clone()
    y[5] = CLASSES  # the model has only CLASSES outputs
    with pytest.raises(ValueError, match=f"labels go up to {CLASSES}"):
        accuracy(Model(_net()), x, y, progress=False)
    # the same through a dataset with more class names than the model has outputs
    images, labels = _data()
    labels = labels.copy()
    labels[7] = CLASSES + 1
    ds = Dataset("toy", "test", [f"c{i}" for i in range(CLASSES + 2)], ArraySource(images, labels))
    with pytest.raises(InputError, match="model has 4 classes"):
        accuracy(Model(_net()), ds, progress=False)


@pytest.mark.parametrize(
    "case",
    ["y-missing", "y-with-dataset", "not-a-model", "batch-size-0", "length-mismatch",
     "negative-label", "bad-images", "int32-labels"],
)  # fmt: skip
def test_bad_inputs_raise_value_error(case: str) -> None:
    net = _net()
    x, y = _tensors()
    model = Model(net)
    calls = {
        "y-missing": lambda: accuracy(model, x),
        "y-with-dataset": lambda: accuracy(model, _dataset(), y),
        "not-a-model": lambda: accuracy(net, x, y),  # type: ignore[arg-type]
        "batch-size-0": lambda: accuracy(model, x, y, batch_size=0),
        "length-mismatch": lambda: accuracy(model, x, y[:-1]),
        "negative-label": lambda: accuracy(model, x, torch.full_like(y, -1)),
        "bad-images": lambda: accuracy(model, x * 255, y),
        "int32-labels": lambda: accuracy(model, x, y.int()),
    }
    messages = {
        "y-missing": "labels y are required",
        "y-with-dataset": "not a Dataset and y",
        "not-a-model": "wrap it with robustcv.Model",
        "batch-size-0": "batch_size must be >= 1",
        "length-mismatch": "one label per image",
        "negative-label": "negative label",
        "bad-images": "outside \\[0, 1\\]",
        "int32-labels": "int64",
    }
    with pytest.raises(ValueError, match=messages[case]):
        calls[case]()


@pytest.mark.fmnist
def test_real_data_matches_manual_loop(fmnist_test) -> None:  # type: ignore[no-untyped-def]
    from robustcv.models import load_model

    model = load_model("zoo:fmnist-cnn")
    ds = fmnist_test.limit(600, seed=1)
    res = accuracy(model, ds, batch_size=128, progress=False)
    with torch.no_grad():
        pred = model.net((ds.x - 0.286) / 0.353).argmax(1)
    assert res.correct == int((pred == ds.y).sum())
    assert res.accuracy > 0.85
