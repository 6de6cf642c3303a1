"""Overinterpretation (Carter et al. 2020): how little of an image does the model need?

* :func:`sufficient_subsets`: sufficient input subsets by **batched gradient backward
  selection**. Pixels that already equal ``fill`` are dropped first (the input does not
  change). Then each round removes (sets to ``fill``) ``chunk`` of the image's pixels (1% by
  default) among the remaining ones whose removal the first-order estimate
  ``sum_c grad_c * (fill - x_c)`` of the target class's *log*-probability says hurts least (the
  log keeps the gradient informative where the softmax saturates); all images of the batch
  advance together, one forward and one backward pass per round. The subset is the smallest set
  of remaining pixels met along the way whose probability is still ``>= threshold``; it is then
  **re-evaluated** on its own (only those pixels kept, the rest ``fill``) and ``sufficient``
  records the re-evaluated verdict. Images whose full-image probability is below the threshold
  have no subset and are counted apart.
* :func:`keep_top_pixels`: accuracy and confidence of the model when only the top x% of the
  pixels of a ranking (a method's maps) are kept and the rest set to ``fill``, for x = 5, 10,
  20, 50, next to a random ranking of the same images.

Where subset pixels lie relative to the object (inside/outside a foreground mask) needs the
probes' foreground masks and is not reported yet.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from robustcv.core.errors import InputError
from robustcv.core.model import Model
from robustcv.core.results import Result
from robustcv.core.seeding import derive_seed
from robustcv.core.stats import Estimate
from robustcv.explanations._trust import (
    check_fraction,
    mean_ci,
    predict,
    prepare,
    targets_for,
)
from robustcv.explanations.faithfulness import check_maps_fit, keep_pixels, pixel_order

__all__ = [
    "KeepTopResult",
    "SubsetConfig",
    "SubsetResult",
    "keep_top_pixels",
    "sufficient_subsets",
]


@dataclass(frozen=True)
class SubsetConfig:
    """Settings of :func:`sufficient_subsets`.

    Attributes:
        threshold: the probability of the target class a subset must keep (Carter et al.
            use 0.9 on CIFAR-10).
        fill: value of the removed pixels (0.0: black, the Fashion-MNIST background).
        chunk: share of the image's pixels removed per round (at least one pixel): the
            resolution of the reported subset size.
    """

    threshold: float = 0.9
    fill: float = 0.0
    chunk: float = 0.01

    def __post_init__(self) -> None:
        check_fraction(self.threshold, "threshold")
        check_fraction(self.fill, "fill", open_low=False)
        check_fraction(self.chunk, "chunk")


@dataclass
class SubsetResult(Result):
    """Sufficient input subsets of a batch.

    Attributes:
        n: images.
        n_confident: images whose full-image probability reached the threshold (they have a
            subset); the others are left out of the figures below.
        threshold: the probability threshold.
        share: per confident image, the subset's share of the pixels (NaN for the others).
        median_share: median of ``share`` over confident images.
        mean_share: mean with a 95% interval.
        sufficient: per confident image, whether the re-evaluated subset reaches the
            threshold (True by construction; the re-evaluation is the check).
        probability: per image, the re-evaluated probability of the target class on its subset.
        notes: how.
        seconds: wall time.
        masks: (B,1,H,W) bool subsets (not in JSON; all False for images without one).
    """

    n: int
    n_confident: int
    threshold: float
    share: list[float]
    median_share: float
    mean_share: dict[str, Any]
    sufficient: list[bool]
    probability: list[float]
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    masks: torch.Tensor = field(default_factory=lambda: torch.empty(0), metadata={"json": False})


def sufficient_subsets(
    model: Model | torch.nn.Module,
    x: torch.Tensor,
    *,
    target: int | torch.Tensor | None = None,
    config: SubsetConfig | None = None,
) -> SubsetResult:
    """Sufficient input subsets by batched gradient backward selection (see module docstring).

    Args:
        model: a differentiable :class:`robustcv.Model` or ``nn.Module``.
        x: images under the image contract.
        target: the class to keep (None: the predicted class).
        config: :class:`SubsetConfig` (None: threshold 0.9, fill 0, 1% per round).

    Returns:
        The :class:`SubsetResult`.

    Example:
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
        >>> with torch.no_grad():
        ...     _ = net[1].weight.fill_(0.0), net[1].bias.copy_(torch.tensor([3.0, 0.0]))
        >>> r = sufficient_subsets(net, torch.rand(2, 1, 4, 4))
        >>> r.share, r.sufficient  # the bias alone keeps class 0 at 0.95: no pixel is needed
        ([0.0, 0.0], [True, True])
    """
    start = time.perf_counter()
    cfg = config if config is not None else SubsetConfig()
    if not isinstance(cfg, SubsetConfig):
        raise InputError("config must be a SubsetConfig, e.g. SubsetConfig(threshold=0.9)")
    wrapped, xs, _ = prepare(model, x, 0)
    wrapped.require_gradients("backward selection of sufficient subsets")
    targets = targets_for(wrapped, xs, target)
    b, _, h, w = xs.shape
    n_pix = h * w
    fill = torch.full_like(xs, cfg.fill)
    p_full = predict(wrapped, xs).softmax(1).gather(1, targets[:, None]).squeeze(1)
    confident = p_full >= cfg.threshold
    # pixels already equal to the fill carry nothing: removing them leaves the input as it is
    remaining = (xs != fill).any(1).flatten(1)
    best = remaining.clone()
    best_count = torch.full((b,), n_pix + 1, device=xs.device)
    while True:
        keep = remaining.view(b, 1, h, w)
        xm = torch.where(keep, xs, fill).detach().requires_grad_(True)
        with torch.enable_grad():
            logp = wrapped.logits(xm, validate=False).log_softmax(1)
            picked = logp.gather(1, targets[:, None]).squeeze(1)
            (g,) = torch.autograd.grad(picked.sum(), xm)
        picked = picked.detach().exp()
        count = remaining.sum(1)
        better = (picked >= cfg.threshold) & (count < best_count)
        best[better] = remaining[better]
        best_count = torch.where(better, count, best_count)
        if int(count.max()) == 0:
            break
        est = (g * (fill - xm.detach())).sum(1).flatten(1)  # estimated change when removed
        est = est.masked_fill(~remaining, -math.inf)
        r = max(1, math.ceil(cfg.chunk * n_pix))
        top = torch.topk(est, min(r, n_pix), dim=1).indices
        drop = torch.zeros_like(remaining)
        drop.scatter_(1, top, True)
        remaining &= ~drop
    masks = best.view(b, 1, h, w) & confident.view(b, 1, 1, 1)
    kept = torch.where(masks, xs, fill)
    p_sub = predict(wrapped, kept).softmax(1).gather(1, targets[:, None]).squeeze(1)
    share = torch.where(confident, masks.flatten(1).sum(1).double() / n_pix, torch.nan)
    sufficient = (p_sub >= cfg.threshold) & confident
    conf_share = share[confident]
    return SubsetResult(
        n=b,
        n_confident=int(confident.sum()),
        threshold=cfg.threshold,
        share=share.cpu().tolist(),
        median_share=float(conf_share.median()) if len(conf_share) else math.nan,
        mean_share=mean_ci(conf_share),
        sufficient=[bool(v) for v in sufficient[confident].cpu()],
        probability=p_sub.cpu().tolist(),
        notes=[
            f"batched gradient backward selection (log-probability): {cfg.chunk:g} of the "
            f"pixels removed per round (set to {cfg.fill:g}); subset = smallest remaining set with "
            f"target probability >= {cfg.threshold:g}, re-evaluated on its own",
            f"{b - int(confident.sum())} of {b} images are below the threshold on the full "
            "image and have no subset",
            "inside/outside-foreground split: not reported (needs the probes' foreground masks)",
        ],
        seconds=time.perf_counter() - start,
        masks=masks.cpu(),
    )


FRACTIONS = (0.05, 0.1, 0.2, 0.5)


@dataclass
class KeepTopResult(Result):
    """Accuracy and confidence keeping only the top x% pixels of a ranking.

    Attributes:
        n: images.
        fractions: the kept shares.
        accuracy: per share, accuracy against the labels (Clopper-Pearson interval).
        confidence: per share, mean probability of each image's originally predicted class.
        random_accuracy: the same for a random ranking (seeded) of the same images.
        random_confidence: the same for the random ranking.
        notes: how.
    """

    n: int
    fractions: list[float]
    accuracy: list[dict[str, Any]]
    confidence: list[dict[str, Any]]
    random_accuracy: list[dict[str, Any]]
    random_confidence: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)


def keep_top_pixels(
    model: Model | torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    maps: torch.Tensor,
    *,
    fractions: tuple[float, ...] = FRACTIONS,
    fill: float = 0.0,
    absolute: bool = False,
    seed: int | None = None,
) -> KeepTopResult:
    """Accuracy/confidence with only the top ``fractions`` of each map's pixels kept.

    Args:
        model: a :class:`robustcv.Model` or ``nn.Module``.
        x: images under the image contract.
        y: (B,) int64 labels.
        maps: (B,C or 1,H,W) maps ranking the pixels (most relevant first, signed unless
            ``absolute``).
        fractions: kept shares in (0, 1].
        fill: value of the other pixels.
        absolute: rank ``|map|``.
        seed: seeds the random ranking (None: 0).

    Example:
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
        >>> x = torch.rand(4, 1, 4, 4)
        >>> r = keep_top_pixels(net, x, torch.zeros(4, dtype=torch.int64), x, fractions=(0.5,))
        >>> r.fractions, r.accuracy[0]["n"]
        ([0.5], 4)
    """
    wrapped, xs, s = prepare(model, x, seed)
    if not isinstance(y, torch.Tensor) or y.shape != (len(xs),) or y.is_floating_point():
        raise InputError(f"y must be ({len(xs)},) int64 labels, one per image")
    fr = tuple(check_fraction(f, "fractions") for f in fractions)
    if not fr:
        raise InputError("fractions is empty; e.g. fractions=(0.05, 0.1, 0.2, 0.5)")
    check_fraction(fill, "fill", open_low=False)
    check_maps_fit(maps, xs)
    b, _, h, w = xs.shape
    n_pix = h * w
    pred = predict(wrapped, xs).argmax(1)
    order = pixel_order(maps, absolute=absolute).to(xs.device)
    gen = torch.Generator().manual_seed(derive_seed(s, "keep-top-random"))
    rand_order = torch.argsort(torch.rand(b, n_pix, generator=gen), dim=1).to(xs.device)
    labels = y.to(xs.device)
    out: dict[str, list[dict[str, Any]]] = {k: [] for k in ("a", "c", "ra", "rc")}
    for f in fr:
        counts = torch.full((b,), max(1, round(f * n_pix)), device=xs.device)
        for ordr, ka, kc in ((order, "a", "c"), (rand_order, "ra", "rc")):
            probs = predict(wrapped, keep_pixels(xs, ordr, counts, fill)).softmax(1)
            correct = int((probs.argmax(1) == labels).sum())
            out[ka].append(Estimate.binomial(correct, b).to_dict())
            out[kc].append(mean_ci(probs.gather(1, pred[:, None]).squeeze(1)))
    return KeepTopResult(
        n=b,
        fractions=list(fr),
        accuracy=out["a"],
        confidence=out["c"],
        random_accuracy=out["ra"],
        random_confidence=out["rc"],
        notes=[
            f"the top share of pixels of each map kept ({'|map|' if absolute else 'signed map'} "
            f"summed over channels), the others set to {fill:g}; confidence: probability of "
            "the class predicted on the full image; random: a seeded random ranking"
        ],
    )
