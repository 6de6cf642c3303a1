"""Network architectures used by the model zoo and the training recipes.

Architectures are registered by name; ``build_architecture(name, **kw)`` creates a fresh,
randomly initialised network (seed it with ``torch.manual_seed`` or pass weights afterwards).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from robustcv.core.registry import Registry

__all__ = ["ARCHITECTURES", "SmallCNN", "build_architecture"]

ARCHITECTURES: Registry[Callable[..., nn.Module]] = Registry("architecture")


class SmallCNN(nn.Module):
    """Two conv blocks and a two-layer head, for 28x28 (or 32x32) inputs.

    ``embed`` (the hidden fully connected layer after its ReLU) gives the penultimate features.

    Args:
        in_channels: image channels.
        num_classes: number of classes.
        width: channels of the first conv block (the second has twice as many).
        hidden: size of the penultimate feature vector.
        image_size: input height/width (square).

    Example:
        >>> import torch
        >>> SmallCNN()(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 10])
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        width: int = 32,
        hidden: int = 128,
        image_size: int = 28,
    ) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
        )
        side = image_size // 4
        self.embed = nn.Sequential(nn.Linear(2 * width * side * side, hidden), nn.ReLU())
        self.head = nn.Linear(hidden, num_classes)

    def forward(self, x: Any) -> Any:
        """Logits for preprocessed images."""
        return self.head(self.embed(self.features(x)))


ARCHITECTURES.add(
    "small-cnn",
    SmallCNN,
    summary="2 conv blocks (32/64 channels) + 128-unit head; ~422k parameters at 28x28",
)


def build_architecture(name: str, **kwargs: Any) -> nn.Module:
    """Create a registered architecture.

    Example:
        >>> build_architecture("small-cnn", num_classes=3).head.out_features
        3
    """
    return ARCHITECTURES.get(name)(**kwargs)
