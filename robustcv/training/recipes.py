"""Training recipes as small plug-ins.

A recipe turns a clean training batch into the batch the network is trained on (clean images,
adversarial examples, augmented images ...) and says whether the loop should watch robust
accuracy for catastrophic overfitting. Add a recipe by writing a function with the
:data:`MakeInputs` signature and registering a :class:`Recipe` in :data:`RECIPES`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from robustcv.core.model import Model
from robustcv.core.registry import Registry
from robustcv.training.attacks import fgsm_rs, pgd_linf

__all__ = ["RECIPES", "MakeInputs", "Recipe", "RecipeParams"]


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


def _fgsm_rs(
    model: Model, x: torch.Tensor, y: torch.Tensor, p: RecipeParams, g: torch.Generator
) -> torch.Tensor:
    alpha = p.alpha if p.alpha is not None else 1.25 * p.eps
    return fgsm_rs(model, x, y, eps=p.eps, alpha=alpha, generator=g)


def _pgd_at(
    model: Model, x: torch.Tensor, y: torch.Tensor, p: RecipeParams, g: torch.Generator
) -> torch.Tensor:
    alpha = p.alpha if p.alpha is not None else 2.5 * p.eps / p.steps
    return pgd_linf(model, x, y, eps=p.eps, alpha=alpha, steps=p.steps, generator=g)


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
