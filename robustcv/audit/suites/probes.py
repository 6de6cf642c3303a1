"""Probes suite: what did the model learn? (the library is :mod:`robustcv.probes`).

Background reliance, shortcut cues, shape vs texture, frequency and locality.

Units (one per probe, the cue scan one per cue) run the library functions on seeded subsets of
the evaluated images and store their JSON results; aggregation only rearranges them. The three
headlines sit at the top of the section as estimates: ``background_reliance``, ``shape_bias``
and ``top_cue_flip_rate``. Probes that need foreground masks (background, cue scan, shape vs
texture) estimate them for uniform-background data; on other data they are skipped with the
reason (the headline is then null). Default sizes (``n`` = 500 images for background, shape,
frequency and patch shuffle; 48 images for the cue scan, about 600 variants at 28x28; 24 images
for the Fourier heat map) keep the suite under about 55 CPU-seconds for a Fashion-MNIST zoo
model (docs/probes.md). Not in the default audit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

import numpy as np
import torch

from robustcv.audit import plots
from robustcv.audit.plan import Row, Unit, pack, unpack
from robustcv.audit.suite import (
    CheckSpec,
    EstimateDict,
    Metric,
    Outcome,
    Suite,
    Threshold,
    est_view,
    fmt,
    notes_list,
)
from robustcv.audit.validate import float_tuple, int_tuple, positive_int, str_tuple
from robustcv.core.errors import InputError
from robustcv.core.stats import Estimate

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from robustcv.audit.context import AuditContext

__all__ = ["SUITE", "ProbesConfig", "ProbesSection", "ProbesSuite", "audit_error_consistency"]


class ProbesSection(TypedDict):
    """``suites.probes`` of results.json."""

    background_reliance: EstimateDict
    shape_bias: EstimateDict
    top_cue_flip_rate: EstimateDict
    n: int
    cue_n: int
    fourier_n: int
    background: dict[str, Any] | None
    cue_scan: dict[str, Any] | None
    shape_texture: dict[str, Any] | None
    frequency: dict[str, Any] | None
    patch_shuffle: dict[str, Any] | None
    fourier_heat_map: dict[str, Any] | None
    correct: dict[str, Any]
    examples: dict[str, Any]
    skipped: dict[str, str]
    notes: list[str]


_MASK_PROBES = ("background", "shape", "cue")


@dataclass(frozen=True)
class ProbesConfig:
    """What-did-the-model-learn probes.

    Attributes:
        n: images for background reliance, shape vs texture, frequency and patch shuffling.
        cue_n: images the cue scan inserts cues into (before keeping the correct ones).
        fourier_n: images of the Fourier heat map.
        cues: cue names (``robustcv.probes.CUES``).
        patch_sizes: square cue sizes (the position grid has the same stride).
        cutoffs: low-/high-pass cut-offs in units of the Nyquist frequency.
        ks: patch-shuffle grid sizes.
        fourier_eps: L2 norm of the Fourier-basis perturbation.
        fourier_step: evaluate every step-th frequency (0: 1 up to 32x32 images, then coarser
            so that about 32x32 frequencies are evaluated).
        tile: texture tile size of the cue-conflict images.
        mask_threshold: foreground threshold of the mask estimate.
    """

    n: int = 500
    cue_n: int = 48
    fourier_n: int = 24
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
    cutoffs: tuple[float, ...] = (0.1, 0.2, 0.3, 0.5, 0.7)
    ks: tuple[int, ...] = (1, 2, 4, 7)
    fourier_eps: float = 4.0
    fourier_step: int = 0
    tile: int = 4
    mask_threshold: float = 0.1

    def __post_init__(self) -> None:
        positive_int(self.n, "probes.n")
        positive_int(self.cue_n, "probes.cue_n")
        positive_int(self.fourier_n, "probes.fourier_n")
        positive_int(self.fourier_step, "probes.fourier_step", minimum=0)
        positive_int(self.tile, "probes.tile")
        object.__setattr__(self, "cues", str_tuple(self.cues, "probes.cues"))
        object.__setattr__(self, "patch_sizes", int_tuple(self.patch_sizes, "probes.patch_sizes"))
        object.__setattr__(self, "cutoffs", float_tuple(self.cutoffs, "probes.cutoffs"))
        object.__setattr__(self, "ks", int_tuple(self.ks, "probes.ks"))
        if any(c > 2.0 for c in self.cutoffs):
            raise InputError(
                f"probes.cutoffs are in units of the Nyquist frequency; every bin lies below "
                f"sqrt(2), so use values in (0, 2], got {list(self.cutoffs)}"
            )
        for key, low, high in (("fourier_eps", 0.0, math.inf), ("mask_threshold", 0.0, 1.0)):
            v = getattr(self, key)
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            if not ok or not (low < v <= high if key == "fourier_eps" else low <= v <= high):
                what = "a finite number > 0" if key == "fourier_eps" else "a number in [0, 1]"
                raise InputError(f"probes.{key} must be {what}, got {v!r}")
            object.__setattr__(self, key, float(v))


def _headline(section: Mapping[str, Any], key: str) -> Estimate | None:
    return Estimate.parse(section.get(key))


def _check(key: str, label: str, higher_is_better: bool) -> Any:
    def evaluate(results: Mapping[str, Any], section: Mapping[str, Any], t: Threshold) -> list:
        est = _headline(section, key)
        if est is None:
            why = (section.get("skipped") or {}).get(_SKIP_KEY[key], "it was not measured")
            raise InputError(f"{t.flag}: the results hold no {label} ({why})")
        return [Outcome.judge(t, label, est, higher_is_better=higher_is_better)]

    return evaluate


_SKIP_KEY = {
    "background_reliance": "background",
    "shape_bias": "shape",
    "top_cue_flip_rate": "cue",
}

_TEMPLATE = """{% from "_macros.html.j2" import est, figure, notes %}
<table>
<tr><th>headline</th><th>value</th><th class="small">reads</th></tr>
<tr><td>background reliance</td><td>{{ est(v.background_reliance) }}</td><td class="small muted">0: uses the object; 1: reads the background as well as the whole image</td></tr>
<tr><td>shape bias</td><td>{{ est(v.shape_bias) }}</td><td class="small muted">share of shape decisions among shape-or-texture decisions on cue-conflict images</td></tr>
<tr><td>top cue flip rate</td><td>{{ est(v.top_cue_flip_rate) }}</td><td class="small muted">{% if v.top_cue %}{{ v.top_cue }} &rarr; {{ v.top_class }}{% endif %}</td></tr>
</table>
{% if v.skipped %}<p class="small muted">skipped: {% for k, why in v.skipped %}{{ k }} ({{ why }}){% if not loop.last %}; {% endif %}{% endfor %}</p>{% endif %}
{% if v.background %}<h3>Background reliance</h3>
<table><tr><th>images</th><th>accuracy</th></tr>
{% for row in v.background %}<tr><td>{{ row.label }}</td><td>{{ est(row.est) }}</td></tr>{% endfor %}
</table>
{{ figure(v.background_figure, "accuracy on clean, only-foreground, only-background and mixed images") }}
{% endif %}
{% if v.cues %}<h3>Shortcut-cue scan</h3>
<p class="small">{{ v.cue_n }} correctly classified images (background cleared), {{ v.n_variants }} cue variants; best variant per cue:</p>
<table><tr><th>cue</th><th>best variant</th><th>sends to</th><th class="num">flip-to rate</th><th class="num">any flip</th><th class="num">variants</th></tr>
{% for c in v.cues %}<tr><td class="mono">{{ c.cue }}</td><td class="small">{{ c.variant }}</td><td>{{ c.to_class }}</td><td class="num">{{ c.rate }}</td><td class="num">{{ c.flip_rate }}</td><td class="num">{{ c.variants }}</td></tr>{% endfor %}
</table>
{{ figure(v.cue_examples, "an image with the best variant of each cue, and the model's answer") }}{% endif %}
{% if v.shape %}<h3>Shape vs texture</h3>
<table><tr><th>measure</th><th>value</th></tr>
{% for row in v.shape %}<tr><td>{{ row.label }}</td><td>{% if row.est %}{{ est(row.est) }}{% else %}{{ row.text }}{% endif %}</td></tr>{% endfor %}
</table>
{{ figure(v.conflict_examples, "cue-conflict examples: shape class, texture class and the model's answer") }}{% endif %}
{{ figure(v.curves_figure, "accuracy under low-pass and high-pass filtering and under patch shuffling") }}
{{ figure(v.fourier_figure, "Fourier heat map") }}
{{ notes(v.notes) }}
"""  # noqa: E501

_CARD = """{% from "_macros.html.j2" import est %}
<div class="card"><h3>What the model uses</h3>
<p>background reliance {{ est(v.background_reliance) }}</p>
<p>shape bias {{ est(v.shape_bias) }}</p>
<p>top cue flip rate {{ est(v.top_cue_flip_rate) }}</p></div>
"""


class ProbesSuite(Suite):
    """One unit per probe (the cue scan: one per cue) on seeded subsets of the images."""

    name = "probes"
    title = "What the model learned (probes)"
    description = (
        "background reliance, shortcut-cue scan, shape vs texture, frequency and locality probes"
    )
    config_class = ProbesConfig
    section_type = ProbesSection
    default = False
    in_full = True  # runs at --strength full when no suites are named
    order = 70
    report_template = _TEMPLATE
    card_template = _CARD
    checks = (
        CheckSpec(
            "max-background-reliance",
            "background reliance <= V",
            "V",
            "0.5",
            _check("background_reliance", "background reliance", False),
            fraction=True,
        ),
        CheckSpec(
            "min-shape-bias",
            "shape bias on cue-conflict images >= V",
            "V",
            "0.5",
            _check("shape_bias", "shape bias", True),
            fraction=True,
        ),
        CheckSpec(
            "max-cue-flip-rate",
            "largest share of images one synthetic cue sends to one class <= V",
            "V",
            "0.5",
            _check("top_cue_flip_rate", "top cue flip rate", False),
            fraction=True,
        ),
    )

    # ------------------------------------------------------------------ work
    def validate(self, config: Any, shape: tuple[int, ...]) -> None:
        """Cue names and sizes must fit the images."""
        from robustcv.probes.cues import CUES

        cfg = config.probes
        h, w = int(shape[-2]), int(shape[-1])
        for c in cfg.cues:
            try:
                CUES.canonical(c)
            except InputError as err:
                raise InputError(f"probes.cues: {err}") from err
        for key, values in (
            ("patch_sizes", cfg.patch_sizes),
            ("ks", cfg.ks),
            ("tile", (cfg.tile,)),
        ):
            bad = [v for v in values if v > min(h, w)]
            if bad:
                raise InputError(
                    f"probes.{key}: {bad} larger than the {h}x{w} images; choose values <= "
                    f"{min(h, w)}"
                )

    def _positions(self, ctx: AuditContext, which: str) -> np.ndarray:
        cfg = ctx.config.probes
        n = {"main": cfg.n, "cue": cfg.cue_n, "fourier": cfg.fourier_n}[which]
        return ctx.subset(f"probes-{which}", n)

    def subsample(self, ctx: AuditContext, units: Sequence[Unit]) -> tuple[str, dict[str, Any]]:
        """Images per probe."""
        n = len(self._positions(ctx, "main"))
        c = len(self._positions(ctx, "cue"))
        f = len(self._positions(ctx, "fourier"))
        text = (
            f"probes {n} images (background, shape, frequency, patch shuffle), cue scan on up "
            f"to {c} images, Fourier heat map on {f} images"
        )
        return text, {"probes": n, "probes_cue": c, "probes_fourier": f}

    def plan(self, ctx: AuditContext) -> list[Unit]:
        """background, shape, frequency, patch-shuffle, fourier, and cue/<name> per cue."""
        from robustcv.probes.cues import CUES

        cfg = ctx.config.probes
        n = float(len(self._positions(ctx, "main")))
        c = float(len(self._positions(ctx, "cue")))
        f = float(len(self._positions(ctx, "fourier")))
        h, w = (int(s) for s in ctx.data.x.shape[-2:])
        units = [
            Unit(self.name, "background", 0, {}, cost=4 * n),
            Unit(self.name, "shape", 0, {}, cost=4 * n),
            Unit(self.name, "frequency", 0, {}, cost=(1 + 2 * len(cfg.cutoffs)) * n),
            Unit(self.name, "patch-shuffle", 0, {}, cost=len(cfg.ks) * n),
            Unit(self.name, "fourier", 0, {}, cost=f * h * w / 2 / max(1, self._step(ctx)) ** 2),
        ]
        for name in dict.fromkeys(CUES.canonical(x) for x in cfg.cues):
            units.append(Unit(self.name, f"cue/{name}", 0, {"cue": name}, cost=c * 50))
        return units

    def _step(self, ctx: AuditContext) -> int:
        step = int(ctx.config.probes.fourier_step)
        if step:
            return step
        return max(1, math.ceil(max(int(s) for s in ctx.data.x.shape[-2:]) / 32))

    def _mask_reason(self, x: Any, threshold: float) -> str | None:
        from robustcv.probes.masks import MaskConfig, uniform_background

        ok, share = uniform_background(x, MaskConfig(threshold=threshold))
        if ok:
            return None
        return (
            f"needs foreground masks: the data has none and only {share:.0%} of the images have "
            "a uniform background (at least 90% needed to estimate masks)"
        )

    def run(self, ctx: AuditContext, unit: Unit, deps: Mapping[str, Row]) -> Row:
        """One probe's JSON result (or ``{"skipped": why}``)."""
        from robustcv.probes import background, cues, frequency, locality, shape
        from robustcv.probes.masks import MaskConfig

        cfg = ctx.config.probes
        seed = unit.seed(ctx.seed)
        mask = MaskConfig(threshold=cfg.mask_threshold)
        bs = int(ctx.config.batch_size)
        cond = unit.condition
        which = "cue" if cond.startswith("cue/") else "fourier" if cond == "fourier" else "main"
        x, y = ctx.images(self._positions(ctx, which))
        if cond in ("background", "shape") or cond.startswith("cue/"):
            why = self._mask_reason(x, cfg.mask_threshold)
            if why is not None:
                return {"skipped": why}
        model = ctx.model
        if cond == "background":
            bcfg = background.BackgroundConfig(batch_size=bs, mask=mask)
            return background.background_reliance(model, x, y, bcfg, seed=seed).to_dict()
        if cond == "shape":
            scfg = shape.ShapeTextureConfig(tile=cfg.tile, batch_size=bs, mask=mask)
            row = shape.shape_texture(model, x, y, scfg, seed=seed).to_dict()
            row["examples"] = _conflict_examples(model, x, y, scfg, seed)
            return row
        if cond == "frequency":
            fcfg = frequency.FrequencyConfig(cutoffs=cfg.cutoffs, batch_size=bs)
            fres = frequency.frequency_accuracy(model, x, y, fcfg, seed=seed)
            return {**fres.to_dict(), "correct": _pack_correct(fres.correct)}
        if cond == "patch-shuffle":
            pcfg = locality.PatchShuffleConfig(ks=cfg.ks, batch_size=bs)
            pres = locality.patch_shuffle_accuracy(model, x, y, pcfg, seed=seed)
            return {**pres.to_dict(), "correct": _pack_correct(pres.correct)}
        if cond == "fourier":
            hcfg = frequency.FourierHeatMapConfig(
                eps=cfg.fourier_eps, step=self._step(ctx), batch_size=max(bs, 512)
            )
            return frequency.fourier_heat_map(model, x, y, hcfg, seed=seed).to_dict()
        ccfg = cues.CueScanConfig(
            cues=(unit.params["cue"],),
            patch_sizes=cfg.patch_sizes,
            batch_size=max(bs, 512),
            mask=mask,
        )
        k = ctx.model.num_classes
        xs, ys, source = cues.clean_targets(model, x, y, config=ccfg)
        counts = cues.scan_cue(model, xs, ys, unit.params["cue"], ccfg, k=k)
        class_counts = torch.bincount(ys, minlength=k)[:k].tolist()
        return {
            "counts": [c.to_dict() for c in counts],
            "class_counts": class_counts,
            "mask_source": source,
            "example": _cue_example(model, xs, ys, counts, class_counts, ccfg),
        }

    def aggregate(
        self, ctx: AuditContext, rows: Mapping[str, Row], notes: dict[str, Any]
    ) -> dict[str, Any]:
        """The probes' results side by side, with the three headlines on top."""
        from robustcv.probes.cues import VariantCounts, summarise_scan

        cfg = ctx.config.probes
        classes = [str(c) for c in ctx.data.classes]

        def row(cond: str) -> Row | None:
            return rows.get(f"{self.name}:{cond}#0")

        skipped: dict[str, str] = {}
        correct: dict[str, Any] = {}
        examples: dict[str, Any] = {}
        parts: dict[str, dict[str, Any] | None] = {}
        for cond, key in (
            ("background", "background"),
            ("shape", "shape_texture"),
            ("frequency", "frequency"),
            ("patch-shuffle", "patch_shuffle"),
            ("fourier", "fourier_heat_map"),
        ):
            r = row(cond)
            if r is None or "skipped" in r:
                skipped[cond] = str(r["skipped"]) if r else "not run"
                parts[key] = None
            else:
                parts[key] = {k: v for k, v in r.items() if k not in ("correct", "examples")}
                correct.update(r.get("correct") or {})
                if r.get("examples"):
                    examples["cue_conflict"] = r["examples"]
        cue_rows = sorted((k, r) for k, r in rows.items() if k.startswith(f"{self.name}:cue/"))
        scan: dict[str, Any] | None = None
        if cue_rows and all("skipped" not in r for _, r in cue_rows):
            counts = [VariantCounts(**c) for _, r in cue_rows for c in r["counts"]]
            first = cue_rows[0][1]
            res = summarise_scan(counts, first["class_counts"], mask_source=first["mask_source"])
            scan = res.to_dict()
            scan["top_class_name"] = (
                classes[res.top_class] if 0 <= res.top_class < len(classes) else ""
            )
            cue_examples = {
                r["counts"][0]["cue"]: r.get("example") for _, r in cue_rows if r["counts"]
            }
            examples["cues"] = {c: e for c, e in cue_examples.items() if e}
        elif cue_rows:
            skipped["cue"] = str(next(r["skipped"] for _, r in cue_rows if "skipped" in r))
        for k in skipped:
            notes.setdefault("skipped", {})[f"probes/{k}"] = skipped[k]
        nan = Estimate(math.nan).to_dict()
        bg, sh = parts["background"], parts["shape_texture"]
        return {
            "background_reliance": bg["background_reliance"] if bg else nan,
            "shape_bias": sh["shape_bias"] if sh else nan,
            "top_cue_flip_rate": scan["top_cue_flip_rate"] if scan else nan,
            "n": len(self._positions(ctx, "main")),
            "cue_n": len(self._positions(ctx, "cue")),
            "fourier_n": len(self._positions(ctx, "fourier")),
            "background": bg,
            "cue_scan": scan,
            "shape_texture": sh,
            "frequency": parts["frequency"],
            "patch_shuffle": parts["patch_shuffle"],
            "fourier_heat_map": parts["fourier_heat_map"],
            "correct": correct,
            "examples": examples,
            "skipped": skipped,
            "notes": [
                f"cue scan: {len(cfg.cues)} cues, patch sizes {list(cfg.patch_sizes)} on a grid "
                "of the same stride; masks estimated (threshold, closing, largest connected "
                "component) unless the data has them",
            ],
        }

    # ------------------------------------------------------------------ words and report
    def summary_lines(self, section: Any) -> list[str]:
        """The three headlines."""
        parts = []
        for key, label in (
            ("background_reliance", "background reliance"),
            ("shape_bias", "shape bias"),
            ("top_cue_flip_rate", "top cue flip rate"),
        ):
            e = _headline(section, key)
            parts.append(f"{label} {e.text(3) if e else '-'}")
        lines = ["; ".join(parts)]
        scan = section.get("cue_scan") or {}
        if scan.get("top_cue"):
            lines.append(
                f"top cue: {scan['top_cue']} -> "
                f"{scan.get('top_class_name') or scan.get('top_class')}"
            )
        lines += [f"skipped {k}: {why}" for k, why in (section.get("skipped") or {}).items()]
        return lines

    def card(self, results: Mapping[str, Any], section: Any) -> dict[str, Any] | None:
        """The three headlines."""
        return {k: est_view(section.get(k)) for k in _SKIP_KEY}

    def leaderboard_columns(self, results: Mapping[str, Any], section: Any) -> list[Metric]:
        """The three headlines: background reliance, shape bias, top cue flip rate."""
        keys = {f"probes/{k}" for k in _SKIP_KEY}
        return [m for m in self.metrics(results, section) if m.key in keys]

    def metrics(self, results: Mapping[str, Any], section: Any) -> list[Metric]:
        """Headlines and the patch-shuffle and filter accuracies."""
        out = []
        for key, label, better in (
            ("background_reliance", "background reliance", False),
            ("shape_bias", "shape bias (cue-conflict)", True),
            ("top_cue_flip_rate", "top cue flip rate", False),
        ):
            e = _headline(section, key)
            if e is not None:
                out.append(Metric(f"probes/{key}", label, e, better))
        ps = section.get("patch_shuffle") or {}
        for k, acc in zip(ps.get("ks") or [], ps.get("accuracy") or [], strict=False):
            e = Estimate.parse(acc)
            if e is not None and k != 1:
                out.append(
                    Metric(
                        f"probes/patch_shuffle@{k}",
                        f"accuracy, {k}x{k} tiles shuffled",
                        e,
                        None,
                        True,
                    )
                )
        fr = section.get("frequency") or {}
        for band in ("low_pass", "high_pass"):
            for c, acc in zip(fr.get("cutoffs") or [], fr.get(band) or [], strict=False):
                e = Estimate.parse(acc)
                if e is not None:
                    label = f"accuracy, {band.replace('_', '-')} at {c:g} Nyquist"
                    out.append(Metric(f"probes/{band}@{c:g}", label, e, None, True))
        return out

    def view(
        self, results: Mapping[str, Any], section: Any, folder: Path | None
    ) -> dict[str, Any] | None:
        """Headlines, background bars, cue table, shape table, curves and the heat map."""
        data = results.get("data") or {}
        classes = [str(c) for c in data.get("class_names") or data.get("classes") or []]

        def cname(i: Any) -> str:
            return classes[i] if isinstance(i, int) and 0 <= i < len(classes) else str(i)

        bg = section.get("background") or {}
        bg_raw = [
            (label, bg.get(key))
            for key, label in (
                ("clean_accuracy", "clean"),
                ("only_foreground_accuracy", "only foreground (background cleared)"),
                ("only_background_accuracy", "only background (object removed)"),
                ("mixed_accuracy", "mixed: object of one class on another's background"),
                ("background_follow", "mixed: share classified as the background's class"),
            )
            if Estimate.parse(bg.get(key)) is not None
        ]
        bg_rows = [{"label": label, "est": est_view(obj)} for label, obj in bg_raw]
        scan = section.get("cue_scan") or {}
        cue_rows = [
            {
                "cue": c.get("cue"),
                "variant": c.get("variant"),
                "to_class": cname(c.get("to_class")),
                "rate": fmt(c.get("rate"), 3),
                "flip_rate": fmt(c.get("flip_rate"), 3),
                "variants": c.get("variants"),
            }
            for c in scan.get("by_cue") or []
            if isinstance(c, Mapping)
        ]
        sh = section.get("shape_texture") or {}
        shape_rows = []
        if sh:
            shape_rows = [
                {"label": label, "est": est_view(sh.get(key)), "text": ""}
                for key, label in (
                    ("shape_bias", "shape bias"),
                    ("clean_accuracy", "clean accuracy"),
                    ("silhouette_accuracy", "silhouette accuracy"),
                    ("edge_accuracy", "edge-only accuracy"),
                )
            ]
            shape_rows[1:1] = [
                {"label": label, "est": None, "text": fmt(sh.get(key), 3)}
                for key, label in (
                    ("shape_fraction", "shape decisions (share of cue-conflict trials)"),
                    ("texture_fraction", "texture decisions (share of cue-conflict trials)"),
                )
            ]
        return {
            "background_reliance": est_view(section.get("background_reliance")),
            "shape_bias": est_view(section.get("shape_bias")),
            "top_cue_flip_rate": est_view(section.get("top_cue_flip_rate")),
            "top_cue": scan.get("top_cue") or "",
            "top_class": cname(scan.get("top_class")),
            "skipped": sorted((section.get("skipped") or {}).items()),
            "background": bg_rows,
            "background_figure": _bars(bg_raw) if bg_raw else None,
            "cues": cue_rows,
            "cue_n": scan.get("n"),
            "n_variants": scan.get("n_variants"),
            "shape": shape_rows,
            "cue_examples": _examples_figure(
                [
                    (e, f"{cue}\n{cname(e.get('label'))} -> {cname(e.get('pred'))}")
                    for cue, e in ((section.get("examples") or {}).get("cues") or {}).items()
                    if isinstance(e, Mapping)
                ]
            ),
            "conflict_examples": _conflict_figure(
                (section.get("examples") or {}).get("cue_conflict"), cname
            ),
            "curves_figure": _curves(section.get("frequency"), section.get("patch_shuffle")),
            "fourier_figure": _heat_map(section.get("fourier_heat_map")),
            "notes": notes_list(
                bg.get("convention"),
                scan.get("convention"),
                sh.get("construction"),
                (section.get("frequency") or {}).get("convention"),
                (section.get("patch_shuffle") or {}).get("convention"),
                (section.get("fourier_heat_map") or {}).get("convention"),
                section.get("notes"),
            ),
        }


