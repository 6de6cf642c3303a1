"""Small matplotlib figures for audit reports, returned as ``data:image/png;base64`` URIs.

Figures are built with the object API on an Agg canvas (no pyplot, no global state, no display)
and rendered at a low dpi so that a full report stays well under 2 MB. Text that comes from users
(class names, corruption names) is passed with ``parse_math=False`` so a ``$`` is never TeX.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "accuracy_vs_eps",
    "compare_curves",
    "confusion_matrix",
    "corruption_heatmap",
    "min_norm_histogram",
    "ood_figure",
    "reliability_diagrams",
    "shift_curves",
]

DPI = 72
_BLUE, _ORANGE, _GREY = "#2b6cb0", "#dd6b20", "#718096"
_COLORS = ("#2b6cb0", "#dd6b20", "#38a169", "#9f7aea", "#e53e3e", "#319795", "#d69e2e")


def _figure(width: float, height: float, *, constrained: bool = False) -> Figure:
    """A figure on an Agg canvas; fixed margins (fast) unless ``constrained`` (long labels)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained" if constrained else None)
    FigureCanvasAgg(fig)
    if not constrained:
        fig.subplots_adjust(
            left=0.6 / width,
            right=1 - 0.15 / width,
            bottom=0.5 / height,
            top=1 - 0.3 / height,
            wspace=0.35,
            hspace=0.6,
        )
    return fig


def _to_uri(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _short(text: str, limit: int = 18) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _style(ax: Axes) -> None:
    ax.grid(True, alpha=0.3, linewidth=0.6)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.tick_params(labelsize=8)


def _finite(values: Sequence[Any]) -> list[float]:
    out = []
    for v in values:
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            out.append(float(v))
    return out


def accuracy_vs_eps(curves: dict[str, dict[str, Any]]) -> str:
    """Robust accuracy against eps, one panel per norm, with the 95% band.

    Args:
        curves: ``{norm: {"eps": [...], "value": [...], "low": [...], "high": [...],
            "clean": float | None, "eps_half": float | None, "upper": [...] | None}}``;
            ``upper`` is an optional upper-bound curve (the minimum-norm pilot).

    Example:
        >>> uri = accuracy_vs_eps({"linf": {"eps": [0.0, 0.1], "value": [0.9, 0.4],
        ...                                  "low": [0.85, 0.3], "high": [0.95, 0.5]}})
        >>> uri.startswith("data:image/png;base64,")
        True
    """
    fig = _figure(4.2 * max(1, len(curves)), 3.0)
    axes = fig.subplots(1, max(1, len(curves)), squeeze=False)[0]
    for ax, (norm, c) in zip(axes, curves.items(), strict=False):
        eps, val = c["eps"], c["value"]
        lo = [v if v is not None else y for v, y in zip(c.get("low") or val, val, strict=False)]
        hi = [v if v is not None else y for v, y in zip(c.get("high") or val, val, strict=False)]
        ax.fill_between(eps, lo, hi, color=_BLUE, alpha=0.2, linewidth=0, label="95% interval")
        ax.plot(eps, val, "o-", color=_BLUE, markersize=4, label="robust accuracy")
        if c.get("upper"):
            ax.plot(
                eps,
                c["upper"],
                "s--",
                color=_GREY,
                markersize=3,
                linewidth=1,
                label="min-norm pilot (upper bound)",
            )
        if c.get("clean") is not None:
            ax.axhline(c["clean"], color=_GREY, linestyle=":", linewidth=1, label="clean")
            ax.axhline(c["clean"] / 2, color=_ORANGE, linestyle="--", linewidth=0.8, label="half")
        if c.get("eps_half") is not None:
            ax.axvline(c["eps_half"], color=_ORANGE, linestyle="--", linewidth=0.8)
        ax.set_xlabel(f"eps ({norm})", fontsize=9)
        ax.set_ylabel("accuracy", fontsize=9)
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"{norm}: accuracy vs eps", fontsize=10)
        ax.legend(fontsize=7, loc="upper right")
        _style(ax)
    return _to_uri(fig)


