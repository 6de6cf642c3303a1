"""Gradient methods: saliency, input x gradient, SmoothGrad family, integrated gradients.

SmoothGrad comes with its squared and variance forms; integrated gradients with five
quadrature rules.

All of them batch over images and over samples/steps: the (image, step) pairs are laid out
image-major and cut into chunks of ``internal_batch_size`` rows, each one forward and one
backward pass (:func:`robustcv.explanations.base.row_chunks`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from robustcv.core.errors import InputError
from robustcv.explanations.base import (
    ExplainContext,
    MethodOutput,
    MethodSpec,
    blocks,
    check_choice,
    check_int,
    check_number,
    register_method,
)

__all__ = [
    "IG_RULES",
    "IntegratedGradientsConfig",
    "NoiseConfig",
    "SaliencyConfig",
    "quadrature",
]

IG_RULES = (
    "riemann-left",
    "riemann-right",
    "riemann-middle",
    "riemann-trapezoid",
    "gauss-legendre",
)


def _check_rows(value: Any, method: str) -> int | None:
    return None if value is None else check_int(value, "internal_batch_size", method)


# ---------------------------------------------------------------------- saliency


@dataclass(frozen=True)
class SaliencyConfig:
    """Parameters of ``saliency``.

    Attributes:
        abs: take the absolute value of the gradient (Simonyan et al.); False keeps its sign.
        internal_batch_size: images per forward/backward pass (None: the default rule).
    """

    abs: bool = True
    internal_batch_size: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.abs, bool):
            raise InputError(f"abs must be True or False, got {self.abs!r} (method 'saliency')")
        _check_rows(self.internal_batch_size, "saliency")


@dataclass(frozen=True)
class InputGradientConfig:
    """Parameters of ``input-x-gradient``.

    Attributes:
        internal_batch_size: images per forward/backward pass (None: the default rule).
    """

    internal_batch_size: int | None = None

    def __post_init__(self) -> None:
        _check_rows(self.internal_batch_size, "input-x-gradient")


def _plain_gradients(
    ctx: ExplainContext, x: torch.Tensor, targets: torch.Tensor, rows: int
) -> torch.Tensor:
    return torch.cat(
        [ctx.gradients(x[i : i + rows], targets[i : i + rows]) for i in range(0, x.shape[0], rows)]
    )


def _saliency(
    ctx: ExplainContext, x: torch.Tensor, targets: torch.Tensor, cfg: SaliencyConfig
) -> MethodOutput:
    grad = _plain_gradients(ctx, x, targets, ctx.rows(cfg.internal_batch_size, x))
    return MethodOutput(grad.abs() if cfg.abs else grad)


def _input_x_gradient(
    ctx: ExplainContext, x: torch.Tensor, targets: torch.Tensor, cfg: InputGradientConfig
) -> MethodOutput:
    grad = _plain_gradients(ctx, x, targets, ctx.rows(cfg.internal_batch_size, x))
    return MethodOutput(x * grad)


register_method(
    MethodSpec(
        "saliency",
        _saliency,
        SaliencyConfig,
        "gradient",
        random=False,
        summary="|d score / d pixel| (Simonyan et al. 2014)",
        answers="which pixels would change the class score most if nudged",
    )
)
register_method(
    MethodSpec(
        "input-x-gradient",
        _input_x_gradient,
        InputGradientConfig,
        "gradient",
        random=False,
        summary="pixel value times its gradient (first-order contribution to the score)",
        answers="how much each pixel contributes to the score to first order, relative to black",
    )
)


# ---------------------------------------------------------------------- noise methods


@dataclass(frozen=True)
class NoiseConfig:
    """Parameters of ``smoothgrad``, ``smoothgrad-sq`` and ``vargrad``.

    Attributes:
        samples: noisy copies per image.
        noise: standard deviation of the Gaussian noise as a fraction of the input range; the
            image contract's range is [0, 1], so sigma = noise (the same for every image, so
            maps stay comparable). Noisy copies are not clipped to [0, 1], as in Smilkov et al.
        internal_batch_size: rows (noisy copies) per forward/backward pass (None: the default).
    """

    samples: int = 50
    noise: float = 0.15
    internal_batch_size: int | None = None

    def __post_init__(self) -> None:
        check_int(self.samples, "samples", "smoothgrad")
        check_number(self.noise, "noise", "smoothgrad", minimum=0.0)
        _check_rows(self.internal_batch_size, "smoothgrad")


def _noise_moments(
    ctx: ExplainContext, x: torch.Tensor, targets: torch.Tensor, cfg: NoiseConfig, second: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Mean gradient (and mean squared gradient) over ``samples`` noisy copies per image.

    Image ``i``'s noise is drawn at once, (samples, C, H, W), from its own generator seeded by
    (seed, image content), so it depends neither on the batch nor on ``internal_batch_size``.
    """
    n, s = x.shape[0], cfg.samples
    shape = tuple(x.shape[1:])
    total = torch.zeros_like(x)
    total_sq = torch.zeros_like(x) if second else None
    sigma = float(cfg.noise)
    split: tuple[int, torch.Tensor] | None = None  # an image whose samples span several blocks
    for i0, i1, s0, s1 in blocks(n, s, ctx.rows(cfg.internal_batch_size, x)):
        k, m = i1 - i0, s1 - s0
        if m == s:
            noise = torch.empty((k, s, *shape), device=x.device)
            for j in range(k):
                torch.randn((s, *shape), generator=ctx.generator(i0 + j, "noise"), out=noise[j])
        else:
            if split is None or split[0] != i0:
                gen = ctx.generator(i0, "noise")
                split = (i0, torch.randn((s, *shape), generator=gen, device=x.device))
            noise = split[1][s0:s1].unsqueeze(0)
        points = torch.add(x[i0:i1].unsqueeze(1), noise, alpha=sigma).view(k * m, *shape)
        grad = ctx.gradients(points, targets[i0:i1].repeat_interleave(m))
        grad = grad.view(k, m, *shape)
        total[i0:i1] += grad.sum(1)
        if total_sq is not None:
            total_sq[i0:i1] += (grad * grad).sum(1)
    return total / s, (None if total_sq is None else total_sq / s)


