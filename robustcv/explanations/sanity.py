"""Sanity checks for attribution maps: model-parameter randomisation (Adebayo et al. 2018).

A method whose maps explain the *model* must change when the model's weights are replaced by
random ones. :func:`sanity_check` copies the model (the caller's model is never touched),
randomises its layers from the top (output) layer down and recomputes the maps of the same
images for the same target classes:

* **cascading**: after step j the top j layers are random (step 0 is the trained model, the
  last step a fully random network);
* **independent**: only layer j is random, the others keep their trained weights.

At every step the maps are compared with the trained model's maps by Spearman rank correlation
of ``|map|`` and of the signed map, SSIM of the min-max-scaled ``|map|`` and top-k intersection
(:mod:`robustcv.explanations.similarity`). A method **fails** when its maps are still similar
after the whole network is randomised: the mean absolute Spearman correlation at the last
cascading step is ``>= threshold`` (default 0.5).

Why 0.5: a method that ignores the model keeps a correlation of 1.0 by construction, and the
model-insensitive methods Adebayo et al. found (guided backprop, and edge detectors) stay above
0.8 on their data; gradient-type methods fall below 0.3 once the network is random. On
Fashion-MNIST (objects on a black background) some shared structure survives even between maps
of a random and a trained network (both are 0 or flat on the background), so the null level is
not 0: the result also reports the correlation between the trained maps of *different* images
(``null_spearman_abs``, images paired by a seeded permutation), the level that shared layout
alone gives. 0.5 sits between those levels with room on both sides; the per-layer curves show
how close a method came.

What is randomised: every module with a weight of 2 or more dimensions (``nn.Conv*d``,
``nn.Linear``, ...), weight and bias drawn uniformly from ``[-1/sqrt(fan_in), 1/sqrt(fan_in)]``
(PyTorch's default initialisation bound) from a generator seeded by (seed, layer name), so the
same layer gets the same random weights in both modes. Normalisation layers keep their trained
statistics (stated in the result). Layers are ordered by registration, which for the usual
``Sequential``-style networks is the forward order; "top" is the last one.

**Data randomisation** (:func:`label_randomization_check`): a copy fine-tuned briefly on
permuted labels (seeded), same comparison of maps, same threshold. A brief fine-tune does not
retrain from scratch as Adebayo et al. did; ``permuted_accuracy`` says how far it got.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from robustcv.core.errors import InputError
from robustcv.core.model import Model
from robustcv.core.results import Result
from robustcv.core.seeding import derive_seed
from robustcv.explanations._trust import (
    check_fraction,
    check_method,
    mean_ci,
    prepare,
    targets_for,
)
from robustcv.explanations.base import explain
from robustcv.explanations.similarity import spearman, ssim, topk_intersection

__all__ = [
    "SIMILARITIES",
    "LabelRandomizationConfig",
    "LabelRandomizationResult",
    "SanityConfig",
    "SanityResult",
    "label_randomization_check",
    "randomizable_layers",
    "randomize_layers",
    "sanity_check",
]

SIMILARITIES = ("spearman_abs", "spearman", "ssim", "topk")
"""The similarity measures of a sanity check, in the order results list them."""

MODES = ("cascading", "independent")


@dataclass(frozen=True)
class SanityConfig:
    """Settings of :func:`sanity_check`.

    Attributes:
        modes: ``"cascading"``, ``"independent"`` or both (default).
        threshold: a method fails when the mean absolute Spearman correlation after randomising
            every layer (cascading) is >= this value (see the module docstring for why 0.5).
        k: top-k share of pixels for the top-k intersection.
        layers: layer names to randomise (top-down order is taken from the model); None: every
            module with a weight of >= 2 dimensions.
    """

    modes: tuple[str, ...] = MODES
    threshold: float = 0.5
    k: float = 0.1
    layers: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        modes = (self.modes,) if isinstance(self.modes, str) else tuple(self.modes)
        bad = [m for m in modes if m not in MODES]
        if not modes or bad:
            raise InputError(
                f"modes={self.modes!r} is not valid; choose from {', '.join(MODES)} (e.g. "
                "modes=('cascading',))"
            )
        object.__setattr__(self, "modes", modes)
        check_fraction(self.threshold, "threshold", open_low=False)
        check_fraction(self.k, "k")
        if self.layers is not None:
            if isinstance(self.layers, str) or not all(isinstance(v, str) for v in self.layers):
                raise InputError("layers must be a tuple of module names, e.g. ('head',)")
            object.__setattr__(self, "layers", tuple(self.layers))


@dataclass
class SanityResult(Result):
    """Outcome of a model-parameter randomisation check for one method.

    Attributes:
        method: the method's registry name.
        params: the method's parameters passed through.
        n: images compared.
        layers: randomised layers, top (output) first.
        cascading: measure -> per step mean over images; step 0 is the trained model (1.0
            for every measure), step j has the top j layers random. Empty without the mode.
        independent: measure -> per layer (same order as ``layers``) mean over images.
        final: measure -> {value, low, high, n, method}: the last cascading step (every layer
            random) with a 95% interval over images.
        null_spearman_abs: mean |map| Spearman between trained maps of different images.
        threshold: the failure threshold on ``final["spearman_abs"]["value"]``.
        passed: True when the method's maps changed enough (``final spearman_abs < threshold``).
        verdict: one sentence saying so.
        notes: how the check was made.
        seconds: wall time.
    """

    method: str
    params: dict[str, Any]
    n: int
    layers: list[str]
    cascading: dict[str, list[float]]
    independent: dict[str, list[float]]
    final: dict[str, dict[str, Any]]
    null_spearman_abs: float
    threshold: float
    passed: bool
    verdict: str
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


def randomizable_layers(net: nn.Module) -> list[str]:
    """Names of the modules with a weight of >= 2 dimensions, in registration order.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8, 3))
        >>> randomizable_layers(net)
        ['0', '3']
    """
    out = []
    for name, module in net.named_modules():
        w = getattr(module, "weight", None)
        if name and isinstance(w, nn.Parameter) and w.dim() >= 2:
            out.append(name)
    return out


def randomize_layers(net: nn.Module, names: list[str], seed: int) -> None:
    """Replace the weight and bias of each named module by seeded uniform random values.

    Values are drawn from ``[-1/sqrt(fan_in), 1/sqrt(fan_in)]`` with a generator seeded by
    (seed, layer name), in place: call it on a copy.

    Example:
        >>> a = copy.deepcopy(nn.Sequential(nn.Linear(4, 2)))
        >>> b = copy.deepcopy(a)
        >>> randomize_layers(a, ["0"], 1); randomize_layers(b, ["0"], 1)
        >>> torch.equal(a[0].weight, b[0].weight)
        True
    """
    with torch.no_grad():
        for name in names:
            module = net.get_submodule(name)
            weight = module.weight
            if not isinstance(weight, torch.Tensor) or weight.dim() < 2:
                raise InputError(f"layer '{name}' has no weight of >= 2 dimensions to randomise")
            fan_in = int(weight[0].numel())
            bound = 1.0 / max(fan_in, 1) ** 0.5
            gen = torch.Generator().manual_seed(derive_seed(seed, "sanity-randomize", name))
            for pname, p in module.named_parameters(recurse=False):
                if pname not in ("weight", "bias"):
                    continue
                new = (torch.rand(p.shape, generator=gen, dtype=torch.float64) * 2 - 1) * bound
                p.copy_(new.to(p.dtype))


def _copy_model(model: Model) -> Model:
    if not isinstance(model.net, nn.Module):
        raise InputError(
            "the sanity check randomises the network's weights, so it needs an nn.Module; this "
            f"model wraps a {type(model.net).__name__} (load the PyTorch version of the model)"
        )
    return copy.deepcopy(model)


def _similarities(ref: torch.Tensor, maps: torch.Tensor, k: float) -> dict[str, torch.Tensor]:
    out = {
        "spearman_abs": spearman(ref, maps),
        "spearman": spearman(ref, maps, absolute=False),
        "topk": topk_intersection(ref, maps, k),
    }
    h, w = int(ref.shape[-2]), int(ref.shape[-1])
    out["ssim"] = ssim(ref, maps) if min(h, w) >= 7 else torch.full((len(ref),), float("nan"))
    return {k2: out[k2] for k2 in SIMILARITIES}


def sanity_check(
    model: Model | nn.Module,
    x: torch.Tensor,
    method: str,
    *,
    target: int | torch.Tensor | None = None,
    seed: int | None = None,
    config: SanityConfig | None = None,
    **params: Any,
) -> SanityResult:
    """Model-parameter randomisation check (cascading and independent) for one method.

    Args:
        model: a :class:`robustcv.Model` or an ``nn.Module`` (copied, never modified).
        x: images under the image contract.
        method: a registered method name (``robustcv list methods``).
        target: classes to explain (None: the trained model's predictions); the same classes
            are explained for every randomised copy.
        seed: seeds the random weights, the method's sampling and the null pairing (None: 0).
        config: :class:`SanityConfig` (None: defaults).
        **params: the method's parameters.

    Returns:
        The :class:`SanityResult` (per-layer curves, final similarity, verdict).

    Raises:
        InputError: bad images, method, parameters or layer names; a model that is not an
            ``nn.Module``.

    Example:
        >>> net = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 3))
        >>> x = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
        >>> r = sanity_check(net, x, "saliency", seed=0)
        >>> r.layers, len(r.cascading["spearman_abs"]), r.cascading["spearman_abs"][0]
        (['3', '1'], 3, 1.0)
    """
    start = time.perf_counter()
    cfg = config if config is not None else SanityConfig()
    if not isinstance(cfg, SanityConfig):
        raise InputError("config must be a SanityConfig, e.g. SanityConfig(threshold=0.5)")
    name = check_method(method)
    wrapped, xs, s = prepare(model, x, seed)
    if len(xs) < 2:
        raise InputError("the sanity check needs at least 2 images (it pairs images for its null)")
    if not isinstance(wrapped.net, nn.Module):
        _copy_model(wrapped)
    net: nn.Module = wrapped.net  # type: ignore[assignment]
    known = randomizable_layers(net)
    if cfg.layers is None:
        layers = known
    else:
        unknown = [n for n in cfg.layers if n not in known]
        if unknown:
            raise InputError(
                f"layers {unknown} are not randomisable layers of the model; choose from {known}"
            )
        layers = [n for n in known if n in cfg.layers]
    if not layers:
        raise InputError(
            "the model has no layer with a weight of >= 2 dimensions (conv or linear) to randomise"
        )
    top_down = list(reversed(layers))
    targets = targets_for(wrapped, xs, target)

    def maps_of(m: Model) -> torch.Tensor:
        return explain(m, xs, targets, method=name, seed=s, **params).maps

    ref = maps_of(wrapped)
    cascading: dict[str, list[float]] = {k: [] for k in SIMILARITIES}
    independent: dict[str, list[float]] = {k: [] for k in SIMILARITIES}
    final_raw: dict[str, torch.Tensor] = {}
    if "cascading" in cfg.modes:
        for k in SIMILARITIES:
            cascading[k].append(1.0)
        copy_m = _copy_model(wrapped)
        for j, layer in enumerate(top_down):
            randomize_layers(copy_m.net, [layer], s)  # type: ignore[arg-type]
            sims = _similarities(ref, maps_of(copy_m), cfg.k)
            for k in SIMILARITIES:
                cascading[k].append(float(sims[k].mean()))
            if j == len(top_down) - 1:
                final_raw = sims
    if "independent" in cfg.modes:
        for layer in top_down:
            copy_m = _copy_model(wrapped)
            randomize_layers(copy_m.net, [layer], s)  # type: ignore[arg-type]
            sims = _similarities(ref, maps_of(copy_m), cfg.k)
            for k in SIMILARITIES:
                independent[k].append(float(sims[k].mean()))
            if not final_raw and len(top_down) == 1:
                final_raw = sims
    if not final_raw:  # independent only: randomise everything once for the verdict
        copy_m = _copy_model(wrapped)
        randomize_layers(copy_m.net, top_down, s)  # type: ignore[arg-type]
        final_raw = _similarities(ref, maps_of(copy_m), cfg.k)
    gen = torch.Generator().manual_seed(derive_seed(s, "sanity-null"))
    perm = (torch.arange(len(xs)) + 1 + torch.randint(len(xs) - 1, (1,), generator=gen)) % len(xs)
    null = float(spearman(ref, ref[perm]).mean())
    final = {k: mean_ci(v) for k, v in final_raw.items()}
    value = float(final["spearman_abs"]["value"])
    passed = value < cfg.threshold
    verdict = (
        f"{name} {'passes' if passed else 'FAILS'}: after randomising all {len(top_down)} "
        f"layers its maps keep a mean |map| Spearman correlation of {value:.3f} with the trained "
        f"model's ({'<' if passed else '>='} {cfg.threshold:g}; different images: {null:.3f})"
    )
    notes = [
        "layers randomised top (output) down: weight and bias uniform in +-1/sqrt(fan_in), "
        "seeded by (seed, layer); normalisation layers keep their trained statistics",
        "targets: the trained model's classes, the same for every randomised copy",
        f"top-k intersection with k = {cfg.k:g} of the pixels; SSIM on min-max scaled |map|",
    ]
    return SanityResult(
        method=name,
        params=dict(params),
        n=len(xs),
        layers=top_down,
        cascading=cascading if "cascading" in cfg.modes else {},
        independent=independent if "independent" in cfg.modes else {},
        final=final,
        null_spearman_abs=null,
        threshold=cfg.threshold,
        passed=passed,
        verdict=verdict,
        notes=notes,
        seconds=time.perf_counter() - start,
    )


@dataclass(frozen=True)
class LabelRandomizationConfig:
    """Settings of :func:`label_randomization_check`.

    Attributes:
        steps: optimiser steps of the fine-tuning on permuted labels.
        batch_size: images per step.
        lr: Adam learning rate.
        threshold: a method fails when the mean |map| Spearman correlation between the maps of
            the trained model and of the fine-tuned copy is >= this.
        k: top-k share of pixels for the top-k intersection.
    """

    steps: int = 200
    batch_size: int = 64
    lr: float = 1e-3
    threshold: float = 0.5
    k: float = 0.1

    def __post_init__(self) -> None:
        for key in ("steps", "batch_size"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InputError(f"{key} must be an int >= 1, got {v!r}; e.g. {key}=64")
        lr = self.lr
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not 0 < lr < 1:
            raise InputError(f"lr must be a number in (0, 1), got {lr!r}; e.g. lr=1e-3")
        check_fraction(self.threshold, "threshold", open_low=False)
        check_fraction(self.k, "k")


@dataclass
class LabelRandomizationResult(Result):
    """Outcome of the data-randomisation sanity check for one method.

    Attributes:
        method: the method.
        n: images compared.
        similarity: measure -> {value, low, high, n, method} between the trained model's maps
            and the maps of the copy fine-tuned on permuted labels.
        permuted_accuracy: the copy's accuracy on the permuted training labels (how far the
            fine-tuning got: near chance means the copy barely moved).
        true_accuracy: the copy's accuracy on the true training labels.
        threshold: the failure threshold on ``similarity["spearman_abs"]["value"]``.
        passed: True when the maps changed enough.
        verdict: one sentence.
        notes: how.
    """

    method: str
    n: int
    similarity: dict[str, dict[str, Any]]
    permuted_accuracy: float
    true_accuracy: float
    threshold: float
    passed: bool
    verdict: str
    notes: list[str] = field(default_factory=list)


def label_randomization_check(
    model: Model | nn.Module,
    x: torch.Tensor,
    method: str,
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    *,
    target: int | torch.Tensor | None = None,
    seed: int | None = None,
    config: LabelRandomizationConfig | None = None,
    **params: Any,
) -> LabelRandomizationResult:
    """Data-randomisation sanity check: maps after fine-tuning a copy on permuted labels.

    A copy of the model is fine-tuned (Adam, cross-entropy) on ``train_x`` with its labels
    permuted by a seeded generator, in eval mode (dropout off, batch-norm statistics frozen:
    the only randomness is the seeded permutation and batch order). The maps of ``x`` for the
    trained model's classes are then compared with the trained model's maps. A method whose maps
    survive the destruction of the label signal fails (Adebayo et al. 2018). The caller's model
    is never modified.

    Example:
        >>> net = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 2))
        >>> gen = torch.Generator().manual_seed(0)
        >>> tx = torch.rand(32, 1, 4, 4, generator=gen)
        >>> ty = torch.randint(0, 2, (32,), generator=gen)
        >>> cfg = LabelRandomizationConfig(steps=5, batch_size=8)
        >>> r = label_randomization_check(net, tx[:4], "saliency", tx, ty, config=cfg)
        >>> sorted(r.similarity)
        ['spearman', 'spearman_abs', 'ssim', 'topk']
    """
    cfg = config if config is not None else LabelRandomizationConfig()
    if not isinstance(cfg, LabelRandomizationConfig):
        raise InputError(
            "config must be a LabelRandomizationConfig, e.g. LabelRandomizationConfig()"
        )
    name = check_method(method)
    wrapped, xs, s = prepare(model, x, seed)
    _, tx, _ = prepare(wrapped, train_x, s)
    if (
        not isinstance(train_y, torch.Tensor)
        or train_y.shape != (len(tx),)
        or train_y.is_floating_point()
    ):
        raise InputError(f"train_y must be ({len(tx)},) int64 labels, one per training image")
    ty = train_y.to(wrapped.device, torch.int64)
    copy_m = _copy_model(wrapped)
    net: nn.Module = copy_m.net  # type: ignore[assignment]
    targets = targets_for(wrapped, xs, target)
    gen = torch.Generator().manual_seed(derive_seed(s, "label-randomization"))
    perm_y = ty[torch.randperm(len(ty), generator=gen).to(ty.device)]
    opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=cfg.lr)
    modes = [(m, m.training) for m in net.modules()]
    try:
        net.eval()
        for _ in range(cfg.steps):
            idx = torch.randint(len(tx), (min(cfg.batch_size, len(tx)),), generator=gen)
            idx = idx.to(tx.device)
            with torch.enable_grad():
                loss = F.cross_entropy(copy_m.logits(tx[idx], validate=False), perm_y[idx])
                opt.zero_grad()
                loss.backward()
            opt.step()
    finally:
        for m, flag in modes:
            m.training = flag
    pred = torch.cat(
        [copy_m.predict_logits(tx[i : i + 512]).argmax(1) for i in range(0, len(tx), 512)]
    ).to(ty.device)
    ref = explain(wrapped, xs, targets, method=name, seed=s, **params).maps
    new = explain(copy_m, xs, targets, method=name, seed=s, **params).maps
    sims = {k: mean_ci(v) for k, v in _similarities(ref, new, cfg.k).items()}
    value = float(sims["spearman_abs"]["value"])
    passed = value < cfg.threshold
    return LabelRandomizationResult(
        method=name,
        n=len(xs),
        similarity=sims,
        permuted_accuracy=float((pred == perm_y).float().mean()),
        true_accuracy=float((pred == ty).float().mean()),
        threshold=cfg.threshold,
        passed=passed,
        verdict=(
            f"{name} {'passes' if passed else 'FAILS'}: after fine-tuning on permuted labels its "
            f"maps keep a mean |map| Spearman correlation of {value:.3f} "
            f"({'<' if passed else '>='} {cfg.threshold:g})"
        ),
        notes=[
            f"copy fine-tuned {cfg.steps} Adam steps (lr {cfg.lr:g}, batch {cfg.batch_size}) on "
            f"{len(tx)} images with seeded permuted labels, in eval mode",
            "targets: the trained model's classes",
        ],
    )
