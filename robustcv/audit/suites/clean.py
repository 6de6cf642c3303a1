"""Clean suite: accuracy, per-class accuracy and the confusion matrix, with exact intervals."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from robustcv.audit.plan import AuditContext, Row, Unit, shards
from robustcv.audit.schema import accuracy_estimate

__all__ = ["CleanSuite"]


class CleanSuite:
    """One unit per shard of the evaluated images; rows hold confusion counts."""

    name = "clean"

    def _positions(self, ctx: AuditContext) -> np.ndarray:
        return ctx.subset("clean", ctx.config.clean.n)

    def plan(self, ctx: AuditContext) -> list[Unit]:
        """A unit per ``shard_size`` images."""
        n = len(self._positions(ctx))
        return [
            Unit(self.name, "all", i, {"start": a, "stop": b}, cost=float(b - a))
            for i, (a, b) in enumerate(shards(n, ctx.config.shard_size))
        ]

    def run(self, ctx: AuditContext, unit: Unit, deps: Mapping[str, Row]) -> Row:
        """Confusion counts (true x predicted) of one shard."""
        pos = self._positions(ctx)[unit.params["start"] : unit.params["stop"]]
        x, y = ctx.images(pos)
        pred = ctx.logits(x).argmax(1)
        k = max(ctx.model.num_classes, ctx.data.num_classes)
        conf = torch.zeros(k * k, dtype=torch.int64)
        conf.index_add_(0, y * k + pred, torch.ones_like(y))
        return {"n": len(pos), "confusion": conf.view(k, k).tolist()}

    def aggregate(
        self, ctx: AuditContext, rows: Mapping[str, Row], notes: dict[str, Any]
    ) -> dict[str, Any]:
        """Sum the shards' confusion matrices; accuracy and per-class accuracy with CIs."""
        conf = np.sum([np.asarray(r["confusion"], dtype=np.int64) for r in rows.values()], axis=0)
        n = int(conf.sum())
        names = list(ctx.data.classes)
        k = conf.shape[0]
        names += [str(i) for i in range(len(names), k)]
        per_class = {}
        for c in range(k):
            support = int(conf[c].sum())
            if support:
                per_class[names[c]] = accuracy_estimate(int(conf[c, c]), support)
        return {
            "n": n,
            "accuracy": accuracy_estimate(int(np.trace(conf)), n),
            "per_class": per_class,
            "confusion": conf.tolist(),
            "confusion_axes": "rows: true class, columns: predicted class (data class order)",
        }
