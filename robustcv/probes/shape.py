"""Shape vs texture: cue-conflict images, shape bias, silhouettes, edges, 16-class aggregation.

The 16-class aggregation is model-vs-human's 1000-to-16 mean-probability rule.

**Cue-conflict construction** (:func:`cue_conflict`). Geirhos et al. (2019) made cue-conflict
images by style transfer, which needs an ImageNet-trained network and does not exist for an
arbitrary dataset. robustcv uses a construction that needs only foreground masks: image ``i``
(the **shape** class) keeps its silhouette and background, and the inside of its silhouette is
filled with a **texture** made of ``tile x tile`` pieces cut from the object of an image ``j``
of another class, laid out in a random order. Tiling keeps the local statistics of ``j``'s
surface (its texture, at the scale of a few pixels) and destroys its global shape, just as
patch shuffling does; the silhouette keeps ``i``'s outline and destroys its own surface.
A model that decides by outline answers ``y_i``; one that decides by local surface statistics
answers ``y_j``. Why this and not a learned style transfer: it is deterministic given a seed,
batched tensor code, works for grey and colour images of any size, and needs no extra network
or data. Its limit: the shape cue is the outline only (no interior edges), so the shape bias of
a model that uses interior contours is underestimated; the construction is the same for every
model, so models remain comparable.

**Shape bias** (model-vs-human ``ShapeBias``): trials whose shape and texture classes are equal
are dropped; ``s`` = responses equal to the shape class, ``t`` = responses equal to the texture
class; ``shape_bias = s / (s + t)`` (other responses are ignored). Interval: exact binomial on
``s`` of ``s + t``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F

from robustcv.core.contract import check_count
from robustcv.core.errors import InputError
from robustcv.core.model import Model
from robustcv.core.results import Result
from robustcv.core.seeding import check_seed, derive_seed, make_generator
from robustcv.core.stats import Estimate
from robustcv.probes.background import mixed_partners
from robustcv.probes.base import ProbeSpec, check_inputs, predict, register_probe
from robustcv.probes.masks import MaskConfig, background_values, foreground_masks

__all__ = [
    "ShapeBiasResult",
    "ShapeTextureConfig",
    "ShapeTextureResult",
    "aggregate_probabilities",
    "cue_conflict",
    "edges",
    "load_class_mapping",
    "shape_bias",
    "shape_texture",
    "silhouettes",
]


@dataclass(frozen=True)
class ShapeBiasResult(Result):
    """The shape-bias statistic of a set of cue-conflict responses.

    Attributes:
        shape_bias: ``s / (s + t)`` with its exact interval (N = ``s + t``); NaN when no
            response matched either cue.
        shape_fraction: ``s / N`` over kept trials.
        texture_fraction: ``t / N`` over kept trials.
        n: kept trials (shape class != texture class).
        n_dropped: trials dropped because shape == texture.
    """

    shape_bias: Estimate
    shape_fraction: float
    texture_fraction: float
    n: int
    n_dropped: int


def shape_bias(responses: Any, shape_labels: Any, texture_labels: Any) -> ShapeBiasResult:
    """The shape bias of model-vs-human from per-trial responses and the two cue labels.

    Args:
        responses: the observer's decision per trial (class indices, or names).
        shape_labels: the shape class of each trial.
        texture_labels: the texture class of each trial.

    Raises:
        InputError: sequences of different lengths or empty.

    Example:
        >>> r = shape_bias(["cat", "dog", "dog", "car"], ["cat", "cat", "cat", "cat"],
        ...                ["dog", "dog", "dog", "dog"])
        >>> round(r.shape_bias.value, 4), r.n
        (0.3333, 4)
    """
    resp, sh, tx = (
        list(v.tolist() if hasattr(v, "tolist") else v)
        for v in (responses, shape_labels, texture_labels)
    )
    if not (len(resp) == len(sh) == len(tx)) or not resp:
        raise InputError(
            f"responses, shape_labels and texture_labels need the same non-zero length, got "
            f"{len(resp)}, {len(sh)}, {len(tx)}"
        )
    kept = [(r, s, t) for r, s, t in zip(resp, sh, tx, strict=True) if s != t]
    n = len(kept)
    s = sum(r == sl for r, sl, _ in kept)
    t = sum(r == tl for r, _, tl in kept)
    est = Estimate.binomial(s, s + t) if s + t else Estimate(math.nan, n=0)
    return ShapeBiasResult(
        est, s / n if n else math.nan, t / n if n else math.nan, n, len(resp) - n
    )


def _texture_canvas(
    img: torch.Tensor, mask: torch.Tensor, tile: int, h: int, w: int, gen: torch.Generator
) -> torch.Tensor:
    """A ``(C, h, w)`` canvas of random ``tile x tile`` pieces of ``img`` inside ``mask``."""
    c = img.shape[0]
    cols = F.unfold(img.unsqueeze(0), tile, stride=1)[0]  # (C*t*t, L)
    inside = F.unfold(mask.float().view(1, 1, *mask.shape[-2:]), tile, stride=1)[0].mean(0)
    pool = cols[:, inside >= 1.0]
    if pool.shape[1] == 0:
        pool = cols[:, inside >= inside.max()]
    gh, gw = -(-h // tile), -(-w // tile)
    pick = torch.randint(0, pool.shape[1], (gh * gw,), generator=gen)
    tiles = pool[:, pick].view(c, tile, tile, gh, gw).permute(0, 3, 1, 4, 2)
    return tiles.reshape(c, gh * tile, gw * tile)[:, :h, :w]


@dataclass(frozen=True)
class ShapeTextureConfig:
    """Parameters of :func:`shape_texture`.

    Attributes:
        tile: side of the texture pieces (smaller than the object; 4 for 28x28 images).
        batch_size: images per forward pass.
        mask: how masks are estimated when none are given.
    """

    tile: int = 4
    batch_size: int = 256
    mask: MaskConfig = field(default_factory=MaskConfig)

    def __post_init__(self) -> None:
        check_count(self.tile, "ShapeTextureConfig.tile")
        check_count(self.batch_size, "ShapeTextureConfig.batch_size")


def cue_conflict(
    x: torch.Tensor,
    y: torch.Tensor,
    masks: torch.Tensor,
    *,
    tile: int = 4,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Cue-conflict images: shape of image ``i``, texture of an image ``j`` of another class.

    Construction and rationale: module docstring. Images whose class is the only one present
    get no partner and are left out.

    Args:
        x: images ``(B,C,H,W)`` in [0, 1].
        y: labels ``(B,)``.
        masks: ``bool (B,1,H,W)`` foreground masks (non-empty).
        tile: side of the texture pieces.
        seed: picks partners and tile order.

    Returns:
        ``(images, shape_labels, texture_labels)``.

    Raises:
        InputError: ``tile`` larger than the images.

    Example:
        >>> x = torch.zeros(2, 1, 8, 8)
        >>> x[:, :, 2:6, 2:6] = torch.tensor([0.25, 0.75]).view(2, 1, 1, 1)
        >>> img, s, t = cue_conflict(x, torch.tensor([0, 1]), x > 0, tile=2)
        >>> s.tolist(), t.tolist(), float(img[0, 0, 3, 3])
        ([0, 1], [1, 0], 0.75)
    """
    h, w = x.shape[-2:]
    tile = check_count(tile, "tile")
    if tile > min(h, w):
        raise InputError(f"tile={tile} is larger than the {h}x{w} images; choose a smaller tile")
    seed = check_seed(seed)
    partner = mixed_partners(
        y, make_generator(derive_seed(seed, "probes", "cue-conflict", "pairs"))
    )
    keep = partner >= 0
    gen = make_generator(derive_seed(seed, "probes", "cue-conflict", "tiles"))
    bg = background_values(x, masks)
    out = []
    for i in torch.nonzero(keep).flatten().tolist():
        j = int(partner[i])
        tex = _texture_canvas(x[j], masks[j], tile, h, w, gen)
        out.append(torch.where(masks[i], tex, bg[i].expand_as(x[i])))
    imgs = torch.stack(out) if out else x[:0]
    return imgs, y[keep], y[partner[keep]]


