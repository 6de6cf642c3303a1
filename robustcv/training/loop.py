"""The training loop shared by every recipe, and the model card it writes.

``train(TrainConfig(...), out=DIR)`` trains a registered architecture on a dataset with a
registered recipe, seeded end to end, and writes ``DIR/model.safetensors`` and
``DIR/card.json`` (architecture, recipe, seed, data, measured accuracies, training time and the
command that reproduces it). Adversarial recipes are watched for catastrophic overfitting: after
every epoch a PGD-10 attack runs on a held-out batch; if robust accuracy collapses, the loop
restores the best epoch and stops. Every attack here (the recipes' and the PGD evaluations) is
the attack engine's (:func:`robustcv.attacks.attack`).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import platform
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn
from tqdm import tqdm

from robustcv.attacks import attack
from robustcv.core.errors import InputError
from robustcv.core.model import Model
from robustcv.core.results import Result
from robustcv.core.seeding import check_seed, derive_seed, make_generator
from robustcv.core.stats import binomial_ci
from robustcv.data.loading import load_dataset
from robustcv.models.architectures import build_architecture
from robustcv.training.recipes import (
    RECIPES,
    RecipeParams,
    TrainStep,
    build_recipe_config,
    forward_with_features,
)

__all__ = ["DATA_STATS", "TrainConfig", "TrainResult", "augment_batch", "train"]

# Per-dataset (mean, std) used for the wrapper's normalisation.
DATA_STATS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "fashion-mnist": ((0.2860,), (0.3530,)),
    # the same images with a 3x3 cue (robustcv.data.shortcut); kept equal to fashion-mnist's so
    # the shortcut model's preprocessing matches zoo:fmnist-cnn's
    "fashion-mnist-shortcut": ((0.2860,), (0.3530,)),
}


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run (the model card records it verbatim).

    Attributes:
        recipe: a name from ``RECIPES`` (``robustcv list recipes``).
        arch: a name from ``ARCHITECTURES``.
        data: a dataset spec with a ``train`` split.
        epochs: passes over the training set (None: the recipe's default).
        batch_size: images per step.
        lr: peak learning rate of the one-cycle AdamW schedule.
        weight_decay: AdamW weight decay.
        seed: seeds initialisation, shuffling, augmentation and attacks.
        eps: L-inf radius for adversarial recipes.
        alpha: attack step (None: the recipe's default).
        steps: PGD steps for pgd-at.
        augment: random shifts of up to 2 pixels and horizontal flips.
        val_size: training images held out for monitoring (never trained on).
        limit: use only this many training images (tests and quick runs).
        eval_limit: test images for the final clean and robust evaluation (None: all).
        co_drop: catastrophic overfitting is declared when held-out PGD accuracy falls below
            ``co_drop`` times its best value.
        params: the recipe's hyperparameters (``robustcv list recipes`` and docs/training.md
            name them), e.g. ``{"beta": 6.0}`` for trades; eps, alpha and steps are the fields
            above.
    """

    recipe: str = "standard"
    arch: str = "small-cnn"
    data: str = "fashion-mnist"
    epochs: int | None = None
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 1e-4
    seed: int = 0
    eps: float = 0.1
    alpha: float | None = None
    steps: int = 7
    augment: bool = True
    val_size: int = 1000
    limit: int | None = None
    eval_limit: int | None = None
    co_drop: float = 0.5
    params: Mapping[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        """Raise :class:`InputError` for impossible settings (recipe parameters included)."""
        RECIPES.canonical(self.recipe)
        check_seed(self.seed)
        if not isinstance(self.params, Mapping) or not all(isinstance(k, str) for k in self.params):
            raise InputError(f"params must map names to values, got {self.params!r}")
        checks = [
            (self.epochs is None or self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}"),
            (self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}"),
            (self.lr > 0, f"lr must be > 0, got {self.lr}"),
            (0 < self.eps <= 1, f"eps must be in (0, 1], got {self.eps}"),
            (1 <= self.steps <= 100, f"steps must be in [1, 100], got {self.steps}"),
            (self.val_size >= 1, f"val_size must be >= 1, got {self.val_size}"),
            (0 < self.co_drop < 1, f"co_drop must be in (0, 1), got {self.co_drop}"),
            (self.alpha is None or self.alpha > 0, f"alpha must be > 0, got {self.alpha}"),
            (self.limit is None or self.limit >= 1, f"limit must be >= 1, got {self.limit}"),
            (
                self.eval_limit is None or self.eval_limit >= 1,
                f"eval_limit must be >= 1, got {self.eval_limit}",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise InputError(message)
        _recipe_config(self)


@dataclass
class TrainResult(Result):
    """What a training run measured.

    Attributes:
        config: the configuration (as a dict).
        history: one dict per epoch (loss, train accuracy, held-out clean/robust accuracy).
        test_accuracy: clean accuracy on the test split.
        test_accuracy_ci: its exact 95% interval.
        test_n: number of test images evaluated.
        test_robust_accuracy: PGD-40 accuracy at eps (adversarial recipes; None otherwise).
        test_robust_accuracy_ci: its exact 95% interval.
        train_seconds: wall time of the training epochs.
        catastrophic_overfitting: whether the check fired (the best epoch was restored).
        selected_epoch: the epoch whose weights were kept (1-based).
    """

    config: dict[str, Any]
    history: list[dict[str, float]] = field(default_factory=list)
    test_accuracy: float = math.nan
    test_accuracy_ci: tuple[float, float] = (math.nan, math.nan)
    test_n: int = 0
    test_robust_accuracy: float | None = None
    test_robust_accuracy_ci: tuple[float, float] | None = None
    train_seconds: float = 0.0
    catastrophic_overfitting: bool = False
    selected_epoch: int = 0


def augment_batch(x: torch.Tensor, generator: torch.Generator, max_shift: int = 2) -> torch.Tensor:
    """Random integer shifts and horizontal flips, one draw per image, batched.

    Shifts are of up to ``max_shift`` pixels with zero fill; there is no loop over samples.

    Example:
        >>> x = torch.rand(4, 1, 8, 8)
        >>> y = augment_batch(x, make_generator(0))
        >>> y.shape == x.shape and bool((y >= 0).all() and (y <= 1).all())
        True
    """
    b, _, h, w = x.shape
    pad = F.pad(x, (max_shift, max_shift, max_shift, max_shift))
    dy = torch.randint(0, 2 * max_shift + 1, (b,), generator=generator)
    dx = torch.randint(0, 2 * max_shift + 1, (b,), generator=generator)
    flip = torch.rand(b, generator=generator) < 0.5
    rows = (dy[:, None] + torch.arange(h)[None]).to(x.device)  # (b, h)
    cols = dx[:, None] + torch.arange(w)[None]  # (b, w)
    cols = torch.where(flip[:, None], cols.flip(1), cols).to(x.device)
    bi = torch.arange(b, device=x.device)[:, None, None]
    out = pad.permute(0, 2, 3, 1)[bi, rows[:, :, None], cols[:, None, :]]  # (b, h, w, c)
    return out.permute(0, 3, 1, 2).contiguous()


def _robust_accuracy(
    model: Model,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    steps: int,
    seed: int,
    batch_size: int = 500,
    progress: bool = False,
    desc: str = "PGD",
) -> tuple[int, int]:
    """(#robust, N) under the engine's L-inf PGD: random start, step max(eps/4, 2.5 eps / steps).

    A sample counts as robust when it is classified correctly and the attack's adversarial
    example (re-evaluated by the runner) is too. Random starts are keyed by (seed, image), so
    the count does not depend on ``batch_size``.
    """
    rel_step = max(0.25, 2.5 / steps)
    robust = 0
    for i in tqdm(range(0, len(y), batch_size), desc=desc, disable=not progress, leave=False):
        res = attack(
            model,
            x[i : i + batch_size],
            y[i : i + batch_size],
            "pgd",
            eps=eps,
            seed=seed,
            steps=steps,
            rel_step=rel_step,
            restarts=1,
            random_start=True,
            loss="ce",
            early_stop=True,
        )
        robust += int((res.clean_correct & ~res.success).sum())
    return robust, len(y)


def _clean_correct(model: Model, x: torch.Tensor, y: torch.Tensor) -> int:
    return int((model.predict_logits(x, batch_size=1000, validate=False).argmax(1) == y).sum())


def split_indices(n: int, seed: int, val_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The (held-out, training) indices of a training split of ``n`` images.

    Training holds out ``val_size`` images chosen by a permutation seeded from ``seed``; the
    audit uses the same function to fit temperature scaling and OOD statistics of a zoo model
    on images it never trained on.

    Example:
        >>> val, tr = split_indices(10, seed=0, val_size=3)
        >>> len(val), len(tr), sorted(val.tolist() + tr.tolist()) == list(range(10))
        (3, 7, True)
    """
    order = np.random.default_rng(derive_seed(seed, "split")).permutation(n)
    if val_size >= len(order):
        raise InputError(f"val_size={val_size} leaves no training images")
    return torch.from_numpy(order[:val_size]), torch.from_numpy(order[val_size:])


def _recipe_config(config: TrainConfig) -> Any:
    """The recipe's hyperparameters: ``config.params`` plus eps/alpha/steps where it has them."""
    recipe = RECIPES.get(config.recipe)
    params = dict(config.params)
    shared = {"eps": config.eps, "alpha": config.alpha, "steps": config.steps}
    clash = sorted(set(params) & set(shared))
    if clash:
        raise InputError(
            f"pass {', '.join(clash)} with --{clash[0]} (TrainConfig.{clash[0]}), not as a "
            "recipe parameter"
        )
    if issubclass(recipe.config_class, RecipeParams):  # the threat-model recipes
        params.update(shared)
    return build_recipe_config(recipe, params)


_CHECKPOINT = "checkpoint.pt"


def _config_key(config: TrainConfig) -> str:
    return json.dumps(dataclasses.asdict(config), sort_keys=True, default=str)


def _load_checkpoint(folder: Path | None, config: TrainConfig) -> dict[str, Any] | None:
    """The checkpoint of this exact run in ``folder`` (None when there is none)."""
    if folder is None or not (folder / _CHECKPOINT).is_file():
        return None
    path = folder / _CHECKPOINT
    try:
        state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a torn or foreign file
        raise InputError(
            f"{path} is not a readable robustcv checkpoint ({err}); delete it to start over"
        ) from err
    if state.get("config") != _config_key(config):
        raise InputError(
            f"{path} belongs to a different training run (other settings); use another --out "
            "folder or delete the checkpoint to start over"
        )
    return state


def _save_checkpoint(folder: Path, state: dict[str, Any]) -> None:
    """Write the checkpoint atomically (a kill mid-write leaves the previous one)."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / (_CHECKPOINT + ".tmp")
    torch.save(state, tmp)
    tmp.replace(folder / _CHECKPOINT)


def train(
    config: TrainConfig,
    *,
    out: str | Path | None = None,
    progress: bool = True,
    device: str | torch.device | None = None,
    command: str | None = None,
    resume: bool = True,
) -> tuple[Model, TrainResult]:
    """Train a model with a recipe and (optionally) write its weights and model card.

    With ``out``, a checkpoint (``out/checkpoint.pt``: weights, heads, optimiser, schedule,
    generators, history) is written after every epoch; running the same configuration again
    into the same folder continues from it and ends with the same weights as an uninterrupted
    run (same seed, same device and threads). The checkpoint is removed once the card is
    written.

    Args:
        config: the run's settings.
        out: folder for ``model.safetensors``, ``card.json`` and the checkpoint (None: write
            nothing).
        progress: show progress bars (loss and accuracy per step).
        device: where to train (default CPU).
        command: the command line recorded in the card (default: the equivalent CLI call).
        resume: continue from ``out/checkpoint.pt`` when it holds this run (False: start over).

    Returns:
        ``(model, result)``: the trained network wrapped in a :class:`Model`, and the
        measurements.

    Example:
        >>> cfg = TrainConfig(epochs=1, limit=256, batch_size=64, val_size=64, eval_limit=64)
        >>> model, result = train(cfg, progress=False)  # needs Fashion-MNIST
        >>> result.test_n, len(result.history), 0.0 <= result.test_accuracy <= 1.0
        (64, 1, True)
    """
    config.validate()
    recipe = RECIPES.get(config.recipe)
    if config.epochs is None:
        config = dataclasses.replace(config, epochs=recipe.default_epochs)
    epochs = int(config.epochs or recipe.default_epochs)
    rcfg = _recipe_config(config)
    pretrain = int(getattr(rcfg, "pretrain_epochs", 0))
    if pretrain >= epochs:
        raise InputError(
            f"recipe '{config.recipe}' pretrains for {pretrain} epochs but the run has {epochs}; "
            f"pass --epochs > {pretrain} or --param pretrain_epochs=N with N < {epochs}"
        )
    dev = torch.device(device) if device is not None else torch.device("cpu")
    folder = Path(out) if out is not None else None
    ckpt = _load_checkpoint(folder, config) if resume else None

    train_ds = load_dataset(config.data, split="train")
    test_ds = load_dataset(config.data, split="test", limit=config.eval_limit)
    x_all, y_all = train_ds.x, train_ds.y
    val_idx, train_idx = split_indices(len(y_all), config.seed, config.val_size)
    if config.limit is not None:
        train_idx = train_idx[: config.limit]
    x_val, y_val = x_all[val_idx], y_all[val_idx]
    x_tr, y_tr = x_all[train_idx], y_all[train_idx]

    c, h, w = int(x_tr.shape[1]), int(x_tr.shape[2]), int(x_tr.shape[3])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(config.seed, "init"))
        arch_kwargs = {"in_channels": c, "num_classes": train_ds.num_classes, "image_size": h}
        net = build_architecture(config.arch, **arch_kwargs)
        heads = nn.ModuleDict()
        if recipe.heads is not None:
            with torch.no_grad():
                _, probe = forward_with_features(net.eval(), torch.zeros(1, c, h, w))
            heads.update(recipe.heads(rcfg, int(probe.shape[1]), train_ds.num_classes))
    net.to(dev)
    heads.to(dev)
    mean, std = DATA_STATS.get(train_ds.name, (None, None))
    model = Model(
        net,
        mean=mean,
        std=std,
        num_classes=train_ds.num_classes,
        features="embed",
        device=dev,
        name=f"{config.arch}-{config.recipe}",
    )

    steps_per_epoch = math.ceil(len(y_tr) / config.batch_size)
    trainable = list(net.parameters()) + list(heads.parameters())
    opt = torch.optim.AdamW(trainable, lr=config.lr, weight_decay=config.weight_decay)
    total_steps = epochs * steps_per_epoch
    # OneCycleLR divides by zero when the warm-up is exactly one step (0.25 * 4 == 1)
    pct_start = 0.25 if 0.25 * total_steps != 1 else 0.5
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=config.lr, total_steps=total_steps, pct_start=pct_start
    )
    gen = make_generator(derive_seed(config.seed, "batches"))
    attack_gen = make_generator(derive_seed(config.seed, "attack"), dev)

    result = TrainResult(config=dataclasses.asdict(config))
    best_state: dict[str, torch.Tensor] | None = None
    best_score = -1.0
    first_epoch, elapsed, stopped = 1, 0.0, False
    if ckpt is not None:
        net.load_state_dict(ckpt["net"])
        heads.load_state_dict(ckpt["heads"])
        opt.load_state_dict(ckpt["opt"])
        sched.load_state_dict(ckpt["sched"])
        gen.set_state(ckpt["gen"])
        attack_gen.set_state(ckpt["attack_gen"].to(attack_gen.get_state().device))
        result.history = json.loads(ckpt["history"])
        result.selected_epoch = int(ckpt["selected_epoch"])
        result.catastrophic_overfitting = bool(ckpt["co"])
        best_state = ckpt["best_state"] or None
        best_score = float(ckpt["best_score"])
        first_epoch, elapsed, stopped = (
            int(ckpt["epoch"]) + 1,
            float(ckpt["seconds"]),
            bool(ckpt["stopped"]),
        )
        if progress:
            tqdm.write(f"resuming from {folder}/{_CHECKPOINT} after epoch {first_epoch - 1}")
    for epoch in range(first_epoch, epochs + 1):
        if stopped:
            break
        start = time.perf_counter()
        perm = torch.randperm(len(y_tr), generator=gen)
        total_loss, correct, seen, scored = 0.0, 0, 0, 0
        parts: dict[str, float] = {}
        bar = tqdm(
            range(steps_per_epoch),
            desc=f"{config.recipe} epoch {epoch}/{epochs}",
            disable=not progress,
            leave=False,
        )
        for step in bar:
            idx = perm[step * config.batch_size : (step + 1) * config.batch_size]
            xb, yb = x_tr[idx].to(dev), y_tr[idx].to(dev)
            if config.augment:
                xb = augment_batch(xb, gen)
            heads.train()
            batch = TrainStep(model, net, heads, xb, yb, attack_gen, epoch)
            res = recipe.step(batch, rcfg)
            opt.zero_grad(set_to_none=True)
            res.loss.backward()
            opt.step()
            sched.step()
            total_loss += res.loss.item() * len(yb)
            seen += len(yb)
            for key, value in res.parts.items():
                parts[key] = parts.get(key, 0.0) + value * len(yb)
            if res.logits is not None:
                correct += int((res.logits.argmax(1) == yb).sum())
                scored += len(yb)
            if step % 20 == 0:
                post = {"loss": f"{total_loss / seen:.3f}"}
                if scored:
                    post["acc"] = f"{correct / scored:.3f}"
                bar.set_postfix(post)
        net.eval()
        row: dict[str, float] = {
            "epoch": epoch,
            "loss": total_loss / seen,
            "train_accuracy": correct / scored if scored else math.nan,
            "val_accuracy": _clean_correct(model, x_val, y_val) / len(y_val),
        }
        row.update({f"loss_{k}": v / seen for k, v in parts.items()})
        score = row["val_accuracy"]
        if recipe.adversarial:
            n_rob, n = _robust_accuracy(
                model,
                x_val[:500],
                y_val[:500],
                eps=config.eps,
                steps=10,
                seed=derive_seed(config.seed, "val", epoch),
            )
            row["val_robust_accuracy"] = n_rob / n
            score = row["val_robust_accuracy"]
        elapsed += time.perf_counter() - start
        row["seconds"] = elapsed
        if recipe.adversarial and best_score > 0.2 and score < config.co_drop * best_score:
            result.catastrophic_overfitting = True
            stopped = True
            if progress:
                tqdm.write(
                    f"catastrophic overfitting at epoch {epoch}: held-out PGD "
                    f"accuracy {score:.3f} < {config.co_drop} x best {best_score:.3f};"
                    f" restoring epoch {result.selected_epoch}"
                )
        elif progress:
            tqdm.write("  ".join(f"{k}={v:.4g}" for k, v in row.items()))
        result.history.append(row)
        if not stopped and (not recipe.adversarial or score >= best_score):
            best_score = score
            best_state = copy.deepcopy(net.state_dict())
            result.selected_epoch = epoch
        if folder is not None:
            _save_checkpoint(
                folder,
                {
                    "config": _config_key(config),
                    "epoch": epoch,
                    "net": net.state_dict(),
                    "heads": heads.state_dict(),
                    "opt": opt.state_dict(),
                    "sched": sched.state_dict(),
                    "gen": gen.get_state(),
                    "attack_gen": attack_gen.get_state().cpu(),
                    "history": json.dumps(result.history),
                    "selected_epoch": result.selected_epoch,
                    "co": result.catastrophic_overfitting,
                    "best_state": best_state or {},
                    "best_score": best_score,
                    "seconds": elapsed,
                    "stopped": stopped,
                },
            )
    result.train_seconds = elapsed
    if best_state is not None:
        net.load_state_dict(best_state)
    net.eval()

    x_te, y_te = test_ds.x, test_ds.y
    n_correct = _clean_correct(model, x_te, y_te)
    result.test_n = len(y_te)
    result.test_accuracy = n_correct / len(y_te)
    result.test_accuracy_ci = binomial_ci(n_correct, len(y_te))
    if recipe.adversarial:
        n_rob, n = _robust_accuracy(
            model,
            x_te,
            y_te,
            eps=config.eps,
            steps=40,
            seed=derive_seed(config.seed, "test"),
            progress=progress,
            desc="test PGD-40",
        )
        result.test_robust_accuracy = n_rob / n
        result.test_robust_accuracy_ci = binomial_ci(n_rob, n)

    if folder is not None:
        write_model_card(folder, net, arch_kwargs, config, result, train_ds.name, command)
        (folder / _CHECKPOINT).unlink(missing_ok=True)
    return model, result


def _default_command(config: TrainConfig) -> str:
    parts = [
        "robustcv train",
        f"--recipe {config.recipe}",
        f"--data {config.data}",
        f"--seed {config.seed}",
        f"--epochs {config.epochs}",
    ]
    if config.arch != "small-cnn":
        parts.insert(1, f"--arch {config.arch}")
    if not config.augment:
        parts.append("--no-augment")
    if issubclass(RECIPES.get(config.recipe).config_class, RecipeParams):
        parts.append(f"--eps {config.eps}")
        if config.recipe != "fgsm-rs":  # the one-step recipe ignores steps
            parts.append(f"--steps {config.steps}")
    for key, value in sorted(config.params.items()):
        text = ",".join(str(v) for v in value) if isinstance(value, (list, tuple)) else value
        parts.append(f"--param {key}={text}")
    parts.append("--out DIR")
    return " ".join(parts)


def write_model_card(
    out: str | Path,
    net: nn.Module,
    arch_kwargs: dict[str, int],
    config: TrainConfig,
    result: TrainResult,
    data_name: str,
    command: str | None,
) -> Path:
    """Write ``model.safetensors`` and ``card.json`` into ``out``; return the card path."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    save_file(
        {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()},
        str(folder / "model.safetensors"),
    )
    mean, std = DATA_STATS.get(data_name, (None, None))
    card = {
        "schema": 1,
        "architecture": config.arch,
        "architecture_kwargs": {k: int(v) for k, v in arch_kwargs.items()},
        "preprocessing": {"input_range": [0.0, 1.0], "mean": mean, "std": std},
        "features": "embed",
        "classes": None,
        "recipe": config.recipe,
        "recipe_params": dataclasses.asdict(_recipe_config(config)),
        "recipe_reference": RECIPES.get(config.recipe).reference,
        "config": dataclasses.asdict(config),
        "data": data_name,
        "seed": config.seed,
        "clean_accuracy": {
            "value": result.test_accuracy,
            "ci95": list(result.test_accuracy_ci),
            "n": result.test_n,
            "split": "test",
        },
        "robust_accuracy": None
        if result.test_robust_accuracy is None
        else {
            "value": result.test_robust_accuracy,
            "ci95": list(result.test_robust_accuracy_ci or ()),
            "n": result.test_n,
            "attack": "PGD-40, L-inf, random start, step max(eps/4, 2.5 eps/40), "
            "first success kept, else the highest-loss iterate (robustcv.attacks: pgd)",
            "eps": config.eps,
        },
        "catastrophic_overfitting": result.catastrophic_overfitting,
        "selected_epoch": result.selected_epoch,
        "history": result.history,
        "train_seconds": round(result.train_seconds, 1),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, torch "
        f"{torch.__version__}",
        "command": command or _default_command(config),
    }
    path = folder / "card.json"
    path.write_text(json.dumps(card, indent=2) + "\n")
    return path
