"""Training: recipes as plug-ins that may own the loss, and one seeded, resumable loop.

Recipes: standard, fgsm-rs, pgd-at, trades, gaussian, patch-gaussian, augmix, rotation-aux,
simclr, randconv, distortion (``robustcv list recipes``).
"""

from robustcv.training import augmix as _augmix  # noqa: F401  (registers augmix)
from robustcv.training import randomize as _randomize  # noqa: F401  (randconv, distortion)
from robustcv.training import selfsup as _selfsup  # noqa: F401  (rotation-aux, simclr)
from robustcv.training.loop import TrainConfig, TrainResult, augment_batch, train
from robustcv.training.recipes import (
    RECIPES,
    Recipe,
    RecipeParams,
    StepOutput,
    TrainStep,
    build_recipe_config,
    register_recipe,
)

__all__ = [
    "RECIPES",
    "Recipe",
    "RecipeParams",
    "StepOutput",
    "TrainConfig",
    "TrainResult",
    "TrainStep",
    "augment_batch",
    "build_recipe_config",
    "register_recipe",
    "train",
]
