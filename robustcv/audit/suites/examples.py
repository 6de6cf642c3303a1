"""Example images for the report: clean, corrupted and adversarial, with label and prediction.

One unit renders a few images to small PNGs (stored base64 in its row, so the row stays a pure
function of its inputs); aggregation writes them to ``DIR/examples/`` and returns their
metadata for ``results.json`` (the report never runs a model). Images smaller than 64 pixels are
enlarged with nearest-neighbour sampling (``scale`` in the metadata).
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from robustcv.audit.plan import Row, Unit
from robustcv.audit.suite import Suite, fmt, validate_corruption_names
from robustcv.audit.validate import positive_int, str_tuple
from robustcv.core.seeding import derive_seed
from robustcv.core.stats import finite_or_none

if TYPE_CHECKING:
    from robustcv.audit.context import AuditContext

__all__ = ["SUITE", "ExamplesConfig", "ExamplesSuite", "to_png"]

MAX_EXAMPLES = 60
"""At most this many example images are embedded in the report."""
_MAX_EXAMPLE_BYTES = 40_000
_MAX_EXAMPLE_SIDE = 160


@dataclass(frozen=True)
class ExamplesConfig:
    """Example images saved for the report.

    Attributes:
        n: images per kind (clean, corrupted, adversarial); 0 saves none.
        corruptions: corruptions cycled over the corrupted examples.
        severity: their severity.
    """

    n: int = 4
    corruptions: tuple[str, ...] = ("gaussian_noise", "fog", "motion_blur", "contrast")
    severity: int = 3

    def __post_init__(self) -> None:
        positive_int(self.n, "examples.n", minimum=0)
        positive_int(self.severity, "examples.severity")
        object.__setattr__(self, "corruptions", str_tuple(self.corruptions, "corruptions"))


def pilot_median(deps: Mapping[str, Row], norm: str) -> float | None:
    """The median minimal perturbation of the adversarial suite's pilot rows for ``norm``.

    Reads the stored pilot rows (``min_norm``, ``clean_correct``) that the adversarial suite
    documents; failures count as infinite, misclassified images are left out.

    Example:
        >>> rows = {"adversarial:linf/pilot#0": {"min_norm": [0.1, 0.3, None],
        ...                                       "clean_correct": [True, True, True]}}
        >>> pilot_median(rows, "linf")
        0.3
    """
    values: list[float] = []
    prefix = f"adversarial:{norm}/pilot#"
    for key in sorted(k for k in deps if k.startswith(prefix)):
        row = deps[key]
        for v, ok in zip(row["min_norm"], row["clean_correct"], strict=True):
            if ok:
                values.append(math.inf if v is None else float(v))
    if not values:
        return None
    med = sorted(values)[(len(values) - 1) // 2]
    return med if math.isfinite(med) else None


_TEMPLATE = """{% for g in v.groups %}
<h3>{{ g.kind }}</h3>
<div class="grid">
{% for x in g["items"] %}
<div class="ex">{% if x.uri %}<img src="{{ x.uri }}" alt="{{ g.kind }} {{ x.file }}">{% else %}<div class="missing muted" title="{{ x.file }}">missing</div>{% endif %}
<div class="muted">{{ x.condition }}</div>
<div>label: {{ x.label }}</div>
<div class="{{ 'bad' if x.wrong else 'ok' }}">pred: {{ x.prediction }}{% if x.confidence %} ({{ x.confidence }}){% endif %}</div></div>
{% endfor %}
</div>
{% else %}<p class="muted">no example images in the results</p>
{% endfor %}
"""  # noqa: E501


def _example_uri(folder: Path | None, file: Any) -> str | None:
    """The example image as a data URI, or None when it is missing or outside the folder."""
    if folder is None or not isinstance(file, str) or not file:
        return None
    from PIL import Image, UnidentifiedImageError

    root = folder.resolve()
    path = (root / file).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        return None
    data = path.read_bytes()
    try:
        with Image.open(io.BytesIO(data)) as img:
            kind = (img.format or "").upper()
            if (
                kind not in ("PNG", "JPEG")
                or len(data) > _MAX_EXAMPLE_BYTES
                or max(img.size) > _MAX_EXAMPLE_SIDE
            ):
                small = img.convert("RGB") if img.mode not in ("L", "RGB") else img.copy()
                small.thumbnail((_MAX_EXAMPLE_SIDE, _MAX_EXAMPLE_SIDE))
                buf = io.BytesIO()
                small.save(buf, format="PNG", optimize=True)
                data, kind = buf.getvalue(), "PNG"
            else:
                img.load()  # a truncated or corrupt file fails here, not in the browser
    except (UnidentifiedImageError, OSError, ValueError):
        return None
    mime = "image/png" if kind == "PNG" else "image/jpeg"
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def to_png(img: torch.Tensor, *, min_side: int = 64, max_side: int = 160) -> tuple[bytes, int]:
    r"""PNG bytes of one (C, H, W) image in [0, 1] and the integer upscaling factor used.

    Example:
        >>> data, scale = to_png(torch.zeros(1, 28, 28))
        >>> data[:4], scale
        (b'\x89PNG', 3)
    """
    from PIL import Image

    c, h, w = img.shape
    scale = max(1, min(math.ceil(min_side / min(h, w)), max_side // max(h, w)))
    arr = (img.detach().cpu().clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    pil = (
        Image.fromarray(arr[0], mode="L")
        if c == 1
        else Image.fromarray(np.ascontiguousarray(arr[:3].transpose(1, 2, 0)), mode="RGB")
    )
    if scale > 1:
        pil = pil.resize((w * scale, h * scale), Image.Resampling.NEAREST)
    buf = io.BytesIO()
    pil.save(buf, format="PNG", optimize=True)
    return buf.getvalue(), scale


class ExamplesSuite(Suite):
    """One unit that renders ``examples.n`` images of each kind."""

    name = "examples"
    title = "Examples"
    description = "clean, corrupted and adversarial example images with predictions"
    config_class = ExamplesConfig
    selectable = False
    order = 1000
    results_key = "examples"
    report_template = _TEMPLATE

    def validate(self, config: Any, shape: tuple[int, ...]) -> None:
        """Example corruptions must be registered names with a valid severity."""
        cfg = config.examples
        validate_corruption_names(
            cfg.corruptions, [cfg.severity], "examples.corruptions", "examples.severity"
        )

    def requires(self, config: Any) -> tuple[str, ...]:
        """Suites whose rows this one reads (the adversarial pilot sets the eps)."""
        return ("adversarial",) if "adversarial" in config.suites else ()

    def plan(self, ctx: AuditContext) -> list[Unit]:
        """A single unit (none when ``examples.n`` is 0)."""
        n = ctx.config.examples.n
        return [Unit(self.name, "all", 0, {}, cost=50.0 * n)] if n else []

    def run(self, ctx: AuditContext, unit: Unit, deps: Mapping[str, Row]) -> Row:
        """Render clean, corrupted and adversarial examples with predictions."""
        from robustcv.attacks import attack
        from robustcv.corruptions import corrupt

        cfg = ctx.config.examples
        pos = ctx.subset("examples", cfg.n)
        x, y = ctx.images(pos)
        classes = list(ctx.data.classes)

        def name(i: int) -> str:
            return classes[i] if i < len(classes) else str(i)

        items: list[dict[str, Any]] = []

        def add(kind: str, condition: str | list[str], imgs: torch.Tensor) -> None:
            probs = torch.softmax(ctx.logits(imgs).double(), 1)
            conf, pred = probs.max(1)
            for j in range(imgs.shape[0]):
                png, scale = to_png(imgs[j])
                items.append(
                    {
                        "kind": kind,
                        "condition": condition if isinstance(condition, str) else condition[j],
                        "index": int(pos[j]),
                        "label": name(int(y[j])),
                        "prediction": name(int(pred[j])),
                        "confidence": float(conf[j]),
                        "correct": bool(pred[j] == y[j]),
                        "scale": scale,
                        "png": base64.b64encode(png).decode("ascii"),
                    }
                )

        add("clean", "clean", x)
        usable, _ = ctx.usable_corruptions(cfg.corruptions)
        if usable:
            corrupted, conds = [], []
            for j in range(x.shape[0]):
                c = usable[j % len(usable)]
                seed = derive_seed(ctx.seed, c, cfg.severity)
                corrupted.append(corrupt(x[j : j + 1], c, cfg.severity, seed=seed)[0])
                conds.append(f"{c}/{cfg.severity}")
            add("corrupted", conds, torch.stack(corrupted))
        if "adversarial" in ctx.config.suites:
            norm = ctx.config.adversarial.norms[0]
            med = pilot_median(deps, norm)
            if med is not None:
                eps = float(f"{med:.4g}")
                if ctx.model.differentiable:
                    name_, params = "apgd-ce", {"steps": ctx.config.adversarial.apgd_steps}
                else:
                    name_, params = "square", {"queries": ctx.config.adversarial.square_queries}
                seed = derive_seed(ctx.seed, "audit", "examples", "adversarial")
                res = attack(ctx.model, x, y, name_, eps=eps, norm=norm, seed=seed, **params)
                add("adversarial", f"{norm}/{eps:g} ({name_})", res.x_adv)
        return {"items": items}

    def aggregate(
        self, ctx: AuditContext, rows: Mapping[str, Row], notes: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """Write the PNGs to ``DIR/examples/`` and return their metadata (no image bytes)."""
        folder = ctx.out_dir / "examples"
        folder.mkdir(exist_ok=True)
        out = []
        for row in rows.values():
            for i, item in enumerate(row["items"]):
                file = f"examples/{i:04d}.png"
                (ctx.out_dir / file).write_bytes(base64.b64decode(item["png"]))
                meta = {k: v for k, v in item.items() if k != "png"}
                out.append({**meta, "file": file})
        return out

    def clear_outputs(self, out_dir: Path) -> None:
        """Delete the example PNGs this suite wrote."""
        for png in (out_dir / "examples").glob("[0-9][0-9][0-9][0-9].png"):
            png.unlink()

    def view(
        self, results: Mapping[str, Any], section: Any, folder: Path | None
    ) -> dict[str, Any] | None:
        """Example images grouped by kind, embedded as data URIs (at most MAX_EXAMPLES)."""
        groups: dict[str, list[dict[str, Any]]] = {}
        items = section if isinstance(section, list) else []
        for ex in items[:MAX_EXAMPLES]:
            if not isinstance(ex, Mapping):
                continue
            label, pred = ex.get("label"), ex.get("prediction")
            groups.setdefault(str(ex.get("kind", "example")), []).append(
                {
                    "uri": _example_uri(folder, ex.get("file")),
                    "file": str(ex.get("file", "")),
                    "condition": str(ex.get("condition") or ""),
                    "label": "" if label is None else str(label),
                    "prediction": "" if pred is None else str(pred),
                    "wrong": (not ex["correct"])
                    if isinstance(ex.get("correct"), bool)
                    else (label is not None and pred is not None and str(label) != str(pred)),
                    "confidence": fmt(ex.get("confidence"), 2)
                    if finite_or_none(ex.get("confidence"))
                    else "",
                }
            )
        order = {"clean": 0, "corrupted": 1, "adversarial": 2}
        return {
            "groups": [
                {"kind": k, "items": v}
                for k, v in sorted(groups.items(), key=lambda kv: order.get(kv[0], 9))
            ]
        }


SUITE = ExamplesSuite()