def _ink(bg: torch.Tensor) -> torch.Tensor:
    """The drawing colour that contrasts with each background: white on dark, black on light."""
    grey = bg.mean(dim=1, keepdim=True)
    return (grey < 0.5).to(bg.dtype).expand_as(bg)


def silhouettes(x: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Filled silhouettes: the mask in one contrasting colour on the background estimate.

    White on a dark background, black on a light one (model-vs-human's silhouettes are black
    on white), so neither the object's colour nor its surface survives.

    Example:
        >>> x = torch.zeros(1, 1, 4, 4); x[0, 0, 1:3, 1:3] = torch.tensor([[0.2, 0.4], [0.6, 0.8]])
        >>> silhouettes(x, x > 0)[0, 0].tolist()[1]
        [0.0, 1.0, 1.0, 0.0]
    """
    bg = background_values(x, masks)
    return torch.where(masks, _ink(bg).expand_as(x), bg.expand_as(x))


def edges(x: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Edge-only images: the Sobel magnitude drawn in a contrasting colour on the background.

    The magnitude of the grey image is scaled per image to [0, 1] and drawn as
    ``bg + (ink - bg) * edge`` (``ink``: white on a dark background, black on a light one).

    Example:
        >>> x = torch.zeros(1, 1, 8, 8); x[0, 0, 2:6, 2:6] = 0.5
        >>> e = edges(x, x > 0)
        >>> float(e[0, 0, 4, 4]), float(e.max())
        (0.0, 1.0)
    """
    grey = x.mean(dim=1, keepdim=True)
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]).view(1, 1, 3, 3)
    pad = F.pad(grey, (1, 1, 1, 1), mode="replicate")
    gx = F.conv2d(pad, kx.to(x))
    gy = F.conv2d(pad, kx.transpose(2, 3).to(x))
    mag = (gx**2 + gy**2).sqrt()
    mag = mag / mag.flatten(1).amax(1).clamp_min(1e-12).view(-1, 1, 1, 1)
    bg = background_values(x, masks)
    return (bg + (_ink(bg) - bg) * mag).clamp(0.0, 1.0)


