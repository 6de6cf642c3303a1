"""Training: augmentation, the recipes' engine attacks, TrainConfig and seeded train() runs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from robustcv.attacks import attack, get_threat
from robustcv.attacks.base import AttackContext
from robustcv.attacks.gradient import random_starts
from robustcv.core.errors import InputError
from robustcv.core.model import Model
from robustcv.core.seeding import content_keys, make_generator
from robustcv.models import build_architecture, load_model, load_weights
from robustcv.training import RECIPES, RecipeParams, TrainConfig, augment_batch, train
from robustcv.training.loop import _robust_accuracy
from robustcv.training.recipes import attack_seed


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


# ----------------------------------------------------------------------------- augment_batch


def _ramp(b: int = 64, h: int = 8, w: int = 8) -> torch.Tensor:
    """Images whose pixels are all distinct and non-zero, so every transform is identifiable."""
    base = (torch.arange(h * w, dtype=torch.float32) + 1) / (h * w + 1)
    return base.view(1, 1, h, w).repeat(b, 1, 1, 1) * torch.linspace(0.5, 1.0, b).view(b, 1, 1, 1)


def _candidates(img: torch.Tensor, max_shift: int) -> dict[tuple[int, int, bool], torch.Tensor]:
    _, h, w = img.shape
    pad = torch.nn.functional.pad(img, (max_shift,) * 4)
    out = {}
    for dy in range(2 * max_shift + 1):
        for dx in range(2 * max_shift + 1):
            crop = pad[:, dy : dy + h, dx : dx + w]
            out[(dy - max_shift, dx - max_shift, False)] = crop
            out[(dy - max_shift, dx - max_shift, True)] = crop.flip(-1)
    return out


def test_augment_is_deterministic_for_a_seed() -> None:
    x = torch.rand(16, 3, 10, 10, generator=torch.Generator().manual_seed(0))
    a = augment_batch(x, make_generator(5))
    b = augment_batch(x, make_generator(5))
    c = augment_batch(x, make_generator(6))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_augment_keeps_shape_range_and_input() -> None:
    x = torch.rand(16, 3, 10, 12, generator=torch.Generator().manual_seed(1))
    before = x.clone()
    out = augment_batch(x, make_generator(0))
    assert out.shape == x.shape and out.dtype == x.dtype
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    assert torch.equal(x, before)


@pytest.mark.parametrize("max_shift", [1, 2])
def test_augment_applies_shifts_and_flips(max_shift: int) -> None:
    x = _ramp()
    out = augment_batch(x, make_generator(3), max_shift=max_shift)
    seen = set()
    for i in range(len(x)):
        cands = _candidates(x[i], max_shift)
        matches = [k for k, v in cands.items() if torch.equal(out[i], v)]
        assert len(matches) == 1, f"image {i} is not a shifted/flipped copy of its input"
        seen.add(matches[0])
    assert any(flip for _, _, flip in seen) and any(not flip for _, _, flip in seen)
    assert any(dy != 0 or dx != 0 for dy, dx, _ in seen)
    shifts = {abs(dy) for dy, _, _ in seen} | {abs(dx) for _, dx, _ in seen}
    assert max(shifts) == max_shift  # the full range is used, never more
    assert len(seen) >= 10  # one draw per image, not one per batch


# ----------------------------------------------------------------------------- attacks


def _toy_problem(n: int = 200, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Two classes told apart by mean brightness: 1x6x6 images."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    base = torch.where(y == 1, 0.6, 0.4).view(n, 1, 1, 1)
    x = (base + 0.15 * torch.randn(n, 1, 6, 6, generator=g)).clamp(0, 1)
    return x, y


@pytest.fixture(scope="module")
def trained_toy() -> Model:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # module-scoped: runs before the function-scoped thread fixture
    try:
        torch.manual_seed(0)
        net = nn.Sequential(nn.Flatten(), nn.Linear(36, 8), nn.ReLU(), nn.Linear(8, 2))
        x, y = _toy_problem(512, seed=1)
        opt = torch.optim.Adam(net.parameters(), lr=0.05)
        for _ in range(150):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(x), y).backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
    return Model(net.eval(), num_classes=2)


def _acc(model: Model, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def test_toy_model_is_trained(trained_toy: Model) -> None:
    assert _acc(trained_toy, *_toy_problem(seed=2)) > 0.9


def _fgsm_rs(model: Model, x: torch.Tensor, y: torch.Tensor, eps: float, seed: int) -> torch.Tensor:
    return RECIPES.get("fgsm-rs").make_inputs(
        model, x, y, RecipeParams(eps=eps), make_generator(seed)
    )


def _pgd_at(
    model: Model, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int, seed: int
) -> torch.Tensor:
    return RECIPES.get("pgd-at").make_inputs(
        model, x, y, RecipeParams(eps=eps, steps=steps), make_generator(seed)
    )


@pytest.mark.parametrize("eps", [0.03, 0.1, 0.3])
def test_fgsm_rs_stays_in_ball_and_box(trained_toy: Model, eps: float) -> None:
    x, y = _toy_problem(seed=3)
    x0, y0 = x.clone(), y.clone()
    adv = _fgsm_rs(trained_toy, x, y, eps, seed=0)
    assert torch.equal(x, x0) and torch.equal(y, y0)
    assert not adv.requires_grad and adv.shape == x.shape and adv.dtype == x.dtype
    assert float((adv - x).abs().max()) <= eps + 1e-6
    assert float(adv.min()) >= 0.0 and float(adv.max()) <= 1.0
    assert float((adv - x).abs().max()) > eps / 2  # it moved
    assert torch.equal(adv, _fgsm_rs(trained_toy, x, y, eps, seed=0))  # same seed, same numbers
    assert not torch.equal(adv, _fgsm_rs(trained_toy, x, y, eps, seed=1))


@pytest.mark.parametrize("alpha", [None, 0.05])
def test_fgsm_rs_is_wong_et_al_on_the_engine_start(trained_toy: Model, alpha: float | None) -> None:
    """The recipe is FGSM-RS exactly: from the engine's random start, one signed-gradient step
    of alpha (default 1.25 eps), then projected into the eps-ball and [0, 1]."""
    x, y = _toy_problem(seed=8)
    eps = 0.1
    step = 1.25 * eps if alpha is None else alpha
    params = RecipeParams(eps=eps, alpha=alpha)
    got = RECIPES.get("fgsm-rs").make_inputs(trained_toy, x, y, params, make_generator(4))
    seed = attack_seed(make_generator(4))
    eps_t = torch.full((len(y),), eps)
    ctx = AttackContext(trained_toy, get_threat("linf"), eps_t, None, seed, content_keys(x))
    start = random_starts(ctx, x, torch.arange(len(y)), "fgsm")
    assert float((start - x).abs().max()) <= eps + 1e-6 and not torch.equal(start, x)
    xs = start.clone().requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(trained_toy(xs), y, reduction="sum")
    (grad,) = torch.autograd.grad(loss, xs)
    delta = (start - x + step * grad.sign()).clamp(-eps, eps)
    expected = (x + delta).clamp(0, 1)
    assert torch.allclose(got, expected, atol=1e-6)


def test_a_new_attack_seed_for_every_batch(trained_toy: Model) -> None:
    """The loop's generator yields a fresh engine seed per batch: an image seen again (next
    epoch) gets a new random start, while a rerun of the same sequence is identical."""
    x, y = _toy_problem(seed=9)
    recipe, params = RECIPES.get("fgsm-rs"), RecipeParams(eps=0.1)
    gen = make_generator(7)
    first = recipe.make_inputs(trained_toy, x, y, params, gen)
    second = recipe.make_inputs(trained_toy, x, y, params, gen)
    assert not torch.equal(first, second)
    gen = make_generator(7)
    assert torch.equal(recipe.make_inputs(trained_toy, x, y, params, gen), first)
    assert torch.equal(recipe.make_inputs(trained_toy, x, y, params, gen), second)


def test_pgd_at_stays_in_ball_and_box_and_lowers_accuracy(trained_toy: Model) -> None:
    x, y = _toy_problem(seed=4)
    x0, y0 = x.clone(), y.clone()
    eps = 0.1
    adv = _pgd_at(trained_toy, x, y, eps, steps=10, seed=0)
    assert torch.equal(x, x0) and torch.equal(y, y0)
    assert adv.shape == x.shape and not adv.requires_grad
    assert float((adv - x).abs().max()) <= eps + 1e-6
    assert float(adv.min()) >= 0.0 and float(adv.max()) <= 1.0
    clean, robust = _acc(trained_toy, x, y), _acc(trained_toy, adv, y)
    assert clean > 0.9
    assert robust < clean - 0.3, f"PGD barely hurt: clean {clean:.3f}, robust {robust:.3f}"
    # stronger than a single FGSM-RS step in the same budget
    assert robust <= _acc(trained_toy, _fgsm_rs(trained_toy, x, y, eps, seed=0), y)
    assert torch.equal(adv, _pgd_at(trained_toy, x, y, eps, steps=10, seed=0))
    assert not torch.equal(adv, _pgd_at(trained_toy, x, y, eps, steps=10, seed=1))


def test_pgd_at_is_the_engine_pgd(trained_toy: Model) -> None:
    """pgd-at is the engine's pgd with the recipe's step (2.5 eps / steps by default)."""
    x, y = _toy_problem(seed=10)
    got = _pgd_at(trained_toy, x, y, 0.1, steps=3, seed=2)
    ref = attack(
        trained_toy, x, y, "pgd", eps=0.1, seed=attack_seed(make_generator(2)), steps=3,
        rel_step=2.5 / 3,
    )  # fmt: skip
    assert torch.equal(got, ref.x_adv)


class _DropoutNet(nn.Module):
    """A net whose train-mode forward is random (dropout) and that counts its train calls."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(
            nn.Flatten(), nn.Linear(36, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 2)
        )
        self.train_calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.train_calls += int(self.training)
        return self.body(x)


