"""Perturbation methods: occlusion, LIME and Kernel SHAP.

They need forward passes only, so they work on gradient-free models (ONNX) too.

Every perturbed image is one row; rows of all images are cut into chunks of
``internal_batch_size`` and each chunk is one forward pass without gradients.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from robustcv.core.errors import InputError
from robustcv.explanations.base import (
    ExplainContext,
    MethodOutput,
    MethodSpec,
    blocks,
    check_choice,
    check_int,
    check_number,
    check_pair,
    register_method,
)
from robustcv.explanations.superpixels import SUPERPIXELS, segment

__all__ = ["KernelShapConfig", "LimeConfig", "OcclusionConfig", "ridge_fit", "window_starts"]


def _check_rows(value: Any, method: str) -> None:
    if value is not None:
        check_int(value, "internal_batch_size", method)


# ---------------------------------------------------------------------- occlusion


@dataclass(frozen=True)
class OcclusionConfig:
    """Parameters of ``occlusion`` (Zeiler & Fergus 2014).

    Attributes:
        window: window side in pixels, an int or (height, width); it covers all channels.
            None: a seventh of the shorter image side (at least 1).
        stride: step between windows, an int or a pair; None: half the window (at least 1).
        baseline: the value occluded pixels are set to.
        internal_batch_size: occluded images per forward pass (None: the default rule).
    """

    window: Any = None
    stride: Any = None
    baseline: float = 0.0
    internal_batch_size: int | None = None

    def __post_init__(self) -> None:
        if self.window is not None:
            object.__setattr__(self, "window", check_pair(self.window, "window", "occlusion"))
        if self.stride is not None:
            object.__setattr__(self, "stride", check_pair(self.stride, "stride", "occlusion"))
        check_number(self.baseline, "baseline", "occlusion")
        _check_rows(self.internal_batch_size, "occlusion")


def window_starts(size: int, window: int, stride: int) -> list[int]:
    """Start offsets of the windows along one side, every ``stride`` pixels.

    The last window reaches or passes the end (then it is cut at the border), so every pixel is
    covered.

    Example:
        >>> window_starts(28, 4, 2)[-2:], window_starts(5, 2, 2)
        ([22, 24], [0, 2, 4])
    """
    count = math.ceil((size - window) / stride) + 1
    return [i * stride for i in range(count)]


def _occlusion(
    ctx: ExplainContext, x: torch.Tensor, targets: torch.Tensor, cfg: OcclusionConfig
) -> MethodOutput:
    b, _, h, w = x.shape
    side = max(1, min(h, w) // 7)
    wh, ww = cfg.window if cfg.window is not None else (side, side)
    sh, sw = cfg.stride if cfg.stride is not None else (max(1, wh // 2), max(1, ww // 2))
    if wh > h or ww > w:
        raise InputError(
            f"window ({wh}, {ww}) is larger than the images ({h}x{w}); pass window <= ({h}, {w})"
        )
    hs, ws = window_starts(h, wh, sh), window_starts(w, ww, sw)
    ar_h, ar_w = torch.arange(h, device=x.device), torch.arange(w, device=x.device)
    rows_h = torch.stack([(ar_h >= s) & (ar_h < s + wh) for s in hs])  # (nh, H)
    cols_w = torch.stack([(ar_w >= s) & (ar_w < s + ww) for s in ws])  # (nw, W)
    masks = (rows_h[:, None, :, None] & cols_w[None, :, None, :]).reshape(-1, h, w)  # (P,H,W)
    n_pos = masks.shape[0]
    f_x = ctx.logits.gather(1, targets[:, None]).squeeze(1)
    drops = torch.empty(b, n_pos, device=x.device)
    rows = ctx.rows(cfg.internal_batch_size, x)
    with torch.no_grad():
        for i0, i1, s0, s1 in blocks(b, n_pos, rows):
            k, m = i1 - i0, s1 - s0
            occluded = torch.where(
                masks[s0:s1].view(1, m, 1, h, w), float(cfg.baseline), x[i0:i1].unsqueeze(1)
            ).view(k * m, *x.shape[1:])
            logits = ctx.model.logits(occluded, validate=False)
            score = logits.gather(1, targets[i0:i1].repeat_interleave(m)[:, None]).view(k, m)
            drops[i0:i1, s0:s1] = f_x[i0:i1, None] - score
    flat = masks.reshape(n_pos, -1).to(x.dtype)
    attr = (drops @ flat) / flat.sum(0).clamp_min(1.0)
    maps = attr.view(b, 1, h, w).expand_as(x).contiguous()
    return MethodOutput(
        maps,
        notes={
            "maps": f"each pixel: mean drop of the target logit over the {wh}x{ww} windows "
            f"(stride {sh}x{sw}, {n_pos} positions, set to {cfg.baseline:g}) that cover it; "
            "the same value in every channel",
        },
    )


register_method(
    MethodSpec(
        "occlusion",
        _occlusion,
        OcclusionConfig,
        "perturbation",
        random=False,
        summary="drop of the score when a sliding window is blanked out (Zeiler & Fergus 2014)",
        answers="how much the score falls when each region is hidden",
    )
)


# ---------------------------------------------------------------------- shared helpers


def _check_baseline(value: Any, method: str) -> None:
    if isinstance(value, str):
        check_choice(value, "baseline", method, ("mean",))
    else:
        check_number(value, "baseline", method)


def _baseline_images(x: torch.Tensor, seg: torch.Tensor, n_seg: int, value: Any) -> torch.Tensor:
    """The image with every superpixel switched off: a constant, or each one's mean colour."""
    if value != "mean":
        return torch.full_like(x, float(value))
    b, c = x.shape[:2]
    idx = seg.reshape(b, 1, -1).expand(b, c, -1)
    sums = torch.zeros(b, c, n_seg, device=x.device, dtype=x.dtype).scatter_add_(
        2, idx, x.reshape(b, c, -1)
    )
    counts = torch.zeros(b, 1, n_seg, device=x.device, dtype=x.dtype).scatter_add_(
        2, seg.reshape(b, 1, -1), torch.ones_like(x[:, :1]).reshape(b, 1, -1)
    )
    means = sums / counts.clamp_min(1.0)
    return torch.gather(means, 2, idx).view_as(x)