@dataclass(frozen=True)
class ShapeTextureResult(Result):
    """What :func:`shape_texture` measured.

    Attributes:
        shape_bias: the shape bias on cue-conflict images (see :class:`ShapeBiasResult`).
        shape_fraction: share of cue-conflict decisions equal to the shape class.
        texture_fraction: share equal to the texture class.
        clean_accuracy: accuracy on the images used.
        silhouette_accuracy: accuracy on filled silhouettes (one contrasting colour).
        edge_accuracy: accuracy on edge-only images (Sobel magnitude, contrasting colour).
        n: images used (non-empty mask).
        n_conflict: cue-conflict trials.
        mask_source: ``given`` or ``estimated``.
        construction: how the cue-conflict images were made.
    """

    shape_bias: Estimate
    shape_fraction: float
    texture_fraction: float
    clean_accuracy: Estimate
    silhouette_accuracy: Estimate
    edge_accuracy: Estimate
    n: int
    n_conflict: int
    mask_source: str
    construction: str


def shape_texture(
    model: Model | Any,
    x: torch.Tensor,
    y: torch.Tensor,
    config: ShapeTextureConfig | None = None,
    *,
    masks: torch.Tensor | None = None,
    seed: int = 0,
) -> ShapeTextureResult:
    """Shape bias on cue-conflict images, and silhouette- and edge-only accuracy.

    Args:
        model: a :class:`robustcv.Model` (an ``nn.Module`` is wrapped).
        x: images, float32 ``(B,C,H,W)`` in [0, 1].
        y: labels ``(B,)``.
        config: parameters (defaults when None).
        masks: foreground masks from the data; estimated when None.
        seed: picks cue-conflict partners and tile order.

    Raises:
        InputError: no image with an object, or bad masks.

    Example:
        >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 2))
        >>> x = torch.zeros(4, 1, 8, 8); x[:, :, 2:6, 2:6] = 0.7
        >>> res = shape_texture(net, x, torch.tensor([0, 1, 0, 1]), ShapeTextureConfig(tile=2))
        >>> res.n_conflict
        4
    """
    cfg = config or ShapeTextureConfig()
    seed = check_seed(seed)
    m, x, y = check_inputs(model, x, y)
    mk, source = foreground_masks(x, masks, cfg.mask)
    has = mk.flatten(1).any(1)
    if not bool(has.any()):
        raise InputError(
            "no image has a foreground object (every mask is empty); pass masks= from the data "
            "or lower MaskConfig.threshold"
        )
    x, y, mk = x[has], y[has], mk[has]
    n = int(y.shape[0])
    imgs, s_lab, t_lab = cue_conflict(x, y, mk, tile=cfg.tile, seed=seed)
    resp = predict(m, imgs, cfg.batch_size) if imgs.shape[0] else y[:0]
    sb = (
        shape_bias(resp, s_lab, t_lab)
        if imgs.shape[0]
        else ShapeBiasResult(Estimate(math.nan, n=0), math.nan, math.nan, 0, 0)
    )

    def acc(images: torch.Tensor) -> Estimate:
        return Estimate.binomial(int((predict(m, images, cfg.batch_size) == y).sum()), n)

    return ShapeTextureResult(
        shape_bias=sb.shape_bias,
        shape_fraction=sb.shape_fraction,
        texture_fraction=sb.texture_fraction,
        clean_accuracy=acc(x),
        silhouette_accuracy=acc(silhouettes(x, mk)),
        edge_accuracy=acc(edges(x, mk)),
        n=n,
        n_conflict=int(imgs.shape[0]),
        mask_source=source,
        construction=(
            f"silhouette of image i filled with {cfg.tile}x{cfg.tile} tiles of the object of an "
            "image j of another class (random order), on i's background estimate; shape = y_i, "
            "texture = y_j; shape_bias = s / (s + t)"
        ),
    )


