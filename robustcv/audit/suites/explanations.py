"""Explanations suite: how far to trust the model's attribution maps (not in the default audit).

Per method (``explanations.methods``): the model-parameter randomisation sanity check
(:func:`robustcv.explanations.sanity.sanity_check`), deletion/insertion areas against a random
ranking and infidelity (:mod:`robustcv.explanations.faithfulness`), average-case fragility
(max/avg sensitivity, local Lipschitz estimate) and, for methods with a differentiable map, the
Ghorbani et al. worst-case attack at ``eps`` against noise of the same norm
(:mod:`robustcv.explanations.fragility`), and the accuracy keeping the top x% of each map's
pixels; once per audit: the misleading-map attack on ``misleading_method`` and the sufficient
input subsets (:mod:`robustcv.explanations.overinterpretation`).

Units are ``sanity/<method>``, ``faithfulness/<method>``, ``fragility/<method>``,
``random-ranking`` (the deletion/insertion curves of one seeded random ranking of the same images,
the baseline every method's areas are paired with), ``misleading`` and ``subsets``; each runs the
library function on a seeded subset of the evaluated images and stores its JSON result (plus a few
small maps for the report's figures).

Default sizes (stated in the section and the log): sanity on 24 images, faithfulness and
keep-top-x% on 128, fragility on 32 (worst case: 20 steps at eps 0.02, top-k objective), the
misleading attack on 8 images (20 steps, eps 0.05), sufficient subsets on 64; methods
saliency, integrated gradients (16 Gauss-Legendre steps here), guided backprop and Grad-CAM.
On a Fashion-MNIST zoo model the whole audit command took 26-30 s on 2 cores (docs/explanations.md),
well under the 90 s budget.
Gradient-free models get the perturbation methods only (and no attack, no subsets), with the
reason in ``skipped``.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

import numpy as np
import torch

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
from robustcv.audit.validate import positive_int, str_tuple
from robustcv.core.errors import InputError
from robustcv.core.seeding import derive_seed
from robustcv.core.stats import Estimate, finite_or_none

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from robustcv.audit.context import AuditContext

__all__ = ["SUITE", "ExplanationsConfig", "ExplanationsSection", "ExplanationsSuite"]

GRID = 4
"""Images shown in the report's grid of maps (and before/after the fragility attack)."""


class ExplanationsSection(TypedDict):
    """``suites.explanations`` of results.json."""

    methods: list[str]
    sizes: dict[str, int]
    eps: float
    sanity_threshold: float
    sanity_passed: list[str]
    sanity_failed: list[str]
    worst_topk: EstimateDict | None
    per_method: dict[str, dict[str, Any]]
    misleading: dict[str, Any] | None
    subsets: dict[str, Any] | None
    grid: dict[str, Any] | None
    skipped: dict[str, str]
    notes: list[str]


@dataclass(frozen=True)
class ExplanationsConfig:
    """How far to trust the attribution maps.

    Attributes:
        methods: explanation methods to check (registry names).
        sanity_n: images of the sanity check.
        sanity_threshold: a method fails when its maps keep a mean |map| Spearman correlation
            >= this after the whole network is randomised.
        faithfulness_n: images of deletion/insertion, infidelity and keep-top-x%.
        fragility_n: images of the average- and worst-case fragility.
        eps: L-inf radius of the worst-case fragility attack.
        attack_steps: iterations of the worst-case attack.
        misleading_method: method of the misleading-map attack ("" to skip it).
        misleading_n: images of the misleading-map attack.
        subsets_n: images of the sufficient-subset search.
        subset_threshold: probability a sufficient subset must keep.
        ig_steps: integrated gradients' steps in this suite.
        smoothgrad_samples: smoothgrad's samples in this suite.
    """

    methods: tuple[str, ...] = ("saliency", "integrated-gradients", "guided-backprop", "grad-cam")
    sanity_n: int = 24
    sanity_threshold: float = 0.5
    faithfulness_n: int = 128
    fragility_n: int = 32
    eps: float = 0.02
    attack_steps: int = 20
    misleading_method: str = "saliency"
    misleading_n: int = 8
    subsets_n: int = 64
    subset_threshold: float = 0.9
    ig_steps: int = 16
    smoothgrad_samples: int = 16

    def __post_init__(self) -> None:
        object.__setattr__(self, "methods", str_tuple(self.methods, "explanations.methods"))
        if not self.methods:
            raise InputError("explanations.methods is empty; e.g. ['saliency', 'grad-cam']")
        positive_int(self.sanity_n, "explanations.sanity_n", minimum=2)
        for key in ("faithfulness_n", "fragility_n", "misleading_n", "subsets_n"):
            positive_int(getattr(self, key), f"explanations.{key}")
        positive_int(self.attack_steps, "explanations.attack_steps")
        positive_int(self.ig_steps, "explanations.ig_steps")
        positive_int(self.smoothgrad_samples, "explanations.smoothgrad_samples")
        for key, lo, hi in (
            ("sanity_threshold", 0.0, 1.0),
            ("eps", 1e-9, 1.0),
            ("subset_threshold", 1e-9, 1.0),
        ):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
                raise InputError(
                    f"explanations.{key} must be a number in [{lo:g}, {hi:g}], got {v!r}"
                )
        if not isinstance(self.misleading_method, str):
            raise InputError("explanations.misleading_method must be a method name or ''")


