"""Background reliance (Xiao et al. 2021, "Noise or Signal: The Role of Image Backgrounds").

Four views of the same images, each classified by the model:

* **clean**: the images as given;
* **only-background**: the object removed (mask pixels set to the background estimate);
* **only-foreground**: the background cleared (pixels outside the mask set to the estimate);
* **mixed**: the object of image ``i`` on the background of an image ``j`` of another class
  (``j`` drawn with the seed), i.e. ``where(mask_i, x_i, only_background(x_j))``.

Headline: ``background_reliance = clip((acc_only_bg - 1/K) / (acc_clean - 1/K), 0, 1)``, about
0 for a model that uses the object and about 1 for one that reads the background as well as it
reads the whole image. Its interval is a percentile bootstrap over images (clean and
only-background correctness resampled together).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from robustcv.core.contract import check_count
from robustcv.core.errors import InputError
from robustcv.core.model import Model
from robustcv.core.results import Result
from robustcv.core.seeding import check_seed, derive_seed, make_generator
from robustcv.core.stats import Estimate, bootstrap_indices, percentile_interval
from robustcv.probes.base import ProbeSpec, check_inputs, num_classes, predict, register_probe
from robustcv.probes.masks import MaskConfig, foreground_masks, only_background, only_foreground

__all__ = [
    "BackgroundConfig",
    "BackgroundResult",
    "background_reliance",
    "mixed_partners",
    "reliance_score",
]


@dataclass(frozen=True)
class BackgroundConfig:
    """Parameters of :func:`background_reliance`.

    Attributes:
        batch_size: images per forward pass.
        n_boot: bootstrap resamples of the reliance interval (0: no interval).
        mask: how masks are estimated when none are given.
    """

    batch_size: int = 256
    n_boot: int = 200
    mask: MaskConfig = field(default_factory=MaskConfig)

    def __post_init__(self) -> None:
        check_count(self.batch_size, "BackgroundConfig.batch_size")
        check_count(self.n_boot, "BackgroundConfig.n_boot", minimum=0)


@dataclass(frozen=True)
class BackgroundResult(Result):
    """What :func:`background_reliance` measured.

    Attributes:
        background_reliance: the headline (see the module docstring), NaN when the clean
            accuracy is not above chance.
        clean_accuracy: accuracy on the images with an object found.
        only_background_accuracy: accuracy with the object removed.
        only_foreground_accuracy: accuracy with the background cleared.
        mixed_accuracy: accuracy (object's label) on object-of-i on background-of-j images.
        background_follow: share of mixed images classified as the background's class.
        n: images used (those with a non-empty mask).
        n_skipped: images left out because no object was found in them.
        num_classes: K.
        mask_source: ``given`` or ``estimated``.
        convention: the definitions, in words.
    """

    background_reliance: Estimate
    clean_accuracy: Estimate
    only_background_accuracy: Estimate
    only_foreground_accuracy: Estimate
    mixed_accuracy: Estimate
    background_follow: Estimate
    n: int
    n_skipped: int
    num_classes: int
    mask_source: str
    convention: str


def reliance_score(acc_only_bg: float, acc_clean: float, num_classes: int) -> float:
    """``clip((acc_only_bg - 1/K) / (acc_clean - 1/K), 0, 1)``; NaN if ``acc_clean <= 1/K``.

    Example:
        >>> reliance_score(0.1, 0.9, 10), reliance_score(0.9, 0.9, 10), reliance_score(0.5, 0.9, 10)
        (0.0, 1.0, 0.5)
    """
    chance = 1.0 / num_classes
    if acc_clean <= chance:
        return math.nan
    return min(1.0, max(0.0, (acc_only_bg - chance) / (acc_clean - chance)))


def mixed_partners(y: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """For each image, the index of an image of another class (uniform among them, seeded).

    Images whose class is the only one present get ``-1``.

    Example:
        >>> p = mixed_partners(torch.tensor([0, 0, 1, 2]), make_generator(0))
        >>> bool((torch.tensor([0, 0, 1, 2])[p] != torch.tensor([0, 0, 1, 2])).all())
        True
    """
    n = int(y.shape[0])
    u = torch.rand(n, generator=generator, dtype=torch.float64)
    out = torch.full((n,), -1, dtype=torch.int64)
    idx = torch.arange(n)
    for c in torch.unique(y).tolist():
        mine = y == c
        others = idx[~mine]
        if others.numel():
            pick = (u[mine] * others.numel()).long().clamp_max(others.numel() - 1)
            out[mine] = others[pick]
    return out


def background_reliance(
    model: Model | Any,
    x: torch.Tensor,
    y: torch.Tensor,
    config: BackgroundConfig | None = None,
    *,
    masks: torch.Tensor | None = None,
    seed: int = 0,
) -> BackgroundResult:
    """Accuracy on only-background, only-foreground and mixed images, and the headline reliance.

    Args:
        model: a :class:`robustcv.Model` (an ``nn.Module`` is wrapped).
        x: images, float32 ``(B,C,H,W)`` in [0, 1].
        y: labels ``(B,)``.
        config: parameters (defaults when None).
        masks: foreground masks ``(B,1,H,W)`` or ``(B,H,W)`` from the data; estimated with
            :func:`robustcv.probes.estimate_masks` when None (uniform-background data).
        seed: picks the mixed-image partners and the bootstrap resamples.

    Returns:
        A :class:`BackgroundResult`.

    Raises:
        InputError: bad images, labels or masks, or no image with an object.

    Example:
        >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 2))
        >>> x = torch.zeros(4, 1, 8, 8); x[:, :, 2:6, 2:6] = 1.0
        >>> res = background_reliance(net, x, torch.tensor([0, 1, 0, 1]), seed=0)
        >>> res.n, res.mask_source
        (4, 'estimated')
    """
    cfg = config or BackgroundConfig()
    seed = check_seed(seed)
    m, x, y = check_inputs(model, x, y)
    mk, source = foreground_masks(x, masks, cfg.mask)
    has = mk.flatten(1).any(1)
    n_skipped = int((~has).sum())
    if not bool(has.any()):
        raise InputError(
            "no image has a foreground object (every mask is empty); pass masks= from the data "
            "or lower MaskConfig.threshold for low-contrast images"
        )
    x, y, mk = x[has], y[has], mk[has]
    n = int(y.shape[0])
    k = num_classes(m, x)
    gen = make_generator(derive_seed(seed, "probes", "background", "partners"))
    partner = mixed_partners(y, gen)
    bg_only = only_background(x, mk)
    views = {
        "clean": x,
        "bg": bg_only,
        "fg": only_foreground(x, mk),
    }
    ok = partner >= 0
    preds = {name: predict(m, v, cfg.batch_size) for name, v in views.items()}
    pj = partner.clamp_min(0)
    mixed = torch.where(mk, x, bg_only[pj])
    preds["mixed"] = predict(m, mixed[ok], cfg.batch_size) if bool(ok.any()) else y[:0]
    correct = {name: p == y for name, p in preds.items() if name != "mixed"}
    n_mixed = int(ok.sum())

    def est(hits: torch.Tensor) -> Estimate:
        return (
            Estimate.binomial(int(hits.sum()), int(hits.numel()))
            if hits.numel()
            else Estimate(math.nan)
        )

    value = reliance_score(
        float(correct["bg"].double().mean()), float(correct["clean"].double().mean()), k
    )
    low = high = math.nan
    if cfg.n_boot > 0 and n > 1 and math.isfinite(value):
        bgen = make_generator(derive_seed(seed, "probes", "background", "bootstrap"))
        idx = bootstrap_indices(n, cfg.n_boot, bgen)
        a_bg = correct["bg"].double()[idx].mean(1)
        a_cl = correct["clean"].double()[idx].mean(1)
        reps = torch.tensor(
            [reliance_score(float(b), float(c), k) for b, c in zip(a_bg, a_cl, strict=True)],
            dtype=torch.float64,
        )
        reps = reps[torch.isfinite(reps)]
        if reps.numel():
            low, high = percentile_interval(reps)
    method = f"percentile bootstrap, {cfg.n_boot} resamples, seed {seed}" if cfg.n_boot else ""
    return BackgroundResult(
        background_reliance=Estimate(value, low, high, n, method),
        clean_accuracy=est(correct["clean"]),
        only_background_accuracy=est(correct["bg"]),
        only_foreground_accuracy=est(correct["fg"]),
        mixed_accuracy=est(preds["mixed"] == y[ok]),
        background_follow=est(preds["mixed"] == y[pj[ok]]),
        n=n,
        n_skipped=n_skipped,
        num_classes=k,
        mask_source=source,
        convention=(
            "background_reliance = clip((acc_only_bg - 1/K) / (acc_clean - 1/K), 0, 1); "
            "only-background: object pixels set to the per-channel median of the background; "
            "only-foreground: background pixels set to that median; mixed: object of image i "
            "on the only-background version of a random image of another class "
            f"({n_mixed} pairs); background_follow = share of mixed images classified as the "
            "background's class"
        ),
    )


def _run(
    model: Any, x: torch.Tensor, y: torch.Tensor, cfg: BackgroundConfig, **kw: Any
) -> BackgroundResult:
    return background_reliance(model, x, y, cfg, **kw)


register_probe(
    ProbeSpec(
        "background",
        BackgroundConfig,
        _run,
        "does the model use the object or the background?",
        needs_masks=True,
    )
)