@pytest.mark.parametrize("name", ["fgsm-rs", "pgd-at"])
def test_recipes_attack_in_eval_mode_and_keep_train_mode(name: str) -> None:
    net = _DropoutNet()
    model = Model(net, num_classes=2)
    net.train()
    x, y = _toy_problem(64, seed=11)
    recipe, params = RECIPES.get(name), RecipeParams(eps=0.1, steps=3)
    a = recipe.make_inputs(model, x, y, params, make_generator(0))
    b = recipe.make_inputs(model, x, y, params, make_generator(0))
    assert net.training and net.body[3].training  # the loop's train mode is restored
    assert net.train_calls == 0  # every attack pass ran in eval mode (no dropout)
    assert torch.equal(a, b)


def test_held_out_pgd_check_uses_the_engine(trained_toy: Model) -> None:
    x, y = _toy_problem(120, seed=12)
    n_rob, n = _robust_accuracy(trained_toy, x, y, eps=0.1, steps=10, seed=3, batch_size=50)
    assert n == 120
    res = attack(trained_toy, x, y, "pgd", eps=0.1, seed=3, steps=10, rel_step=0.25)
    assert n_rob == int((res.clean_correct & ~res.success).sum())  # batch-size invariant
    assert n_rob < 0.7 * int(res.clean_correct.sum())  # the attack bites
    again = _robust_accuracy(trained_toy, x, y, eps=0.1, steps=10, seed=3, batch_size=500)
    assert again == (n_rob, n)
    assert _robust_accuracy(trained_toy, x, y, eps=0.0, steps=10, seed=3)[0] == int(
        res.clean_correct.sum()
    )