def _smoothgrad(
    ctx: ExplainContext, x: torch.Tensor, targets: torch.Tensor, cfg: NoiseConfig
) -> MethodOutput:
    mean, _ = _noise_moments(ctx, x, targets, cfg, second=False)
    return MethodOutput(mean, notes={"maps": "mean signed gradient over noisy copies"})


def _smoothgrad_sq(
    ctx: ExplainContext, x: torch.Tensor, targets: torch.Tensor, cfg: NoiseConfig
) -> MethodOutput:
    _, sq = _noise_moments(ctx, x, targets, cfg, second=True)
    assert sq is not None  # internal invariant: second=True
    return MethodOutput(sq, notes={"maps": "mean squared gradient over noisy copies"})


def _vargrad(
    ctx: ExplainContext, x: torch.Tensor, targets: torch.Tensor, cfg: NoiseConfig
) -> MethodOutput:
    mean, sq = _noise_moments(ctx, x, targets, cfg, second=True)
    assert sq is not None  # internal invariant: second=True
    var = (sq - mean * mean).clamp_min(0.0)
    return MethodOutput(
        var, notes={"maps": "population variance of the gradient over noisy copies"}
    )


for _name, _fn, _summary in (
    ("smoothgrad", _smoothgrad, "mean gradient over Gaussian-noised copies (Smilkov et al. 2017)"),
    ("smoothgrad-sq", _smoothgrad_sq, "mean squared gradient over noised copies"),
    ("vargrad", _vargrad, "variance of the gradient over noised copies (Adebayo et al. 2018)"),
):
    register_method(
        MethodSpec(
            _name,
            _fn,
            NoiseConfig,
            "gradient",
            random=True,
            summary=_summary,
            answers="which pixels the score is sensitive to in a neighbourhood of the image, "
            "with the gradient's local noise averaged out",
        )
    )


# ---------------------------------------------------------------------- integrated gradients


