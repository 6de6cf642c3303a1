"""The model zoo: small models shipped inside the package (safetensors + a JSON model card).

Each zoo entry is a folder ``robustcv/models/zoo/<name>/`` holding ``model.safetensors`` and
``card.json`` (architecture, preprocessing, recipe, seed, data, measured accuracies, training
time and the command that reproduces it). Nothing is downloaded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from robustcv.core.errors import InputError
from robustcv.core.model import Model
from robustcv.core.registry import Registry
from robustcv.models.architectures import build_architecture
from robustcv.models.weights import load_weights

__all__ = ["ZOO", "ZOO_DIR", "ZooEntry", "load_zoo_model", "zoo_card", "zoo_held_out"]

ZOO_DIR = Path(__file__).parent / "zoo"


@dataclass(frozen=True)
class ZooEntry:
    """Where a zoo model lives and what it is."""

    name: str
    folder: Path
    summary: str


ZOO: Registry[ZooEntry] = Registry("zoo model")
for _name, _summary in (
    ("fmnist-cnn", "small CNN, standard training on Fashion-MNIST"),
    ("fmnist-cnn-at", "small CNN, FGSM-RS adversarial training (L-inf eps=0.1) on Fashion-MNIST"),
    (
        "fmnist-cnn-shortcut",
        "small CNN trained on fashion-mnist-shortcut (a corner square encodes the label): the "
        "probes' positive control",
    ),
    (
        "fmnist-bagnet",
        "BagNet-style bag of local features (9x9-pixel patches, evidence averaged over space) "
        "on Fashion-MNIST: the probes' locality reference",
    ),
    # one model per hardening recipe (robustcv train --recipe NAME; docs/training.md)
    ("fmnist-cnn-pgd-at", "small CNN, PGD-7 adversarial training (L-inf eps=0.1)"),
    ("fmnist-cnn-trades", "small CNN, TRADES (beta 6, PGD-7 on the KL term, L-inf eps=0.1)"),
    ("fmnist-cnn-simclr", "small CNN, SimCLR pretraining (8 epochs) then fine-tuning (4)"),
    (
        "fmnist-cnn-gaussian",
        "small CNN, Gaussian noise augmentation (sigma 0.1, half of each batch)",
    ),
    (
        "fmnist-cnn-patch-gaussian",
        "small CNN, PatchGaussian (16-px patch, sigma ~ U(0, 0.5))",
    ),
    (
        "fmnist-cnn-randconv",
        "small CNN, random convolutions (1/3/5/7 kernels, mixed) as a texture randomiser",
    ),
    (
        "fmnist-cnn-distortion",
        "small CNN, trained on one distortion (gaussian_blur, severities 1-5, half of each batch)",
    ),
    (
        "fmnist-cnn-augmix",
        "small CNN, AugMix with the Jensen-Shannon consistency loss (weight 12)",
    ),
    (
        "fmnist-cnn-rotation-aux",
        "small CNN with an auxiliary rotation head (weight 0.5)",
    ),
):
    ZOO.add(_name, ZooEntry(_name, ZOO_DIR / _name, _summary), summary=_summary)


def zoo_card(name: str) -> dict[str, Any]:
    """The parsed model card of a zoo model.

    Example:
        >>> zoo_card("fmnist-cnn")["architecture"]
        'small-cnn'
    """
    entry = ZOO.get(name)
    path = entry.folder / "card.json"
    if not path.exists():
        raise InputError(f"zoo model '{name}' has no card at {path}; reinstall robustcv")
    card: dict[str, Any] = json.loads(path.read_text())
    return card


def zoo_held_out(name: str) -> tuple[str, str, torch.Tensor]:
    """``(data spec, split, indices)`` of the images a zoo model held out from training.

    Fit anything post-hoc (temperature, OOD statistics) on these: the model never trained on
    them, unlike the rest of the training split, and they are not the test images either.

    Example:
        >>> data, split, idx = zoo_held_out("fmnist-cnn")
        >>> data, split, len(idx)
        ('fashion-mnist', 'train', 1000)
    """
    from robustcv.training.loop import split_indices

    card = zoo_card(name)
    cfg = card.get("config", {})
    fmnist = ("fashion-mnist", "fashion-mnist-shortcut")  # same 60,000 training images
    n = 60000 if cfg.get("data", card.get("data")) in fmnist else None
    if n is None:  # pragma: no cover - every shipped model is trained on Fashion-MNIST
        raise InputError(f"zoo model '{name}' records no held-out split")
    val, _ = split_indices(n, int(cfg.get("seed", card.get("seed", 0))), int(cfg["val_size"]))
    return str(cfg.get("data", card["data"])), "train", val


def load_zoo_model(
    name: str, *, device: torch.device | str | None = None, channels_last: bool = False
) -> Model:
    """Build a zoo model from its card and shipped weights (``channels_last``: see Model).

    Example:
        >>> model = load_zoo_model("fmnist-cnn")
        >>> model.num_classes
        10
    """
    entry = ZOO.get(name)
    card = zoo_card(name)
    net = build_architecture(card["architecture"], **card.get("architecture_kwargs", {}))
    load_weights(net, entry.folder / "model.safetensors")
    pre = card.get("preprocessing", {})
    lo, hi = pre.get("input_range", (0.0, 1.0))
    return Model(
        net,
        mean=pre.get("mean"),
        std=pre.get("std"),
        input_range=(float(lo), float(hi)),
        num_classes=card.get("architecture_kwargs", {}).get("num_classes"),
        features=card.get("features"),
        device=device,
        name=f"zoo:{entry.name}",
        channels_last=channels_last,
    )