def load_class_mapping(path: str | Path) -> dict[str, list[int]]:
    """Read a category -> source-class-indices mapping (JSON object of lists of ints).

    The file is ``{"airplane": [404], "bear": [294, 295, 296, 297], ...}``: for model-vs-human,
    the 16 entry-level categories and their ImageNet indices (robustcv does not ship that list;
    write it from the model-vs-human or texture-vs-shape sources).

    Raises:
        InputError: missing file, invalid JSON, or entries that are not lists of ints >= 0.

    Example:
        >>> import json, tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "m.json")
        >>> _ = open(p, "w").write(json.dumps({"a": [0, 1], "b": [2]}))
        >>> load_class_mapping(p)
        {'a': [0, 1], 'b': [2]}
    """
    p = Path(path)
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise InputError(f"class mapping file {p} does not exist; pass a JSON file") from err
    except (OSError, ValueError) as err:
        raise InputError(f"class mapping file {p} is not valid JSON: {err}") from err
    return _check_mapping(raw, str(p))


def _check_mapping(raw: Any, where: str) -> dict[str, list[int]]:
    if not isinstance(raw, Mapping) or not raw:
        raise InputError(f"{where}: the mapping must be a non-empty object {{category: [indices]}}")
    out: dict[str, list[int]] = {}
    for k, v in raw.items():
        if (
            not isinstance(v, Sequence)
            or isinstance(v, str)
            or not v
            or not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in v)
        ):
            raise InputError(
                f"{where}: category '{k}' must map to a non-empty list of class indices >= 0, "
                f"got {v!r}"
            )
        out[str(k)] = [int(i) for i in v]
    return out


def aggregate_probabilities(
    probs: torch.Tensor, mapping: Mapping[str, Sequence[int]]
) -> tuple[torch.Tensor, list[str]]:
    """Aggregate source-class probabilities into categories by their **mean** (model-vs-human).

    Args:
        probs: ``(B, K)`` softmax probabilities over the source classes (e.g. 1000).
        mapping: category -> source class indices (:func:`load_class_mapping`).

    Returns:
        ``((B, M) category scores, category names)``; the decision is their argmax.

    Raises:
        InputError: ``probs`` not 2-D, or an index outside ``[0, K)``.

    Example:
        >>> p = torch.tensor([[0.1, 0.3, 0.6]])
        >>> scores, names = aggregate_probabilities(p, {"a": [0, 1], "b": [2]})
        >>> [round(v, 3) for v in scores[0].tolist()], names
        ([0.2, 0.6], ['a', 'b'])
    """
    if not isinstance(probs, torch.Tensor) or probs.dim() != 2:
        raise InputError("probs must be a (B, K) tensor of probabilities; apply softmax to logits")
    mp = _check_mapping(dict(mapping), "mapping")
    k = int(probs.shape[1])
    bad = {c: [i for i in idx if i >= k] for c, idx in mp.items()}
    bad = {c: v for c, v in bad.items() if v}
    if bad:
        raise InputError(
            f"the mapping names class indices beyond the model's {k} classes: {bad}; check that "
            "the mapping was written for this model's class order"
        )
    names = list(mp)
    cols = [probs[:, mp[c]].mean(dim=1) for c in names]
    return torch.stack(cols, dim=1), names


def _run(
    model: Any, x: torch.Tensor, y: torch.Tensor, cfg: ShapeTextureConfig, **kw: Any
) -> ShapeTextureResult:
    return shape_texture(model, x, y, cfg, **kw)


register_probe(
    ProbeSpec(
        "shape-texture",
        ShapeTextureConfig,
        _run,
        "does the model decide by shape (outline) or by texture (local surface statistics)?",
        needs_masks=True,
    )
)
