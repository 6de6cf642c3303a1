"""Faithfulness of attribution maps: do the pixels a map ranks first drive the prediction?

* :func:`deletion_insertion`: the **deletion** curve (pixels replaced by a fill value in the
  map's order, most relevant first: the class probability should fall fast, so a *low* area is
  good) and the **insertion** curve (pixels of the image pasted, in the same order, into a
  blurred copy: the probability should rise fast, a *high* area is good), Petsiuk et al. 2018.
  Both are measured for the maps and for a **random ranking** of the same pixels of the same
  images (seeded), so a map is judged against chance on the same data.
* :func:`infidelity` and :func:`sensitivity_max`: Captum's definitions (Yeh et al. 2019):
  ``infidelity = E_I[(sum(map * I) - (f(x) - f(x - I)))^2]`` with ``I`` Gaussian noise, and
  ``sensitivity_max = max_j ||e(x + u_j) - e(x)|| / ||e(x)||`` with ``u_j`` uniform in an
  L-inf ball. Both accept the perturbations explicitly, so the same noise gives the same numbers
  as ``captum.metrics`` (tests check it).

Ranking: the channel sum of the signed map (positive evidence first; ``absolute=True`` ranks
``|map|``). Ties are broken by pixel position. Scores: the softmax probability of the target
class (``score="logit"``: its logit). Curve areas use the trapezoid rule over the removed share
in [0, 1].
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch

from robustcv.core.errors import InputError
from robustcv.core.model import Model
from robustcv.core.results import Result
from robustcv.core.seeding import derive_seed
from robustcv.explanations._trust import (
    check_count,
    check_positive,
    mean_ci,
    predict,
    prepare,
    targets_for,
)
from robustcv.explanations.base import explain
from robustcv.explanations.gradients import gaussian_blur
from robustcv.explanations.similarity import pixel_scores

__all__ = [
    "FaithfulnessConfig",
    "FaithfulnessResult",
    "check_maps_fit",
    "deletion_insertion",
    "infidelity",
    "keep_pixels",
    "pixel_order",
    "sensitivity_max",
]


@dataclass(frozen=True)
class FaithfulnessConfig:
    """Settings of :func:`deletion_insertion`.

    Attributes:
        steps: points of each curve besides the start (pixels removed in ``steps`` equal
            shares).
        fill: value deleted pixels get (0.0: black, the Fashion-MNIST background).
        blur_sigma: sigma in pixels of the blurred start image of insertion (None: a tenth of
            the longer side).
        score: ``"probability"`` (softmax of the target class) or ``"logit"``.
        absolute: rank pixels by ``|map|`` instead of the signed map.
        random_repeats: random rankings per image for the baseline (0: none; the random
            fields are then empty or NaN, e.g. when one baseline serves several methods).
    """

    steps: int = 20
    fill: float = 0.0
    blur_sigma: float | None = None
    score: str = "probability"
    absolute: bool = False
    random_repeats: int = 1

    def __post_init__(self) -> None:
        check_count(self.steps, "steps")
        if not 0.0 <= check_positive(self.fill, "fill", allow_zero=True) <= 1.0:
            raise InputError(f"fill must lie in [0, 1] (the image range), got {self.fill}")
        if self.blur_sigma is not None:
            check_positive(self.blur_sigma, "blur_sigma")
        if self.score not in ("probability", "logit"):
            raise InputError(f"score must be 'probability' or 'logit', got {self.score!r}")
        check_count(self.random_repeats, "random_repeats", minimum=0)


@dataclass
class FaithfulnessResult(Result):
    """Deletion and insertion curves of maps and of random rankings on the same images.

    Attributes:
        n: images.
        fractions: share of pixels removed (deletion) or inserted (insertion) at each point.
        deletion: mean score per point for the maps; ``random_deletion`` for random rankings.
        insertion: mean score per point for the maps; ``random_insertion`` for random rankings.
        deletion_area: area under the maps' deletion curve (lower is better), 95% interval.
        insertion_area: area under the maps' insertion curve (higher is better).
        random_deletion_area: the random rankings' deletion area.
        random_insertion_area: the random rankings' insertion area.
        deletion_gain: random minus maps deletion area per image (> 0: better than chance).
        insertion_gain: maps minus random insertion area per image (> 0: better than chance).
        per_image: per-image ``deletion_area`` and ``insertion_area`` of the maps.
        notes: the fill, blur, score and ranking used.
        seconds: wall time.
    """

    n: int
    fractions: list[float]
    deletion: list[float]
    insertion: list[float]
    random_deletion: list[float]
    random_insertion: list[float]
    deletion_area: dict[str, Any]
    insertion_area: dict[str, Any]
    random_deletion_area: dict[str, Any]
    random_insertion_area: dict[str, Any]
    deletion_gain: dict[str, Any]
    insertion_gain: dict[str, Any]
    per_image: dict[str, list[float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


def pixel_order(maps: torch.Tensor, *, absolute: bool = False) -> torch.Tensor:
    """(B, H*W) pixel indices, most relevant first (ties by position).

    Example:
        >>> pixel_order(torch.tensor([[[[0.1, 0.9], [0.5, -1.0]]]])).tolist()
        [[1, 2, 0, 3]]
    """
    scores = pixel_scores(maps, absolute=absolute).flatten(1)
    return torch.sort(scores, dim=1, descending=True, stable=True).indices


def keep_pixels(
    x: torch.Tensor, order: torch.Tensor, counts: torch.Tensor, fill: torch.Tensor | float
) -> torch.Tensor:
    """Images with only the first ``counts[i]`` pixels of ``order[i]`` kept, the rest ``fill``.

    Args:
        x: (B,C,H,W) images.
        order: (B, H*W) pixel indices (e.g. from :func:`pixel_order`).
        counts: (B,) pixels to keep per image.
        fill: a value or a (B,C,H,W) tensor that replaces the other pixels.

    Example:
        >>> x = torch.ones(1, 1, 2, 2)
        >>> keep_pixels(x, torch.tensor([[3, 0, 1, 2]]), torch.tensor([2]), 0.0).flatten().tolist()
        [1.0, 0.0, 0.0, 1.0]
    """
    b, _, h, w = x.shape
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(h * w, device=order.device).expand(b, -1))
    keep = (rank < counts.to(order.device)[:, None]).view(b, 1, h, w)
    fill_t = fill if isinstance(fill, torch.Tensor) else torch.full_like(x, float(fill))
    return torch.where(keep.to(x.device), x, fill_t.to(x.device))


def _score(model: Model, x: torch.Tensor, targets: torch.Tensor, kind: str) -> torch.Tensor:
    logits = predict(model, x)
    if kind == "probability":
        logits = logits.softmax(1)
    return logits.gather(1, targets[:, None].to(logits.device)).squeeze(1).double().cpu()


def _curves(
    model: Model,
    x: torch.Tensor,
    order: torch.Tensor,
    targets: torch.Tensor,
    cfg: FaithfulnessConfig,
    start: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, steps+1) deletion and insertion scores for one ranking per image."""
    b, _, h, w = x.shape
    n_pix = h * w
    counts = [round(i * n_pix / cfg.steps) for i in range(cfg.steps + 1)]
    per_pass = max(1, (1 << 21) // max(1, 2 * b * int(x[0].numel())))  # points per forward pass
    dele, ins = [], []
    for c0 in range(0, len(counts), per_pass):
        batch = []
        for c in counts[c0 : c0 + per_pass]:
            kept = keep_pixels(x, order.flip(1), torch.full((b,), n_pix - c), cfg.fill)
            batch += [kept, keep_pixels(x, order, torch.full((b,), c), start)]
        chunk = len(batch) // 2
        s = _score(model, torch.cat(batch), targets.repeat(2 * chunk), cfg.score).view(-1, b)
        dele += list(s[0::2])
        ins += list(s[1::2])
    return torch.stack(dele, 1), torch.stack(ins, 1)


def _area(curve: torch.Tensor) -> torch.Tensor:
    """Trapezoid area over [0, 1] of (B, P) curves sampled at equal steps."""
    p = curve.shape[1] - 1
    return (curve[:, 1:] + curve[:, :-1]).sum(1) / (2.0 * p)


def deletion_insertion(
    model: Model | torch.nn.Module,
    x: torch.Tensor,
    maps: torch.Tensor,
    *,
    target: int | torch.Tensor | None = None,
    seed: int | None = None,
    config: FaithfulnessConfig | None = None,
) -> FaithfulnessResult:
    """Deletion and insertion curves and areas of ``maps``, against random rankings.

    Args:
        model: a :class:`robustcv.Model` or an ``nn.Module`` taking [0, 1] images.
        x: images under the image contract.
        maps: (B,C,H,W) or (B,1,H,W) attribution maps of ``x`` (e.g. ``explain(...).maps``).
        target: the class whose score is tracked (None: the predicted class).
        seed: seeds the random rankings (None: 0).
        config: :class:`FaithfulnessConfig` (None: defaults).

    Returns:
        The :class:`FaithfulnessResult`.

    Raises:
        InputError: images, maps or settings that do not fit.

    Example:
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
        >>> x = torch.rand(3, 1, 4, 4, generator=torch.Generator().manual_seed(0))
        >>> maps = explain(net, x, method="input-x-gradient").maps
        >>> r = deletion_insertion(net, x, maps, config=FaithfulnessConfig(steps=4))
        >>> len(r.deletion), r.fractions
        (5, [0.0, 0.25, 0.5, 0.75, 1.0])
    """
    start_t = time.perf_counter()
    cfg = config if config is not None else FaithfulnessConfig()
    if not isinstance(cfg, FaithfulnessConfig):
        raise InputError("config must be a FaithfulnessConfig, e.g. FaithfulnessConfig(steps=20)")
    wrapped, xs, s = prepare(model, x, seed)
    check_maps_fit(maps, xs)
    targets = targets_for(wrapped, xs, target)
    sigma = cfg.blur_sigma if cfg.blur_sigma is not None else max(xs.shape[2:]) / 10.0
    # one channel at a time: gaussian_blur's kernel view only fits single-channel batches
    flat = xs.reshape(-1, 1, *xs.shape[2:])
    start = gaussian_blur(flat, float(sigma)).reshape(xs.shape).clamp(0.0, 1.0)
    order = pixel_order(maps, absolute=cfg.absolute)
    d, i = _curves(wrapped, xs, order, targets, cfg, start)
    gen = torch.Generator().manual_seed(derive_seed(s, "faithfulness-random"))
    n_pix = int(order.shape[1])
    rd, ri = [], []
    for _ in range(cfg.random_repeats):
        rand_order = torch.argsort(torch.rand(len(xs), n_pix, generator=gen), dim=1)
        a, b = _curves(wrapped, xs, rand_order, targets, cfg, start)
        rd.append(a)
        ri.append(b)
    if rd:
        rdel, rins = torch.stack(rd).mean(0), torch.stack(ri).mean(0)
    else:
        rdel = rins = torch.full_like(d, float("nan"))
    da, ia, rda, ria = _area(d), _area(i), _area(rdel), _area(rins)
    return FaithfulnessResult(
        n=len(xs),
        fractions=[c / cfg.steps for c in range(cfg.steps + 1)],
        deletion=d.mean(0).tolist(),
        insertion=i.mean(0).tolist(),
        random_deletion=rdel.mean(0).tolist() if rd else [],
        random_insertion=rins.mean(0).tolist() if rd else [],
        deletion_area=mean_ci(da),
        insertion_area=mean_ci(ia),
        random_deletion_area=mean_ci(rda),
        random_insertion_area=mean_ci(ria),
        deletion_gain=mean_ci(rda - da),
        insertion_gain=mean_ci(ia - ria),
        per_image={"deletion_area": da.tolist(), "insertion_area": ia.tolist()},
        notes=[
            f"deletion: pixels set to {cfg.fill:g} most relevant first; insertion: pixels pasted "
            f"into the image blurred with sigma {sigma:.3g} px; score: target-class {cfg.score}",
            f"ranking: {'|map|' if cfg.absolute else 'signed map'} summed over channels; random "
            f"baseline: {cfg.random_repeats} seeded random ranking(s) per image",
        ],
        seconds=time.perf_counter() - start_t,
    )


def check_maps_fit(maps: Any, x: torch.Tensor) -> None:
    """Refuse maps that do not match the images (shape (B, C or 1, H, W)).

    Example:
        >>> check_maps_fit(torch.zeros(2, 1, 4, 4), torch.zeros(2, 3, 4, 4))
    """
    ok = isinstance(maps, torch.Tensor) and maps.dim() == 4
    ok = ok and maps.shape[0] == x.shape[0] and tuple(maps.shape[2:]) == tuple(x.shape[2:])
    ok = ok and maps.shape[1] in (1, x.shape[1])
    if not ok:
        got = tuple(maps.shape) if isinstance(maps, torch.Tensor) else type(maps).__name__
        raise InputError(
            f"maps must have shape ({x.shape[0]}, {x.shape[1]} or 1, {x.shape[2]}, {x.shape[3]}) "
            f"to match the images, got {got}; pass explain(model, x, ...).maps (layer methods "
            "with upsample='bilinear')"
        )


def infidelity(
    model: Model | torch.nn.Module,
    x: torch.Tensor,
    maps: torch.Tensor,
    *,
    target: int | torch.Tensor | None = None,
    perturbations: torch.Tensor | None = None,
    samples: int = 10,
    noise: float = 0.1,
    normalize: bool = False,
    seed: int | None = None,
) -> torch.Tensor:
    """Captum's infidelity per image (B,): ``mean_j (sum(map * I_j) - (f(x) - f(x - I_j)))^2``.

    ``f`` is the target logit; ``I_j`` are ``samples`` Gaussian perturbations with standard
    deviation ``noise`` (seeded), or the given ``perturbations`` (B, S, C, H, W). The perturbed
    images ``x - I`` are not clipped (as in Captum: this metric probes the function, not the
    image contract). ``normalize=True`` first scales ``sum(map * I)`` by the least-squares
    factor ``beta`` (Captum's ``normalize``). Lower is better.

    Example:
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
        >>> x = torch.rand(2, 1, 2, 2)
        >>> e = explain(net, x, target=0, method="saliency", abs=False)
        >>> bool(infidelity(net, x, e.maps, target=0).max() < 1e-8)  # exact for a linear model
        True
    """
    wrapped, xs, s = prepare(model, x, seed)
    check_maps_fit(maps, xs)
    targets = targets_for(wrapped, xs, target)
    b = len(xs)
    if perturbations is None:
        samples = check_count(samples, "samples")
        check_positive(noise, "noise")
        gen = torch.Generator().manual_seed(derive_seed(s, "infidelity"))
        pert = torch.randn((b, samples, *xs.shape[1:]), generator=gen) * noise
    else:
        if (
            not isinstance(perturbations, torch.Tensor)
            or perturbations.shape[0] != b
            or tuple(perturbations.shape[2:]) != tuple(xs.shape[1:])
        ):
            raise InputError(
                f"perturbations must have shape ({b}, S, {', '.join(map(str, xs.shape[1:]))}), "
                "one set of S perturbations per image"
            )
        pert = perturbations.detach().float()
    pert = pert.to(xs.device)
    n_s = int(pert.shape[1])
    flat = pert.reshape(b * n_s, *xs.shape[1:])
    rep_t = targets.repeat_interleave(n_s)
    with torch.no_grad():
        f0 = _logit_rows(wrapped, xs, targets).repeat_interleave(n_s)
        f1 = _logit_rows(wrapped, xs.repeat_interleave(n_s, 0) - flat, rep_t)
    diff = (f0 - f1).view(b, n_s).double()
    m = maps.detach().to(xs.device).expand(-1, xs.shape[1], -1, -1) if maps.shape[1] == 1 else maps
    attr = (m.detach().to(xs.device).repeat_interleave(n_s, 0) * flat).flatten(1).sum(1)
    attr = attr.view(b, n_s).double()
    if normalize:
        beta = (attr * diff).sum(1) / (attr * attr).sum(1)
        beta = torch.where(torch.isfinite(beta), beta, torch.zeros_like(beta))
        attr = beta[:, None] * attr
    return ((attr - diff) ** 2).mean(1).cpu()


def _logit_rows(
    model: Model, x: torch.Tensor, targets: torch.Tensor, rows: int = 512
) -> torch.Tensor:
    out = []
    for i in range(0, len(x), rows):
        z = model.logits(x[i : i + rows], validate=False)
        out.append(z.gather(1, targets[i : i + rows, None]).squeeze(1))
    return torch.cat(out)


def sensitivity_max(
    model: Model | torch.nn.Module,
    x: torch.Tensor,
    method: str,
    *,
    target: int | torch.Tensor | None = None,
    radius: float = 0.02,
    samples: int = 10,
    perturbations: torch.Tensor | None = None,
    reduce: str = "max",
    seed: int | None = None,
    **params: Any,
) -> torch.Tensor:
    """Captum's sensitivity-max per image (B,): ``max_j ||e(x + u_j) - e(x)||_F / ||e(x)||_F``.

    ``u_j`` are ``samples`` draws uniform in the L-inf ball of ``radius`` (seeded), or the given
    ``perturbations`` (B, S, C, H, W). The noisy images are clipped to [0, 1] (the image
    contract; Captum does not clip, so the two agree when no pixel leaves [0, 1]). The same
    target class is explained for every noisy copy; a zero map's norm counts as 1 (Captum's
    convention). ``reduce="mean"`` gives the average sensitivity instead of the maximum.

    Example:
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
        >>> x = torch.full((2, 1, 2, 2), 0.5)
        >>> sensitivity_max(net, x, "saliency", samples=3).tolist()  # a linear model's gradient
        [0.0, 0.0]
    """
    wrapped, xs, s = prepare(model, x, seed)
    if reduce not in ("max", "mean"):
        raise InputError(f"reduce must be 'max' or 'mean', got {reduce!r}")
    targets = targets_for(wrapped, xs, target)
    b = len(xs)
    if perturbations is None:
        samples = check_count(samples, "samples")
        check_positive(radius, "radius")
        gen = torch.Generator().manual_seed(derive_seed(s, "sensitivity"))
        pert = (torch.rand((b, samples, *xs.shape[1:]), generator=gen) * 2 - 1) * radius
    else:
        if (
            not isinstance(perturbations, torch.Tensor)
            or perturbations.shape[0] != b
            or tuple(perturbations.shape[2:]) != tuple(xs.shape[1:])
        ):
            raise InputError(
                f"perturbations must have shape ({b}, S, {', '.join(map(str, xs.shape[1:]))})"
            )
        pert = perturbations.detach().float()
    n_s = int(pert.shape[1])
    e0 = explain(wrapped, xs, targets, method=method, seed=s, **params).maps
    noisy = xs.repeat_interleave(n_s, 0) + pert.reshape(b * n_s, *xs.shape[1:]).to(xs.device)
    e1 = explain(
        wrapped,
        noisy.clamp(0.0, 1.0),
        targets.repeat_interleave(n_s),
        method=method,
        seed=s,
        **params,
    ).maps
    diff = (e1.double() - e0.double().repeat_interleave(n_s, 0)).flatten(1).norm(dim=1)
    base = e0.double().flatten(1).norm(dim=1)
    base = torch.where(base == 0, torch.ones_like(base), base).repeat_interleave(n_s)
    ratio = (diff / base).view(b, n_s)
    return ratio.amax(1) if reduce == "max" else ratio.mean(1)