def test_recipes(trained_toy: Model) -> None:
    assert {"standard", "fgsm-rs", "pgd-at"} <= set(RECIPES.names())
    x, y = _toy_problem(seed=7)
    params = RecipeParams(eps=0.05, steps=3)
    standard = RECIPES.get("standard")
    assert not standard.adversarial
    assert standard.make_inputs(trained_toy, x, y, params, make_generator(0)) is x
    for name in ("fgsm-rs", "pgd-at"):
        recipe = RECIPES.get(name)
        assert recipe.adversarial and recipe.default_epochs >= 1
        out = recipe.make_inputs(trained_toy, x, y, params, make_generator(0))
        assert out.shape == x.shape
        assert float((out - x).abs().max()) <= 0.05 + 1e-6
        assert float((out - x).abs().max()) > 0.01
    with pytest.raises(InputError, match="did you mean 'fgsm-rs'"):
        RECIPES.get("fgsm_rs")


# ----------------------------------------------------------------------------- TrainConfig


@pytest.mark.parametrize(
    "kwargs,pattern",
    [
        ({"recipe": "sgd"}, "unknown recipe"),
        ({"epochs": 0}, "epochs"),
        ({"batch_size": 0}, "batch_size"),
        ({"lr": 0.0}, "lr"),
        ({"lr": -1e-3}, "lr"),
        ({"eps": 0.0}, "eps"),
        ({"eps": 1.5}, "eps"),
        ({"steps": 0}, "steps"),
        ({"steps": 101}, "steps"),
        ({"val_size": 0}, "val_size"),
        ({"co_drop": 0.0}, "co_drop"),
        ({"co_drop": 1.0}, "co_drop"),
        ({"seed": -1}, "seed"),
        ({"seed": 1.5}, "seed"),
        ({"alpha": -0.01}, "alpha"),
        ({"limit": 0}, "limit"),
        ({"eval_limit": 0}, "eval_limit"),
    ],
)
def test_train_config_validate_rejects(kwargs: dict[str, Any], pattern: str) -> None:
    with pytest.raises(InputError, match=pattern):
        TrainConfig(**kwargs).validate()
    with pytest.raises(InputError, match=pattern):  # train() validates before loading data
        train(TrainConfig(**kwargs), progress=False)


def test_train_config_defaults_are_valid() -> None:
    TrainConfig().validate()
    TrainConfig(recipe="pgd-at", epochs=2, alpha=0.02, limit=10, eval_limit=10).validate()


# ----------------------------------------------------------------------------- train()

