"""Input-randomisation recipes: ``randconv`` (random convolutions) and ``distortion``.

``randconv`` (Xu et al. 2021) passes images through a freshly drawn random convolution (kernel
size drawn from ``kernel_sizes``, He-normal weights, one kernel per image): shapes survive,
local texture, contrast polarity and intensity do not, so the network is pushed towards shape.
It is the stylisation remedy (Geirhos et al. 2019, Stylized-ImageNet) without a pretrained style
network. Each random-conv output is rescaled to [0, 1] per image (min-max) and mixed with the
original image with a weight ~ U(0, 1) (the paper's "mix" variant).

``distortion`` trains on one corruption or degradation from the registry
(:func:`robustcv.corruptions.corrupt`), at a random severity per batch: the experiment of
Geirhos et al. 2018, where a network trained on one distortion is robust to it and rarely to
the others.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from robustcv.core.errors import InputError
from robustcv.core.model import Model
from robustcv.training.recipes import Recipe, _number, attack_seed, register_recipe

__all__ = ["DistortionParams", "RandConvParams", "random_convolution"]


@dataclass(frozen=True)
class RandConvParams:
    """Random-convolution settings.

    Attributes:
        kernel_sizes: odd kernel sizes drawn from (per image).
        fraction: share of each batch passed through a random convolution.
        mix: mix the output with the original image (weight ~ U(0, 1)) instead of replacing it.

    Example:
        >>> RandConvParams().kernel_sizes
        (1, 3, 5, 7)
    """

    kernel_sizes: tuple[int, ...] = (1, 3, 5, 7)
    fraction: float = 0.5
    mix: bool = True

    def __post_init__(self) -> None:
        sizes = self.kernel_sizes
        if isinstance(sizes, int):
            sizes = (sizes,)
        if isinstance(sizes, str):
            sizes = tuple(int(s) for s in sizes.replace(",", " ").split() if s)
        sizes = tuple(sizes)
        if not sizes or any(isinstance(k, bool) or not isinstance(k, int) for k in sizes):
            raise InputError(f"kernel_sizes must be odd ints such as 1,3,5,7, got {sizes!r}")
        if any(k < 1 or k % 2 == 0 or k > 15 for k in sizes):
            raise InputError(f"kernel_sizes must be odd ints in [1, 15], got {sizes!r}")
        object.__setattr__(self, "kernel_sizes", sizes)
        _number(self.fraction, "fraction", low=0.0, high=1.0, low_open=True)
        if not isinstance(self.mix, bool):
            raise InputError(f"mix must be true or false, got {self.mix!r}")


def random_convolution(
    x: torch.Tensor, params: RandConvParams, generator: torch.Generator
) -> torch.Tensor:
    """Every image through its own random convolution, rescaled to [0, 1] (and mixed).

    Example:
        >>> from robustcv.core.seeding import make_generator
        >>> x = torch.rand(3, 1, 28, 28)
        >>> y = random_convolution(x, RandConvParams(), make_generator(0))
        >>> y.shape == x.shape and bool(y.min() >= 0 and y.max() <= 1)
        True
    """
    g, dev = generator, x.device
    b, c, h, w = x.shape
    sizes = torch.tensor(params.kernel_sizes)
    pick = sizes[torch.randint(0, len(sizes), (b,), generator=g, device=g.device).cpu()]
    kmax = int(max(params.kernel_sizes))
    # one kernel per image, zero outside its own size: a grouped conv over the batch
    weight = torch.randn(b * c, c, kmax, kmax, generator=g, device=g.device).to(dev)
    r = torch.arange(kmax, device=dev)
    centre = kmax // 2
    half = (pick.to(dev) // 2).repeat_interleave(c).view(-1, 1, 1, 1)
    inside = ((r.view(1, 1, -1, 1) - centre).abs() <= half) & (
        (r.view(1, 1, 1, -1) - centre).abs() <= half
    )
    fan_in = (c * (2 * half + 1) ** 2).float()
    weight = weight * inside / fan_in.sqrt()
    out = F.conv2d(x.reshape(1, b * c, h, w), weight, padding=centre, groups=b)
    out = out.view(b, c, h, w)
    lo = out.amin((1, 2, 3), keepdim=True)
    hi = out.amax((1, 2, 3), keepdim=True)
    out = (out - lo) / (hi - lo).clamp_min(1e-8)
    if params.mix:
        a = torch.rand(b, generator=g, device=g.device).to(dev).view(-1, 1, 1, 1)
        out = a * x + (1 - a) * out
    return out.clamp(0, 1)


def _randconv(
    model: Model, x: torch.Tensor, y: torch.Tensor, p: RandConvParams, g: torch.Generator
) -> torch.Tensor:
    out = random_convolution(x, p, g)
    pick = (torch.rand(x.shape[0], generator=g, device=g.device) < p.fraction).to(x.device)
    return torch.where(pick.view(-1, 1, 1, 1), out, x)


@dataclass(frozen=True)
class DistortionParams:
    """Train on one corruption from the registry.

    Attributes:
        corruption: a registered corruption or degradation (``robustcv list corruptions``).
        severities: severities drawn from, one per batch.
        fraction: share of each batch that is corrupted.

    Example:
        >>> DistortionParams().corruption
        'gaussian_blur'
    """

    corruption: str = "gaussian_blur"
    severities: tuple[int, ...] = (1, 2, 3, 4, 5)
    fraction: float = 0.5

    def __post_init__(self) -> None:
        from robustcv.corruptions import CORRUPTIONS

        if not isinstance(self.corruption, str):
            raise InputError(f"corruption must be a name, got {self.corruption!r}")
        object.__setattr__(self, "corruption", CORRUPTIONS.canonical(self.corruption))
        sev = self.severities
        if isinstance(sev, int) and not isinstance(sev, bool):
            sev = (sev,)
        if isinstance(sev, str):
            sev = tuple(int(s) for s in sev.replace(",", " ").split() if s)
        sev = tuple(sev)
        if not sev or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in sev):
            raise InputError(f"severities must be positive ints such as 1,2,3, got {sev!r}")
        object.__setattr__(self, "severities", sev)
        _number(self.fraction, "fraction", low=0.0, high=1.0, low_open=True)


def _distortion(
    model: Model, x: torch.Tensor, y: torch.Tensor, p: DistortionParams, g: torch.Generator
) -> torch.Tensor:
    from robustcv.corruptions import corrupt

    k = int(torch.randint(0, len(p.severities), (1,), generator=g, device=g.device))
    seed = attack_seed(g)
    pick = (torch.rand(x.shape[0], generator=g, device=g.device) < p.fraction).to(x.device)
    idx = pick.nonzero().flatten()
    out = x.clone()
    if idx.numel():
        out[idx] = corrupt(x[idx], p.corruption, p.severities[k], seed=seed % 2**31)
    return out


register_recipe(
    Recipe(
        "randconv",
        "random convolutions (Xu et al. 2021) as a texture/style randomiser: half of each "
        "batch through a random 1/3/5/7 conv, mixed with the image",
        12,
        make_inputs=_randconv,
        config_class=RandConvParams,
        reference="Xu et al. 2021 (RandConv): kernel sizes 1, 3, 5, 7, He-normal weights, "
        "mixing weight ~ U(0, 1); output min-max rescaled to [0, 1]; no consistency loss",
    )
)
register_recipe(
    Recipe(
        "distortion",
        "train on one corruption from the registry (default gaussian_blur), random severity "
        "per batch, half of each batch",
        12,
        make_inputs=_distortion,
        config_class=DistortionParams,
        reference="Geirhos et al. 2018 (generalisation in humans and DNNs): training on one "
        "distortion; here gaussian_blur at severities 1-5 on half of each batch",
    )
)
