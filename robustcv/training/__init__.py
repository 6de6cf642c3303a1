"""Training: recipes as plug-ins (standard, fgsm-rs, pgd-at) and one seeded training loop."""

from robustcv.training.loop import TrainConfig, TrainResult, augment_batch, train
from robustcv.training.recipes import RECIPES, Recipe, RecipeParams

__all__ = [
    "RECIPES",
    "Recipe",
    "RecipeParams",
    "TrainConfig",
    "TrainResult",
    "augment_batch",
    "train",
]