def _interval(ests: Sequence[Any]) -> tuple[list[float], list[float], list[float]]:
    vals, lows, highs = [], [], []
    for obj in ests:
        e = Estimate.parse(obj)
        v = e.value if e else math.nan
        vals.append(v)
        lows.append(v - e.low if e and e.has_interval else 0.0)
        highs.append(e.high - v if e and e.has_interval else 0.0)
    return vals, lows, highs


def _bars(rows: list[tuple[str, Any]]) -> str:
    """Horizontal bars of the background-reliance accuracies with their intervals."""
    fig = plots._figure(6.5, 0.45 * len(rows) + 0.9, constrained=True)
    ax: Axes = fig.add_subplot()
    vals, lows, highs = _interval([obj for _, obj in rows])
    pos = list(range(len(rows)))[::-1]
    ax.barh(pos, vals, xerr=[lows, highs], color=plots._BLUE, ecolor=plots._GREY, capsize=3)
    ax.set_yticks(pos)
    ax.set_yticklabels([label for label, _ in rows], fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of images")
    return plots._to_uri(fig)


def _curves(freq: Any, shuffle: Any) -> str | None:
    """Low-/high-pass accuracy against the cut-off, and accuracy against the shuffle grid."""
    if not isinstance(freq, Mapping) and not isinstance(shuffle, Mapping):
        return None
    fig = plots._figure(9.0, 3.0)
    if isinstance(freq, Mapping) and freq.get("cutoffs"):
        ax: Axes = fig.add_subplot(1, 2, 1)
        cut = [float(c) for c in freq["cutoffs"]]
        for key, label, color in (
            ("low_pass", "low-pass", plots._BLUE),
            ("high_pass", "high-pass", plots._ORANGE),
        ):
            vals, lo, hi = _interval(freq.get(key) or [])
            ax.errorbar(cut, vals, yerr=[lo, hi], marker="o", color=color, label=label, capsize=2)
        clean = Estimate.parse(freq.get("clean"))
        if clean is not None:
            ax.axhline(clean.value, color=plots._GREY, ls="--", lw=1, label="clean")
        ax.set_xlabel("cut-off (x Nyquist)")
        ax.set_ylabel("accuracy")
        ax.set_ylim(0, 1.02)
        ax.legend(fontsize=7)
    if isinstance(shuffle, Mapping) and shuffle.get("ks"):
        ax2: Axes = fig.add_subplot(1, 2, 2)
        ks = [int(k) for k in shuffle["ks"]]
        vals, lo, hi = _interval(shuffle.get("accuracy") or [])
        ax2.errorbar(ks, vals, yerr=[lo, hi], marker="o", color=plots._BLUE, capsize=2)
        ax2.set_xticks(ks)
        ax2.set_xlabel("k (k x k tiles shuffled)")
        ax2.set_ylabel("accuracy")
        ax2.set_ylim(0, 1.02)
    return plots._to_uri(fig)


def _heat_map(fhm: Any) -> str | None:
    """The Fourier heat map (error rate per frequency, zero frequency at the centre)."""
    if not isinstance(fhm, Mapping) or not fhm.get("error"):
        return None
    grid = np.array(
        [[math.nan if v is None else float(v) for v in row] for row in fhm["error"]], dtype=float
    )
    h, w = grid.shape
    fig = plots._figure(4.2, 3.6, constrained=True)
    ax: Axes = fig.add_subplot()
    extent = (-(w // 2) - 0.5, w - w // 2 - 0.5, h - h // 2 - 0.5, -(h // 2) - 0.5)
    im = ax.imshow(grid, vmin=0, vmax=1, cmap="viridis", extent=extent)
    fig.colorbar(im, ax=ax, label="error rate")
    ax.set_title(f"Fourier heat map, L2 = {fmt(fhm.get('eps'), 3)}", fontsize=9)
    ax.set_xlabel("horizontal frequency (cycles/image)")
    ax.set_ylabel("vertical frequency")
    return plots._to_uri(fig)


_MAX_EXAMPLE_VALUES = 3 * 64 * 64
"""Example images are stored only for images of at most this many values (C*H*W)."""


def _to_bytes(x: torch.Tensor) -> dict[str, Any]:
    return pack((x.clamp(0, 1) * 255).round().to(torch.uint8), "uint8")


def _conflict_examples(
    model: Any, x: torch.Tensor, y: torch.Tensor, cfg: Any, seed: int, count: int = 4
) -> dict[str, Any] | None:
    """A few cue-conflict images built from the first images, with the model's answers."""
    from robustcv.probes.base import predict
    from robustcv.probes.masks import estimate_masks
    from robustcv.probes.shape import cue_conflict

    if x[0].numel() > _MAX_EXAMPLE_VALUES:
        return None
    head, labels = x[: 4 * count], y[: 4 * count]
    masks = estimate_masks(head, cfg.mask)
    has = masks.flatten(1).any(1)
    imgs, s, t = cue_conflict(head[has], labels[has], masks[has], tile=cfg.tile, seed=seed)
    if imgs.shape[0] == 0:
        return None
    imgs, s, t = imgs[:count], s[:count], t[:count]
    pred = predict(model, imgs, cfg.batch_size)
    return {"images": _to_bytes(imgs), "shape": s.tolist(), "texture": t.tolist(),
            "pred": pred.tolist()}  # fmt: skip


def _cue_example(
    model: Any,
    xs: torch.Tensor,
    ys: torch.Tensor,
    counts: Sequence[Any],
    class_counts: list[int],
    cfg: Any,
) -> dict[str, Any] | None:
    """The cue's best variant inserted into one kept image (preferably one it flips)."""
    from robustcv.probes.base import predict
    from robustcv.probes.cues import apply_variant, cue_variants, summarise_scan

    if not counts or xs.shape[0] == 0 or xs[0].numel() > _MAX_EXAMPLE_VALUES:
        return None
    best = summarise_scan(counts, class_counts, top=1).top[0]
    variant = next(
        v for v in cue_variants(best["cue"], xs.shape, cfg) if v.label == best["variant"]
    )
    marked = apply_variant(xs, variant)
    pred = predict(model, marked, cfg.batch_size)
    hits = torch.nonzero((pred == best["to_class"]) & (ys != best["to_class"])).flatten()
    i = int(hits[0]) if hits.numel() else 0
    return {"variant": variant.label, "image": _to_bytes(marked[i : i + 1]),
            "label": int(ys[i]), "pred": int(pred[i])}  # fmt: skip


def _show(ax: Axes, img: np.ndarray, title: str) -> None:
    arr = img.astype(float) / 255.0
    if arr.shape[0] == 1:
        ax.imshow(arr[0], cmap="gray", vmin=0, vmax=1)
    else:
        ax.imshow(np.transpose(arr[:3], (1, 2, 0)))
    ax.set_title(title, fontsize=7, parse_math=False)
    ax.set_xticks([])
    ax.set_yticks([])


def _examples_figure(items: list[tuple[Mapping[str, Any], str]]) -> str | None:
    """A strip of cue example images with their captions."""
    if not items:
        return None
    fig = plots._figure(1.45 * len(items) + 0.2, 1.9, constrained=True)
    for k, (e, title) in enumerate(items):
        ax: Axes = fig.add_subplot(1, len(items), k + 1)
        _show(ax, unpack(e["image"])[0], title)
    return plots._to_uri(fig)


def _conflict_figure(ex: Any, cname: Any) -> str | None:
    """Cue-conflict examples with shape, texture and the model's answer."""
    if not isinstance(ex, Mapping) or not ex.get("images"):
        return None
    imgs = unpack(ex["images"])
    n = imgs.shape[0]
    fig = plots._figure(1.6 * n + 0.2, 2.0, constrained=True)
    for k in range(n):
        ax: Axes = fig.add_subplot(1, n, k + 1)
        title = (
            f"shape {cname(ex['shape'][k])}\ntexture {cname(ex['texture'][k])}\n"
            f"-> {cname(ex['pred'][k])}"
        )
        _show(ax, imgs[k], title)
    return plots._to_uri(fig)


def _pack_correct(correct: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """Per-image correctness per condition, packed (one byte per image)."""
    return {k: pack(v.to(torch.uint8), "uint8") for k, v in correct.items()}


def audit_error_consistency(
    audit_a: str | Path | Mapping[str, Any],
    audit_b: str | Path | Mapping[str, Any],
    *,
    n_boot: int = 1000,
    seed: int = 0,
) -> Any:
    """Error consistency (Cohen's kappa per condition) between two audits' ``probes`` sections.

    Both audits must have run the probes suite on the same images: the same data, split, limit,
    seed and ``probes.n`` (the suite then draws the same seeded subset). Conditions: clean, each
    low-/high-pass cut-off and each patch-shuffle k that both hold.

    Args:
        audit_a: an audit folder, its results.json, or the results dict.
        audit_b: the same for the second model.
        n_boot: bootstrap resamples per condition.
        seed: seeds the bootstraps.

    Returns:
        A :class:`robustcv.probes.ErrorConsistencyResult`.

    Raises:
        InputError: a missing probes section, or audits of different images.

    Example:
        >>> audit_error_consistency("runs/probes-cnn", "runs/probes-cnn-at")  # doctest: +SKIP
    """
    from robustcv.audit.schema import read_results
    from robustcv.probes.consistency import error_consistency_by_condition

    res = [r if isinstance(r, Mapping) else read_results(r) for r in (audit_a, audit_b)]
    sections = []
    for name, r in zip(("A", "B"), res, strict=True):
        sec = (r.get("suites") or {}).get("probes")
        if not isinstance(sec, Mapping) or not sec.get("correct"):
            raise InputError(
                f"audit {name} has no per-image probe results; audit the model with --suites probes"
            )
        sections.append(sec)
    cfg_a, cfg_b = (dict(r.get("config") or {}) for r in res)
    for key in ("data", "split", "limit", "seed"):
        if cfg_a.get(key) != cfg_b.get(key):
            raise InputError(
                f"the two audits differ in {key} ({cfg_a.get(key)!r} vs {cfg_b.get(key)!r}); "
                "error consistency needs the same images: audit both with the same settings"
            )
    if sections[0].get("n") != sections[1].get("n"):
        raise InputError(
            f"the two audits used {sections[0].get('n')} and {sections[1].get('n')} probe "
            "images; set the same probes.n"
        )
    a = {k: torch.from_numpy(unpack(v)).bool() for k, v in sections[0]["correct"].items()}
    b = {k: torch.from_numpy(unpack(v)).bool() for k, v in sections[1]["correct"].items()}
    return error_consistency_by_condition(a, b, n_boot=n_boot, seed=seed)


SUITE = ProbesSuite()
