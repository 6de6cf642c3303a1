"""Recipes that own the loss: hand-computed losses, the recipe contract, bad hyperparameters,
and training that resumes after a kill with the same final weights."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from robustcv.attacks import attack
from robustcv.core.errors import InputError
from robustcv.core.model import Model
from robustcv.core.seeding import make_generator
from robustcv.models.architectures import SmallCNN
from robustcv.training import RECIPES, TrainConfig, TrainStep, build_recipe_config, train
from robustcv.training import loop as train_loop
from robustcv.training.augmix import AugMixParams, augmix, jsd_loss
from robustcv.training.randomize import RandConvParams, random_convolution
from robustcv.training.recipes import forward_with_features, trades_loss
from robustcv.training.selfsup import SimCLRParams, nt_xent, rotation_batch, simclr_views


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _np_log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(1, keepdims=True)
    return z - np.log(np.exp(z).sum(1, keepdims=True))


# ----------------------------------------------------------------------------- hand computations


def test_trades_loss_by_hand() -> None:
    rng = np.random.default_rng(0)
    zc, za = rng.normal(size=(5, 4)), rng.normal(size=(5, 4))
    y = np.array([0, 1, 2, 3, 1])
    lc, la = _np_log_softmax(zc), _np_log_softmax(za)
    ce = -lc[np.arange(5), y].mean()
    kl = (np.exp(lc) * (lc - la)).sum(1).mean()  # KL(p(x) || p(x')) per sample, batch mean
    loss, parts = trades_loss(
        torch.tensor(zc, dtype=torch.float64), torch.tensor(za, dtype=torch.float64),
        torch.tensor(y), beta=6.0,
    )  # fmt: skip
    assert float(loss) == pytest.approx(ce + 6.0 * kl, rel=1e-12)
    assert parts["kl"] == pytest.approx(kl, rel=1e-12) and parts["ce"] == pytest.approx(ce)
    _, parts0 = trades_loss(torch.tensor(zc), torch.tensor(zc), torch.tensor(y), beta=6.0)
    assert parts0["kl"] == pytest.approx(0.0, abs=1e-7)


def test_jsd_by_hand_with_the_clamp() -> None:
    rng = np.random.default_rng(1)
    zs = [rng.normal(size=(3, 5)) * 4 for _ in range(3)]
    zs[2][0] = [60.0, -60.0, -60.0, -60.0, -60.0]  # probabilities far below 1e-7: the clamp acts
    zs[1][0] = [-60.0, 60.0, -60.0, -60.0, -60.0]
    zs[0][0] = [-60.0, -60.0, 60.0, -60.0, -60.0]
    ps = [np.exp(_np_log_softmax(z)) for z in zs]
    log_m = np.log(np.clip((ps[0] + ps[1] + ps[2]) / 3, 1e-7, 1))
    kls = [(p * (np.log(np.maximum(p, 1e-300)) - log_m)).sum(1).mean() for p in ps]
    expected = sum(kls) / 3
    got = jsd_loss(*(torch.tensor(z, dtype=torch.float64) for z in zs))
    assert float(got) == pytest.approx(expected, rel=1e-9)
    assert math.isfinite(float(got))


def test_nt_xent_on_a_two_pair_batch_by_hand() -> None:
    za = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    zb = torch.tensor([[1.0, 1.0], [0.0, 2.0]])
    t = 0.5
    z = F.normalize(torch.cat([za, zb]), dim=1).numpy()
    sim = z @ z.T / t
    partner = [2, 3, 0, 1]
    losses = []
    for i in range(4):
        others = [j for j in range(4) if j != i]
        losses.append(-(sim[i, partner[i]] - np.log(np.exp(sim[i, others]).sum())))
    assert float(nt_xent(za, zb, t)) == pytest.approx(float(np.mean(losses)), rel=1e-6)


def test_rotation_head_targets_and_rotations() -> None:
    x = torch.arange(2 * 9, dtype=torch.float32).view(2, 1, 3, 3) / 18
    xr, r = rotation_batch(x)
    assert r.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert torch.equal(xr[:2], x)
    # 90 degrees counter-clockwise: the top row becomes the left column, read bottom-up
    assert torch.equal(xr[2, 0, :, 0], x[0, 0, 0].flip(0))
    assert torch.equal(xr[4], x[0].flip(1).flip(2))  # 180 degrees
    with pytest.raises(InputError, match="square"):
        rotation_batch(torch.rand(1, 1, 4, 6))


def test_pgd_kl_loss_keeps_the_highest_divergence_iterate() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    model = Model(net.eval(), num_classes=3)
    x = torch.rand(6, 1, 4, 4)
    y = torch.zeros(6, dtype=torch.long)
    res = attack(model, x, y, "pgd", eps=0.1, seed=0, steps=5, loss="kl")
    assert float((res.x_adv - x).abs().max()) <= 0.1 + 1e-6
    with torch.no_grad():
        ref = F.log_softmax(net(x), 1)
        kl_adv = (ref.exp() * (ref - F.log_softmax(net(res.x_adv), 1))).sum(1)
        # the last iterate (as in TRADES) diverges more than the random start alone
        one = attack(model, x, y, "pgd", eps=0.1, seed=0, steps=1, rel_step=1e-9, loss="kl")
        kl_start = (ref.exp() * (ref - F.log_softmax(net(one.x_adv), 1))).sum(1)
    assert bool((kl_adv >= kl_start - 1e-7).all()) and float(kl_adv.mean()) > 0


# ----------------------------------------------------------------------------- the recipe contract


def _step(recipe_name: str, seed: int = 0, epoch: int = 1, **params: Any) -> tuple[Any, Any]:
    recipe = RECIPES.get(recipe_name)
    cfg = build_recipe_config(recipe, params)
    torch.manual_seed(0)
    net = SmallCNN()
    heads = nn.ModuleDict()
    if recipe.heads is not None:
        heads.update(recipe.heads(cfg, 128, 10))
    model = Model(net, mean=(0.3,), std=(0.35,), num_classes=10, features="embed")
    x = torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(3))
    y = torch.arange(8) % 10
    step = TrainStep(model, net, heads, x, y, make_generator(seed), epoch)
    return recipe.step(step, cfg), (x, net, heads)


@pytest.mark.parametrize("name", sorted(RECIPES.names()))
def test_every_recipe_gives_a_finite_differentiable_seeded_loss(name: str) -> None:
    params: dict[str, Any] = {"steps": 2} if name in ("pgd-at", "trades") else {}
    out, (x, net, heads) = _step(name, **params)
    x0 = x.clone()
    assert out.loss.ndim == 0 and math.isfinite(float(out.loss.detach()))
    out.loss.backward()
    grads = [p.grad for p in list(net.parameters()) + list(heads.parameters())]
    assert any(g is not None and float(g.abs().sum()) > 0 for g in grads)
    assert torch.equal(x, x0)  # the batch is not modified
    again, _ = _step(name, **params)
    assert float(again.loss.detach()) == float(out.loss.detach())  # same generator, same loss
    if out.logits is not None:
        assert out.logits.shape == (8, 10)
    assert all(math.isfinite(v) for v in out.parts.values())
    recipe = RECIPES.get(name)
    assert recipe.summary and recipe.reference and recipe.default_epochs >= 1


def test_simclr_phases_and_linear_probe() -> None:
    pre, _ = _step("simclr", epoch=1)
    assert pre.logits is None and "nt_xent" in pre.parts
    fine, (_, net, _) = _step("simclr", epoch=9)
    assert fine.logits is not None and not fine.parts
    lin, (_, net, _) = _step("simclr", epoch=9, probe="linear")
    lin.loss.backward()
    assert net.head.weight.grad is not None
    assert all(p.grad is None for p in net.features.parameters())  # frozen features


@pytest.mark.parametrize(
    "name,params,pattern",
    [
        ("gaussian", {"sigma": -0.1}, "sigma must be >"),
        ("gaussian", {"sigma": "big"}, "sigma must be a number"),
        ("trades", {"beta": -1.0}, "beta must be >= 0"),
        ("patch-gaussian", {"max_sigma": 0.0}, "max_sigma must be >"),
        ("patch-gaussian", {"patch_size": 0}, "patch_size must be >= 1"),
        ("augmix", {"severity": 11}, "severity must be <= 10"),
        ("augmix", {"depth": 0}, "depth must be -1"),
        ("augmix", {"widht": 3}, "did you mean 'width'"),
        ("randconv", {"kernel_sizes": (2, 3)}, "odd"),
        ("distortion", {"corruption": "fgo"}, "did you mean 'fog'"),
        ("simclr", {"probe": "knn"}, "probe must be"),
        ("rotation-aux", {"weight": -0.5}, "weight must be >= 0"),
        ("standard", {"sigma": 0.1}, "has no parameter 'sigma'; its parameters are none"),
    ],
)
def test_recipes_refuse_bad_hyperparameters(
    name: str, params: dict[str, Any], pattern: str
) -> None:
    with pytest.raises(InputError, match=pattern):
        build_recipe_config(RECIPES.get(name), params)
    with pytest.raises(InputError, match=pattern):  # TrainConfig validates them up front
        TrainConfig(recipe=name, params=params).validate()


def test_patch_larger_than_the_image_is_refused() -> None:
    with pytest.raises(InputError, match="patch_size=40 is larger than the 28x28 images"):
        _step("patch-gaussian", patch_size=40)


def test_threat_parameters_go_through_their_own_fields() -> None:
    with pytest.raises(InputError, match="pass eps with --eps"):
        TrainConfig(recipe="trades", params={"eps": 0.2}).validate()
    with pytest.raises(InputError, match="pretrains for 8 epochs but the run has 4"):
        train(TrainConfig(recipe="simclr", epochs=4), progress=False)


def test_augmentations_are_seeded_in_range_and_change_images() -> None:
    x = torch.rand(16, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    for fn in (
        lambda g: augmix(x, AugMixParams(), g),
        lambda g: augmix(x, AugMixParams(all_ops=True, depth=2), g),
        lambda g: random_convolution(x, RandConvParams(), g),
        lambda g: simclr_views(x, SimCLRParams(), g),
    ):
        a, b, c = fn(make_generator(1)), fn(make_generator(1)), fn(make_generator(2))
        assert torch.equal(a, b) and not torch.equal(a, c)
        assert float(a.min()) >= 0 and float(a.max()) <= 1 and a.shape == x.shape
        assert float((a - x).abs().mean()) > 0.01


def test_forward_with_features_names_a_missing_layer() -> None:
    with pytest.raises(InputError, match=r"no module .embd.*did you mean .embed."):
        forward_with_features(SmallCNN(), torch.zeros(1, 1, 28, 28), "embd")


# ----------------------------------------------------------------------------- resume


def _weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))


@pytest.mark.fmnist
@pytest.mark.parametrize("recipe", ["trades", "rotation-aux"])
def test_training_resumes_after_an_interruption_with_the_same_weights(
    tmp_path: Path, recipe: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = TrainConfig(
        recipe=recipe, epochs=3, limit=192, batch_size=64, val_size=64, eval_limit=64, steps=2
    )
    train(cfg, out=tmp_path / "whole", progress=False)
    save = train_loop._save_checkpoint

    def interrupt_after_two(folder: Path, state: dict[str, Any]) -> None:
        save(folder, state)
        if state["epoch"] == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(train_loop, "_save_checkpoint", interrupt_after_two)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, out=tmp_path / "cut", progress=False)
    assert (tmp_path / "cut" / "checkpoint.pt").is_file()
    assert not (tmp_path / "cut" / "card.json").exists()
    monkeypatch.setattr(train_loop, "_save_checkpoint", save)
    train(cfg, out=tmp_path / "cut", progress=False)
    whole, cut = _weights(tmp_path / "whole"), _weights(tmp_path / "cut")
    assert whole.keys() == cut.keys()
    assert all(torch.equal(whole[k], cut[k]) for k in whole)
    assert not (tmp_path / "cut" / "checkpoint.pt").exists()
    a = json.loads((tmp_path / "whole" / "card.json").read_text())
    b = json.loads((tmp_path / "cut" / "card.json").read_text())
    drop = {"seconds"}
    assert [{k: v for k, v in r.items() if k not in drop} for r in a["history"]] == [
        {k: v for k, v in r.items() if k not in drop} for r in b["history"]
    ]


@pytest.mark.fmnist
def test_a_checkpoint_of_another_run_is_refused(tmp_path: Path) -> None:
    cfg = TrainConfig(epochs=2, limit=128, batch_size=64, val_size=64, eval_limit=64)
    torch.save({"config": "something else"}, tmp_path / "checkpoint.pt")
    with pytest.raises(InputError, match="different training run"):
        train(cfg, out=tmp_path, progress=False)
    (tmp_path / "checkpoint.pt").write_bytes(b"torn")
    with pytest.raises(InputError, match="not a readable robustcv checkpoint"):
        train(cfg, out=tmp_path, progress=False)
    train(cfg, out=tmp_path, progress=False, resume=False)  # --restart ignores it
    assert (tmp_path / "card.json").is_file()


@pytest.mark.fmnist
@pytest.mark.slow
def test_kill_9_then_rerun_ends_with_the_uninterrupted_weights(tmp_path: Path) -> None:
    args = ["--recipe", "gaussian", "--epochs", "3", "--limit", "1536", "--batch-size", "64",
            "--eval-limit", "64", "--seed", "1", "--quiet"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "robustcv", "train", *args]
    subprocess.run([*cmd, "--out", str(tmp_path / "whole")], check=True, env=env)
    cut = tmp_path / "cut"
    proc = subprocess.Popen([*cmd, "--out", str(cut)], env=env)
    deadline = time.monotonic() + 300
    while not (cut / "checkpoint.pt").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (cut / "checkpoint.pt").exists() and not (cut / "card.json").exists()
    subprocess.run([*cmd, "--out", str(cut)], check=True, env=env)
    whole, resumed = _weights(tmp_path / "whole"), _weights(cut)
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)


# ----------------------------------------------------------------------------- CLI


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    from robustcv.cli.main import main

    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    "params,needle",
    [
        (["sigma=-1"], "sigma must be > 0"),
        (["sigmaa=0.2"], "did you mean 'sigma'"),
        (["sigma"], "is not KEY=VALUE"),
    ],
)
def test_cli_train_refuses_bad_recipe_parameters(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], params: list[str], needle: str
) -> None:
    argv = ["train", "--recipe", "gaussian", "--out", str(tmp_path / "o")]
    for item in params:
        argv += ["--param", item]
    code, _, err = _cli(argv, capsys)
    assert code == 2 and needle in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()  # refused before any work


@pytest.mark.fmnist
def test_cli_train_with_recipe_parameters_records_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["train", "--recipe", "patch-gaussian", "--param", "patch_size=8", "--param",
            "max_sigma=0.3", "--epochs", "1", "--limit", "128", "--eval-limit", "64",
            "--batch-size", "64", "--out", str(tmp_path), "--quiet"]  # fmt: skip
    code, _, err = _cli(argv, capsys)
    assert code == 0, err
    card = json.loads((tmp_path / "card.json").read_text())
    assert card["recipe_params"] == {"patch_size": 8, "max_sigma": 0.3}
    assert card["config"]["params"] == {"patch_size": 8, "max_sigma": 0.3}
    assert "Lopes" in card["recipe_reference"]
    assert card["command"] == "robustcv " + " ".join(argv)
