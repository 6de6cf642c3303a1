"""Shortcut-cue scan: does a small synthetic mark act as a class trigger?

A **cue** is one kind of synthetic mark (registry :data:`CUES`); a **variant** is the cue at one
size and position. Every variant is an image edit ``clip((1 - M) * x + M * V + A, 0, 1)`` with a
mask ``M``, a value ``V`` (overlay cues: patches, borders, lines, text) and an additive part
``A`` (tint, frequency watermark).

The scan (:func:`cue_scan`) keeps the images the model classifies correctly both as given and
with their background cleared to the background estimate (so cues already in the data do not
compete with the inserted one), inserts every variant into each of them and counts, per
variant and class ``c``, the images of other classes that it sends to ``c``. The **flip-to rate**
of (variant, c) is that count over the number of kept images not of class ``c``; a cue that acts
as a trigger for ``c`` has a rate near 1, a harmless one near 0. Headline:
``top_cue_flip_rate``, the largest flip-to rate over variants and classes (the maximum of many
rates, so it is biased upwards on few images; its interval is the exact binomial interval of
that one variant and class).

Patch positions lie on a grid whose stride equals the patch size (never larger), the last row
and column aligned with the image edge.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from robustcv.core.contract import check_count
from robustcv.core.errors import InputError
from robustcv.core.model import Model
from robustcv.core.registry import Registry
from robustcv.core.results import Result
from robustcv.core.seeding import check_seed
from robustcv.core.stats import Estimate
from robustcv.probes.base import (
    ProbeSpec,
    check_fraction,
    check_inputs,
    int_tuple,
    num_classes,
    predict,
    register_probe,
)
from robustcv.probes.masks import MaskConfig, foreground_masks, only_foreground

__all__ = [
    "CUES",
    "CueKind",
    "CueScanConfig",
    "CueScanResult",
    "CueVariant",
    "VariantCounts",
    "apply_variant",
    "clean_targets",
    "cue_scan",
    "cue_variants",
    "scan_cue",
    "summarise_scan",
]


@dataclass(frozen=True)
class CueVariant:
    """One cue at one size and position: ``out = clip((1 - mask) * x + mask * value + add, 0, 1)``.

    Attributes:
        cue: the cue's registry name.
        label: a short description (``bright-patch 2x2 at (4, 10)``).
        mask: ``(1, 1, H, W)`` float in [0, 1].
        value: ``(1, C, H, W)``.
        add: ``(1, C, H, W)``.
    """

    cue: str
    label: str
    mask: torch.Tensor
    value: torch.Tensor
    add: torch.Tensor


@dataclass(frozen=True)
class CueScanConfig:
    """Parameters of the cue scan.

    Attributes:
        cues: cue names (:data:`CUES`), in scan order.
        patch_sizes: side lengths of the square patches (down to 2 pixels); the position grid
            has the same stride.
        border_width: width of the border frame in pixels (1: the thinnest frame; a frame and
            a full-length line are global edits, and a model may respond to them for a good
            reason, e.g. a frame reads as the outline of a bag).
        line_width: width of the lines in pixels (positions every ``line_width`` pixels).
        tint: amount added to one channel (RGB) or to the grey level (one channel).
        watermark_amplitude: amplitude of the cosine gratings.
        batch_size: images per forward pass.
        top: how many variants the result lists (sorted by flip-to rate).
        mask: how masks are estimated when none are given.
    """

    cues: tuple[str, ...] = (
        "bright-patch",
        "dark-patch",
        "border",
        "tint",
        "line",
        "watermark",
        "text",
    )
    patch_sizes: tuple[int, ...] = (4, 2)
    border_width: int = 1
    line_width: int = 2
    tint: float = 0.2
    watermark_amplitude: float = 0.1
    batch_size: int = 512
    top: int = 10
    mask: MaskConfig = field(default_factory=MaskConfig)

    def __post_init__(self) -> None:
        if isinstance(self.cues, str):
            object.__setattr__(self, "cues", (self.cues,))
        if not self.cues:
            raise InputError(f"CueScanConfig.cues is empty; choose from {', '.join(CUES.names())}")
        object.__setattr__(self, "cues", tuple(CUES.canonical(c) for c in self.cues))
        object.__setattr__(
            self, "patch_sizes", int_tuple(self.patch_sizes, "CueScanConfig.patch_sizes")
        )
        check_count(self.border_width, "CueScanConfig.border_width")
        check_count(self.line_width, "CueScanConfig.line_width")
        check_fraction(self.tint, "CueScanConfig.tint", low=-1.0, high=1.0)
        check_fraction(self.watermark_amplitude, "CueScanConfig.watermark_amplitude")
        check_count(self.batch_size, "CueScanConfig.batch_size")
        check_count(self.top, "CueScanConfig.top")


@dataclass(frozen=True)
class CueKind:
    """A registered cue: ``make(channels, height, width, config) -> variants``."""

    name: str
    make: Callable[[int, int, int, CueScanConfig], list[CueVariant]]
    summary: str


CUES: Registry[CueKind] = Registry("cue")
"""Cue name -> :class:`CueKind`."""


def _cue(name: str, summary: str) -> Callable[[Callable[..., list[CueVariant]]], Any]:
    def deco(fn: Callable[..., list[CueVariant]]) -> Callable[..., list[CueVariant]]:
        CUES.add(name, CueKind(name, fn, summary), summary=summary)
        return fn

    return deco


def _grid(length: int, size: int) -> list[int]:
    """Start positions of a window of ``size`` along ``length`` with stride ``size``."""
    starts = list(range(0, length - size + 1, size))
    if starts[-1] != length - size:
        starts.append(length - size)
    return starts


def _overlay(cue: str, label: str, mask: torch.Tensor, level: float, c: int) -> CueVariant:
    h, w = mask.shape
    m = mask.view(1, 1, h, w).float()
    return CueVariant(cue, label, m, torch.full((1, c, h, w), level), torch.zeros(1, c, h, w))


def _patches(
    cue: str, level: float, c: int, h: int, w: int, cfg: CueScanConfig
) -> list[CueVariant]:
    out = []
    for s in cfg.patch_sizes:
        if s > min(h, w):
            raise InputError(
                f"patch size {s} is larger than the {h}x{w} images; choose "
                f"CueScanConfig.patch_sizes <= {min(h, w)}"
            )
        for r in _grid(h, s):
            for q in _grid(w, s):
                m = torch.zeros(h, w)
                m[r : r + s, q : q + s] = 1.0
                out.append(_overlay(cue, f"{cue} {s}x{s} at ({r}, {q})", m, level, c))
    return out


@_cue("bright-patch", "a white square (sizes patch_sizes) at every grid position")
def _bright(c: int, h: int, w: int, cfg: CueScanConfig) -> list[CueVariant]:
    return _patches("bright-patch", 1.0, c, h, w, cfg)


@_cue("dark-patch", "a black square (sizes patch_sizes) at every grid position")
def _dark(c: int, h: int, w: int, cfg: CueScanConfig) -> list[CueVariant]:
    return _patches("dark-patch", 0.0, c, h, w, cfg)


@_cue("border", "a white or black frame of border_width pixels")
def _border(c: int, h: int, w: int, cfg: CueScanConfig) -> list[CueVariant]:
    b = cfg.border_width
    if 2 * b >= min(h, w):
        raise InputError(f"border_width {b} leaves nothing of {h}x{w} images; choose a smaller one")
    m = torch.ones(h, w)
    m[b:-b, b:-b] = 0.0
    return [
        _overlay("border", f"border {b}px {name}", m, v, c)
        for name, v in (("white", 1.0), ("black", 0.0))
    ]


@_cue("tint", "a colour tint (RGB: one channel raised; grey: brighter or darker)")
def _tint(c: int, h: int, w: int, cfg: CueScanConfig) -> list[CueVariant]:
    zero = torch.zeros(1, 1, h, w)
    out = []
    if c == 3:
        for i, name in enumerate(("red", "green", "blue")):
            add = torch.zeros(1, c, h, w)
            add[:, i] = cfg.tint
            out.append(CueVariant("tint", f"tint {name} +{cfg.tint:g}", zero, add.clone(), add))
    else:
        for sign, name in ((1.0, "brighter"), (-1.0, "darker")):
            add = torch.full((1, c, h, w), sign * cfg.tint)
            out.append(
                CueVariant("tint", f"tint {name} {sign * cfg.tint:+g}", zero, add.clone(), add)
            )
    return out


@_cue("line", "a white or black horizontal or vertical line of line_width pixels")
def _line(c: int, h: int, w: int, cfg: CueScanConfig) -> list[CueVariant]:
    lw = cfg.line_width
    if lw > min(h, w):
        raise InputError(f"line_width {lw} is larger than the {h}x{w} images")
    out = []
    for level, name in ((1.0, "white"), (0.0, "black")):
        for r in _grid(h, lw):
            m = torch.zeros(h, w)
            m[r : r + lw, :] = 1.0
            out.append(_overlay("line", f"line {name} horizontal at row {r}", m, level, c))
        for q in _grid(w, lw):
            m = torch.zeros(h, w)
            m[:, q : q + lw] = 1.0
            out.append(_overlay("line", f"line {name} vertical at column {q}", m, level, c))
    return out


def _watermark_frequencies(h: int, w: int) -> list[tuple[int, int]]:
    """Grating frequencies (cycles per image) from coarse to the finest the grid holds."""
    cand = [(1, 0), (0, 1), (1, 1), (2, 0), (0, 2), (h // 4, 0), (0, w // 4), (h // 4, w // 4)]
    cand += [(h // 2, 0), (0, w // 2), (h // 2, w // 2), (h // 3, w // 6)]
    out: list[tuple[int, int]] = []
    for f in cand:
        if f != (0, 0) and f not in out:
            out.append(f)
    return out


@_cue("watermark", "a faint cosine grating (frequency watermark) at a ladder of frequencies")
def _watermark(c: int, h: int, w: int, cfg: CueScanConfig) -> list[CueVariant]:
    zero = torch.zeros(1, 1, h, w)
    ii = torch.arange(h, dtype=torch.float64).view(h, 1)
    jj = torch.arange(w, dtype=torch.float64).view(1, w)
    out = []
    for u, v in _watermark_frequencies(h, w):
        g = torch.cos(2 * math.pi * (u * ii / h + v * jj / w)).float() * cfg.watermark_amplitude
        add = g.view(1, 1, h, w).expand(1, c, h, w).clone()
        out.append(CueVariant("watermark", f"watermark ({u}, {v}) cycles", zero, add.clone(), add))
    return out


_GLYPH = torch.tensor(
    [
        [1, 1, 1, 0, 1, 0, 1, 1, 1],
        [0, 1, 0, 0, 1, 0, 1, 0, 0],
        [0, 1, 0, 0, 1, 0, 1, 1, 0],
        [0, 1, 0, 0, 1, 0, 1, 0, 0],
        [0, 1, 0, 0, 1, 0, 1, 1, 1],
    ],
    dtype=torch.float32,
)
"""A 5x9 text-like mark (the letters T, I, E) for the ``text`` cue."""


@_cue("text", "a small text-like mark (5x9 pixels, white or black) at every grid position")
def _text(c: int, h: int, w: int, cfg: CueScanConfig) -> list[CueVariant]:
    gh, gw = _GLYPH.shape
    if gh > h or gw > w:
        return []
    out = []
    for level, name in ((1.0, "white"), (0.0, "black")):
        for r in _grid(h, gh):
            for q in _grid(w, gw):
                m = torch.zeros(h, w)
                m[r : r + gh, q : q + gw] = _GLYPH
                out.append(_overlay("text", f"text {name} at ({r}, {q})", m, level, c))
    return out


def cue_variants(
    name: str, shape: Sequence[int], config: CueScanConfig | None = None
) -> list[CueVariant]:
    """Every variant of cue ``name`` for images of shape ``(C, H, W)`` (or ``(B, C, H, W)``).

    Raises:
        InputError: unknown cue (with close matches), or a cue larger than the images.

    Example:
        >>> len(cue_variants("bright-patch", (1, 8, 8), CueScanConfig(patch_sizes=(2,))))
        16
    """
    cfg = config or CueScanConfig()
    c, h, w = (int(s) for s in tuple(shape)[-3:])
    return CUES.get(name).make(c, h, w, cfg)


def apply_variant(x: torch.Tensor, v: CueVariant) -> torch.Tensor:
    """Insert one cue variant into every image of ``x``.

    Example:
        >>> v = cue_variants("bright-patch", (1, 4, 4), CueScanConfig(patch_sizes=(2,)))[0]
        >>> apply_variant(torch.zeros(1, 1, 4, 4), v)[0, 0, :2, :2].tolist()
        [[1.0, 1.0], [1.0, 1.0]]
    """
    m = v.mask.to(x.device)
    return ((1.0 - m) * x + m * v.value.to(x.device) + v.add.to(x.device)).clamp(0.0, 1.0)


@dataclass(frozen=True)
class VariantCounts(Result):
    """Counts of one variant over the kept images.

    Attributes:
        cue: the cue name.
        label: the variant's description.
        flips: images whose prediction left their true class.
        to_class: per class ``c``, kept images of other classes predicted ``c``.
    """

    cue: str
    label: str
    flips: int
    to_class: list[int]


def clean_targets(
    model: Model | Any,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    masks: torch.Tensor | None = None,
    config: CueScanConfig | None = None,
) -> tuple[torch.Tensor, torch.Tensor, str]:
    """The images the scan inserts cues into: ``(x_kept, y_kept, mask_source)``.

    Kept: a non-empty mask, and correct as given and with the background cleared; returned
    with the background cleared.
    """
    cfg = config or CueScanConfig()
    m, x, y = check_inputs(model, x, y)
    mk, source = foreground_masks(x, masks, cfg.mask)
    cleared = only_foreground(x, mk)
    ok = mk.flatten(1).any(1)
    ok &= predict(m, x, cfg.batch_size) == y
    ok &= predict(m, cleared, cfg.batch_size) == y
    return cleared[ok], y[ok], source


def scan_cue(
    model: Model | Any,
    x: torch.Tensor,
    y: torch.Tensor,
    cue: str,
    config: CueScanConfig | None = None,
    *,
    k: int | None = None,
) -> list[VariantCounts]:
    """Counts of every variant of ``cue`` inserted into ``x`` (see :func:`clean_targets`).

    Variants are stacked with images into forward passes of about ``batch_size`` images;
    results do not depend on the batch size.

    Example:
        >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2))
        >>> rows = scan_cue(net, torch.rand(3, 1, 4, 4), torch.tensor([0, 1, 0]), "border",
        ...                 CueScanConfig(border_width=1))
        >>> [r.label for r in rows]
        ['border 1px white', 'border 1px black']
    """
    cfg = config or CueScanConfig()
    if isinstance(x, torch.Tensor) and x.dim() == 4 and x.shape[0] == 0:
        return []  # no kept image: nothing to scan
    m = model if isinstance(model, Model) else check_inputs(model, x, y)[0]
    k = k if k is not None else num_classes(m, x)
    variants = cue_variants(cue, x.shape, cfg)
    n = int(x.shape[0])
    per = max(1, cfg.batch_size // n)
    out: list[VariantCounts] = []
    for i in range(0, len(variants), per):
        chunk = variants[i : i + per]
        batch = torch.cat([apply_variant(x, v) for v in chunk])
        pred = predict(m, batch, cfg.batch_size).view(len(chunk), n)
        for v, p in zip(chunk, pred, strict=True):
            moved = p != y
            hist = torch.bincount(p[moved], minlength=k)[:k]
            out.append(VariantCounts(v.cue, v.label, int(moved.sum()), [int(t) for t in hist]))
    return out


@dataclass(frozen=True)
class CueScanResult(Result):
    """What the scan found.

    Attributes:
        top_cue_flip_rate: the largest flip-to rate over variants and classes, with the exact
            interval of that variant and class (N = kept images not of that class).
        top_cue: the label of that variant ("" when nothing was scanned).
        top_class: the class it sends images to (-1 when nothing was scanned).
        n: kept images (correct as given and with the background cleared).
        n_variants: variants scanned.
        by_cue: per cue, its best variant: ``{cue, variant, to_class, rate, hits, n,
            flip_rate, variants}``.
        top: the ``top`` best variants over all cues, same fields.
        class_counts: kept images per class.
        mask_source: ``given`` or ``estimated``.
        convention: definitions in words.
    """

    top_cue_flip_rate: Estimate
    top_cue: str
    top_class: int
    n: int
    n_variants: int
    by_cue: list[dict[str, Any]]
    top: list[dict[str, Any]]
    class_counts: list[int]
    mask_source: str
    convention: str


def _best(c: VariantCounts, class_counts: list[int], n: int) -> dict[str, Any]:
    best_rate, best_c, best_den = -1.0, -1, 0
    for cls, hits in enumerate(c.to_class):
        den = n - class_counts[cls]
        rate = hits / den if den else 0.0
        if rate > best_rate:
            best_rate, best_c, best_den = rate, cls, den
    return {
        "cue": c.cue,
        "variant": c.label,
        "to_class": best_c,
        "rate": best_rate,
        "hits": c.to_class[best_c] if best_c >= 0 else 0,
        "n": best_den,
        "flip_rate": c.flips / n if n else 0.0,
    }


def summarise_scan(
    counts: Sequence[VariantCounts],
    class_counts: Sequence[int],
    *,
    top: int = 10,
    mask_source: str = "estimated",
) -> CueScanResult:
    """Combine per-variant counts into the scan's result (headline, best per cue, top list).

    Args:
        counts: per-variant counts (:func:`scan_cue`, possibly from several calls).
        class_counts: kept images per class.
        top: how many variants to list.
        mask_source: where the masks came from.

    Example:
        >>> c = [VariantCounts("tint", "tint brighter +0.2", 2, [0, 2])]
        >>> summarise_scan(c, [2, 2]).top_cue_flip_rate.value
        1.0
    """
    cc = [int(v) for v in class_counts]
    n = sum(cc)
    rows = [_best(c, cc, n) for c in counts]
    order = sorted(range(len(rows)), key=lambda i: (-rows[i]["rate"], i))
    by_cue: dict[str, dict[str, Any]] = {}
    n_by_cue: dict[str, int] = {}
    for i in order:
        r = rows[i]
        n_by_cue[r["cue"]] = n_by_cue.get(r["cue"], 0) + 1
        by_cue.setdefault(r["cue"], dict(r))
    for name, r in by_cue.items():
        r["variants"] = n_by_cue[name]
    if rows and rows[order[0]]["n"] > 0:
        b = rows[order[0]]
        head = Estimate.binomial(int(b["hits"]), int(b["n"]))
        top_cue, top_class = str(b["variant"]), int(b["to_class"])
    else:
        head, top_cue, top_class = Estimate(math.nan), "", -1
    return CueScanResult(
        top_cue_flip_rate=head,
        top_cue=top_cue,
        top_class=top_class,
        n=n,
        n_variants=len(rows),
        by_cue=sorted(by_cue.values(), key=lambda r: -r["rate"]),
        top=[rows[i] for i in order[:top]],
        class_counts=cc,
        mask_source=mask_source,
        convention=(
            "cues are inserted into images classified correctly as given and with the "
            "background cleared to its estimate; flip-to rate of (variant, class c) = images of "
            "other classes sent to c / images of other classes; top_cue_flip_rate = the largest "
            "such rate (a maximum over many rates: biased upwards on few images); patch "
            "positions on a grid with stride = patch size"
        ),
    )


def cue_scan(
    model: Model | Any,
    x: torch.Tensor,
    y: torch.Tensor,
    config: CueScanConfig | None = None,
    *,
    masks: torch.Tensor | None = None,
    seed: int = 0,
) -> CueScanResult:
    """Scan every cue of ``config.cues`` for a class trigger (see the module docstring).

    Args:
        model: a :class:`robustcv.Model` (an ``nn.Module`` is wrapped).
        x: images, float32 ``(B,C,H,W)`` in [0, 1].
        y: labels ``(B,)``.
        config: parameters (defaults when None).
        masks: foreground masks from the data; estimated when None.
        seed: unused (the scan is deterministic); accepted for a uniform probe signature.

    Returns:
        A :class:`CueScanResult`.

    Example:
        >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 2))
        >>> x = torch.zeros(4, 1, 8, 8); x[:, :, 2:6, 2:6] = 0.8
        >>> res = cue_scan(net, x, net(x).argmax(1), CueScanConfig(cues=("tint",)))
        >>> res.n_variants
        2
    """
    cfg = config or CueScanConfig()
    check_seed(seed)
    m, x, y = check_inputs(model, x, y)
    k = num_classes(m, x)
    xs, ys, source = clean_targets(m, x, y, masks=masks, config=cfg)
    counts: list[VariantCounts] = []
    for cue in cfg.cues:
        counts += scan_cue(m, xs, ys, cue, cfg, k=k)
    class_counts = torch.bincount(ys, minlength=k)[:k].tolist()
    return summarise_scan(counts, class_counts, top=cfg.top, mask_source=source)


def _run(
    model: Any, x: torch.Tensor, y: torch.Tensor, cfg: CueScanConfig, **kw: Any
) -> CueScanResult:
    return cue_scan(model, x, y, cfg, **kw)


register_probe(
    ProbeSpec(
        "cue-scan",
        CueScanConfig,
        _run,
        "does a small synthetic mark (patch, border, tint, line, watermark, text) act as a class "
        "trigger?",
        needs_masks=True,
    )
)
