"""Frequency probes: a low-/high-pass accuracy ladder and the Fourier heat map (Yin et al. 2019).

**Filters.** Frequencies are measured radially in units of the Nyquist frequency: ``rho =
sqrt(fy^2 + fx^2) / 0.5`` with ``fy, fx`` in cycles per pixel (``torch.fft.fftfreq``), so
``rho = 1`` is the Nyquist frequency along an axis and the corners reach ``sqrt(2)``. Low-pass
at cut-off ``c`` keeps ``rho <= c``; high-pass keeps ``rho > c`` and then adds back each image's
per-channel mean (so the result is not centred on 0). Both are ideal (hard) masks applied with
``fft2``/``ifft2`` and the result is clipped to [0, 1].

**Fourier heat map.** For every frequency ``(u, v)`` the real Fourier basis image ``U_uv``
(the inverse FFT of a unit impulse at ``(u, v)`` and its mirror ``(-u, -v)``, scaled to unit L2
norm per channel) is added as ``x + r * eps * U_uv`` with a random sign ``r`` per image and
channel, the result is clipped to [0, 1], and the error rate is recorded. The map is returned
with the zero frequency at the centre (``fftshift`` layout) and is symmetric through the centre
(``U_uv`` and ``U_-u-v`` are the same image, so each pair is evaluated once).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from robustcv.core.contract import check_count, check_images
from robustcv.core.model import Model
from robustcv.core.results import Result
from robustcv.core.seeding import check_seed, derive_seed, make_generator
from robustcv.core.stats import Estimate
from robustcv.probes.base import (
    ProbeSpec,
    check_inputs,
    check_positive,
    float_tuple,
    predict,
    register_probe,
)

__all__ = [
    "FourierHeatMapConfig",
    "FourierHeatMapResult",
    "FrequencyConfig",
    "FrequencyResult",
    "fourier_basis",
    "fourier_heat_map",
    "frequency_accuracy",
    "high_pass",
    "low_pass",
    "radial_frequency",
]


def radial_frequency(h: int, w: int) -> torch.Tensor:
    """``rho`` of every FFT bin of an ``h x w`` image, in units of the Nyquist frequency.

    Example:
        >>> radial_frequency(4, 4)[0, 2].item()  # fx = -0.5 cycles/pixel
        1.0
    """
    fy = torch.fft.fftfreq(h, dtype=torch.float64).view(h, 1)
    fx = torch.fft.fftfreq(w, dtype=torch.float64).view(1, w)
    return (fy**2 + fx**2).sqrt() / 0.5


def _check_cutoff(cutoff: float) -> float:
    return float_tuple(cutoff, "cutoff", low=0.0, high=2.0)[0]


def low_pass(x: torch.Tensor, cutoff: float) -> torch.Tensor:
    """Keep frequencies with ``rho <= cutoff`` (ideal filter), clip to [0, 1].

    Example:
        >>> x = torch.rand(2, 1, 8, 8)
        >>> torch.allclose(low_pass(x, 1.5), x, atol=1e-5)
        True
    """
    x = check_images(x)
    c = _check_cutoff(cutoff)
    keep = (radial_frequency(*x.shape[-2:]) <= c).to(x.device)
    out = torch.fft.ifft2(torch.fft.fft2(x.double()) * keep).real
    return out.clamp(0.0, 1.0).to(x.dtype)


def high_pass(x: torch.Tensor, cutoff: float) -> torch.Tensor:
    """Keep frequencies with ``rho > cutoff``, add back each image's channel means, clip to [0, 1].

    Example:
        >>> x = torch.rand(1, 1, 8, 8)
        >>> round(float(high_pass(x, 2.0).std()), 6)  # nothing above the corners: flat image
        0.0
    """
    x = check_images(x)
    c = _check_cutoff(cutoff)
    keep = (radial_frequency(*x.shape[-2:]) > c).to(x.device)
    out = torch.fft.ifft2(torch.fft.fft2(x.double()) * keep).real
    out = out + x.double().mean(dim=(2, 3), keepdim=True)
    return out.clamp(0.0, 1.0).to(x.dtype)


@dataclass(frozen=True)
class FrequencyConfig:
    """Parameters of :func:`frequency_accuracy`.

    Attributes:
        cutoffs: cut-offs in units of the Nyquist frequency (0..sqrt(2) covers every bin).
        batch_size: images per forward pass.
    """

    cutoffs: tuple[float, ...] = (0.1, 0.2, 0.3, 0.5, 0.7)
    batch_size: int = 256

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "cutoffs", float_tuple(self.cutoffs, "FrequencyConfig.cutoffs", low=0.0, high=2.0)
        )
        check_count(self.batch_size, "FrequencyConfig.batch_size")


@dataclass(frozen=True)
class FrequencyResult(Result):
    """Accuracy under low-pass and high-pass filtering per cut-off.

    Attributes:
        cutoffs: the cut-offs (units of the Nyquist frequency).
        clean: accuracy on the unfiltered images.
        low_pass: one estimate per cut-off.
        high_pass: one estimate per cut-off.
        n: images.
        convention: the filter definitions.
        correct: per-image correctness per condition (``clean``, ``low-pass@C``,
            ``high-pass@C``), for :func:`robustcv.probes.error_consistency`; not in the JSON.
    """

    cutoffs: list[float]
    clean: Estimate
    low_pass: list[Estimate]
    high_pass: list[Estimate]
    n: int
    convention: str
    correct: dict[str, torch.Tensor] = field(default_factory=dict, metadata={"json": False})


def frequency_accuracy(
    model: Model | Any,
    x: torch.Tensor,
    y: torch.Tensor,
    config: FrequencyConfig | None = None,
    *,
    masks: torch.Tensor | None = None,
    seed: int = 0,
) -> FrequencyResult:
    """Accuracy on low-passed and high-passed images along a ladder of cut-offs.

    Args:
        model: a :class:`robustcv.Model` (an ``nn.Module`` is wrapped).
        x: images, float32 ``(B,C,H,W)`` in [0, 1].
        y: labels ``(B,)``.
        config: parameters (defaults when None).
        masks: unused (uniform probe signature).
        seed: unused (the filters are deterministic).

    Example:
        >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 2))
        >>> res = frequency_accuracy(net, torch.rand(4, 1, 8, 8), torch.tensor([0, 1, 0, 1]),
        ...                          FrequencyConfig(cutoffs=(0.25, 0.5)))
        >>> len(res.low_pass), len(res.high_pass)
        (2, 2)
    """
    cfg = config or FrequencyConfig()
    check_seed(seed)
    m, x, y = check_inputs(model, x, y)
    n = int(y.shape[0])
    correct: dict[str, torch.Tensor] = {}

    def acc(name: str, images: torch.Tensor) -> Estimate:
        hits = predict(m, images, cfg.batch_size) == y
        correct[name] = hits
        return Estimate.binomial(int(hits.sum()), n)

    return FrequencyResult(
        list(cfg.cutoffs),
        acc("clean", x),
        [acc(f"low-pass@{c:g}", low_pass(x, c)) for c in cfg.cutoffs],
        [acc(f"high-pass@{c:g}", high_pass(x, c)) for c in cfg.cutoffs],
        n,
        "rho = radial frequency / Nyquist; low-pass keeps rho <= c, high-pass keeps rho > c and "
        "adds back the channel means; ideal FFT masks, clipped to [0, 1]",
        correct,
    )


def fourier_basis(h: int, w: int, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Unit-L2 real Fourier basis images for FFT bins ``(u[i], v[i])``, shape ``(F, h, w)``.

    Example:
        >>> b = fourier_basis(8, 8, torch.tensor([0, 1]), torch.tensor([1, 2]))
        >>> [round(float(t), 4) for t in b.flatten(1).norm(dim=1)]
        [1.0, 1.0]
    """
    f = int(u.numel())
    spec = torch.zeros(f, h, w, dtype=torch.complex128)
    rows = torch.arange(f)
    spec[rows, u, v] += 1.0
    spec[rows, (-u) % h, (-v) % w] += 1.0
    img = torch.fft.ifft2(spec).real
    return (img / img.flatten(1).norm(dim=1).view(f, 1, 1)).float()


