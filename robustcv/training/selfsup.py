"""Self-supervised remedies: ``rotation-aux`` (an auxiliary rotation head) and ``simclr``.

``rotation-aux`` (Hendrycks et al. 2019, "Using self-supervised learning can improve model
robustness and uncertainty"): every batch is appended with its 90, 180 and 270 degree
rotations; a 4-way linear head on the penultimate features predicts the rotation. Loss =
cross-entropy of the classes on the upright copy + ``weight`` x cross-entropy of the rotation
head over all four copies.

``simclr`` (Chen et al. 2020): the first ``pretrain_epochs`` epochs learn features without
labels: two random views of each image (random resized crop, flip, brightness/contrast
jitter), a projection head (two linear layers) and the NT-Xent loss at ``temperature``. The
remaining epochs train the classifier with labels: the whole network (``probe="finetune"``)
or only its last linear layer on frozen features (``probe="linear"``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from robustcv.core.errors import InputError
from robustcv.training.recipes import Recipe, StepOutput, TrainStep, _number, register_recipe

__all__ = [
    "RotationParams",
    "SimCLRParams",
    "nt_xent",
    "rotation_batch",
    "simclr_views",
]


@dataclass(frozen=True)
class RotationParams:
    """Auxiliary rotation prediction.

    Attributes:
        weight: weight of the rotation head's cross-entropy (the paper's 0.5).

    Example:
        >>> RotationParams().weight
        0.5
    """

    weight: float = 0.5

    def __post_init__(self) -> None:
        _number(self.weight, "weight", low=0.0)


def rotation_batch(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch and its 90/180/270 degree rotations, and the rotation labels 0-3.

    Rotations are exact (``torch.rot90``, counter-clockwise); images must be square.

    Example:
        >>> xr, r = rotation_batch(torch.rand(2, 1, 4, 4))
        >>> tuple(xr.shape), r.tolist()
        ((8, 1, 4, 4), [0, 0, 1, 1, 2, 2, 3, 3])
    """
    if x.shape[2] != x.shape[3]:
        raise InputError(
            f"rotation-aux needs square images, got {x.shape[2]}x{x.shape[3]}; crop or pad "
            "them first"
        )
    xs = torch.cat([torch.rot90(x, k, dims=(2, 3)) for k in range(4)])
    labels = torch.arange(4, device=x.device).repeat_interleave(x.shape[0])
    return xs, labels


def _rotation_heads(p: RotationParams, dim: int, num_classes: int) -> dict[str, nn.Module]:
    return {"rotation": nn.Linear(dim, 4)}


def _rotation_loss(step: TrainStep, p: RotationParams) -> StepOutput:
    step.net.train()
    xs, r = rotation_batch(step.x)
    logits, feats = step.forward(xs)
    n = len(step.y)
    ce = F.cross_entropy(logits[:n], step.y)
    rot = F.cross_entropy(step.heads["rotation"](feats), r)
    return StepOutput(
        ce + p.weight * rot, logits[:n], {"ce": float(ce.detach()), "rotation": float(rot.detach())}
    )


@dataclass(frozen=True)
class SimCLRParams:
    """SimCLR pretraining then supervised training.

    Attributes:
        pretrain_epochs: epochs of contrastive pretraining (no labels) before the supervised
            ones; must be fewer than the run's epochs.
        temperature: NT-Xent temperature.
        proj_dim: output size of the projection head (hidden size = feature size).
        probe: ``"finetune"`` (train the whole network with labels afterwards) or
            ``"linear"`` (train only the last linear layer on frozen features).
        min_scale: smallest crop area of the random resized crop (fraction of the image).
        jitter: strength of the brightness and contrast jitter.

    Example:
        >>> SimCLRParams().probe
        'finetune'
    """

    pretrain_epochs: int = 8
    temperature: float = 0.5
    proj_dim: int = 64
    probe: str = "finetune"
    min_scale: float = 0.3
    jitter: float = 0.4

    def __post_init__(self) -> None:
        _number(self.pretrain_epochs, "pretrain_epochs", low=1, integer=True)
        _number(self.temperature, "temperature", low=0.0, low_open=True)
        _number(self.proj_dim, "proj_dim", low=1, integer=True)
        if self.probe not in ("finetune", "linear"):
            raise InputError(f"probe must be 'finetune' or 'linear', got {self.probe!r}")
        _number(self.min_scale, "min_scale", low=0.0, high=1.0, low_open=True)
        _number(self.jitter, "jitter", low=0.0, high=1.0)