# ---------------------------------------------------------------------------- checks


def _parse_methods(text: str) -> tuple[float, str | None]:
    names = [v.strip() for v in text.split(",") if v.strip()]
    if not names:
        raise InputError("--require-sanity needs method names, e.g. --require-sanity saliency")
    from robustcv.explanations.base import METHODS

    canonical = []
    for n in names:
        try:
            canonical.append(METHODS.canonical(n))
        except InputError as err:
            raise InputError(f"--require-sanity: {err}") from err
    return 1.0, ",".join(canonical)


def _check_sanity(section: Mapping[str, Any], t: Threshold) -> list[Outcome]:
    per = section.get("per_method") or {}
    out = []
    for name in (t.qualifier or "").split(","):
        sanity = (per.get(name) or {}).get("sanity")
        if not isinstance(sanity, Mapping):
            raise InputError(
                f"--require-sanity {name}: the audit has no sanity check of '{name}'; re-run "
                f"'robustcv audit' with explanations.methods including {name}"
            )
        est = Estimate.parse((sanity.get("final") or {}).get("spearman_abs"))
        thr = float(sanity.get("threshold", 0.5))
        value = est.value if est is not None else math.nan
        out.append(
            Outcome(
                f"--require-sanity {name}",
                f"{name}'s |map| Spearman with the trained maps after full randomisation",
                value,
                thr,
                bool(sanity.get("passed")),
                est.low if est is not None and est.has_interval else None,
                est.high if est is not None and est.has_interval else None,
                est.n if est is not None else None,
            )
        )
    return out


def _check_fragility(section: Mapping[str, Any], t: Threshold) -> list[Outcome]:
    out = []
    for name, m in (section.get("per_method") or {}).items():
        attack = (m or {}).get("attack")
        if not isinstance(attack, Mapping):
            continue
        e = Estimate.parse(attack.get("topk_attack"))
        if e is None:
            continue
        drop = Estimate(1.0 - e.value, 1.0 - e.high, 1.0 - e.low, e.n, e.method)
        label = f"{name}: worst-case top-k intersection drop at eps {fmt(section.get('eps'))}"
        out.append(Outcome.judge(t, label, drop, higher_is_better=False))
    if not out:
        raise InputError(
            f"{t.flag}: the audit ran no worst-case fragility attack; include a method with a "
            "differentiable map (saliency, input-x-gradient, integrated-gradients, smoothgrad) "
            "in explanations.methods"
        )
    return out


# ---------------------------------------------------------------------------- figures


