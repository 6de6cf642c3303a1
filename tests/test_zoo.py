"""The shipped model zoo: cards, weights, features, and measured accuracy on real data.

``zoo:fmnist-cnn-at`` is produced by a long training run; until its folder lands in
``robustcv/models/zoo/fmnist-cnn-at/`` its cases fail (on purpose: the package promises it).
"""

from __future__ import annotations

import json
import math

import pytest
import torch

from robustcv.attacks import attack
from robustcv.core.errors import InputError
from robustcv.diagnostics.accuracy import accuracy
from robustcv.models import ARCHITECTURES, ZOO, SmallCNN, load_model, load_zoo_model, zoo_card
from robustcv.models.architectures import build_architecture
from robustcv.models.zoo import ZOO_DIR

ZOO_NAMES = ["fmnist-cnn", "fmnist-cnn-at"]
CLEAN_FLOOR = {"fmnist-cnn": 0.91, "fmnist-cnn-at": 0.85}


def test_registry_lists_both_models() -> None:
    assert ZOO.names() == ZOO_NAMES
    for entry in ZOO:
        assert entry.summary
        assert entry.obj.folder == ZOO_DIR / entry.name


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_files_and_card(name: str) -> None:
    folder = ZOO_DIR / name
    weights = folder / "model.safetensors"
    assert weights.is_file(), f"{weights} is missing"
    assert 100_000 < weights.stat().st_size < 2 * 1024 * 1024
    card = zoo_card(name)
    assert card == json.loads((folder / "card.json").read_text())
    for key in ("architecture", "recipe", "seed", "data", "clean_accuracy", "train_seconds",
                "command"):  # fmt: skip
        assert key in card, f"card of {name} lacks '{key}'"
    assert card["architecture"] in ARCHITECTURES
    assert card["data"] == "fashion-mnist"
    assert isinstance(card["seed"], int)
    assert isinstance(card["train_seconds"], (int, float)) and card["train_seconds"] > 0
    assert isinstance(card["command"], str) and card["command"].startswith("robustcv train")
    assert f"--recipe {card['recipe']}" in card["command"]
    clean = card["clean_accuracy"]
    assert clean["n"] == 10000
    lo, hi = clean["ci95"]
    assert lo <= clean["value"] <= hi
    assert hi - lo < 0.02
    assert clean["value"] >= CLEAN_FLOOR[name]
    if name == "fmnist-cnn":
        assert card["recipe"] == "standard"
    else:  # the summary promises FGSM-RS adversarial training at eps 0.1
        assert card["recipe"] == "fgsm-rs"
        rob = card["robust_accuracy"]
        assert rob is not None and rob["eps"] == pytest.approx(0.1)
        assert 0.0 < rob["value"] < clean["value"]
        assert rob["ci95"][0] <= rob["value"] <= rob["ci95"][1]


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_loads_with_classes_and_features(name: str) -> None:
    model = load_model(f"zoo:{name}")
    assert model.name == f"zoo:{name}"
    assert model.num_classes == 10
    assert model.differentiable
    assert isinstance(model.net, SmallCNN)
    x = torch.rand(5, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    logits, feats = model.logits_and_features(x)
    assert logits.shape == (5, 10)
    assert feats.shape == (5, 128)
    assert bool((feats >= 0).all())  # after the ReLU of the embed layer
    # the card's preprocessing is applied inside the wrapper
    card = zoo_card(name)
    pre = card["preprocessing"]
    raw = model.net
    with torch.no_grad():
        manual = raw((x - pre["mean"][0]) / pre["std"][0])
        assert torch.allclose(model(x), manual, atol=1e-5)
    # load_zoo_model and load_model agree, and the weights are the shipped ones (not random)
    other = load_zoo_model(name)
    with torch.no_grad():
        assert torch.equal(other(x), model(x))
    fresh = build_architecture(card["architecture"], **card["architecture_kwargs"])
    assert not torch.equal(fresh.head.weight, raw.head.weight)


def test_unknown_zoo_model_suggests() -> None:
    with pytest.raises(InputError, match="did you mean 'fmnist-cnn'"):
        load_model("zoo:fmnist-cnm")


@pytest.mark.fmnist
@pytest.mark.parametrize("name", ZOO_NAMES)
def test_accuracy_matches_card(name: str, fmnist_test) -> None:  # type: ignore[no-untyped-def]
    model = load_model(f"zoo:{name}")
    res = accuracy(model, fmnist_test, batch_size=1000, progress=False)
    card = zoo_card(name)
    assert res.n == 10000 == card["clean_accuracy"]["n"]
    assert abs(res.accuracy - card["clean_accuracy"]["value"]) <= 0.002
    assert res.accuracy >= CLEAN_FLOOR[name]
    assert len(res.per_class) == 10


@pytest.mark.fmnist
def test_adversarially_trained_model_is_robust(fmnist_test) -> None:  # type: ignore[no-untyped-def]
    """PGD-40 (eps 0.1, step 0.01, seeded random start) on the first 1000 test images."""
    model = load_model("zoo:fmnist-cnn-at")
    x, y = fmnist_test.x[:1000], fmnist_test.y[:1000]
    with torch.no_grad():
        clean_ok = model.predict(x, batch_size=1000) == y
    # misclassified clean images count as non-robust; attacking only the others saves time
    xs, ys = x[clean_ok], y[clean_ok]
    adv = attack(model, xs, ys, "pgd", eps=0.1, steps=40, rel_step=0.1, seed=0).x_adv
    assert float((adv - xs).abs().max()) <= 0.1 + 1e-6
    assert float(adv.min()) >= 0.0 and float(adv.max()) <= 1.0
    with torch.no_grad():
        robust = int((model.predict(adv, batch_size=1000) == ys).sum())
    robust_acc = robust / 1000
    assert robust_acc >= 0.60, f"PGD-40 accuracy {robust_acc:.3f} < 0.60"
    assert robust_acc < float(clean_ok.float().mean())  # the attack does something
    assert not math.isnan(robust_acc)