@dataclass(frozen=True)
class FourierHeatMapConfig:
    """Parameters of :func:`fourier_heat_map`.

    Attributes:
        eps: L2 norm of the perturbation per channel (Yin et al. used 4 on CIFAR-10, in [0, 1]
            pixel units).
        step: evaluate every ``step``-th frequency along each axis (1: all; larger for big
            images, the map then has gaps filled with NaN).
        batch_size: images per forward pass.
    """

    eps: float = 4.0
    step: int = 1
    batch_size: int = 512

    def __post_init__(self) -> None:
        check_positive(self.eps, "FourierHeatMapConfig.eps")
        check_count(self.step, "FourierHeatMapConfig.step")
        check_count(self.batch_size, "FourierHeatMapConfig.batch_size")


@dataclass(frozen=True)
class FourierHeatMapResult(Result):
    """Error rate under a Fourier-basis perturbation for every frequency.

    Attributes:
        error: ``H x W`` error rates, zero frequency at ``(H // 2, W // 2)``; NaN where not
            evaluated.
        eps: the perturbation's L2 norm.
        clean_error: error rate of the unperturbed images.
        low_band_error: mean error over evaluated frequencies with ``rho <= 0.5``.
        high_band_error: mean error over evaluated frequencies with ``rho > 0.5``.
        n: images.
        convention: the definition.
    """

    error: list[list[float]]
    eps: float
    clean_error: float
    low_band_error: float
    high_band_error: float
    n: int
    convention: str