def nt_xent(z_a: torch.Tensor, z_b: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent: cross-entropy of finding each view's partner among the other 2N - 1 views.

    Embeddings are L2-normalised; similarities are cosine / temperature; the loss is averaged
    over all 2N anchors.

    Example:
        >>> z = torch.eye(2)
        >>> round(float(nt_xent(z, z, 1.0)), 4)  # partners identical, others orthogonal
        0.5514
    """
    n = z_a.shape[0]
    z = F.normalize(torch.cat([z_a, z_b]), dim=1)
    sim = z @ z.t() / temperature
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, partner)


def simclr_views(x: torch.Tensor, p: SimCLRParams, generator: torch.Generator) -> torch.Tensor:
    """One random view per image: resized crop, horizontal flip, brightness/contrast jitter.

    Example:
        >>> from robustcv.core.seeding import make_generator
        >>> v = simclr_views(torch.rand(3, 1, 28, 28), SimCLRParams(), make_generator(0))
        >>> tuple(v.shape), bool(v.min() >= 0 and v.max() <= 1)
        ((3, 1, 28, 28), True)
    """
    g, dev = generator, x.device
    n = x.shape[0]

    def u(lo: float, hi: float) -> torch.Tensor:
        return (lo + (hi - lo) * torch.rand(n, generator=g, device=g.device)).to(dev)

    scale = u(p.min_scale, 1.0).sqrt()  # side of the crop as a fraction of the image
    cx = u(-1.0, 1.0) * (1 - scale)
    cy = u(-1.0, 1.0) * (1 - scale)
    flip = torch.where(u(0.0, 1.0) < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3, device=dev)
    theta[:, 0, 0] = scale * flip
    theta[:, 1, 1] = scale
    theta[:, 0, 2] = cx
    theta[:, 1, 2] = cy
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    v = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    bright = u(1 - p.jitter, 1 + p.jitter).view(-1, 1, 1, 1)
    contrast = u(1 - p.jitter, 1 + p.jitter).view(-1, 1, 1, 1)
    mean = v.mean((1, 2, 3), keepdim=True)
    v = (v - mean) * contrast + mean
    return (v * bright).clamp(0, 1)


def _simclr_heads(p: SimCLRParams, dim: int, num_classes: int) -> dict[str, nn.Module]:
    return {"projection": nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, p.proj_dim))}


def _classifier(net: nn.Module) -> nn.Module:
    head = getattr(net, "head", None)
    if not isinstance(head, nn.Linear):
        raise InputError(
            "simclr with probe='linear' needs a network whose last layer is a Linear named "
            "'head' (small-cnn, bagnet); use probe='finetune'"
        )
    return head


def _simclr_loss(step: TrainStep, p: SimCLRParams) -> StepOutput:
    step.net.train()
    if step.epoch <= p.pretrain_epochs:
        views = torch.cat([simclr_views(step.x, p, step.generator) for _ in range(2)])
        _, feats = step.forward(views)
        z = step.heads["projection"](feats)
        n = len(step.y)
        loss = nt_xent(z[:n], z[n:], p.temperature)
        return StepOutput(loss, None, {"nt_xent": float(loss.detach())})
    if p.probe == "linear":
        with torch.no_grad():
            _, feats = step.forward(step.x)
        logits = _classifier(step.net)(feats)
    else:
        logits = step.logits(step.x)
    return StepOutput(F.cross_entropy(logits, step.y), logits)


register_recipe(
    Recipe(
        "rotation-aux",
        "auxiliary 4-way rotation head on the penultimate features (Hendrycks et al. 2019), "
        "weight 0.5",
        8,
        loss=_rotation_loss,
        config_class=RotationParams,
        heads=_rotation_heads,
        reference="Hendrycks et al. 2019: the batch plus its 90/180/270 rotations, "
        "Linear(features, 4) head, weight 0.5; without the optional PGD on the joint loss",
    )
)
register_recipe(
    Recipe(
        "simclr",
        "SimCLR (Chen et al. 2020): NT-Xent pretraining with a projection head, then "
        "fine-tuning (or a linear probe)",
        12,
        loss=_simclr_loss,
        config_class=SimCLRParams,
        heads=_simclr_heads,
        reference="Chen et al. 2020: two views (resized crop >= 30% area, flip, brightness/"
        "contrast 0.4), 2-layer projection to 64, temperature 0.5, 8 pretraining epochs of "
        "12 then fine-tuning; batch 128 (the paper's thousands are out of reach on 2 cores)",
    )
)