def quadrature(rule: str, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Points ``alpha`` in [0, 1] and weights of a rule for the integral over [0, 1].

    ``riemann-left|right|middle``: ``steps`` equal cells of width 1/steps, evaluated at the
    cell's left edge, right edge or centre. ``riemann-trapezoid``: ``steps`` equally spaced
    points including both ends, weights 1/(steps-1) and half that at the ends (weights sum to
    1). ``gauss-legendre``: the Gauss-Legendre nodes and weights mapped from [-1, 1] to [0, 1]
    (exact for polynomials of degree 2*steps-1). Weights always sum to 1.

    Example:
        >>> a, w = quadrature("riemann-trapezoid", 3)
        >>> a.tolist(), w.tolist()
        ([0.0, 0.5, 1.0], [0.25, 0.5, 0.25])
    """
    n = steps
    if rule == "gauss-legendre":
        nodes, weights = np.polynomial.legendre.leggauss(n)
        alphas = (nodes + 1.0) / 2.0
        w = weights / 2.0
    elif rule == "riemann-trapezoid":
        if n < 2:
            raise InputError("riemann-trapezoid needs steps >= 2 (both ends of the path)")
        alphas = np.linspace(0.0, 1.0, n)
        w = np.full(n, 1.0 / (n - 1))
        w[0] = w[-1] = 0.5 / (n - 1)
    else:
        offset = {"riemann-left": 0.0, "riemann-right": 1.0, "riemann-middle": 0.5}[rule]
        alphas = (np.arange(n) + offset) / n
        w = np.full(n, 1.0 / n)
    return torch.tensor(alphas, dtype=torch.float32), torch.tensor(w, dtype=torch.float32)


BASELINES = ("zeros", "blur", "uniform")


@dataclass(frozen=True)
class IntegratedGradientsConfig:
    """Parameters of ``integrated-gradients`` (Sundararajan et al. 2017).

    Attributes:
        steps: points on the straight path from the baseline to the image.
        baseline: ``"zeros"`` (black), ``"blur"`` (the image under a Gaussian blur of
            ``blur_sigma``), ``"uniform"`` (uniform noise in [0, 1], seeded), a number (a
            constant image) or a tensor broadcastable to the batch ((C,H,W), (1,C,H,W) or
            (B,C,H,W)).
        rule: quadrature rule, one of :data:`IG_RULES` (see :func:`quadrature`).
        blur_sigma: standard deviation in pixels of the ``"blur"`` baseline (None: a tenth of
            the longer image side).
        internal_batch_size: rows (image x step pairs) per forward/backward pass; bounds memory
            (None: the default rule).
    """

    steps: int = 50
    baseline: Any = "zeros"
    rule: str = "gauss-legendre"
    blur_sigma: float | None = None
    internal_batch_size: int | None = None

    def __post_init__(self) -> None:
        method = "integrated-gradients"
        check_int(self.steps, "steps", method)
        check_choice(self.rule, "rule", method, IG_RULES)
        if self.rule == "riemann-trapezoid" and self.steps < 2:
            raise InputError("steps must be >= 2 with rule='riemann-trapezoid' (both path ends)")
        if isinstance(self.baseline, str):
            check_choice(self.baseline, "baseline", method, BASELINES)
        elif isinstance(self.baseline, torch.Tensor):
            if not self.baseline.is_floating_point():
                raise InputError(
                    f"baseline has dtype {self.baseline.dtype}; pass a float tensor shaped like "
                    "the images"
                )
            if not bool(torch.isfinite(self.baseline).all()):
                raise InputError("baseline contains NaN or infinite values; pass finite values")
        else:
            check_number(self.baseline, "baseline", method)
        if self.blur_sigma is not None:
            check_number(self.blur_sigma, "blur_sigma", method, minimum=0.0, strict=True)
        _check_rows(self.internal_batch_size, method)


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of a (B,C,H,W) batch with reflect padding (radius 3 sigma).

    Example:
        >>> flat = gaussian_blur(torch.full((1, 1, 5, 5), 0.5), 2.0)  # constants stay constant
        >>> bool(torch.allclose(flat, torch.full_like(flat, 0.5)))
        True
    """
    radius = max(1, math.ceil(3.0 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32, device=x.device)
    k = torch.exp(-(t * t) / (2.0 * sigma * sigma))
    k = k / k.sum()
    c = x.shape[1]
    out = x
    pad_h, pad_w = min(radius, x.shape[2] - 1), min(radius, x.shape[3] - 1)
    for dim, pad in ((2, pad_h), (3, pad_w)):
        if pad == 0:
            continue
        kk = k[radius - pad : radius + pad + 1]
        kk = kk / kk.sum()
        shape = (1, 1, len(kk), 1) if dim == 2 else (1, 1, 1, len(kk))
        weight = kk.view(shape).repeat(c, 1, 1, 1)  # one copy of the kernel per channel
        padding = (0, 0, pad, pad) if dim == 2 else (pad, pad, 0, 0)
        out = F.conv2d(F.pad(out, padding, mode="reflect"), weight, groups=c)
    return out


def _baseline(ctx: ExplainContext, x: torch.Tensor, cfg: IntegratedGradientsConfig) -> torch.Tensor:
    b = cfg.baseline
    if isinstance(b, torch.Tensor):
        b = b.detach().to(x.device, torch.float32)
        if b.dim() == 3:
            b = b.unsqueeze(0)
        ok = b.dim() == 4 and b.shape[0] in (1, x.shape[0]) and tuple(b.shape[1:]) == x.shape[1:]
        if not ok:
            raise InputError(
                f"baseline has shape {tuple(b.shape)} but the images are {tuple(x.shape)}; pass "
                f"a baseline of shape {tuple(x.shape[1:])}, (1, ...) or {tuple(x.shape)}"
            )
        return b.expand_as(x).contiguous()
    if b == "zeros":
        return torch.zeros_like(x)
    if b == "blur":
        sigma = cfg.blur_sigma if cfg.blur_sigma is not None else max(x.shape[2:]) / 10.0
        return gaussian_blur(x, float(sigma))
    if b == "uniform":
        return torch.stack(
            [
                torch.rand(x.shape[1:], generator=ctx.generator(i, "baseline"), device=x.device)
                for i in range(x.shape[0])
            ]
        )
    return torch.full_like(x, float(b))


def _integrated_gradients(
    ctx: ExplainContext, x: torch.Tensor, targets: torch.Tensor, cfg: IntegratedGradientsConfig
) -> MethodOutput:
    alphas, weights = quadrature(cfg.rule, cfg.steps)
    alphas, weights = alphas.to(x.device), weights.to(x.device)
    base = _baseline(ctx, x, cfg)
    diff = x - base
    rows = ctx.rows(cfg.internal_batch_size, x)
    total = torch.zeros_like(x)
    shape = tuple(x.shape[1:])
    ones = (1,) * len(shape)
    for i0, i1, s0, s1 in blocks(x.shape[0], cfg.steps, rows):
        k, m = i1 - i0, s1 - s0
        # (k, m, C, H, W) path points in one broadcast op: base + alpha * (x - base)
        points = torch.addcmul(
            base[i0:i1].unsqueeze(1), alphas[s0:s1].view(1, m, *ones), diff[i0:i1].unsqueeze(1)
        ).view(k * m, *shape)
        grad = ctx.gradients(points, targets[i0:i1].repeat_interleave(m), weights[s0:s1].repeat(k))
        total[i0:i1] += grad.view(k, m, *shape).sum(1)
    maps = diff * total
    f_x = ctx.logits.gather(1, targets[:, None]).squeeze(1)
    f_b = ctx.scores(base, targets, rows)
    delta = maps.flatten(1).sum(1) - (f_x - f_b)
    what = (
        cfg.baseline
        if isinstance(cfg.baseline, str)
        else ("tensor" if isinstance(cfg.baseline, torch.Tensor) else f"constant {cfg.baseline}")
    )
    return MethodOutput(
        maps,
        delta=delta,
        notes={
            "delta": "sum of attributions - (f(x) - f(baseline)) per image; shrinks with steps",
            "path": f"straight line from a {what} baseline, {cfg.steps} points ({cfg.rule})",
        },
    )


register_method(
    MethodSpec(
        "integrated-gradients",
        _integrated_gradients,
        IntegratedGradientsConfig,
        "gradient",
        random=False,
        summary="path integral of gradients from a baseline (Sundararajan et al. 2017)",
        answers="how the score difference between the baseline and the image splits over pixels "
        "(the attributions sum to it: completeness)",
    )
)