def _figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=72, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _uri(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=72, metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _image(arr: np.ndarray) -> np.ndarray:
    """(C,H,W) in [0, 1] -> something imshow takes."""
    a = np.clip(arr, 0.0, 1.0)
    return a[0] if a.shape[0] == 1 else np.transpose(a, (1, 2, 0))


def _grid_figure(grid: Mapping[str, Any]) -> str | None:
    try:
        images = unpack(grid["images"])
        maps = {k: unpack(v) for k, v in (grid.get("maps") or {}).items()}
    except (KeyError, TypeError, ValueError):
        return None
    if not len(images):
        return None
    rows, cols = len(images), 1 + len(maps)
    fig = _figure(1.5 * cols + 0.3, 1.5 * rows + 0.4)
    axes = fig.subplots(rows, cols, squeeze=False)
    titles = grid.get("titles") or [""] * rows
    for i in range(rows):
        axes[i][0].imshow(_image(images[i]), cmap="gray", vmin=0, vmax=1)
        axes[i][0].set_title(str(titles[i]), fontsize=8, parse_math=False)
        for j, (name, m) in enumerate(maps.items(), start=1):
            axes[i][j].imshow(m[i], cmap="magma")
            if i == 0:
                axes[i][j].set_title(name, fontsize=8, parse_math=False)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    return _uri(fig)


def _before_after_figure(per: Mapping[str, Any]) -> str | None:
    panels = []
    for name, m in per.items():
        ex = (m or {}).get("attack_examples")
        if isinstance(ex, Mapping):
            try:
                panels.append((name, {k: unpack(ex[k]) for k in ("x", "x_adv", "before", "after")}))
            except (KeyError, TypeError, ValueError):
                continue
    if not panels:
        return None
    n_img = min(len(p[1]["x"]) for p in panels)
    rows = len(panels) * n_img
    fig = _figure(6.3, 1.5 * rows + 0.4)
    axes = fig.subplots(rows, 4, squeeze=False)
    heads = ("image", "attacked image", "map", "map after attack")
    r = 0
    for name, d in panels:
        for i in range(n_img):
            axes[r][0].imshow(_image(d["x"][i]), cmap="gray", vmin=0, vmax=1)
            axes[r][1].imshow(_image(d["x_adv"][i]), cmap="gray", vmin=0, vmax=1)
            lim = float(max(d["before"][i].max(), d["after"][i].max(), 1e-12))
            axes[r][2].imshow(d["before"][i], cmap="magma", vmin=0, vmax=lim)
            axes[r][3].imshow(d["after"][i], cmap="magma", vmin=0, vmax=lim)
            axes[r][0].set_ylabel(name, fontsize=8)
            for c in range(4):
                if r == 0:
                    axes[r][c].set_title(heads[c], fontsize=8)
                axes[r][c].set_xticks([])
                axes[r][c].set_yticks([])
            r += 1
    return _uri(fig)


def _sanity_figure(per: Mapping[str, Any], threshold: float | None) -> str | None:
    curves = {
        name: (m.get("sanity") or {})
        for name, m in per.items()
        if isinstance(m, Mapping) and isinstance(m.get("sanity"), Mapping)
    }
    curves = {k: v for k, v in curves.items() if (v.get("cascading") or {}).get("spearman_abs")}
    if not curves:
        return None
    fig = _figure(8.0, 2.8)
    axes = fig.subplots(1, 2)
    colors = ("#2b6cb0", "#dd6b20", "#38a169", "#9f7aea", "#e53e3e", "#319795", "#d69e2e")
    layers: list[str] = []
    for i, (name, s) in enumerate(curves.items()):
        layers = ["trained", *[str(v) for v in s.get("layers") or []]]
        for ax, key in zip(axes, ("spearman_abs", "ssim"), strict=True):
            ys = [finite_or_none(v) for v in (s.get("cascading") or {}).get(key) or []]
            ax.plot(
                range(len(ys)),
                [math.nan if v is None else v for v in ys],
                "o-",
                color=colors[i % len(colors)],
                label=name,
                markersize=3,
            )
    for ax, key in zip(axes, ("|map| Spearman", "SSIM"), strict=True):
        ax.set_xticks(range(len(layers)))
        ax.set_xticklabels(layers, rotation=30, fontsize=7, ha="right")
        ax.set_ylabel(key, fontsize=8)
        ax.set_ylim(-0.2, 1.05)
        ax.axhline(0.0, color="#718096", lw=0.5)
        ax.set_title("cascading randomisation (top layer first)", fontsize=8)
    if threshold is not None:
        axes[0].axhline(threshold, color="#e53e3e", lw=0.8, ls="--")
        axes[0].text(0.02, threshold + 0.02, "fails above", fontsize=7, color="#e53e3e")
    axes[0].legend(fontsize=7)
    return _uri(fig)


# ---------------------------------------------------------------------------- the suite


_TEMPLATE = """{% from "_macros.html.j2" import est, figure, notes %}
<p class="small">Sizes: {% for k, n in v.sizes %}{{ k }} {{ n }}{% if not loop.last %} · {% endif %}{% endfor %} images. Worst-case attack at L-inf eps {{ v.eps }}.</p>
<table>
<tr><th>method</th><th>sanity (|map| Spearman after full randomisation; fails &ge; {{ v.threshold }})</th><th>deletion area (random)</th><th>insertion area (random)</th><th>infidelity</th><th>max sensitivity</th><th>top-k kept: attack / noise</th><th>acc. keeping top 5% (random)</th></tr>
{% for m in v.methods %}<tr><td class="mono">{{ m.name }}</td>
<td>{% if m.sanity %}<b>{{ m.sanity_verdict }}</b> {{ est(m.sanity) }}{% else %}<span class="muted">{{ m.sanity_skip }}</span>{% endif %}</td>
<td>{{ est(m.deletion) }} <span class="small muted">({{ m.random_deletion }})</span></td>
<td>{{ est(m.insertion) }} <span class="small muted">({{ m.random_insertion }})</span></td>
<td>{{ est(m.infidelity) }}</td>
<td>{{ est(m.max_sensitivity) }}</td>
<td>{% if m.topk_attack %}{{ est(m.topk_attack) }} / {{ est(m.topk_noise) }}{% else %}<span class="muted">–</span>{% endif %}</td>
<td>{{ est(m.keep5) }} <span class="small muted">({{ m.keep5_random }})</span></td></tr>{% endfor %}
</table>
{{ figure(v.grid_figure, "grid of maps: image with label and prediction, then each method") }}
{{ figure(v.sanity_figure, "sanity check: similarity to the trained maps per randomised layer") }}
{{ figure(v.attack_figure, "maps before and after the worst-case fragility attack") }}
{% if v.misleading %}<h3>Misleading maps</h3><p>{{ v.misleading }}</p>{% endif %}
{% if v.subsets %}<h3>Overinterpretation</h3><p>{{ v.subsets }}</p>{% endif %}
{% if v.skipped %}<p class="small muted">skipped: {% for k, why in v.skipped %}{{ k }} ({{ why }}){% if not loop.last %}; {% endif %}{% endfor %}</p>{% endif %}
{{ notes(v.notes) }}
"""  # noqa: E501


def _params(method: str, cfg: ExplanationsConfig) -> dict[str, Any]:
    if method == "integrated-gradients":
        return {"steps": cfg.ig_steps}
    if method in ("smoothgrad", "smoothgrad-sq", "vargrad"):
        return {"samples": cfg.smoothgrad_samples}
    return {}


def _pack_maps(maps: torch.Tensor) -> dict[str, Any]:
    """(B,C,H,W) maps -> packed (B,H,W) |map| channel sums, at most 64 pixels a side."""
    from robustcv.explanations.similarity import pixel_scores

    p = pixel_scores(maps).float()
    h, w = int(p.shape[-2]), int(p.shape[-1])
    if max(h, w) > 64:
        size = (max(1, round(h * 64 / max(h, w))), max(1, round(w * 64 / max(h, w))))
        p = torch.nn.functional.adaptive_avg_pool2d(p[:, None], size)[:, 0]
    return pack(p, "float16")


def _pack_images(x: torch.Tensor) -> dict[str, Any]:
    h, w = int(x.shape[-2]), int(x.shape[-1])
    if max(h, w) > 64:
        size = (max(1, round(h * 64 / max(h, w))), max(1, round(w * 64 / max(h, w))))
        x = torch.nn.functional.adaptive_avg_pool2d(x, size)
    return pack(x, "float16")


def _strip(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k != "seconds"}


class ExplanationsSuite(Suite):
    """Units per method (sanity, faithfulness, fragility), plus misleading maps and subsets."""

    name = "explanations"
    title = "Explanations: how far to trust them"
    description = (
        "sanity checks, faithfulness, worst-case fragility, misleading maps and "
        "overinterpretation of attribution maps"
    )
    config_class = ExplanationsConfig
    section_type = ExplanationsSection
    default = False
    in_full = True  # runs at --strength full when no suites are named
    order = 80
    report_template = _TEMPLATE
    checks = (
        CheckSpec(
            "require-sanity",
            "fails when a named method fails the model-randomisation sanity check",
            "METHOD[,METHOD...]",
            "saliency,grad-cam",
            lambda r, s, t: _check_sanity(s, t),
            parse=_parse_methods,
        ),
        CheckSpec(
            "max-fragility",
            "worst-case top-k intersection drop (1 - top-k kept under the attack) <= V",
            "V",
            "0.5",
            lambda r, s, t: _check_fragility(s, t),
            fraction=True,
        ),
    )

    # ------------------------------------------------------------------ work
    def validate(self, config: Any, shape: tuple[int, ...]) -> None:
        """Method names must be registered."""
        from robustcv.explanations.base import METHODS

        cfg = config.explanations
        for name in (*cfg.methods, *([cfg.misleading_method] if cfg.misleading_method else [])):
            try:
                METHODS.canonical(name)
            except InputError as err:
                raise InputError(f"explanations.methods: {err}") from err

    def _methods(self, ctx: AuditContext) -> list[str]:
        from robustcv.explanations.base import METHODS

        return list(dict.fromkeys(METHODS.canonical(m) for m in ctx.config.explanations.methods))

    def _positions(self, ctx: AuditContext, part: str) -> np.ndarray:
        cfg = ctx.config.explanations
        n = {
            "sanity": cfg.sanity_n,
            "faithfulness": cfg.faithfulness_n,
            "fragility": cfg.fragility_n,
            "misleading": cfg.misleading_n,
            "subsets": cfg.subsets_n,
        }[part]
        return ctx.subset(f"explanations-{part}", n)

    def subsample(self, ctx: AuditContext, units: Sequence[Unit]) -> tuple[str, dict[str, Any]]:
        """Images per part."""
        sizes = {p: len(self._positions(ctx, p)) for p in self._parts()}
        text = "explanations " + ", ".join(f"{k} {v}" for k, v in sizes.items()) + " images"
        return text, {f"explanations_{k}": v for k, v in sizes.items()}

    @staticmethod
    def _parts() -> tuple[str, ...]:
        return ("sanity", "faithfulness", "fragility", "misleading", "subsets")

    def plan(self, ctx: AuditContext) -> list[Unit]:
        """sanity/, faithfulness/, fragility/ per method; misleading; subsets."""
        cfg = ctx.config.explanations
        units = []
        for m in self._methods(ctx):
            for part, cost in (("sanity", 20.0), ("faithfulness", 90.0), ("fragility", 60.0)):
                n = float(len(self._positions(ctx, part)))
                units.append(Unit(self.name, f"{part}/{m}", 0, {"method": m}, cost=cost * n))
        n = float(len(self._positions(ctx, "faithfulness")))
        units.append(Unit(self.name, "random-ranking", 0, {}, cost=40.0 * n))
        if cfg.misleading_method:
            n = float(len(self._positions(ctx, "misleading")))
            units.append(Unit(self.name, "misleading", 0, {}, cost=60.0 * n))
        units.append(
            Unit(self.name, "subsets", 0, {}, cost=200.0 * len(self._positions(ctx, "subsets")))
        )
        return units

    def _skip_reason(self, ctx: AuditContext, method: str, part: str) -> str | None:
        from robustcv.explanations.base import METHODS
        from robustcv.explanations.fragility import ATTACKABLE

        model = ctx.model
        kind = METHODS.get(method).kind
        if kind != "perturbation" and not model.differentiable:
            return f"'{method}' needs gradients and the model is gradient-free"
        if part == "sanity" and not isinstance(model.net, torch.nn.Module):
            return "the sanity check randomises weights and needs an nn.Module"
        if part == "attack":
            if method not in ATTACKABLE:
                return f"'{method}' has no differentiable map for the worst-case attack"
            if not model.differentiable:
                return "the worst-case attack needs gradients and the model is gradient-free"
        return None

    def run(self, ctx: AuditContext, unit: Unit, deps: Mapping[str, Row]) -> Row:
        """One part's JSON result (or ``{"skipped": why}``)."""
        from robustcv.explanations.base import explain
        from robustcv.explanations.faithfulness import (
            FaithfulnessConfig,
            deletion_insertion,
            infidelity,
        )
        from robustcv.explanations.fragility import (
            FragilityConfig,
            MisleadingConfig,
            average_fragility,
            fragility_attack,
            misleading_attack,
        )
        from robustcv.explanations.overinterpretation import (
            SubsetConfig,
            keep_top_pixels,
            sufficient_subsets,
        )
        from robustcv.explanations.sanity import SanityConfig, sanity_check

        cfg = ctx.config.explanations
        seed = unit.seed(ctx.seed)
        model = ctx.model
        part, _, method = unit.condition.partition("/")
        if part == "random-ranking":  # the random baseline every method's areas are paired with
            x, _ = ctx.images(self._positions(ctx, "faithfulness"))
            gen = torch.Generator().manual_seed(seed)
            random_maps = torch.rand(x.shape[0], 1, *x.shape[2:], generator=gen)
            fr0 = deletion_insertion(
                model, x, random_maps, config=FaithfulnessConfig(random_repeats=0)
            )
            return {"result": _strip(fr0.to_dict())}
        x, y = ctx.images(self._positions(ctx, part))
        if part == "subsets":
            if not model.differentiable:
                return {"skipped": "backward selection needs gradients; the model is gradient-free"}
            r = sufficient_subsets(model, x, config=SubsetConfig(threshold=cfg.subset_threshold))
            return {"result": {**_strip(r.to_dict()), **_foreground_split(x, r.masks)}}
        if part == "misleading":
            name = cfg.misleading_method
            why = self._skip_reason(ctx, name, "attack")
            if why is not None:
                return {"skipped": why}
            mc = MisleadingConfig(steps=20, surrogate_steps=8)
            mr = misleading_attack(model, x, name, seed=seed, config=mc, **_params(name, cfg))
            return {"result": _strip(mr.to_dict())}
        why = self._skip_reason(ctx, method, part)
        if why is not None:
            return {"skipped": why}
        params = _params(method, cfg)
        if part == "sanity":
            sr = sanity_check(
                model,
                x,
                method,
                seed=seed,
                config=SanityConfig(threshold=cfg.sanity_threshold),
                **params,
            )
            return {"result": _strip(sr.to_dict())}
        if part == "faithfulness":
            e = explain(model, x, method=method, seed=seed, **params)
            maps = e.maps
            fr = deletion_insertion(
                model, x, maps, target=e.targets, config=FaithfulnessConfig(random_repeats=0)
            )
            inf = infidelity(model, x, maps, target=e.targets, seed=seed)
            # one random ranking for every method: seeded by the audit, not by the unit
            keep_seed = derive_seed(ctx.seed, "explanations", "keep-top-random")
            keep = keep_top_pixels(model, x, y, maps, seed=keep_seed)
            pred = model.predict_logits(x[:GRID]).argmax(1)
            return {
                "result": _strip(fr.to_dict()),
                "infidelity": _mean_ci(inf),
                "keep_top": keep.to_dict(),
                "grid_maps": _pack_maps(maps[:GRID]),
                "grid_images": _pack_images(x[:GRID]),
                "grid_labels": [int(v) for v in y[:GRID]],
                "grid_preds": [int(v) for v in pred],
            }
        # fragility
        row: Row = {
            "average": _strip(
                average_fragility(
                    model, x, method, radius=cfg.eps, samples=8, seed=seed, **params
                ).to_dict()
            )
        }
        why = self._skip_reason(ctx, method, "attack")
        if why is not None:
            row["attack_skipped"] = why
            return row
        fc = FragilityConfig(eps=cfg.eps, steps=cfg.attack_steps, surrogate_steps=8)
        ar = fragility_attack(model, x, method, seed=seed, config=fc, **params)
        row["attack"] = _strip(ar.to_dict())
        k = min(2, len(x))
        row["attack_examples"] = {
            "x": _pack_images(x[:k]),
            "x_adv": _pack_images(ar.x_adv[:k]),
            "before": _pack_maps(ar.maps_before[:k]),
            "after": _pack_maps(ar.maps_after[:k]),
        }
        return row

    def aggregate(
        self, ctx: AuditContext, rows: Mapping[str, Row], notes: dict[str, Any]
    ) -> dict[str, Any]:
        """Per-method results, headlines, the grid and the once-per-audit parts."""
        cfg = ctx.config.explanations
        methods = self._methods(ctx)
        classes = list(ctx.data.classes)

        def row(cond: str) -> Row:
            return dict(rows.get(f"{self.name}:{cond}#0") or {})

        skipped: dict[str, str] = {}
        per: dict[str, dict[str, Any]] = {}
        grid: dict[str, Any] | None = None
        grid_maps: dict[str, Any] = {}
        for m in methods:
            entry: dict[str, Any] = {
                "sanity": None,
                "faithfulness": None,
                "infidelity": None,
                "keep_top": None,
                "average": None,
                "attack": None,
                "attack_examples": None,
            }
            s = row(f"sanity/{m}")
            if "skipped" in s:
                skipped[f"sanity/{m}"] = str(s["skipped"])
            else:
                entry["sanity"] = s.get("result")
            f = row(f"faithfulness/{m}")
            if "skipped" in f:
                skipped[f"faithfulness/{m}"] = str(f["skipped"])
            else:
                entry["faithfulness"] = f.get("result")
                entry["infidelity"] = f.get("infidelity")
                entry["keep_top"] = f.get("keep_top")
                if "grid_maps" in f:
                    grid_maps[m] = f["grid_maps"]
                    if grid is None:
                        labels = f.get("grid_labels") or []
                        preds = f.get("grid_preds") or []
                        grid = {
                            "images": f["grid_images"],
                            "titles": [
                                f"{_cls(classes, a)} -> {_cls(classes, b)}"
                                for a, b in zip(labels, preds, strict=False)
                            ],
                        }
            g = row(f"fragility/{m}")
            if "skipped" in g:
                skipped[f"fragility/{m}"] = str(g["skipped"])
            else:
                entry["average"] = g.get("average")
                entry["attack"] = g.get("attack")
                entry["attack_examples"] = g.get("attack_examples")
                if "attack_skipped" in g:
                    skipped[f"attack/{m}"] = str(g["attack_skipped"])
            per[m] = entry
        if grid is not None:
            grid["maps"] = grid_maps
        rand = row("random-ranking").get("result") or {}
        for m in methods:
            f = per[m]["faithfulness"]
            if isinstance(f, dict) and rand:
                per[m]["faithfulness"] = _with_random(f, rand)
        passed = [m for m in methods if (per[m]["sanity"] or {}).get("passed") is True]
        failed = [m for m in methods if (per[m]["sanity"] or {}).get("passed") is False]
        worst: dict[str, Any] | None = None
        for m in methods:
            e = (per[m]["attack"] or {}).get("topk_attack")
            if isinstance(e, Mapping) and (worst is None or e["value"] < worst["value"]):
                worst = dict(e)
        mis = row("misleading") if cfg.misleading_method else {}
        if "skipped" in mis:
            skipped["misleading"] = str(mis["skipped"])
        sub = row("subsets")
        if "skipped" in sub:
            skipped["subsets"] = str(sub["skipped"])
        for k, why in skipped.items():
            notes.setdefault("skipped", {})[f"explanations/{k}"] = why
        sizes = {p: len(self._positions(ctx, p)) for p in self._parts()}
        return {
            "methods": methods,
            "sizes": sizes,
            "eps": cfg.eps,
            "sanity_threshold": cfg.sanity_threshold,
            "sanity_passed": passed,
            "sanity_failed": failed,
            "worst_topk": worst,
            "per_method": per,
            "misleading": mis.get("result"),
            "subsets": sub.get("result"),
            "grid": grid,
            "skipped": skipped,
            "notes": [
                f"parameters here: integrated gradients {cfg.ig_steps} steps, smoothgrad "
                f"{cfg.smoothgrad_samples} samples; other methods at their defaults",
                "sanity: cascading and independent randomisation, top layer down; a method "
                f"fails when its maps keep a |map| Spearman >= {cfg.sanity_threshold:g} with the "
                "trained model's after every layer is random",
                "faithfulness: deletion to black, insertion from a blurred copy, target-class "
                "probability, 20 steps; random = one seeded random ranking of the same pixels "
                "of the same images, shared by every method",
                f"fragility: average case under uniform noise of radius {cfg.eps:g} (8 samples); "
                f"worst case: Ghorbani et al.'s top-k attack, {cfg.attack_steps} steps (integrated "
                "gradients differentiated through 8 path points), label kept at every accepted "
                "step, against random sign noise of the same L-inf norm",
                "intervals: mean +- 1.96 standard errors over images (accuracies: Clopper-Pearson)",
                "not run here: the label-randomisation check (it fine-tunes a copy on training "
                "images; robustcv.explanations.label_randomization_check)",
            ],
        }

    # ------------------------------------------------------------------ words and report
    def summary_lines(self, section: Any) -> list[str]:
        """Sanity verdicts, then one line per method."""
        lines = [
            f"sanity: pass {', '.join(section.get('sanity_passed') or []) or '-'}; fail "
            f"{', '.join(section.get('sanity_failed') or []) or '-'}"
        ]
        for name, m in (section.get("per_method") or {}).items():
            f = (m or {}).get("faithfulness") or {}
            a = (m or {}).get("attack") or {}
            d = Estimate.parse(f.get("deletion_area"))
            rd = Estimate.parse(f.get("random_deletion_area"))
            ta = Estimate.parse(a.get("topk_attack"))
            tn = Estimate.parse(a.get("topk_noise"))
            parts = [name]
            if d is not None:
                parts.append(f"deletion {d.value:.3f} (random {rd.value if rd else math.nan:.3f})")
            if ta is not None:
                parts.append(
                    f"top-k kept {ta.value:.3f} under attack vs {tn.value if tn else math.nan:.3f}"
                    f" noise at eps {fmt(section.get('eps'))}"
                )
            lines.append(": ".join([parts[0], "; ".join(parts[1:]) or "-"]))
        sub = section.get("subsets") or {}
        if sub:
            lines.append(
                f"median sufficient subset {fmt(sub.get('median_share'), 3)} of the pixels "
                f"(p >= {fmt(sub.get('threshold'))}, {sub.get('n_confident')} images)"
            )
        return lines

    def warnings(self, results: Mapping[str, Any], section: Any) -> list[dict[str, str]]:
        """Methods that fail the sanity check."""
        failed = section.get("sanity_failed") or []
        if not failed:
            return []
        return [
            {
                "scope": "explanations",
                "check": "sanity",
                "message": f"{', '.join(failed)} barely change when the model's weights are "
                "randomised: their maps say more about the image than about the model",
                "action": "do not use these maps to argue what the model learned",
            }
        ]

    def view(
        self, results: Mapping[str, Any], section: Any, folder: Path | None
    ) -> dict[str, Any] | None:
        """The per-method table and the three figures."""
        per = section.get("per_method") or {}
        methods = []
        for name, m in per.items():
            m = m or {}
            s = m.get("sanity") or {}
            f = m.get("faithfulness") or {}
            avg = m.get("average") or {}
            a = m.get("attack") or {}
            keep = m.get("keep_top") or {}
            acc = keep.get("accuracy") or []
            racc = keep.get("random_accuracy") or []
            methods.append(
                {
                    "name": name,
                    "sanity": est_view((s.get("final") or {}).get("spearman_abs")),
                    "sanity_verdict": "pass" if s.get("passed") else "FAIL",
                    "sanity_skip": (section.get("skipped") or {}).get(f"sanity/{name}", "–"),
                    "deletion": est_view(f.get("deletion_area")),
                    "random_deletion": fmt((f.get("random_deletion_area") or {}).get("value"), 3),
                    "insertion": est_view(f.get("insertion_area")),
                    "random_insertion": fmt((f.get("random_insertion_area") or {}).get("value"), 3),
                    "infidelity": est_view(m.get("infidelity")),
                    "max_sensitivity": est_view(avg.get("max_sensitivity")),
                    "topk_attack": est_view(a.get("topk_attack")),
                    "topk_noise": est_view(a.get("topk_noise")),
                    "keep5": est_view(acc[0]) if acc else None,
                    "keep5_random": fmt((racc[0] or {}).get("value"), 3) if racc else "–",
                }
            )
        mis = section.get("misleading") or {}
        mis_text = ""
        if mis:
            mis_text = (
                f"{mis.get('method')}: steering the map to a shifted copy within L-inf "
                f"{fmt(mis.get('eps'))} moved its Spearman correlation with the target from "
                f"{fmt((mis.get('spearman_target_before') or {}).get('value'), 3)} to "
                f"{fmt((mis.get('spearman_target_after') or {}).get('value'), 3)} on "
                f"{mis.get('n')} images, label kept on {fmt(mis.get('label_kept'), 3)}, largest "
                f"probability change {fmt(mis.get('max_probability_change'), 3)}."
            )
        sub = section.get("subsets") or {}
        sub_text = ""
        if sub:
            inside = sub.get("median_inside_foreground")
            where = (
                f" A median {fmt(inside, 3)} of each subset's pixels lie on the object "
                f"(foreground masks {sub.get('foreground')})."
                if inside is not None
                else f" Inside/outside the object: {sub.get('foreground') or 'not measured'}."
            )
            sub_text = (
                f"Sufficient input subsets (probability >= {fmt(sub.get('threshold'))}): median "
                f"{fmt(sub.get('median_share'), 3)} of the pixels on {sub.get('n_confident')} of "
                f"{sub.get('n')} images (the others are less confident on the full image); "
                f"re-evaluated subsets all sufficient: {all(sub.get('sufficient') or [False])}."
                + where
            )
        grid = section.get("grid")
        return {
            "sizes": list((section.get("sizes") or {}).items()),
            "eps": fmt(section.get("eps")),
            "threshold": fmt(section.get("sanity_threshold")),
            "methods": methods,
            "grid_figure": _grid_figure(grid) if isinstance(grid, Mapping) else None,
            "sanity_figure": _sanity_figure(per, finite_or_none(section.get("sanity_threshold"))),
            "attack_figure": _before_after_figure(per),
            "misleading": mis_text,
            "subsets": sub_text,
            "skipped": list((section.get("skipped") or {}).items()),
            "notes": notes_list(section.get("notes")),
        }

    def metrics(self, results: Mapping[str, Any], section: Any) -> list[Metric]:
        """Per method: sanity similarity, deletion/insertion areas, worst-case top-k, keep 5%."""
        out = []
        for name, m in (section.get("per_method") or {}).items():
            m = m or {}
            items = (
                (
                    "sanity",
                    ((m.get("sanity") or {}).get("final") or {}).get("spearman_abs"),
                    "sanity: |map| Spearman after randomisation",
                    False,
                ),
                (
                    "deletion",
                    (m.get("faithfulness") or {}).get("deletion_area"),
                    "deletion area",
                    False,
                ),
                (
                    "insertion",
                    (m.get("faithfulness") or {}).get("insertion_area"),
                    "insertion area",
                    True,
                ),
                (
                    "topk_attack",
                    (m.get("attack") or {}).get("topk_attack"),
                    f"top-k kept under the attack (eps {fmt(section.get('eps'))})",
                    True,
                ),
                (
                    "keep5",
                    ((m.get("keep_top") or {}).get("accuracy") or [None])[0],
                    "accuracy keeping the top 5% pixels",
                    None,
                ),
            )
            for key, obj, label, better in items:
                e = Estimate.parse(obj)
                if e is not None:
                    out.append(Metric(f"explanations/{name}/{key}", f"{name}: {label}", e, better))
        sub = Estimate.parse((section.get("subsets") or {}).get("mean_share"))
        if sub is not None:
            out.append(
                Metric("explanations/subset_share", "mean sufficient-subset share", sub, None)
            )
        return out

    def leaderboard_columns(self, results: Mapping[str, Any], section: Any) -> list[Metric]:
        """The worst method's top-k kept under the fragility attack, and the sanity failures.

        ``explanations/worst_topk`` (higher is better) is the smallest top-k intersection any
        method keeps under Ghorbani et al.'s attack; ``explanations/sanity_failed`` counts the
        methods that fail the randomisation sanity check (no interval: "best" is not marked).
        """
        out = []
        worst = Estimate.parse(section.get("worst_topk"))
        if worst is not None:
            label = f"explanations: worst top-k kept under attack (eps {fmt(section.get('eps'))})"
            out.append(Metric("explanations/worst_topk", label, worst, True))
        failed, passed = section.get("sanity_failed"), section.get("sanity_passed")
        if isinstance(failed, list) and isinstance(passed, list) and (failed or passed):
            out.append(
                Metric(
                    "explanations/sanity_failed",
                    "explanations: methods failing the sanity check",
                    Estimate(float(len(failed)), n=len(failed) + len(passed)),
                    False,
                )
            )
        return out


def _with_random(f: dict[str, Any], rand: Mapping[str, Any]) -> dict[str, Any]:
    """A method's deletion/insertion result with the shared random ranking's fields, paired."""
    out = dict(f)
    for key in ("deletion", "insertion"):
        out[f"random_{key}"] = rand.get(key)
        out[f"random_{key}_area"] = rand.get(f"{key}_area")
    mine = f.get("per_image") or {}
    theirs = rand.get("per_image") or {}
    try:
        d = torch.tensor(theirs["deletion_area"]) - torch.tensor(mine["deletion_area"])
        i = torch.tensor(mine["insertion_area"]) - torch.tensor(theirs["insertion_area"])
    except (KeyError, TypeError, RuntimeError):
        return out
    out["deletion_gain"] = _mean_ci(d)
    out["insertion_gain"] = _mean_ci(i)
    out["notes"] = [
        *(f.get("notes") or []),
        "random baseline: one seeded random ranking per "
        "image (the random-ranking unit, shared by every method), paired per image",
    ]
    return out


def _mean_ci(values: torch.Tensor) -> dict[str, Any]:
    """Mean over images with a normal-approximation 95% interval, as an estimate dict."""
    v = values.double().flatten()
    v = v[torch.isfinite(v)]
    n = int(v.numel())
    mean = float(v.mean()) if n else math.nan
    se = float(v.std()) / math.sqrt(n) if n > 1 else math.nan
    return Estimate(mean, mean - 1.96 * se, mean + 1.96 * se, n, "mean +- 1.96 s.e.").to_dict()


def _cls(classes: list[str], i: Any) -> str:
    try:
        return str(classes[int(i)])
    except (IndexError, TypeError, ValueError):
        return str(i)


SUITE = ExplanationsSuite()


def _foreground_split(x: torch.Tensor, subsets: torch.Tensor) -> dict[str, Any]:
    """Where the sufficient subsets lie: the share of each subset's pixels on the object.

    Masks are estimated with :func:`robustcv.probes.estimate_masks` when the images have a
    uniform background (:func:`robustcv.probes.uniform_background`); otherwise the split is
    skipped and the reason is stored under ``foreground``.
    """
    from robustcv.probes import estimate_masks, uniform_background

    if subsets.numel() == 0:
        return {"foreground": "skipped: no subsets", "inside_foreground": []}
    ok, share = uniform_background(x)
    if not ok:
        return {
            "foreground": f"skipped: only {share:.0%} of the images have a uniform background, "
            "so no object masks can be estimated",
            "inside_foreground": [],
        }
    fg = estimate_masks(x).to(subsets.device)
    sizes = subsets.flatten(1).sum(1)
    inside = (subsets & fg).flatten(1).sum(1)
    values = [
        float(i) / float(n) if int(n) > 0 else float("nan")
        for i, n in zip(inside.tolist(), sizes.tolist(), strict=True)
    ]
    finite = sorted(v for v in values if v == v)
    median = finite[len(finite) // 2] if len(finite) % 2 else None
    if finite and median is None:
        median = 0.5 * (finite[len(finite) // 2 - 1] + finite[len(finite) // 2])
    return {
        "foreground": "estimated (robustcv.probes: largest component after threshold and closing)",
        "inside_foreground": [None if v != v else v for v in values],
        "median_inside_foreground": median,
    }
