"""AugMix (Hendrycks et al. 2020): mixed augmentation chains and the Jensen-Shannon loss.

Each image gets ``width`` chains of 1-3 random operations (``depth=-1``) or exactly ``depth``;
the chains are mixed with Dirichlet(alpha) weights and the mixture with the original image
with a Beta(alpha, alpha) weight. The loss is cross-entropy on the clean images plus
``jsd_weight`` times the Jensen-Shannon divergence between the predictions on the clean image
and two independent AugMix views (mixture distribution clamped to [1e-7, 1] before its log, as
in the paper's code).

The operations are written here in torch and batched (one draw per image, no loop over
images): autocontrast, equalize, posterize, solarize, rotate, shear x/y, translate x/y.
Brightness, contrast, colour and sharpness overlap with the -C corruptions and are excluded
unless ``all_ops=True``, as in the paper. Geometric operations use bilinear sampling with zero
fill.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from robustcv.core.errors import InputError
from robustcv.training.recipes import (
    Recipe,
    StepOutput,
    TrainStep,
    _number,
    register_recipe,
)

__all__ = ["AUGMIX_OPS", "AugMixParams", "augmix", "jsd_loss"]

_BASE_OPS = (
    "autocontrast",
    "equalize",
    "posterize",
    "solarize",
    "rotate",
    "shear_x",
    "shear_y",
    "translate_x",
    "translate_y",
)
_EXTRA_OPS = ("brightness", "contrast", "color", "sharpness")
AUGMIX_OPS: tuple[str, ...] = _BASE_OPS + _EXTRA_OPS
"""Every operation; the last four are used only with ``all_ops=True``."""


@dataclass(frozen=True)
class AugMixParams:
    """AugMix settings (the paper's CIFAR defaults).

    Attributes:
        width: augmentation chains mixed per image.
        depth: operations per chain; -1 draws 1-3 per chain.
        severity: operation strength, 1-10 (each op draws its level uniformly in
            [0.1, severity]).
        alpha: Dirichlet and Beta concentration.
        jsd_weight: weight of the Jensen-Shannon consistency term (0: AugMix as plain
            augmentation, cross-entropy on one AugMix view).
        all_ops: also use brightness, contrast, colour and sharpness (they overlap with the -C
            corruptions, so the paper leaves them out).

    Example:
        >>> AugMixParams().jsd_weight
        12.0
    """

    width: int = 3
    depth: int = -1
    severity: int = 3
    alpha: float = 1.0
    jsd_weight: float = 12.0
    all_ops: bool = False

    def __post_init__(self) -> None:
        _number(self.width, "width", low=1, high=10, integer=True)
        if isinstance(self.depth, bool) or not isinstance(self.depth, int):
            raise InputError(f"depth must be an int (-1 or 1-10), got {self.depth!r}")
        if self.depth != -1 and not 1 <= self.depth <= 10:
            raise InputError(f"depth must be -1 (random 1-3) or in [1, 10], got {self.depth}")
        _number(self.severity, "severity", low=1, high=10, integer=True)
        _number(self.alpha, "alpha", low=0.0, low_open=True)
        _number(self.jsd_weight, "jsd_weight", low=0.0)
        if not isinstance(self.all_ops, bool):
            raise InputError(f"all_ops must be true or false, got {self.all_ops!r}")


def _uniform(
    n: int, g: torch.Generator, lo: float, hi: float, device: torch.device
) -> torch.Tensor:
    return (lo + (hi - lo) * torch.rand(n, generator=g, device=g.device)).to(device)


def _sign(n: int, g: torch.Generator, device: torch.device) -> torch.Tensor:
    return (torch.randint(0, 2, (n,), generator=g, device=g.device) * 2 - 1).to(device).float()


def _affine(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _autocontrast(x: torch.Tensor) -> torch.Tensor:
    lo = x.amin((2, 3), keepdim=True)
    hi = x.amax((2, 3), keepdim=True)
    span = hi - lo
    return torch.where(span > 0, (x - lo) / span.clamp_min(1e-12), x)


def _equalize(x: torch.Tensor) -> torch.Tensor:
    # histogram equalisation of 256 levels per image and channel
    b, c, h, w = x.shape
    levels = (x * 255).round().long().clamp(0, 255).view(b * c, h * w)
    hist = torch.zeros(b * c, 256, device=x.device).scatter_add_(
        1, levels, torch.ones_like(levels, dtype=torch.float32)
    )
    cdf = hist.cumsum(1)
    cdf_min = torch.where(hist > 0, cdf, torch.full_like(cdf, float("inf"))).amin(1, keepdim=True)
    denom = (h * w - cdf_min).clamp_min(1)
    lut = ((cdf - cdf_min) / denom).clamp(0, 1)
    out = lut.gather(1, levels).view(b, c, h, w)
    flat = (hist > 0).sum(1).view(b, c, 1, 1) <= 1  # a constant image stays as it is
    return torch.where(flat, x, out)


def _blend(a: torch.Tensor, b: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return (b + factor.view(-1, 1, 1, 1) * (a - b)).clamp(0, 1)


def _apply_op(name: str, x: torch.Tensor, level: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """One operation on the whole batch at per-image ``level`` in (0, severity] / 10."""
    n, dev = x.shape[0], x.device
    if name == "autocontrast":
        return _autocontrast(x)
    if name == "equalize":
        return _equalize(x)
    if name == "posterize":
        bits = (4 - (level * 4).long()).clamp(1, 8)  # keep 4..1 bits (more severe: fewer)
        step = (2.0 ** (8 - bits)).view(-1, 1, 1, 1)
        return (torch.floor(x * 255 / step) * step / 255).clamp(0, 1)
    if name == "solarize":
        threshold = (256 - (level * 256).floor()).view(-1, 1, 1, 1) / 255
        return torch.where(x >= threshold, 1 - x, x)
    theta = torch.zeros(n, 2, 3, device=dev)
    theta[:, 0, 0] = 1
    theta[:, 1, 1] = 1
    s = _sign(n, g, dev)
    if name == "rotate":
        rad = s * level * 30 * math.pi / 180
        theta[:, 0, 0], theta[:, 0, 1] = torch.cos(rad), -torch.sin(rad)
        theta[:, 1, 0], theta[:, 1, 1] = torch.sin(rad), torch.cos(rad)
        return _affine(x, theta)
    if name in ("shear_x", "shear_y"):
        row, col = (0, 1) if name == "shear_x" else (1, 0)
        theta[:, row, col] = s * level * 0.3
        return _affine(x, theta)
    if name in ("translate_x", "translate_y"):
        side = x.shape[3] if name == "translate_x" else x.shape[2]
        pixels = (level * side / 3).floor()
        theta[:, 0 if name == "translate_x" else 1, 2] = s * 2 * pixels / side
        return _affine(x, theta)
    factor = 1 + s * level * 0.9  # brightness, contrast, colour, sharpness: 0.1 .. 1.9
    if name == "brightness":
        return _blend(x, torch.zeros_like(x), factor)
    if name == "contrast":
        return _blend(x, x.mean((1, 2, 3), keepdim=True).expand_as(x), factor)
    if name == "color":
        return _blend(x, x.mean(1, keepdim=True).expand_as(x), factor)
    if name == "sharpness":
        kernel = torch.tensor([[1.0, 1, 1], [1, 5, 1], [1, 1, 1]], device=dev) / 13
        c = x.shape[1]
        smooth = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"),
                          kernel.expand(c, 1, 3, 3), groups=c)  # fmt: skip
        return _blend(x, smooth, factor)
    raise InputError(f"unknown AugMix operation '{name}'")  # pragma: no cover


def augmix(x: torch.Tensor, params: AugMixParams, generator: torch.Generator) -> torch.Tensor:
    """One AugMix view of every image (batched; every draw from ``generator``).

    Example:
        >>> from robustcv.core.seeding import make_generator
        >>> x = torch.rand(4, 1, 28, 28)
        >>> y = augmix(x, AugMixParams(), make_generator(0))
        >>> y.shape == x.shape and bool(y.min() >= 0 and y.max() <= 1)
        True
        >>> torch.equal(y, augmix(x, AugMixParams(), make_generator(0)))
        True
    """
    g, dev = generator, x.device
    n = x.shape[0]
    ops = AUGMIX_OPS if params.all_ops else _BASE_OPS
    conc = torch.full((n, params.width), float(params.alpha))
    # Dirichlet and Beta from gamma draws of the seeded generator (torch's samplers take none)
    gam = torch._standard_gamma(conc.to(g.device), generator=g)
    weights = (gam / gam.sum(1, keepdim=True)).to(dev)
    ab = torch._standard_gamma(
        torch.full((n, 2), float(params.alpha), device=g.device), generator=g
    )
    m = (ab[:, 0] / ab.sum(1)).to(dev)
    mix = torch.zeros_like(x)
    for i in range(params.width):
        if params.depth > 0:
            depth = torch.full((n,), params.depth, device=dev)
        else:
            depth = torch.randint(1, 4, (n,), generator=g, device=g.device).to(dev)
        chain = x.clone()
        for j in range(int(depth.max())):
            choice = torch.randint(0, len(ops), (n,), generator=g, device=g.device).to(dev)
            level = _uniform(n, g, 0.1, float(params.severity), dev) / 10
            active = depth > j
            for k, name in enumerate(ops):
                pick = active & (choice == k)
                if bool(pick.any()):
                    idx = pick.nonzero().flatten()
                    chain[idx] = _apply_op(name, chain[idx], level[idx], g)
        mix = mix + weights[:, i].view(-1, 1, 1, 1) * chain
    mv = m.view(-1, 1, 1, 1)
    return ((1 - mv) * x + mv * mix).clamp(0, 1)


def jsd_loss(
    logits_clean: torch.Tensor, logits_a: torch.Tensor, logits_b: torch.Tensor
) -> torch.Tensor:
    """Jensen-Shannon consistency: mean over the three of KL(p_i || M), batch-averaged.

    ``M`` is the mean of the three softmaxes, clamped to [1e-7, 1] before its logarithm.

    Example:
        >>> z = torch.tensor([[1.0, 0.0]])
        >>> float(jsd_loss(z, z, z))
        0.0
    """
    probs = [F.softmax(z, dim=1) for z in (logits_clean, logits_a, logits_b)]
    log_m = torch.clamp((probs[0] + probs[1] + probs[2]) / 3, 1e-7, 1).log()
    kls = [(p * (p.clamp_min(1e-30).log() - log_m)).sum(1).mean() for p in probs]
    return (kls[0] + kls[1] + kls[2]) / 3


def _augmix_loss(step: TrainStep, p: AugMixParams) -> StepOutput:
    step.net.train()
    if p.jsd_weight == 0:
        logits = step.logits(augmix(step.x, p, step.generator))
        return StepOutput(F.cross_entropy(logits, step.y), logits)
    view_a = augmix(step.x, p, step.generator)
    view_b = augmix(step.x, p, step.generator)
    n = len(step.y)
    logits = step.logits(torch.cat([step.x, view_a, view_b]))
    clean, la, lb = logits[:n], logits[n : 2 * n], logits[2 * n :]
    ce = F.cross_entropy(clean, step.y)
    jsd = jsd_loss(clean, la, lb)
    return StepOutput(
        ce + p.jsd_weight * jsd, clean, {"ce": float(ce.detach()), "jsd": float(jsd.detach())}
    )


register_recipe(
    Recipe(
        "augmix",
        "AugMix (Hendrycks et al. 2020) with the Jensen-Shannon consistency loss; ops that "
        "overlap the -C corruptions excluded",
        10,
        loss=_augmix_loss,
        config_class=AugMixParams,
        reference="Hendrycks et al. 2020: width 3, depth 1-3, severity 3, alpha 1, JSD weight "
        "12 (the CIFAR settings); brightness/contrast/colour/sharpness excluded (all_ops=False)",
    )
)
