"""ImageNet-C's noise corruptions: Gaussian, shot (Poisson), impulse (salt and pepper), speckle.

Each pixel of each channel gets independent noise from its image's own random stream
(:class:`~robustcv.corruptions.base.SampleRNG`), so an image's output does not depend on the
batch it came in. The algorithms are those of ImageNet-C (``imagecorruptions`` 1.1.2):

* ``gaussian_noise``: ``x + N(0, sigma^2)``;
* ``shot_noise``: ``Poisson(photons * x) / photons``;
* ``impulse_noise``: each value becomes 0 with probability ``amount / 2`` and 1 with probability
  ``amount / 2`` (``skimage.util.random_noise(mode="s&p")``, per channel); the flipped values are
  found by drawing the gaps between them (:func:`flip_positions`), which needs about
  ``amount`` random numbers per value instead of two;
* ``speckle_noise`` (held out): ``x + x * N(0, sigma^2)``.

Outputs are clipped to [0, 1]. On a greyscale image the noise is drawn for its one channel;
the reference turns a greyscale image into three equal channels first and noises each, so its
output is no longer grey.
"""

from __future__ import annotations

import math

import torch

from robustcv.corruptions import ops
from robustcv.corruptions.base import CorruptionDef, Params, SampleRNG, register_corruption

__all__ = ["flip_positions"]

_GREY = "noise drawn for the single channel (the reference makes 3 channels and noises each)"


def _gaussian_noise(x: torch.Tensor, p: Params, rng: SampleRNG) -> torch.Tensor:
    sigma = p["sigma"]

    def run(t: torch.Tensor, r: SampleRNG) -> torch.Tensor:
        return r.randn(*t.shape[1:]).to(t.dtype).mul_(sigma).add_(t).clamp_(0.0, 1.0)

    return ops.chunked_random(x, rng, run)


def _shot_noise(x: torch.Tensor, p: Params, rng: SampleRNG) -> torch.Tensor:
    photons = p["photons"]

    def run(t: torch.Tensor, r: SampleRNG) -> torch.Tensor:
        return r.poisson(t * photons).to(t.dtype).div_(photons).clamp_(0.0, 1.0)

    return ops.chunked_random(x, rng, run)


def flip_positions(n: int, prob: float, generator: torch.Generator) -> torch.Tensor:
    """Indices in ``[0, n)``, each included independently with probability ``prob``.

    Draws the gaps between included indices (geometric: ``floor(log(U) / log(1 - prob))``)
    instead of one number per index, so it costs about ``n * prob`` random numbers.

    Example:
        >>> pos = flip_positions(100_000, 0.1, torch.Generator().manual_seed(0))
        >>> 9_500 < pos.numel() < 10_500, bool((pos[1:] > pos[:-1]).all())
        (True, True)
    """
    dev = generator.device
    if n <= 0 or prob <= 0.0:
        return torch.zeros(0, dtype=torch.long, device=dev)
    if prob >= 1.0:
        return torch.arange(n, device=dev)
    log_keep = math.log1p(-prob)
    parts = []
    start = 0
    while start < n:
        mean = (n - start) * prob
        m = int(mean + 6.0 * math.sqrt(mean * (1.0 - prob)) + 16)
        u = torch.rand(m, generator=generator, device=dev, dtype=torch.float64)
        gaps = torch.floor(torch.log1p(-u) / log_keep).clamp_(max=float(n)).long()
        pos = torch.cumsum(gaps + 1, 0) + (start - 1)
        parts.append(pos[pos < n])
        start = int(pos[-1]) + 1
    return torch.cat(parts)


def _impulse_noise(x: torch.Tensor, p: Params, rng: SampleRNG) -> torch.Tensor:
    amount = p["amount"]
    b = x.shape[0]
    out = x.clone(memory_format=torch.contiguous_format)  # flat view below needs it
    flat = out.view(b, -1)
    n = flat.shape[1]
    for i, g in enumerate(rng.generators):
        pos = flip_positions(n, amount, g)
        salt = torch.rand(pos.numel(), generator=g, device=g.device) < 0.5
        flat[i].index_put_((pos.to(x.device),), salt.to(x.device, x.dtype))
    return out


def _speckle_noise(x: torch.Tensor, p: Params, rng: SampleRNG) -> torch.Tensor:
    sigma = p["sigma"]

    def run(t: torch.Tensor, r: SampleRNG) -> torch.Tensor:
        noise = r.randn(*t.shape[1:]).to(t.dtype)
        return noise.mul_(sigma).add_(1.0).mul_(t).clamp_(0.0, 1.0)

    return ops.chunked_random(x, rng, run)


register_corruption(
    CorruptionDef(
        name="gaussian_noise",
        fn=_gaussian_noise,
        family="noise",
        benchmark=True,
        param_names=("sigma",),
        tables={
            "imagenet-c": ((0.08,), (0.12,), (0.18,), (0.26,), (0.38,)),
            "cifar-10-c": ((0.04,), (0.06,), (0.08,), (0.09,), (0.10,)),
        },
        random=True,
        summary="additive Gaussian noise of standard deviation sigma",
        greyscale=_GREY,
    )
)

register_corruption(
    CorruptionDef(
        name="shot_noise",
        fn=_shot_noise,
        family="noise",
        benchmark=True,
        param_names=("photons",),
        tables={
            "imagenet-c": ((60.0,), (25.0,), (12.0,), (5.0,), (3.0,)),
            "cifar-10-c": ((500.0,), (250.0,), (100.0,), (75.0,), (50.0,)),
        },
        random=True,
        summary="Poisson photon noise: Poisson(photons * x) / photons",
        greyscale=_GREY,
    )
)

register_corruption(
    CorruptionDef(
        name="impulse_noise",
        fn=_impulse_noise,
        family="noise",
        benchmark=True,
        param_names=("amount",),
        tables={
            "imagenet-c": ((0.03,), (0.06,), (0.09,), (0.17,), (0.27,)),
            "cifar-10-c": ((0.01,), (0.02,), (0.03,), (0.05,), (0.07,)),
        },
        random=True,
        summary="salt and pepper: a fraction 'amount' of values set to 0 or 1 (per channel)",
        greyscale=_GREY,
    )
)

register_corruption(
    CorruptionDef(
        name="speckle_noise",
        fn=_speckle_noise,
        family="noise",
        benchmark=False,
        param_names=("sigma",),
        tables={
            "imagenet-c": ((0.15,), (0.2,), (0.35,), (0.45,), (0.6,)),
            "cifar-10-c": ((0.06,), (0.1,), (0.12,), (0.16,), (0.2,)),
        },
        random=True,
        summary="multiplicative Gaussian noise: x + x * N(0, sigma^2) (held out)",
        greyscale=_GREY,
    )
)
