"""Locality: accuracy when the image is cut into a k x k grid of tiles and the tiles shuffled.

A model that decides from a bag of local features keeps its accuracy under shuffling; one that
needs the global layout loses it. ``k = 1`` leaves the image unchanged (one tile), so its
accuracy equals the clean accuracy exactly.

Sizes that ``k`` does not divide: the top-left ``k*floor(H/k) x k*floor(W/k)`` region is cut
into ``k x k`` equal tiles of ``floor(H/k) x floor(W/k)`` pixels and shuffled; the remaining
``H mod k`` bottom rows and ``W mod k`` right columns stay in place (the result states how many
pixels that is).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from robustcv.core.contract import check_count, check_images
from robustcv.core.errors import InputError
from robustcv.core.model import Model
from robustcv.core.results import Result
from robustcv.core.seeding import check_seed, derive_seed, make_generator
from robustcv.core.stats import Estimate
from robustcv.probes.base import ProbeSpec, check_inputs, int_tuple, predict, register_probe

__all__ = [
    "PatchShuffleConfig",
    "PatchShuffleResult",
    "patch_shuffle",
    "patch_shuffle_accuracy",
    "tile_permutations",
]


def tile_permutations(n: int, k: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` random permutations of ``k*k`` tiles, shape ``(n, k*k)`` (one per image).

    Example:
        >>> tile_permutations(2, 1, make_generator(0)).tolist()
        [[0], [0]]
    """
    return torch.rand(n, k * k, generator=generator).argsort(dim=1)


def patch_shuffle(x: torch.Tensor, k: int, perms: torch.Tensor) -> torch.Tensor:
    """Shuffle the ``k x k`` tiles of each image with its permutation ``perms[i]``.

    Args:
        x: images ``(B,C,H,W)``.
        k: tiles per side, ``1 <= k <= min(H, W)``.
        perms: ``(B, k*k)`` permutations (:func:`tile_permutations`).

    Returns:
        The shuffled images (non-dividing sizes: see the module docstring).

    Raises:
        InputError: ``k`` larger than the image or ``perms`` of the wrong shape.

    Example:
        >>> x = torch.arange(16.0).view(1, 1, 4, 4) / 16
        >>> y = patch_shuffle(x, 2, torch.tensor([[3, 2, 1, 0]]))
        >>> (y[0, 0, :2, :2] * 16).tolist()
        [[10.0, 11.0], [14.0, 15.0]]
    """
    x = check_images(x)
    b, c, h, w = x.shape
    k = check_count(k, "k")
    if k > min(h, w):
        raise InputError(
            f"k={k} is larger than the {h}x{w} images; choose k <= {min(h, w)} (k tiles per side)"
        )
    if tuple(perms.shape) != (b, k * k):
        raise InputError(f"perms has shape {tuple(perms.shape)}; pass ({b}, {k * k})")
    th, tw = h // k, w // k
    hh, ww = th * k, tw * k
    region = x[:, :, :hh, :ww]
    tiles = (
        region.reshape(b, c, k, th, k, tw).permute(0, 2, 4, 1, 3, 5).reshape(b, k * k, c, th, tw)
    )
    idx = perms.to(x.device).view(b, k * k, 1, 1, 1).expand(-1, -1, c, th, tw)
    shuffled = tiles.gather(1, idx)
    back = shuffled.view(b, k, k, c, th, tw).permute(0, 3, 1, 4, 2, 5).reshape(b, c, hh, ww)
    out = x.clone()
    out[:, :, :hh, :ww] = back
    return out


@dataclass(frozen=True)
class PatchShuffleConfig:
    """Parameters of :func:`patch_shuffle_accuracy`.

    Attributes:
        ks: tiles per side to evaluate (1 = the clean images).
        batch_size: images per forward pass.
    """

    ks: tuple[int, ...] = (1, 2, 4, 7)
    batch_size: int = 256

    def __post_init__(self) -> None:
        object.__setattr__(self, "ks", int_tuple(self.ks, "PatchShuffleConfig.ks"))
        check_count(self.batch_size, "PatchShuffleConfig.batch_size")


@dataclass(frozen=True)
class PatchShuffleResult(Result):
    """Accuracy per ``k``.

    Attributes:
        ks: the grid sizes, as evaluated.
        accuracy: one estimate per ``k``.
        untouched_pixels: per ``k``, pixels per image left in place because ``k`` does not
            divide the size (0 when it divides).
        n: images.
        convention: the rule for non-dividing sizes.
        correct: per-image correctness per ``patch-shuffle@K``, for
            :func:`robustcv.probes.error_consistency`; not in the JSON.
    """

    ks: list[int]
    accuracy: list[Estimate]
    untouched_pixels: list[int]
    n: int
    convention: str
    correct: dict[str, torch.Tensor] = field(default_factory=dict, metadata={"json": False})


def patch_shuffle_accuracy(
    model: Model | Any,
    x: torch.Tensor,
    y: torch.Tensor,
    config: PatchShuffleConfig | None = None,
    *,
    masks: torch.Tensor | None = None,
    seed: int = 0,
) -> PatchShuffleResult:
    """Accuracy under k x k tile shuffling for each ``k`` of ``config.ks``.

    Permutations are drawn for all images at once from a generator seeded by ``(seed, k)``,
    so the numbers do not depend on ``batch_size``.

    Args:
        model: a :class:`robustcv.Model` (an ``nn.Module`` is wrapped).
        x: images, float32 ``(B,C,H,W)`` in [0, 1].
        y: labels ``(B,)``.
        config: parameters (defaults when None).
        masks: unused (uniform probe signature).
        seed: seeds the permutations.

    Raises:
        InputError: a ``k`` larger than the images.

    Example:
        >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 2))
        >>> res = patch_shuffle_accuracy(net, torch.rand(4, 1, 8, 8), torch.tensor([0, 1, 0, 1]),
        ...                              PatchShuffleConfig(ks=(1, 2)))
        >>> res.ks
        [1, 2]
    """
    cfg = config or PatchShuffleConfig()
    seed = check_seed(seed)
    m, x, y = check_inputs(model, x, y)
    b, _, h, w = x.shape
    for k in cfg.ks:
        if k > min(h, w):
            raise InputError(f"k={k} is larger than the {h}x{w} images; choose ks <= {min(h, w)}")
    accs, untouched = [], []
    correct: dict[str, torch.Tensor] = {}
    for k in cfg.ks:
        perms = tile_permutations(
            b, k, make_generator(derive_seed(seed, "probes", "patch-shuffle", k))
        )
        pred = predict(m, patch_shuffle(x, k, perms), cfg.batch_size)
        correct[f"patch-shuffle@{k}"] = pred == y
        accs.append(Estimate.binomial(int((pred == y).sum()), int(b)))
        untouched.append(h * w - (h // k) * k * (w // k) * k)
    return PatchShuffleResult(
        list(cfg.ks),
        accs,
        untouched,
        int(b),
        "the top-left k*floor(H/k) x k*floor(W/k) region is cut into k x k equal tiles and "
        "shuffled (one seeded permutation per image); leftover rows/columns stay in place",
        correct,
    )


def _run(
    model: Any, x: torch.Tensor, y: torch.Tensor, cfg: PatchShuffleConfig, **kw: Any
) -> PatchShuffleResult:
    return patch_shuffle_accuracy(model, x, y, cfg, **kw)


register_probe(
    ProbeSpec(
        "patch-shuffle",
        PatchShuffleConfig,
        _run,
        "does the model need the global layout, or do local patches suffice?",
    )
)
