"""Training recipes as small plug-ins that may own the loss.

A recipe is a :class:`Recipe`: a frozen config dataclass of hyperparameters (validated in
``__post_init__``) and functions. The simplest recipes only change the inputs
(``make_inputs``: clean images, adversarial examples, noisy images) and train with
cross-entropy; the others compute the whole loss from the batch (``loss``: TRADES' KL term,
AugMix's Jensen-Shannon consistency, an auxiliary rotation head, SimCLR's NT-Xent), may add
heads on the penultimate features (``heads``) and may pretrain before the supervised epochs
(``phase``). The loop (:func:`robustcv.training.train`) owns everything else: batches,
optimiser, schedule, checkpoints and the model card.

The adversarial recipes run the attack engine's own attacks (:func:`robustcv.attacks.perturb`:
the registered attack, seeding and projection of :func:`robustcv.attacks.attack` without its
two evaluation passes, which training does not need): ``fgsm-rs`` is the engine's ``fgsm``
with a random start and a step of 1.25 eps, ``pgd-at`` is the engine's ``pgd``, ``trades`` the
engine's ``pgd`` on the ``kl`` loss. A fix to those attacks therefore reaches training too.

Add a recipe by writing its config dataclass and a ``make_inputs`` or ``loss`` function and
registering a :class:`Recipe` in :data:`RECIPES` (see docs/training.md).
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from robustcv.attacks import perturb
from robustcv.core.errors import InputError
from robustcv.core.model import Model
from robustcv.core.names import check_param_names
from robustcv.core.registry import Registry

__all__ = [
    "RECIPES",
    "GaussianParams",
    "LossFn",
    "MakeInputs",
    "NoParams",
    "PatchGaussianParams",
    "Recipe",
    "RecipeParams",
    "StepOutput",
    "TradesParams",
    "TrainStep",
    "attack_seed",
    "build_recipe_config",
    "forward_with_features",
    "register_recipe",
    "trades_loss",
]


def _number(value: Any, name: str, *, low: float | None = None, high: float | None = None,
            low_open: bool = False, integer: bool = False) -> None:  # fmt: skip
    """Raise InputError unless ``value`` is a number in the stated range."""
    kind = "an int" if integer else "a number"
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type or value != value:
        raise InputError(f"{name} must be {kind}, got {value!r}")
    if low is not None and (value <= low if low_open else value < low):
        raise InputError(f"{name} must be {'>' if low_open else '>='} {low:g}, got {value!r}")
    if high is not None and value > high:
        raise InputError(f"{name} must be <= {high:g}, got {value!r}")


@dataclass(frozen=True)
class NoParams:
    """The config of a recipe without hyperparameters."""


@dataclass(frozen=True)
class RecipeParams:
    """Threat-model settings of the adversarial recipes (``fgsm-rs``, ``pgd-at``).

    Attributes:
        eps: L-inf radius for adversarial recipes.
        alpha: attack step size; None picks the recipe's default (1.25 eps for fgsm-rs,
            2.5 eps / steps for pgd-at).
        steps: attack steps for pgd-at (at most 7 keeps it within the time budget).

    Example:
        >>> RecipeParams(eps=0.1).steps
        7
    """

    eps: float = 0.1
    alpha: float | None = None
    steps: int = 7

    def __post_init__(self) -> None:
        _number(self.eps, "eps", low=0.0, high=1.0, low_open=True)
        if self.alpha is not None:
            _number(self.alpha, "alpha", low=0.0, low_open=True)
        _number(self.steps, "steps", low=1, high=100, integer=True)


@dataclass(frozen=True)
class TradesParams(RecipeParams):
    """TRADES (Zhang et al. 2019): ``CE(f(x), y) + beta * KL(f(x) || f(x'))``.

    Attributes:
        beta: weight of the robustness (KL) term; the paper's range is [1, 10], larger is more
            robust and less accurate (6 on CIFAR-10, 1 on MNIST).

    Example:
        >>> TradesParams(beta=6.0).beta
        6.0
    """

    beta: float = 6.0

    def __post_init__(self) -> None:
        super().__post_init__()
        _number(self.beta, "beta", low=0.0)


@dataclass(frozen=True)
class GaussianParams:
    """Gaussian noise augmentation: train on ``clip(x + N(0, sigma^2))``.

    Attributes:
        sigma: noise standard deviation in [0, 1] pixel units.
        fraction: share of each batch that gets noise (the rest stays clean).

    Example:
        >>> GaussianParams(sigma=0.1).fraction
        0.5
    """

    sigma: float = 0.1
    fraction: float = 0.5

    def __post_init__(self) -> None:
        _number(self.sigma, "sigma", low=0.0, low_open=True)
        _number(self.fraction, "fraction", low=0.0, high=1.0, low_open=True)


@dataclass(frozen=True)
class PatchGaussianParams:
    """PatchGaussian (Lopes et al. 2019): Gaussian noise inside one random square patch.

    Attributes:
        patch_size: side of the square in pixels (the patch is clipped at the border; its
            centre is uniform over the image).
        max_sigma: each image's sigma is drawn uniformly from [0, max_sigma].

    Example:
        >>> PatchGaussianParams().patch_size
        16
    """

    patch_size: int = 16
    max_sigma: float = 0.5

    def __post_init__(self) -> None:
        _number(self.patch_size, "patch_size", low=1, integer=True)
        _number(self.max_sigma, "max_sigma", low=0.0, low_open=True)


MakeInputs = Callable[[Model, torch.Tensor, torch.Tensor, Any, torch.Generator], torch.Tensor]


@dataclass
class TrainStep:
    """What a recipe's loss sees for one batch.

    Attributes:
        model: the wrapper (normalisation; attacks go through it, in eval mode).
        net: the network being trained (in train mode).
        heads: the recipe's extra heads (trained with the network).
        x: the batch in [0, 1], after the loop's shift/flip augmentation.
        y: labels.
        generator: the recipe's seeded generator (every random draw comes from it).
        epoch: 1-based epoch.
        features: the name of the penultimate module (its output feeds the heads).
    """

    model: Model
    net: nn.Module
    heads: nn.ModuleDict
    x: torch.Tensor
    y: torch.Tensor
    generator: torch.Generator
    epoch: int
    features: str = "embed"

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(logits, penultimate features)`` of ``x`` (in [0, 1]) with gradients."""
        return forward_with_features(self.net, self.model.preprocess(x), self.features)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of ``x`` (in [0, 1]) with gradients."""
        out: torch.Tensor = self.net(self.model.preprocess(x))
        return out


@dataclass
class StepOutput:
    """A recipe's loss for one batch.

    Attributes:
        loss: the scalar to minimise.
        logits: logits whose argmax is compared with ``y`` for the running train accuracy
            (None in phases without class predictions, e.g. SimCLR pretraining).
        parts: named loss terms (floats) for the progress bar and the history.
    """

    loss: torch.Tensor
    logits: torch.Tensor | None
    parts: dict[str, float] = field(default_factory=dict)


LossFn = Callable[[TrainStep, Any], StepOutput]


def forward_with_features(
    net: nn.Module, x: torch.Tensor, layer: str = "embed"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and the flattened output of the submodule ``layer``, in one forward pass.

    Example:
        >>> from robustcv.models.architectures import SmallCNN
        >>> logits, feats = forward_with_features(SmallCNN(), torch.zeros(2, 1, 28, 28))
        >>> tuple(logits.shape), tuple(feats.shape)
        ((2, 10), (2, 128))
    """
    modules = dict(net.named_modules())
    if layer not in modules:
        close = difflib.get_close_matches(layer, [n for n in modules if n], n=3)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise InputError(f"the network has no module '{layer}' for the features{hint}")
    seen: list[torch.Tensor] = []
    handle = modules[layer].register_forward_hook(lambda _m, _i, out: seen.append(out))
    try:
        logits = net(x)
    finally:
        handle.remove()
    if len(seen) != 1:
        raise InputError(f"module '{layer}' ran {len(seen)} times in one forward pass, not once")
    return logits, seen[0].flatten(1)


@dataclass(frozen=True)
class Recipe:
    """A training recipe.

    Attributes:
        name: registry name (a contract: model names and cards use it).
        summary: one line for ``robustcv list recipes``.
        default_epochs: epochs when the user gives none.
        adversarial: the loop watches held-out PGD accuracy (catastrophic overfitting) and
            keeps the best epoch.
        make_inputs: ``(model, x, y, config, generator) -> inputs`` for recipes that only
            change what cross-entropy is computed on.
        loss: ``(step, config) -> StepOutput`` for recipes that own the loss (wins over
            ``make_inputs``).
        config_class: the frozen dataclass of hyperparameters.
        heads: ``(config, feature_dim, num_classes) -> {name: module}``, extra trainable heads.
        reference: the paper and how its hyperparameters were scaled to Fashion-MNIST.
    """

    name: str
    summary: str
    default_epochs: int
    adversarial: bool = False
    make_inputs: MakeInputs | None = None
    loss: LossFn | None = None
    config_class: type = NoParams
    heads: Callable[[Any, int, int], dict[str, nn.Module]] | None = None
    reference: str = ""

    def step(self, step: TrainStep, config: Any) -> StepOutput:
        """The loss of one batch (``loss``, or cross-entropy on ``make_inputs``)."""
        if self.loss is not None:
            return self.loss(step, config)
        xb = step.x
        if self.make_inputs is not None:
            xb = self.make_inputs(step.model, step.x, step.y, config, step.generator)
        step.net.train()
        logits = step.logits(xb)
        return StepOutput(F.cross_entropy(logits, step.y), logits)


def build_recipe_config(recipe: Recipe, params: Mapping[str, Any] | None = None) -> Any:
    """The recipe's config from ``params`` (unknown names get a "did you mean" message).

    Example:
        >>> build_recipe_config(RECIPES.get("trades"), {"beta": 3.0, "eps": 0.1}).beta
        3.0
    """
    params = dict(params or {})
    names = [f.name for f in dataclasses.fields(recipe.config_class)]
    check_param_names(f"recipe '{recipe.name}'", params, names)
    try:
        return recipe.config_class(**params)
    except TypeError as err:  # pragma: no cover - names were checked above
        raise InputError(f"recipe '{recipe.name}': {err}") from err


def attack_seed(generator: torch.Generator) -> int:
    """Draw the engine seed for one batch's attack from the recipe's generator.

    The engine keys each sample's random start by (seed, image content); drawing a fresh seed
    per batch from the training loop's seeded generator keeps runs reproducible while an image
    seen again in a later epoch still gets a new random start.

    Example:
        >>> from robustcv.core.seeding import make_generator
        >>> attack_seed(make_generator(0)) == attack_seed(make_generator(0))
        True
    """
    draw = torch.randint(2**62, (1,), generator=generator, device=generator.device)
    return int(draw.item())


def _standard(
    model: Model, x: torch.Tensor, y: torch.Tensor, p: Any, g: torch.Generator
) -> torch.Tensor:
    return x


# Eval or train mode: adversarial examples are made with the network in EVAL mode. The runner
# (like every robustcv.Model forward pass) switches to eval mode and restores each submodule's
# mode afterwards, so the loop's net.train() state survives. The training-only attacks this
# replaces did the same; it is a legitimate choice (the examples attack the network as it is
# evaluated: batch-norm running statistics, no dropout, no dependence on the rest of the batch),
# so it is kept. small-cnn has neither batch norm nor dropout: there both modes are identical.


def _fgsm_rs(
    model: Model, x: torch.Tensor, y: torch.Tensor, p: RecipeParams, g: torch.Generator
) -> torch.Tensor:
    # FGSM-RS (Wong et al. 2020): uniform start in the eps-ball, one signed-gradient step of
    # alpha (default 1.25 eps), projected into the ball and [0, 1] = the engine's fgsm with a
    # random start and rel_step = alpha / eps
    alpha = p.alpha if p.alpha is not None else 1.25 * p.eps
    return perturb(
        model,
        x,
        y,
        "fgsm",
        eps=p.eps,
        seed=attack_seed(g),
        random_start=True,
        rel_step=alpha / p.eps,
    ).to(x.device)


def _pgd_at(
    model: Model, x: torch.Tensor, y: torch.Tensor, p: RecipeParams, g: torch.Generator
) -> torch.Tensor:
    # the engine's pgd: random start, step alpha (default 2.5 eps / steps); a sample keeps its
    # first adversarial iterate (and is attacked no further), else its highest-loss iterate
    alpha = p.alpha if p.alpha is not None else 2.5 * p.eps / p.steps
    return perturb(
        model,
        x,
        y,
        "pgd",
        eps=p.eps,
        seed=attack_seed(g),
        steps=p.steps,
        rel_step=alpha / p.eps,
        restarts=1,
        random_start=True,
        loss="ce",
        early_stop=True,
    ).to(x.device)


def trades_loss(
    logits_clean: torch.Tensor,
    logits_adv: torch.Tensor,
    y: torch.Tensor,
    beta: float,
) -> tuple[torch.Tensor, dict[str, float]]:
    """TRADES' objective: ``CE(f(x), y) + beta * mean_i KL(p(x_i) || p(x'_i))``.

    The KL term is summed over classes and averaged over the batch (the paper's code sums
    it over the batch and divides by the batch size: the same number).

    Example:
        >>> z = torch.tensor([[2.0, 0.0]])
        >>> loss, parts = trades_loss(z, z, torch.tensor([0]), beta=6.0)
        >>> round(parts["kl"], 6)
        0.0
    """
    ce = F.cross_entropy(logits_clean, y)
    logp_clean = F.log_softmax(logits_clean, dim=1)
    logp_adv = F.log_softmax(logits_adv, dim=1)
    kl = (logp_clean.exp() * (logp_clean - logp_adv)).sum(1).mean()
    return ce + beta * kl, {"ce": float(ce.detach()), "kl": float(kl.detach())}


def _trades(step: TrainStep, p: TradesParams) -> StepOutput:
    # inner maximisation: the engine's pgd on KL(p(x) || p(x')) from a random start in the
    # ball, all steps, highest-divergence iterate kept; in eval mode like the other recipes
    alpha = p.alpha if p.alpha is not None else 2.5 * p.eps / p.steps
    x_adv = perturb(
        step.model,
        step.x,
        step.y,
        "pgd",
        eps=p.eps,
        seed=attack_seed(step.generator),
        steps=p.steps,
        rel_step=alpha / p.eps,
        restarts=1,
        random_start=True,
        loss="kl",
    ).to(step.x.device)
    step.net.train()
    both = step.logits(torch.cat([step.x, x_adv]))
    logits_clean, logits_adv = both[: len(step.y)], both[len(step.y) :]
    loss, parts = trades_loss(logits_clean, logits_adv, step.y, p.beta)
    return StepOutput(loss, logits_clean, parts)


def _gaussian(
    model: Model, x: torch.Tensor, y: torch.Tensor, p: GaussianParams, g: torch.Generator
) -> torch.Tensor:
    noise = torch.randn(x.shape, generator=g, device=g.device).to(x.device)
    pick = (torch.rand(x.shape[0], generator=g, device=g.device) < p.fraction).to(x.device)
    noisy = (x + p.sigma * noise).clamp(0, 1)
    return torch.where(pick.view(-1, 1, 1, 1), noisy, x)


def _patch_gaussian(
    model: Model, x: torch.Tensor, y: torch.Tensor, p: PatchGaussianParams, g: torch.Generator
) -> torch.Tensor:
    b, _, h, w = x.shape
    if p.patch_size > max(h, w):
        raise InputError(
            f"patch_size={p.patch_size} is larger than the {h}x{w} images; pass --param "
            f"patch_size=N with N <= {max(h, w)}"
        )
    dev = g.device
    cy = torch.randint(0, h, (b,), generator=g, device=dev).to(x.device)
    cx = torch.randint(0, w, (b,), generator=g, device=dev).to(x.device)
    sigma = (torch.rand(b, generator=g, device=dev) * p.max_sigma).to(x.device)
    noise = torch.randn(x.shape, generator=g, device=dev).to(x.device)
    half = p.patch_size // 2
    rows = torch.arange(h, device=x.device)
    cols = torch.arange(w, device=x.device)
    top, left = cy - half, cx - half
    in_rows = (rows[None] >= top[:, None]) & (rows[None] < top[:, None] + p.patch_size)
    in_cols = (cols[None] >= left[:, None]) & (cols[None] < left[:, None] + p.patch_size)
    mask = (in_rows[:, :, None] & in_cols[:, None, :])[:, None]  # (b, 1, h, w)
    noisy = (x + sigma.view(-1, 1, 1, 1) * noise).clamp(0, 1)
    return torch.where(mask, noisy, x)


RECIPES: Registry[Recipe] = Registry("recipe")


def register_recipe(recipe: Recipe) -> Recipe:
    """Add a recipe to :data:`RECIPES` (its name must be new); returns it."""
    RECIPES.add(recipe.name, recipe, summary=recipe.summary)
    return recipe


for _recipe in (
    Recipe(
        "standard",
        "cross-entropy on clean images",
        12,
        make_inputs=_standard,
        reference="plain empirical risk minimisation",
    ),
    Recipe(
        "fgsm-rs",
        "FGSM with random start (Wong et al. 2020), step 1.25 eps, catastrophic-overfitting check",
        12,
        adversarial=True,
        make_inputs=_fgsm_rs,
        config_class=RecipeParams,
        reference="Wong, Rice & Kolter 2020 (fast is better than free): alpha = 1.25 eps; "
        "eps 0.1 on Fashion-MNIST (between MNIST's 0.3 and CIFAR's 8/255, the F-MNIST value "
        "of Wong & Kolter's certified training)",
    ),
    Recipe(
        "pgd-at",
        "PGD adversarial training (Madry et al. 2018), random start, step 2.5 eps / steps",
        4,
        adversarial=True,
        make_inputs=_pgd_at,
        config_class=RecipeParams,
        reference="Madry et al. 2018: PGD with random start on cross-entropy; 7 steps of "
        "2.5 eps / 7 (the robustness library's 7 steps; MNIST used 40 steps of 0.01 at eps "
        "0.3) at eps 0.1",
    ),
    Recipe(
        "trades",
        "TRADES (Zhang et al. 2019): CE + beta KL(f(x) || f(x')), x' by PGD on the KL term",
        4,
        adversarial=True,
        loss=_trades,
        config_class=TradesParams,
        reference="Zhang et al. 2019: beta 6 (CIFAR-10; MNIST used 1), 7 PGD steps of "
        "2.5 eps / 7 on KL at eps 0.1; start uniform in the eps-ball (the engine's random "
        "start) instead of x + 0.001 N(0, I)",
    ),
    Recipe(
        "gaussian",
        "Gaussian noise augmentation: half of each batch gets N(0, sigma^2) noise",
        12,
        make_inputs=_gaussian,
        config_class=GaussianParams,
        reference="Gaussian data augmentation (as in randomized smoothing, Cohen et al. 2019, "
        "whose sigmas are 0.12-1.0 on ImageNet); sigma 0.1 on Fashion-MNIST, half of each batch "
        "noisy so clean accuracy is kept",
    ),
    Recipe(
        "patch-gaussian",
        "PatchGaussian (Lopes et al. 2019): Gaussian noise in one random square patch",
        12,
        make_inputs=_patch_gaussian,
        config_class=PatchGaussianParams,
        reference="Lopes et al. 2019: patch centre uniform over the image, sigma ~ U(0, "
        "max_sigma); patch 16 of 28 px (CIFAR used about 25 of 32) and max sigma 0.5",
    ),
):
    register_recipe(_recipe)
# augmix, randconv/distortion, rotation-aux and simclr live in their own modules
# (robustcv.training.augmix, .randomize, .selfsup), which register themselves; the package's
# __init__ imports them, so RECIPES is complete whenever robustcv.training is imported.