def _masked_scores(
    ctx: ExplainContext,
    x: torch.Tensor,
    targets: torch.Tensor,
    seg: torch.Tensor,
    off: torch.Tensor,
    z: torch.Tensor,
    rows: int,
) -> torch.Tensor:
    """(B, n) target logits of the images with superpixels on where ``z`` (B, n, S) is True."""
    b, n = z.shape[:2]
    h, w = x.shape[2:]
    out = torch.empty(b, n, device=x.device)
    with torch.no_grad():
        for i0, i1, s0, s1 in blocks(b, n, rows):
            k, m = i1 - i0, s1 - s0
            ids = seg[i0:i1].reshape(k, 1, h * w).expand(k, m, h * w)
            keep = torch.gather(z[i0:i1, s0:s1], 2, ids).view(k, m, 1, h, w)
            images = torch.where(keep, x[i0:i1].unsqueeze(1), off[i0:i1].unsqueeze(1))
            logits = ctx.model.logits(images.view(k * m, *x.shape[1:]), validate=False)
            picked = logits.gather(1, targets[i0:i1].repeat_interleave(m)[:, None])
            out[i0:i1, s0:s1] = picked.view(k, m)
    return out


def _paint(coef: torch.Tensor, seg: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Give every pixel its superpixel's coefficient, the same in every channel."""
    b = seg.shape[0]
    painted = torch.gather(coef.to(like.dtype), 1, seg.reshape(b, -1)).view(b, 1, *seg.shape[1:])
    return painted.expand_as(like).contiguous()


def ridge_fit(
    z: torch.Tensor, y: torch.Tensor, weights: torch.Tensor, alpha: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Batched weighted ridge regression with an unpenalised intercept, in float64.

    Minimises ``sum_n w_n (y_n - b - z_n . beta)^2 + alpha ||beta||^2`` per batch row; solves the
    primal (d x d) system when there are fewer features than samples, else the dual (n x n).

    Args:
        z: (B, n, d) features.
        y: (B, n) targets.
        weights: (B, n) sample weights (>= 0).
        alpha: ridge penalty (>= 0; 0 needs a well-posed problem).

    Returns:
        ``(beta (B, d), intercept (B,), weighted R^2 (B,))``.

    Example:
        >>> z = torch.randn(1, 50, 3, generator=torch.Generator().manual_seed(0))
        >>> y = z @ torch.tensor([1.0, -2.0, 0.5]) + 3.0
        >>> beta, b0, r2 = ridge_fit(z, y, torch.ones(1, 50), 0.0)
        >>> [round(v, 4) for v in beta[0].tolist()], round(float(b0), 4), round(float(r2), 4)
        ([1.0, -2.0, 0.5], 3.0, 1.0)
    """
    home = z.device
    z64, y64, w64 = (_f64(t) for t in (z, y, weights))
    wsum = w64.sum(1, keepdim=True)
    z_mean = (w64[..., None] * z64).sum(1, keepdim=True) / wsum[..., None]
    y_mean = (w64 * y64).sum(1, keepdim=True) / wsum
    root = w64.sqrt()
    zc = (z64 - z_mean) * root[..., None]
    yc = (y64 - y_mean) * root
    n, d = z.shape[1], z.shape[2]
    if d <= n:
        gram = zc.transpose(1, 2) @ zc + alpha * torch.eye(d, dtype=z64.dtype, device=z64.device)
        beta = torch.linalg.solve(gram, (zc.transpose(1, 2) @ yc[..., None]))[..., 0]
    else:
        gram = zc @ zc.transpose(1, 2) + alpha * torch.eye(n, dtype=z64.dtype, device=z64.device)
        beta = (zc.transpose(1, 2) @ torch.linalg.solve(gram, yc[..., None]))[..., 0]
    intercept = (y_mean[:, 0] - (z_mean[:, 0] * beta).sum(1)).to(z.dtype)
    resid = yc - (zc @ beta[..., None])[..., 0]
    total = (yc * yc).sum(1)
    r2 = torch.where(total > 0, 1.0 - (resid * resid).sum(1) / total, torch.ones_like(total))
    return beta.to(home, z.dtype), intercept.to(home), r2.to(home, z.dtype)


def _f64(t: torch.Tensor) -> torch.Tensor:
    """``t`` in float64, on the CPU when its device has no float64 (Apple's MPS)."""
    return (t.cpu() if t.device.type == "mps" else t).double()


# ---------------------------------------------------------------------- LIME


@dataclass(frozen=True)
class LimeConfig:
    """Parameters of ``lime`` (Ribeiro et al. 2016): a local weighted linear surrogate.

    Attributes:
        samples: perturbed images per image (the first is the image itself).
        perturbation: ``"superpixels"`` (switch superpixels on/off, each with probability 1/2;
            the map gives each pixel its superpixel's coefficient) or ``"noise"`` (add Gaussian
            noise of std ``sigma``; features are the noise per pixel and channel, the map is the
            coefficient per pixel and channel: a smoothed, gradient-like map).
        superpixels: ``"grid"`` or ``"slic"`` (see :mod:`robustcv.explanations.superpixels`).
        segments: about how many superpixels.
        baseline: value of switched-off superpixels, or ``"mean"`` for each one's mean colour.
        sigma: noise std (fraction of the [0, 1] range) for ``perturbation="noise"``.
        kernel_width: width of the proximity kernel ``sqrt(exp(-d^2 / width^2))``, where d is
            the cosine distance between the on/off vector and all-on (superpixels), or the RMS
            noise in units of sigma (noise).
        alpha: ridge penalty of the fit (features: on/off in {0, 1}, or noise / sigma).
        internal_batch_size: perturbed images per forward pass (None: the default rule).
    """

    samples: int = 1000
    perturbation: str = "superpixels"
    superpixels: str = "grid"
    segments: int = 49
    baseline: Any = 0.0
    sigma: float = 0.1
    kernel_width: float = 0.25
    alpha: float = 1.0
    internal_batch_size: int | None = None

    def __post_init__(self) -> None:
        check_int(self.samples, "samples", "lime", minimum=2)
        check_choice(self.perturbation, "perturbation", "lime", ("superpixels", "noise"))
        check_choice(self.superpixels, "superpixels", "lime", SUPERPIXELS)
        check_int(self.segments, "segments", "lime")
        _check_baseline(self.baseline, "lime")
        check_number(self.sigma, "sigma", "lime", minimum=0.0, strict=True)
        check_number(self.kernel_width, "kernel_width", "lime", minimum=0.0, strict=True)
        check_number(self.alpha, "alpha", "lime", minimum=0.0)
        _check_rows(self.internal_batch_size, "lime")


def _lime_noise(
    ctx: ExplainContext, x: torch.Tensor, targets: torch.Tensor, cfg: LimeConfig, rows: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """LIME with Gaussian noise features, in groups of images that bound the memory.

    The features of a group (images x samples x C x H x W floats) are kept under 2^24 values;
    each image's noise comes from its own generator, so grouping changes nothing.
    """
    n, d, sigma = cfg.samples, int(x[0].numel()), float(cfg.sigma)
    width = float(cfg.kernel_width)
    group = max(1, (1 << 24) // (n * d))
    maps, fits = [], []
    for g0 in range(0, x.shape[0], group):
        xg, tg = x[g0 : g0 + group], targets[g0 : g0 + group]
        b = xg.shape[0]
        feats = torch.empty((b, n, *x.shape[1:]), device=x.device)
        for j in range(b):
            torch.randn((n, *x.shape[1:]), generator=ctx.generator(g0 + j, "lime"), out=feats[j])
        feats[:, 0] = 0.0  # the image itself
        y = torch.empty(b, n, device=x.device)
        with torch.no_grad():
            for i0, i1, s0, s1 in blocks(b, n, rows):
                k, m = i1 - i0, s1 - s0
                noisy = torch.add(xg[i0:i1].unsqueeze(1), feats[i0:i1, s0:s1], alpha=sigma)
                logits = ctx.model.logits(noisy.view(k * m, *x.shape[1:]), validate=False)
                picked = logits.gather(1, tg[i0:i1].repeat_interleave(m)[:, None])
                y[i0:i1, s0:s1] = picked.view(k, m)
        z = feats.flatten(2)
        dist = z.pow(2).mean(2).sqrt()  # RMS noise in units of sigma
        weights = torch.exp(-(dist**2) / width**2).sqrt()
        weights = weights / weights.mean(1, keepdim=True).clamp_min(1e-30)
        beta, _, r2 = ridge_fit(z, y, weights, float(cfg.alpha))
        maps.append((beta / sigma).view_as(xg))
        fits.append(r2)
    return torch.cat(maps), torch.cat(fits)


def _lime(
    ctx: ExplainContext, x: torch.Tensor, targets: torch.Tensor, cfg: LimeConfig
) -> MethodOutput:
    b, n = x.shape[0], cfg.samples
    rows = ctx.rows(cfg.internal_batch_size, x)
    width = float(cfg.kernel_width)
    if cfg.perturbation == "noise":
        sigma = float(cfg.sigma)
        maps, r2 = _lime_noise(ctx, x, targets, cfg, rows)
        note = (
            f"coefficient per pixel and channel of a ridge fit (alpha={cfg.alpha:g}) on "
            f"{n} copies with Gaussian noise (std {sigma:g}), in logit per unit of pixel value"
        )
    else:
        seg = segment(x, cfg.superpixels, cfg.segments)
        n_seg = int(seg.max()) + 1
        off = _baseline_images(x, seg, n_seg, cfg.baseline)
        z = torch.stack(
            [
                torch.rand((n, n_seg), generator=ctx.generator(i, "lime"), device=x.device) < 0.5
                for i in range(b)
            ]
        )
        z[:, 0] = True  # the image itself
        y = _masked_scores(ctx, x, targets, seg, off, z, rows)
        zf = z.to(x.dtype)
        on = zf.sum(2)
        cosine = torch.where(on > 0, on / (on.sqrt() * math.sqrt(n_seg)), torch.zeros_like(on))
        dist = 1.0 - cosine
        weights = torch.exp(-(dist**2) / width**2).sqrt()
        weights = weights / weights.mean(1, keepdim=True).clamp_min(1e-30)
        beta, _, r2 = ridge_fit(zf, y, weights, float(cfg.alpha))
        maps = _paint(beta, seg, x)
        note = (
            f"each pixel: its superpixel's coefficient in a ridge fit (alpha={cfg.alpha:g}) of "
            f"the target logit on {n_seg} on/off {cfg.superpixels} superpixels, {n} samples; "
            "the same value in every channel"
        )
    return MethodOutput(
        maps,
        extras={"r2": r2},
        notes={"maps": note, "r2": "weighted R^2 of the linear fit (local fidelity)"},
    )


register_method(
    MethodSpec(
        "lime",
        _lime,
        LimeConfig,
        "perturbation",
        random=True,
        summary="coefficients of a proximity-weighted ridge fit on perturbed copies (Ribeiro 2016)",
        answers="which superpixels (or pixels) a linear model of the classifier near this image "
        "relies on",
    )
)


# ---------------------------------------------------------------------- Kernel SHAP


@dataclass(frozen=True)
class KernelShapConfig:
    """Parameters of ``kernel-shap`` (Lundberg & Lee 2017) on superpixels.

    Attributes:
        samples: coalitions per image, drawn in complementary pairs; coalition sizes follow the
            Shapley kernel (size k of S with probability proportional to (S-1) / (k (S-k))).
        superpixels: ``"grid"`` or ``"slic"``.
        segments: about how many superpixels.
        baseline: value of absent superpixels, or ``"mean"`` for each one's mean colour.
        internal_batch_size: perturbed images per forward pass (None: the default rule).
    """

    samples: int = 1000
    superpixels: str = "grid"
    segments: int = 49
    baseline: Any = 0.0
    internal_batch_size: int | None = None

    def __post_init__(self) -> None:
        check_int(self.samples, "samples", "kernel-shap", minimum=2)
        check_choice(self.superpixels, "superpixels", "kernel-shap", SUPERPIXELS)
        check_int(self.segments, "segments", "kernel-shap")
        _check_baseline(self.baseline, "kernel-shap")
        _check_rows(self.internal_batch_size, "kernel-shap")


def _kernel_shap(
    ctx: ExplainContext, x: torch.Tensor, targets: torch.Tensor, cfg: KernelShapConfig
) -> MethodOutput:
    b = x.shape[0]
    rows = ctx.rows(cfg.internal_batch_size, x)
    seg = segment(x, cfg.superpixels, cfg.segments)
    s = int(seg.max()) + 1
    off = _baseline_images(x, seg, s, cfg.baseline)
    f_x = ctx.logits.gather(1, targets[:, None]).squeeze(1)
    f_off = ctx.scores(off, targets, rows)
    total = f_x - f_off
    if s == 1:
        phi = total[:, None]
    else:
        pairs = max(1, cfg.samples // 2)
        k = torch.arange(1, s, device=x.device, dtype=torch.float64)
        size_p = (s - 1) / (k * (s - k))
        z_list = []
        for i in range(b):
            gen = ctx.generator(i, "kernel-shap")
            sizes = torch.multinomial(size_p, pairs, replacement=True, generator=gen) + 1
            ranks = torch.rand((pairs, s), generator=gen, device=x.device).argsort(1).argsort(1)
            half = ranks < sizes[:, None]
            z_list.append(torch.cat([half, ~half]))
        z = torch.stack(z_list)  # (B, 2*pairs, S)
        y = _masked_scores(ctx, x, targets, seg, off, z, rows) - f_off[:, None]
        zf, total64 = _f64(z), _f64(total)
        # efficiency constraint sum(phi) = f(x) - f(off), exact: eliminate the last superpixel
        last = zf[..., -1:]
        design = zf[..., :-1] - last
        rhs = _f64(y) - last[..., 0] * total64[:, None]
        gram = design.transpose(1, 2) @ design
        ridge = 1e-9 * gram.diagonal(dim1=1, dim2=2).mean(1).clamp_min(1e-12)
        eye = torch.eye(s - 1, dtype=gram.dtype, device=gram.device)
        gram = gram + ridge[:, None, None] * eye
        head = torch.linalg.solve(gram, design.transpose(1, 2) @ rhs[..., None])[..., 0]
        phi = torch.cat([head, (total64 - head.sum(1))[:, None]], 1).to(x.device, x.dtype)
    return MethodOutput(
        _paint(phi, seg, x),
        extras={"base_value": f_off},
        notes={
            "maps": f"each pixel: its {cfg.superpixels} superpixel's Shapley value ({s} "
            f"superpixels, {cfg.samples} sampled coalitions, absent ones set to "
            f"{cfg.baseline}); the same value in every channel",
            "efficiency": "the superpixels' values sum exactly to f(x) - f(all absent) "
            "(extras['base_value'] is f(all absent))",
        },
    )


register_method(
    MethodSpec(
        "kernel-shap",
        _kernel_shap,
        KernelShapConfig,
        "perturbation",
        random=True,
        summary="Shapley values of superpixels by kernel-weighted regression (Lundberg & Lee)",
        answers="how the score difference between all-absent and the image splits fairly over "
        "superpixels",
    )
)
