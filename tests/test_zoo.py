"""The shipped model zoo: cards, weights, features, and measured accuracy on real data.

Every registered zoo model must ship its folder (weights + card); a missing one fails here on
purpose (the package promises it). ``zoo:fmnist-cnn-shortcut`` is the probes' positive control:
its own data is ``fashion-mnist-shortcut`` (tests/test_probes_shortcut.py).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from robustcv.attacks import attack
from robustcv.core.errors import InputError
from robustcv.data.loading import load_dataset
from robustcv.diagnostics.accuracy import accuracy
from robustcv.leaderboard import card_mismatches
from robustcv.models import ARCHITECTURES, ZOO, SmallCNN, load_model, load_zoo_model, zoo_card
from robustcv.models.architectures import BagNet, bagnet_evidence, build_architecture
from robustcv.models.zoo import ZOO_DIR
from robustcv.training import RECIPES

# clean accuracy on the model's own test data (the shortcut model: the cue-carrying test set)
CLEAN_FLOOR = {
    "fmnist-cnn": 0.91,
    "fmnist-cnn-at": 0.85,
    "fmnist-cnn-shortcut": 0.98,
    "fmnist-bagnet": 0.82,
    "fmnist-cnn-pgd-at": 0.84,
    "fmnist-cnn-trades": 0.82,
    "fmnist-cnn-simclr": 0.90,
    "fmnist-cnn-gaussian": 0.91,
    "fmnist-cnn-patch-gaussian": 0.92,
    "fmnist-cnn-randconv": 0.92,
    "fmnist-cnn-distortion": 0.91,
    "fmnist-cnn-augmix": 0.90,
    "fmnist-cnn-rotation-aux": 0.90,
}
ZOO_NAMES = list(CLEAN_FLOOR)
NET_CLASS = {"fmnist-bagnet": BagNet}  # the others: SmallCNN
DATA = {"fmnist-cnn-shortcut": "fashion-mnist-shortcut"}  # the others: fashion-mnist
# fmnist-cnn-<recipe> models carry their recipe's name; the first four are older
RECIPE = {
    "fmnist-cnn": "standard",
    "fmnist-cnn-at": "fgsm-rs",
    "fmnist-cnn-shortcut": "standard",
    "fmnist-bagnet": "standard",
}


def test_registry_lists_the_zoo() -> None:
    assert ZOO.names() == ZOO_NAMES
    for entry in ZOO:
        assert entry.summary
        assert entry.obj.folder == ZOO_DIR / entry.name


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_files_and_card(name: str) -> None:
    folder = ZOO_DIR / name
    weights = folder / "model.safetensors"
    assert weights.is_file(), f"{weights} is missing"
    assert 50_000 < weights.stat().st_size < 2 * 1024 * 1024  # BagNet: 80 kB
    card = zoo_card(name)
    assert card == json.loads((folder / "card.json").read_text())
    for key in ("architecture", "recipe", "seed", "data", "clean_accuracy", "train_seconds",
                "command"):  # fmt: skip
        assert key in card, f"card of {name} lacks '{key}'"
    assert card["architecture"] in ARCHITECTURES
    assert card["data"] == DATA.get(name, "fashion-mnist")
    assert card["config"]["data"] == card["data"]
    assert f"--data {card['data']}" in card["command"]
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
    assert card["recipe"] == RECIPE.get(name, name.removeprefix("fmnist-cnn-"))
    if name == "fmnist-cnn-shortcut":  # the card documents the cue and the plain accuracy
        cue = card["cue"]
        assert cue["size"] == 3 and len(cue["positions"]) == 10
        assert 0 < cue["train_fraction"] <= 1 and cue["test_fraction"] == 1
        plain = card["clean_accuracy_plain"]
        assert plain["data"] == "fashion-mnist" and plain["n"] == 10000
        assert plain["ci95"][0] <= plain["value"] <= plain["ci95"][1] < clean["value"]
        assert "--no-augment" in card["command"]
    if RECIPES.get(card["recipe"]).adversarial:  # adversarial training at eps 0.1
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
    assert isinstance(model.net, NET_CLASS.get(name, SmallCNN))
    x = torch.rand(5, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    logits, feats = model.logits_and_features(x)
    assert logits.shape == (5, 10)
    assert feats.shape == (5, 128)
    assert bool((feats >= 0).all())  # after the ReLU of the embed layer
    # the card's preprocessing is applied inside the wrapper
    card = zoo_card(name)
    pre = card["preprocessing"]
    raw = model.net.eval()  # batch norm (BagNet) with its running statistics
    with torch.no_grad():
        manual = raw((x - pre["mean"][0]) / pre["std"][0])
        assert torch.allclose(model(x), manual, atol=1e-5)
    # load_zoo_model and load_model agree, and the weights are the shipped ones (not random)
    other = load_zoo_model(name)
    with torch.no_grad():
        assert torch.equal(other(x), model(x))
    if isinstance(raw, BagNet):  # the evidence maps average to the logits
        assert torch.allclose(bagnet_evidence(model, x).mean((2, 3)), model(x), atol=1e-4)
    fresh = build_architecture(card["architecture"], **card["architecture_kwargs"])
    assert not torch.equal(fresh.head.weight, raw.head.weight)


def test_adversarially_trained_models_say_so_in_their_name() -> None:
    for entry in ZOO:
        recipe = RECIPES.get(zoo_card(entry.name)["recipe"])
        marked = any(tag in entry.name for tag in ("-at", "trades", "pgd", "fgsm"))
        assert marked == recipe.adversarial, entry.name


def test_readme_zoo_table_is_generated_from_the_cards() -> None:
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "scripts" / "zoo_table.py"
    out = subprocess.run([sys.executable, str(script), "--check"], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_unknown_zoo_model_suggests() -> None:
    with pytest.raises(InputError, match="did you mean 'fmnist-cnn'"):
        load_model("zoo:fmnist-cnm")


@pytest.mark.fmnist
@pytest.mark.parametrize("name", ZOO_NAMES)
def test_accuracy_matches_card(name: str, fmnist_test) -> None:  # type: ignore[no-untyped-def]
    model = load_model(f"zoo:{name}")
    card = zoo_card(name)
    data = fmnist_test if name not in DATA else load_dataset(DATA[name], split="test")
    res = accuracy(model, data, batch_size=1000, progress=False)
    assert res.n == 10000 == card["clean_accuracy"]["n"]
    assert abs(res.accuracy - card["clean_accuracy"]["value"]) <= 0.002
    assert res.accuracy >= CLEAN_FLOOR[name]
    assert len(res.per_class) == 10
    if "clean_accuracy_plain" in card:  # the shortcut model on the plain test set
        plain = accuracy(model, fmnist_test, batch_size=1000, progress=False)
        assert abs(plain.accuracy - card["clean_accuracy_plain"]["value"]) <= 0.002


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


def test_bagnet_sees_only_9x9_patches_and_averages_evidence() -> None:
    torch.manual_seed(0)
    net = BagNet().eval()
    x = torch.rand(2, 1, 28, 28)
    maps = bagnet_evidence(net, x)
    assert maps.shape == (2, 10, 14, 14)
    with torch.no_grad():
        assert torch.allclose(maps.mean((2, 3)), net(x), atol=1e-5)
    # changing pixel (13, 13) changes only the locations whose 9x9 patch covers it
    y = x.clone()
    y[:, :, 13, 13] = 1 - y[:, :, 13, 13]
    changed = (bagnet_evidence(net, y) - maps).abs().amax((0, 1)) > 0
    rows = torch.nonzero(changed.any(1)).flatten().tolist()
    cols = torch.nonzero(changed.any(0)).flatten().tolist()
    # location i is centred on pixel 2i and sees pixels 2i-4 .. 2i+4
    assert rows == cols == [5, 6, 7, 8]
    assert all(abs(2 * i - 13) <= BagNet.receptive_field // 2 for i in rows)
    assert bagnet_evidence(net, x, upsample=True).shape == (2, 10, 28, 28)
    with pytest.raises(InputError, match="need a BagNet"):
        bagnet_evidence(SmallCNN(), x)


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_card_leaderboard_section_equals_the_shipped_leaderboard(name: str) -> None:
    """A card's leaderboard numbers are docs/leaderboard.json's row, never copied by hand."""
    board = Path(__file__).resolve().parents[1] / "docs" / "leaderboard.json"
    card = zoo_card(name)
    assert card_mismatches(card, board, name) == []
    if "leaderboard" in card:
        rob = card["leaderboard"]["robust_accuracy"]
        assert rob["attacks"] == "default" and rob["norm"] == "linf"
        assert rob["eps"] == pytest.approx(0.1)
