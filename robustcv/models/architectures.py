"""Network architectures used by the model zoo and the training recipes.

Architectures are registered by name; ``build_architecture(name, **kw)`` creates a fresh,
randomly initialised network (seed it with ``torch.manual_seed`` or pass weights afterwards).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from robustcv.core.contract import check_images
from robustcv.core.errors import InputError
from robustcv.core.model import Model
from robustcv.core.registry import Registry

__all__ = ["ARCHITECTURES", "BagNet", "SmallCNN", "bagnet_evidence", "build_architecture"]

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


class BagNet(nn.Module):
    """A bag-of-local-features classifier: class evidence per 9x9 patch, averaged over space.

    As in BagNet (Brendel & Bethge 2019), every output location sees only a small patch: three
    3x3 convolutions (the second with stride 2; batch norm after each) give a 9x9-pixel
    receptive field, a 1x1
    convolution makes local features, and a linear head turns each location's features into
    class evidence. The logits are the spatial mean of that evidence (computed as the head of the
    spatially averaged features, which is the same number because the head is linear), so the
    model cannot use the global layout: shuffling patches larger than the receptive field barely
    changes its answer. ``embed`` gives the averaged local features (the penultimate features);
    :meth:`evidence` gives the per-location class logits (heat maps).

    Args:
        in_channels: image channels.
        num_classes: number of classes.
        width: channels of the first convolution (the others have twice as many).
        hidden: local feature size (the 1x1 convolution's channels).
        image_size: accepted for a uniform signature; any size works.

    Example:
        >>> net = BagNet()
        >>> x = torch.rand(2, 1, 28, 28)
        >>> net(x).shape, net.evidence(x).shape
        (torch.Size([2, 10]), torch.Size([2, 10, 14, 14]))
        >>> bool(torch.allclose(net.evidence(x).mean((2, 3)), net(x), atol=1e-5))
        True
    """

    receptive_field = 9

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        width: int = 16,
        hidden: int = 128,
        image_size: int = 28,
    ) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(),
            nn.Conv2d(2 * width, 2 * width, 3, padding=1),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(),
            nn.Conv2d(2 * width, hidden, 1),
            nn.ReLU(),
        )
        self.embed = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(hidden, num_classes)

    def forward(self, x: Any) -> Any:
        """Logits for preprocessed images: the spatial mean of the class evidence."""
        return self.head(self.embed(self.features(x)))

    def evidence(self, x: torch.Tensor) -> torch.Tensor:
        """Class evidence per location ``(B, K, H', W')`` for preprocessed images.

        Location (i, j) of the map looks at the 9x9 input patch centred on pixel
        ``(2i, 2j)`` (the second convolution has stride 2); its spatial mean is the logits.
        """
        local = self.features(x)
        return (
            torch.einsum("bdhw,kd->bkhw", local, self.head.weight)
            + self.head.bias[None, :, None, None]
        )


ARCHITECTURES.add(
    "bagnet",
    BagNet,
    summary="BagNet-style bag of local features: 9x9-pixel receptive field, class evidence "
    "averaged over space; ~20k parameters",
)


def bagnet_evidence(
    model: Model | BagNet, x: torch.Tensor, *, upsample: bool = False
) -> torch.Tensor:
    """Evidence heat maps of a BagNet: class logits per location, ``(B, K, H', W')``.

    Args:
        model: a :class:`robustcv.Model` wrapping a :class:`BagNet` (its preprocessing is
            applied; ``zoo:fmnist-bagnet``), or a bare :class:`BagNet` (``x`` is fed as is).
        x: images, float32 ``(B,C,H,W)`` in [0, 1] under the image contract.
        upsample: repeat each location over the 2x2 block of pixels that starts at its centre
            pixel, giving maps of the image size (H, W) (nearest neighbour, values unchanged).

    Returns:
        The maps (no gradient); their spatial mean (before upsampling) is the model's logits.

    Raises:
        InputError: the network is not a BagNet.

    Example:
        >>> net = BagNet().eval()
        >>> x = torch.rand(3, 1, 28, 28)
        >>> maps = bagnet_evidence(net, x)  # runs the network in eval mode
        >>> maps.shape, bool(torch.allclose(maps.mean((2, 3)), net(x), atol=1e-5))
        (torch.Size([3, 10, 14, 14]), True)
        >>> bagnet_evidence(net, x, upsample=True).shape
        torch.Size([3, 10, 28, 28])
    """
    net = model.net if isinstance(model, Model) else model
    if not isinstance(net, BagNet):
        raise InputError(
            f"evidence maps need a BagNet (e.g. zoo:fmnist-bagnet), got {type(net).__name__}"
        )
    check_images(x)
    modes = [(m, m.training) for m in net.modules()]
    try:
        net.eval()  # batch norm with its running statistics, as in the model's answers
        with torch.no_grad():
            device = next(net.parameters()).device
            inp = model.preprocess(x.to(device)) if isinstance(model, Model) else x.to(device)
            maps = net.evidence(inp)
    finally:
        for module, flag in modes:
            module.training = flag
    if upsample:
        maps = maps.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
        maps = maps[:, :, : x.shape[2], : x.shape[3]]
    return maps


def build_architecture(name: str, **kwargs: Any) -> nn.Module:
    """Create a registered architecture.

    Example:
        >>> build_architecture("small-cnn", num_classes=3).head.out_features
        3
    """
    return ARCHITECTURES.get(name)(**kwargs)
