"""Training recipes as small plug-ins.

A recipe turns a clean training batch into the batch the network is trained on (clean images,
adversarial examples, augmented images ...) and says whether the loop should watch robust
accuracy for catastrophic overfitting. Add a recipe by writing a function with the
:data:`MakeInputs` signature and registering a :class:`Recipe` in :data:`RECIPES`.

The adversarial recipes run the attack engine's own attacks through its runner
(:func:`robustcv.attacks.attack`): ``fgsm-rs`` is the engine's ``fgsm`` with a random start and
a step of 1.25 eps, ``pgd-at`` is the engine's ``pgd``. A fix to those attacks therefore reaches
training too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from robustcv.attacks import attack
from robustcv.core.model import Model
from robustcv.core.registry import Registry

__all__ = ["RECIPES", "MakeInputs", "Recipe", "RecipeParams", "attack_seed"]


@dataclass(frozen=True)
class RecipeParams:
    """Threat-model settings a recipe may use.

    Attributes:
        eps: L-inf radius for adversarial recipes.
        alpha: attack step size; None picks the recipe's default (1.25 eps for fgsm-rs,
            2.5 eps / steps for pgd-at).
        steps: attack steps for pgd-at (at most 7 keeps it within the time budget).
    """

    eps: float = 0.1
    alpha: float | None = None
    steps: int = 7


MakeInputs = Callable[
    [Model, torch.Tensor, torch.Tensor, RecipeParams, torch.Generator], torch.Tensor
]


@dataclass(frozen=True)
class Recipe:
    """A training recipe: how to build the training inputs, and whether it is adversarial."""

    name: str
    make_inputs: MakeInputs
    adversarial: bool
    summary: str
    default_epochs: int


def _standard(
    model: Model, x: torch.Tensor, y: torch.Tensor, p: RecipeParams, g: torch.Generator
) -> torch.Tensor:
    return x


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
    res = attack(
        model,
        x,
        y,
        "fgsm",
        eps=p.eps,
        seed=attack_seed(g),
        random_start=True,
        rel_step=alpha / p.eps,
    )
    return res.x_adv.to(x.device)


def _pgd_at(
    model: Model, x: torch.Tensor, y: torch.Tensor, p: RecipeParams, g: torch.Generator
) -> torch.Tensor:
    # the engine's pgd: random start, step alpha (default 2.5 eps / steps); a sample keeps its
    # first adversarial iterate (and is attacked no further), else its highest-loss iterate
    alpha = p.alpha if p.alpha is not None else 2.5 * p.eps / p.steps
    res = attack(
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
    )
    return res.x_adv.to(x.device)


RECIPES: Registry[Recipe] = Registry("recipe")
for _recipe in (
    Recipe("standard", _standard, False, "cross-entropy on clean images", 12),
    Recipe(
        "fgsm-rs",
        _fgsm_rs,
        True,
        "FGSM with random start (Wong et al. 2020), step 1.25 eps, catastrophic-overfitting check",
        12,
    ),
    Recipe(
        "pgd-at",
        _pgd_at,
        True,
        "PGD adversarial training (Madry et al. 2018), random start, step 2.5 eps / steps",
        4,
    ),
):
    RECIPES.add(_recipe.name, _recipe, summary=_recipe.summary)
