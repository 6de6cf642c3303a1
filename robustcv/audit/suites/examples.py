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
from typing import Any

import numpy as np
import torch

from robustcv.audit.plan import AuditContext, Row, Unit
from robustcv.audit.suites.adversarial import AdversarialSuite
from robustcv.audit.suites.calibration import available_corruptions
from robustcv.core.seeding import derive_seed

__all__ = ["ExamplesSuite", "to_png"]


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


class ExamplesSuite:
    """One unit that renders ``examples.n`` images of each kind."""

    name = "examples"

    def requires(self, ctx: AuditContext) -> tuple[str, ...]:
        """Suites whose rows this one reads (the adversarial pilot sets the eps)."""
        return ("adversarial",) if "adversarial" in ctx.config.suites else ()

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
        usable, _ = available_corruptions(cfg.corruptions, tuple(x.shape[1:]))
        if usable:
            corrupted, conds = [], []
            for j in range(x.shape[0]):
                c = usable[j % len(usable)]
                seed = derive_seed(ctx.seed, c, cfg.severity)
                corrupted.append(corrupt(x[j : j + 1], c, cfg.severity, seed=seed)[0])
                conds.append(f"{c}/{cfg.severity}")
            add("corrupted", conds, torch.stack(corrupted))
        adv = AdversarialSuite()
        if "adversarial" in ctx.config.suites:
            norm = ctx.config.adversarial.norms[0]
            med = adv.grid(ctx, norm, deps)["median"]
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