def min_norm_histogram(norms: dict[str, dict[str, Any]]) -> str:
    """Histogram of per-sample minimal adversarial perturbations, one panel per norm.

    Args:
        norms: ``{norm: {"values": [...], "not_found": int, "misclassified": int,
            "median": float | None}}``; ``values`` are the positive minimal perturbations.

    Example:
        >>> min_norm_histogram({"l2": {"values": [0.5, 1.0, 1.2], "not_found": 1}})[:22]
        'data:image/png;base64,'
    """
    fig = _figure(4.2 * max(1, len(norms)), 2.6)
    axes = fig.subplots(1, max(1, len(norms)), squeeze=False)[0]
    for ax, (norm, h) in zip(axes, norms.items(), strict=False):
        values = _finite(h.get("values") or [])
        if values:
            ax.hist(values, bins=min(30, max(5, len(values) // 10)), color=_BLUE, alpha=0.8)
        if h.get("median") is not None:
            ax.axvline(h["median"], color=_ORANGE, linestyle="--", linewidth=1, label="median")
            ax.legend(fontsize=7)
        parts = []
        if h.get("misclassified"):
            parts.append(f"{h['misclassified']} misclassified clean")
        if h.get("not_found"):
            parts.append(f"{h['not_found']} not broken")
        extra = f" ({', '.join(parts)})" if parts else ""
        ax.set_title(f"{norm}: minimal perturbation{extra}", fontsize=10)
        ax.set_xlabel(f"{norm} norm", fontsize=9)
        ax.set_ylabel("samples", fontsize=9)
        _style(ax)
    return _to_uri(fig)


def corruption_heatmap(
    names: list[str], severities: list[str], values: list[list[float | None]]
) -> str:
    """Accuracy per corruption (rows) and severity (columns), annotated.

    Example:
        >>> corruption_heatmap(["fog", "blur"], ["1", "2"], [[0.9, 0.8], [0.7, None]])[:22]
        'data:image/png;base64,'
    """
    import numpy as np

    data = np.array([[np.nan if v is None else v for v in row] for row in values], dtype=float)
    fig = _figure(1.6 + 0.75 * len(severities), 0.9 + 0.3 * len(names), constrained=True)
    ax = fig.add_subplot()
    im = ax.imshow(data, cmap="RdYlGn", vmin=0.0, vmax=1.0, aspect="auto")
    for i in range(data.shape[0]):
        for j in range(data.shape[1]):
            if not np.isnan(data[i, j]):
                ax.text(j, i, f"{data[i, j]:.2f}", ha="center", va="center", fontsize=7)
    ax.set_xticks(range(len(severities)), severities)
    ax.set_yticks(range(len(names)), [_short(n, 22) for n in names], parse_math=False)
    ax.set_xlabel("severity", fontsize=9)
    ax.tick_params(labelsize=8)
    fig.colorbar(im, ax=ax, shrink=0.8, label="accuracy")
    return _to_uri(fig)


def reliability_diagrams(panels: dict[str, dict[str, Any]]) -> str:
    """Reliability diagrams (accuracy against confidence per bin), one panel per entry.

    Args:
        panels: ``{title: {"edges": [...], "confidence": [...], "accuracy": [...],
            "count": [...]}}``; bins with no samples are drawn empty.

    Example:
        >>> rel = {"edges": [0, 0.5, 1], "confidence": [0.3, 0.8], "accuracy": [0.2, 0.9],
        ...        "count": [10, 90]}
        >>> reliability_diagrams({"before": rel, "after": rel})[:22]
        'data:image/png;base64,'
    """
    fig = _figure(3.4 * max(1, len(panels)), 3.2)
    axes = fig.subplots(1, max(1, len(panels)), squeeze=False)[0]
    for ax, (title, rel) in zip(axes, panels.items(), strict=False):
        edges = _finite(rel.get("edges") or [])
        acc = rel.get("accuracy") or []
        conf = rel.get("confidence") or []
        count = rel.get("count") or [1] * len(acc)
        if len(count) < len(acc):  # a hand-edited file: draw the bins that have a count
            acc = acc[: len(count)]
        ax.plot([0, 1], [0, 1], color=_GREY, linestyle=":", linewidth=1)
        for k in range(min(len(edges) - 1, len(acc))):
            if not count[k] or acc[k] is None:
                continue
            left, width = edges[k], edges[k + 1] - edges[k]
            ax.bar(
                left, acc[k], width=width, align="edge", color=_BLUE, alpha=0.8, edgecolor="white"
            )
            if k < len(conf) and conf[k] is not None:
                lo, hi = sorted((acc[k], conf[k]))
                ax.bar(
                    left,
                    hi - lo,
                    bottom=lo,
                    width=width,
                    align="edge",
                    fill=False,
                    edgecolor=_ORANGE,
                    hatch="////",
                    linewidth=0.0,
                )
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("confidence", fontsize=9)
        ax.set_ylabel("accuracy", fontsize=9)
        ax.set_title(title, fontsize=10, parse_math=False)
        _style(ax)
    return _to_uri(fig)


def shift_curves(severity: list[float], series: dict[str, dict[str, list[Any]]]) -> str:
    """Metrics (accuracy, ECE) against corruption severity, with 95% error bars.

    Args:
        severity: x positions.
        series: ``{name: {"value": [...], "low": [...], "high": [...]}}``.

    Example:
        >>> shift_curves([0, 1], {"accuracy": {"value": [0.9, 0.7], "low": [0.88, 0.66],
        ...               "high": [0.92, 0.73]}})[:22]
        'data:image/png;base64,'
    """
    fig = _figure(4.6, 2.8)
    ax = fig.add_subplot()
    for color, (name, s) in zip(_COLORS, series.items(), strict=False):
        val = [math.nan if v is None else v for v in s["value"]]
        low = s.get("low") or val
        high = s.get("high") or val
        # a bootstrap interval need not contain the point estimate (ECE is biased): clip at 0
        lo = [
            0.0 if (a is None or v != v) else max(v - a, 0.0)
            for v, a in zip(val, low, strict=False)
        ]
        hi = [
            0.0 if (b is None or v != v) else max(b - v, 0.0)
            for v, b in zip(val, high, strict=False)
        ]
        ax.errorbar(
            severity, val, yerr=[lo, hi], fmt="o-", color=color, markersize=4, capsize=3, label=name
        )
    ax.set_xlabel("corruption severity (0 = clean)", fontsize=9)
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=8)
    _style(ax)
    return _to_uri(fig)


def ood_figure(methods: dict[str, dict[str, Any]], *, max_hist: int = 2) -> str:
    """ROC curves of every OOD score plus score histograms (in vs out) of the best and worst.

    With more than ``max_hist`` scores, histograms are drawn for the ``max_hist - 1`` best
    scores by AUROC and the worst one.

    Args:
        methods: ``{method: {"roc": {"fpr": [...], "tpr": [...]}, "hist": {"edges": [...],
            "in": [...], "out": [...]}, "auroc": float | None}}``.
        max_hist: at most this many histogram panels.

    Example:
        >>> m = {"msp": {"roc": {"fpr": [0, 0.2, 1], "tpr": [0, 0.8, 1]}, "auroc": 0.8,
        ...              "hist": {"edges": [0, 0.5, 1], "in": [1, 9], "out": [7, 3]}}}
        >>> ood_figure(m)[:22]
        'data:image/png;base64,'
    """
    names = list(methods)
    with_hist = [n for n in names if (methods[n].get("hist") or {}).get("edges")]
    if len(with_hist) > max_hist:
        ranked = sorted(with_hist, key=lambda n: -(methods[n].get("auroc") or 0.0))
        with_hist = ranked[: max_hist - 1] + ranked[-1:]
    cols = 1 + len(with_hist)
    fig = _figure(2.7 * cols, 2.6)
    axes = fig.subplots(1, cols, squeeze=False).ravel()
    ax = axes[0]
    ax.plot([0, 1], [0, 1], color=_GREY, linestyle=":", linewidth=1)
    for color, name in zip(_COLORS * 3, names, strict=False):
        roc = methods[name].get("roc") or {}
        if roc.get("fpr") and roc.get("tpr") and len(roc["fpr"]) == len(roc["tpr"]):
            auroc = methods[name].get("auroc")
            label = name if auroc is None else f"{name} ({auroc:.3f})"
            ax.plot(roc["fpr"], roc["tpr"], color=color, linewidth=1.3, label=_short(label, 26))
    ax.set_xlabel("FPR (OOD accepted)", fontsize=8)
    ax.set_ylabel("TPR (ID accepted)", fontsize=8)
    ax.set_title("ROC (ID = positive)", fontsize=9)
    ax.legend(fontsize=6, loc="lower right")
    _style(ax)
    for ax, name in zip(axes[1:], with_hist, strict=False):
        h = methods[name]["hist"]
        edges = _finite(h["edges"])
        for key, color, label in (("in", _BLUE, "in-dist."), ("out", _ORANGE, "OOD")):
            counts = _finite(h.get(key) or [])
            if len(counts) == len(edges) - 1 and sum(counts) > 0:
                total = sum(counts)
                ax.stairs(
                    [c / total for c in counts],
                    edges,
                    fill=True,
                    alpha=0.5,
                    color=color,
                    label=label,
                )
        auroc = methods[name].get("auroc")
        title = _short(name, 18) + ("" if auroc is None else f" (AUROC {auroc:.3f})")
        ax.set_title(title, fontsize=9, parse_math=False)
        ax.set_xlabel("score (higher = more ID)", fontsize=8)
        ax.legend(fontsize=6)
        _style(ax)
    return _to_uri(fig)


def confusion_matrix(matrix: list[list[int]], names: list[str]) -> str:
    """Row-normalised confusion matrix (rows = true class), annotated with counts when small.

    Example:
        >>> confusion_matrix([[8, 2], [1, 9]], ["cat", "dog"])[:22]
        'data:image/png;base64,'
    """
    import numpy as np

    m = np.asarray(matrix, dtype=float)
    k = m.shape[0]
    rows = m.sum(axis=1, keepdims=True)
    norm = np.divide(m, rows, out=np.zeros_like(m), where=rows > 0)
    size = min(7.5, 2.2 + 0.42 * k)
    fig = _figure(size + 0.8, size, constrained=True)
    ax = fig.add_subplot()
    im = ax.imshow(norm, cmap="Blues", vmin=0.0, vmax=1.0)
    if k <= 15:
        for i in range(k):
            for j in range(k):
                if m[i, j]:
                    color = "white" if norm[i, j] > 0.6 else "black"
                    ax.text(
                        j, i, f"{int(m[i, j])}", ha="center", va="center", fontsize=6, color=color
                    )
    labels = [_short(n, 14) for n in names] if len(names) == k else [str(i) for i in range(k)]
    if k <= 30:
        ax.set_xticks(range(k), labels, rotation=60, ha="right", parse_math=False)
        ax.set_yticks(range(k), labels, parse_math=False)
    ax.set_xlabel("predicted", fontsize=9)
    ax.set_ylabel("true", fontsize=9)
    ax.tick_params(labelsize=7)
    fig.colorbar(im, ax=ax, shrink=0.7, label="fraction of true class")
    return _to_uri(fig)


def compare_curves(curves: dict[str, dict[str, dict[str, Any]]], label_a: str, label_b: str) -> str:
    """Robust accuracy against eps for two audits, one panel per norm, with 95% bands.

    Args:
        curves: ``{norm: {"a": {"eps", "value", "low", "high"}, "b": {...}}}``.
        label_a: legend label of audit A.
        label_b: legend label of audit B.

    Example:
        >>> c = {"eps": [0.1, 0.2], "value": [0.5, 0.2], "low": [0.4, 0.1], "high": [0.6, 0.3]}
        >>> compare_curves({"linf": {"a": c, "b": c}}, "A", "B")[:22]
        'data:image/png;base64,'
    """
    fig = _figure(4.2 * max(1, len(curves)), 3.0)
    axes = fig.subplots(1, max(1, len(curves)), squeeze=False)[0]
    for ax, (norm, pair) in zip(axes, curves.items(), strict=False):
        for key, color, label in (("a", _BLUE, label_a), ("b", _ORANGE, label_b)):
            c = pair.get(key) or {}
            if not c.get("eps"):
                continue
            val = c["value"]
            lo = [v if v is not None else y for v, y in zip(c.get("low") or val, val, strict=False)]
            hi = [
                v if v is not None else y for v, y in zip(c.get("high") or val, val, strict=False)
            ]
            ax.fill_between(c["eps"], lo, hi, color=color, alpha=0.2, linewidth=0)
            ax.plot(c["eps"], val, "o-", color=color, markersize=4, label=_short(label, 30))
        ax.set_xlabel(f"eps ({norm})", fontsize=9)
        ax.set_ylabel("robust accuracy", fontsize=9)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlim(left=0)
        ax.set_title(f"{norm}", fontsize=10)
        ax.legend(fontsize=7, loc="upper right")
        for text in ax.get_legend().get_texts():
            text.set_parse_math(False)
        _style(ax)
    return _to_uri(fig)