TINY = TrainConfig(epochs=1, limit=512, val_size=128, eval_limit=256)

FACTORY_SRC = """
from robustcv.models.architectures import SmallCNN


def factory():
    return SmallCNN(in_channels=1, num_classes=10, image_size=28)
"""


@pytest.fixture(scope="module")
def tiny_run(
    tmp_path_factory: pytest.TempPathFactory,
    fmnist_test: Any,  # skips (or fails under CI=true) when Fashion-MNIST is missing
) -> tuple[Path, Model, Any]:
    out = tmp_path_factory.mktemp("tiny_run")
    model, result = train(TINY, out=out, progress=False)
    return out, model, result


@pytest.mark.fmnist
def test_train_writes_weights_and_card(tiny_run: tuple[Path, Model, Any]) -> None:
    out, _, result = tiny_run
    assert (out / "model.safetensors").is_file()
    card = json.loads((out / "card.json").read_text())
    required = ["architecture", "recipe", "seed", "data", "clean_accuracy", "train_seconds"]
    required += ["command", "preprocessing", "architecture_kwargs", "config", "history"]
    for key in required:
        assert key in card
    assert card["architecture"] == "small-cnn" and card["recipe"] == "standard"
    assert card["data"] == "fashion-mnist" and card["seed"] == 0
    assert card["config"]["limit"] == 512 and card["config"]["epochs"] == 1
    assert card["clean_accuracy"]["n"] == 256 == result.test_n
    assert card["clean_accuracy"]["value"] == result.test_accuracy
    lo, hi = card["clean_accuracy"]["ci95"]
    assert lo <= result.test_accuracy <= hi
    assert card["robust_accuracy"] is None and result.test_robust_accuracy is None
    assert len(card["history"]) == 1 and card["selected_epoch"] == 1
    assert card["command"].startswith("robustcv train --recipe standard")
    # 4 steps on 512 images already learn something (chance is 0.1)
    assert result.test_accuracy > 0.2
    assert result.history[0]["val_accuracy"] > 0.2


@pytest.mark.fmnist
def test_trained_weights_load_back_identically(
    tiny_run: tuple[Path, Model, Any], tmp_path: Path
) -> None:
    out, model, _ = tiny_run
    card = json.loads((out / "card.json").read_text())
    pre = card["preprocessing"]
    factory = tmp_path / "arch.py"
    factory.write_text(FACTORY_SRC)
    x = torch.rand(12, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = model(x)
        via_factory = load_model(
            f"{factory}:factory", weights=out / "model.safetensors", mean=pre["mean"],
            std=pre["std"], input_range=tuple(pre["input_range"]),
        )(x)  # fmt: skip
        net = build_architecture(card["architecture"], **card["architecture_kwargs"])
        load_weights(net, out / "model.safetensors")
        via_build = Model(net, mean=pre["mean"], std=pre["std"])(x)
    assert torch.equal(via_factory, expected)
    assert torch.equal(via_build, expected)
    assert model.features(x).shape == (12, 128)


@pytest.mark.fmnist
def test_same_seed_gives_bitwise_identical_weights(tiny_run: tuple[Path, Model, Any]) -> None:
    _, model, result = tiny_run
    model2, result2 = train(TINY, progress=False)
    first, second = model.net.state_dict(), model2.net.state_dict()
    assert first.keys() == second.keys()
    for key in first:
        assert torch.equal(first[key], second[key]), key
    assert result2.test_accuracy == result.test_accuracy
    assert result2.history[0]["loss"] == result.history[0]["loss"]


@pytest.mark.fmnist
def test_adversarial_training_is_seeded_and_uses_the_engine(tmp_path: Path) -> None:
    cfg = TrainConfig(
        recipe="pgd-at", epochs=1, limit=256, batch_size=64, val_size=128, eval_limit=64, steps=2
    )
    model, result = train(cfg, out=tmp_path, progress=False)
    model2, result2 = train(cfg, progress=False)
    assert isinstance(model.net, nn.Module) and isinstance(model2.net, nn.Module)
    first, second = model.net.state_dict(), model2.net.state_dict()
    for key in first:
        assert torch.equal(first[key], second[key]), key

    def untimed(rows: list[dict[str, float]]) -> list[dict[str, float]]:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]

    assert untimed(result2.history) == untimed(result.history)
    assert result2.test_robust_accuracy == result.test_robust_accuracy
    assert "val_robust_accuracy" in result.history[0]
    assert result.test_robust_accuracy is not None
    assert 0.0 <= result.test_robust_accuracy <= result.test_accuracy
    card = json.loads((tmp_path / "card.json").read_text())
    assert "robustcv.attacks" in card["robust_accuracy"]["attack"]
    assert "training.attacks" not in json.dumps(card)
