"""Clean suite: accuracy, per-class accuracy and the confusion matrix, with exact intervals.

Results (``suites.clean``): ``n``, ``accuracy`` (estimate), ``per_class`` (class name ->
estimate), ``confusion`` (rows: true class, columns: predicted), ``confusion_axes``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

import numpy as np
import torch

from robustcv.audit import plots
from robustcv.audit.plan import Row, Unit, shards
from robustcv.audit.schema import accuracy_estimate
from robustcv.audit.suite import (
    CheckSpec,
    EstimateDict,
    Metric,
    Outcome,
    Suite,
    Threshold,
    est_view,
    notes_list,
)
from robustcv.audit.validate import positive_int
from robustcv.core.errors import InputError
from robustcv.core.stats import Estimate

if TYPE_CHECKING:
    from robustcv.audit.context import AuditContext

__all__ = ["SUITE", "CleanConfig", "CleanSection", "CleanSuite", "class_names"]


class CleanSection(TypedDict):
    """``suites.clean`` of results.json."""

    n: int
    accuracy: EstimateDict
    per_class: dict[str, EstimateDict]
    confusion: list[list[int]]
    confusion_axes: str


@dataclass(frozen=True)
class CleanConfig:
    """Clean accuracy.

    Attributes:
        n: images evaluated (None: every evaluated image).
    """

    n: int | None = None

    def __post_init__(self) -> None:
        positive_int(self.n, "clean.n", allow_none=True)


def class_names(results: Mapping[str, Any], k: int) -> list[str]:
    """The data's class names from results.json, padded with indices to ``k`` names.

    Example:
        >>> class_names({"data": {"class_names": ["a"]}}, 2)
        ['a', '1']
    """
    names = [str(n) for n in ((results.get("data") or {}).get("class_names") or [])]
    return names if len(names) >= k else names + [str(i) for i in range(len(names), k)]


def _check_min_acc(results: Mapping[str, Any], section: Mapping[str, Any], t: Threshold) -> list:
    est = Estimate.parse(section.get("accuracy"))
    if est is None:
        raise InputError(f"{t.flag}: results.json has no clean accuracy; re-run the audit")
    return [Outcome.judge(t, "clean accuracy", est, higher_is_better=True)]


_TEMPLATE = """{% from "_macros.html.j2" import est, figure, notes %}
<p>Accuracy {{ est(v.accuracy) }}</p>
<div style="display:flex; gap:24px; flex-wrap:wrap">
{% if v.per_class %}
<table>
<tr><th>class</th><th>accuracy</th><th></th></tr>
{% for r in v.per_class %}
<tr><td>{{ r.name }}</td><td>{{ est(r.est) }}</td><td><span class="bar" style="width: {{ '%.0f'|format(r.pct) }}px"></span></td></tr>
{% endfor %}
</table>
{% endif %}
<div>{{ figure(v.confusion, "confusion matrix") }}</div>
</div>
<p class="small muted">Confusion matrix: rows are the true class, columns the prediction; colour is the fraction of the true class, numbers are counts.</p>
{{ notes(v.notes) }}
"""  # noqa: E501

_CARD = """{% from "_macros.html.j2" import est %}
<div class="card"><h3>Clean accuracy</h3><div class="big">{{ est(v.accuracy) }}</div></div>
"""


class CleanSuite(Suite):
    """One unit per shard of the evaluated images; rows hold confusion counts."""

    name = "clean"
    title = "Clean accuracy"
    description = "accuracy, per-class accuracy and confusion matrix on the clean images"
    config_class = CleanConfig
    section_type = CleanSection
    order = 10
    report_template = _TEMPLATE
    card_template = _CARD
    checks = (
        CheckSpec(
            "min-acc",
            "clean accuracy >= V",
            "V",
            "0.9",
            _check_min_acc,
            fraction=True,
        ),
    )

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

    def subsample(self, ctx: AuditContext, units: Sequence[Unit]) -> tuple[str, dict[str, Any]]:
        """How many images the accuracy rests on."""
        k = len(self._positions(ctx))
        return f"clean {k} of {len(ctx.data)} images", {"clean": k}

    def summary_lines(self, section: Any) -> list[str]:
        """The accuracy with its interval."""
        est = Estimate.parse(section.get("accuracy"))
        return [f"accuracy {est.text(4) if est else '-'}"]

    def view(
        self, results: Mapping[str, Any], section: Any, folder: Path | None
    ) -> dict[str, Any] | None:
        """Accuracy, per-class bars and the confusion matrix figure."""
        confusion = section.get("confusion")
        per_class = section.get("per_class") or {}
        k = len(confusion) if isinstance(confusion, list) else len(per_class)
        names = class_names(results, k)
        if isinstance(per_class, Mapping):
            items = list(per_class.items())
        else:
            items = [(names[i] if i < len(names) else str(i), v) for i, v in enumerate(per_class)]
        by_index = not all(str(name) in names for name, _ in items)
        rows = []
        for name, obj in items:
            label = str(name)
            if by_index and label.isdigit() and int(label) < len(names):
                label = names[int(label)]
            est = est_view(obj)
            if est is not None:
                rows.append(
                    {"name": label, "est": est, "pct": max(0.0, min(100.0, est["raw"] * 100))}
                )
        figure = None
        if (
            isinstance(confusion, list)
            and confusion
            and all(isinstance(r, list) for r in confusion)
        ):
            figure = plots.confusion_matrix(confusion, names[: len(confusion)])
        return {
            "accuracy": est_view(section.get("accuracy")),
            "per_class": rows,
            "confusion": figure,
            "notes": notes_list(section.get("notes")),
        }

    def card(self, results: Mapping[str, Any], section: Any) -> dict[str, Any] | None:
        """The clean-accuracy card."""
        acc = est_view(section.get("accuracy"))
        return None if acc is None else {"accuracy": acc}

    def metrics(self, results: Mapping[str, Any], section: Any) -> list[Metric]:
        """Clean accuracy."""
        est = Estimate.parse(section.get("accuracy"))
        if est is None:
            return []
        return [Metric("clean/accuracy", "clean accuracy", est, True, True)]

    def leaderboard_columns(self, results: Mapping[str, Any], section: Any) -> list[Metric]:
        """Clean accuracy (``clean/accuracy``)."""
        return self.metrics(results, section)


SUITE = CleanSuite()