def fourier_heat_map(
    model: Model | Any,
    x: torch.Tensor,
    y: torch.Tensor,
    config: FourierHeatMapConfig | None = None,
    *,
    masks: torch.Tensor | None = None,
    seed: int = 0,
) -> FourierHeatMapResult:
    """The Fourier heat map of Yin et al. 2019 (definition: module docstring), batched.

    Cost: about ``H * W / 2`` forward passes per image (``/ step**2``).

    Args:
        model: a :class:`robustcv.Model` (an ``nn.Module`` is wrapped).
        x: images, float32 ``(B,C,H,W)`` in [0, 1].
        y: labels ``(B,)``.
        config: parameters (defaults when None).
        masks: unused (uniform probe signature).
        seed: seeds the random signs (drawn for all images at once: batch-size invariant).

    Example:
        >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2))
        >>> res = fourier_heat_map(net, torch.rand(3, 1, 4, 4), torch.tensor([0, 1, 0]))
        >>> len(res.error), len(res.error[0])
        (4, 4)
    """
    cfg = config or FourierHeatMapConfig()
    seed = check_seed(seed)
    m, x, y = check_inputs(model, x, y)
    n, c, h, w = x.shape
    uu, vv = torch.meshgrid(
        torch.arange(0, h, cfg.step), torch.arange(0, w, cfg.step), indexing="ij"
    )
    uu, vv = uu.flatten(), vv.flatten()
    mu, mv = (-uu) % h, (-vv) % w
    canonical = (uu * w + vv) <= (mu * w + mv)
    uu, vv = uu[canonical], vv[canonical]
    basis = fourier_basis(h, w, uu, vv).to(x.device)
    f = int(uu.numel())
    gen = make_generator(derive_seed(seed, "probes", "fourier-heat-map"))
    signs = (torch.randint(0, 2, (f, n, c, 1, 1), generator=gen).float() * 2 - 1).to(x.device)
    errors = torch.empty(f, dtype=torch.float64)
    per = max(1, cfg.batch_size // n)
    for i in range(0, f, per):
        j = min(i + per, f)
        pert = signs[i:j] * cfg.eps * basis[i:j].view(j - i, 1, 1, h, w)
        batch = (x.unsqueeze(0) + pert).clamp(0.0, 1.0).reshape(-1, c, h, w)
        pred = predict(m, batch, cfg.batch_size).view(j - i, n)
        errors[i:j] = (pred != y).double().mean(dim=1)
    grid = torch.full((h, w), float("nan"), dtype=torch.float64)
    grid[uu, vv] = errors
    grid[(-uu) % h, (-vv) % w] = errors
    rho = radial_frequency(h, w)
    done = torch.isfinite(grid)
    low, high = done & (rho <= 0.5), done & (rho > 0.5)
    clean_err = float((predict(m, x, cfg.batch_size) != y).double().mean())
    shifted = torch.fft.fftshift(grid)
    return FourierHeatMapResult(
        shifted.tolist(),
        cfg.eps,
        clean_err,
        float(grid[low].mean()) if bool(low.any()) else float("nan"),
        float(grid[high].mean()) if bool(high.any()) else float("nan"),
        int(n),
        f"error rate under x + r * {cfg.eps:g} * U_uv (unit-L2 real Fourier basis per channel, "
        "random sign r per image and channel), clipped to [0, 1]; zero frequency at the centre",
    )


def _run_freq(
    model: Any, x: torch.Tensor, y: torch.Tensor, cfg: FrequencyConfig, **kw: Any
) -> FrequencyResult:
    return frequency_accuracy(model, x, y, cfg, **kw)


def _run_fhm(
    model: Any, x: torch.Tensor, y: torch.Tensor, cfg: FourierHeatMapConfig, **kw: Any
) -> FourierHeatMapResult:
    return fourier_heat_map(model, x, y, cfg, **kw)


register_probe(
    ProbeSpec(
        "frequency",
        FrequencyConfig,
        _run_freq,
        "does the model rely on low or high spatial frequencies?",
    )
)
register_probe(
    ProbeSpec(
        "fourier-heat-map",
        FourierHeatMapConfig,
        _run_fhm,
        "to which Fourier-basis perturbations is the model sensitive?",
    )
)
