"""The audit report: one self-contained HTML file written from ``results.json``.

The report only reads results (``results.json`` and the small images in ``DIR/examples/``); it
never runs a model. Plots are embedded as base64 PNG, CSS is inline, there is no script, and a
Content-Security-Policy forbids loading anything from outside the file, so it opens with no
network and is safe to share. Every piece of user-supplied text (class names, paths, the model
spec) goes through Jinja2's autoescaping.
"""

from __future__ import annotations

import base64
import functools
import io
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from robustcv.core.errors import InputError
from robustcv.report import plots
from robustcv.report._results import (
    SUITES,
    Estimate,
    _num,
    curve_eps_half,
    curve_estimates,
    load_results,
    suite,
)

__all__ = ["render_report", "write_report"]

MAX_EXAMPLES = 60
"""At most this many example images are embedded."""
_MAX_EXAMPLE_BYTES = 40_000
_MAX_EXAMPLE_SIDE = 160
_MAX_CONFIG_CHARS = 20_000
_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


def _est(obj: Any, digits: int = 3) -> dict[str, Any] | None:
    """An estimate prepared for the template: value, interval and N as strings."""
    e = Estimate.parse(obj)
    if e is None:
        return None
    return {
        "value": f"{e.value:.{digits}f}",
        "ci": e.interval_text(digits),
        "n": "" if e.n is None else str(e.n),
        "method": e.method or "",
        "raw": e.value,
    }


def _fmt(value: Any, digits: int = 4) -> str:
    v = _num(value)
    return "–" if v is None else f"{v:.{digits}g}"


def _sev_key(key: str) -> tuple[float, str]:
    v = _num(key)
    return (math.inf if v is None else v, str(key))


def _fired_findings(items: Any, scope: str) -> list[dict[str, str]]:
    out = []
    for f in items if isinstance(items, list) else []:
        if isinstance(f, Mapping) and f.get("fired"):
            out.append(
                {
                    "scope": scope,
                    "check": str(f.get("check", "?")),
                    "message": str(f.get("message") or f.get("explanation") or ""),
                    "action": str(f.get("action") or ""),
                }
            )
    return out


def _all_findings(items: Any) -> list[dict[str, Any]]:
    out = []
    for f in items if isinstance(items, list) else []:
        if isinstance(f, Mapping):
            out.append(
                {
                    "check": str(f.get("check", "?")),
                    "fired": bool(f.get("fired")),
                    "message": str(f.get("message") or f.get("explanation") or ""),
                    "action": str(f.get("action") or ""),
                }
            )
    return out


def _notes(*values: Any) -> list[str]:
    """Free-text notes from results (a string or a list of strings), in order."""
    out: list[str] = []
    for v in values:
        if isinstance(v, str) and v:
            out.append(v)
        elif isinstance(v, list):
            out += [str(x) for x in v if isinstance(x, (str, int, float)) and str(x)]
    return out


def _class_names(results: Mapping[str, Any], k: int) -> list[str]:
    names = (results.get("data") or {}).get("class_names") or []
    names = [str(n) for n in names]
    return names if len(names) >= k else names + [str(i) for i in range(len(names), k)]


# ---------------------------------------------------------------------------------------------
# one builder per section; each returns None when the suite was not run


def _clean_section(results: Mapping[str, Any]) -> dict[str, Any] | None:
    clean = suite(results, "clean")
    if clean is None:
        return None
    confusion = clean.get("confusion")
    per_class = clean.get("per_class") or {}
    k = len(confusion) if isinstance(confusion, list) else len(per_class)
    names = _class_names(results, k)
    rows = []
    if isinstance(per_class, Mapping):
        items = list(per_class.items())
    else:
        items = [(names[i] if i < len(names) else str(i), v) for i, v in enumerate(per_class)]
    by_index = not all(str(name) in names for name, _ in items)
    for name, obj in items:
        label = str(name)
        if by_index and label.isdigit() and int(label) < len(names):
            label = names[int(label)]
        est = _est(obj)
        if est is not None:
            rows.append({"name": label, "est": est, "pct": max(0.0, min(100.0, est["raw"] * 100))})
    figure = None
    if isinstance(confusion, list) and confusion and all(isinstance(r, list) for r in confusion):
        figure = plots.confusion_matrix(confusion, names[: len(confusion)])
    return {
        "accuracy": _est(clean.get("accuracy")),
        "per_class": rows,
        "confusion": figure,
        "notes": _notes(clean.get("notes")),
    }


def _corruption_cells(
    corr: Mapping[str, Any],
) -> tuple[list[str], list[str], dict[str, dict[str, Any]]]:
    table = corr.get("table") or {}
    names = [str(n) for n in table if isinstance(table[n], Mapping)]
    sevs: set[str] = set()
    for n in names:
        sevs.update(str(s) for s in table[n])
    return names, sorted(sevs, key=_sev_key), table


def _corruption_means(corr: Mapping[str, Any]) -> dict[str, Estimate]:
    means = {}
    for name, obj in (corr.get("per_corruption_mean") or {}).items():
        e = Estimate.parse(obj)
        if e is not None:
            means[str(name)] = e
    if means:
        return means
    names, sevs, table = _corruption_cells(corr)
    for n in names:
        vals = [e.value for s in sevs if (e := Estimate.parse(table[n].get(s))) is not None]
        if vals:
            means[n] = Estimate(sum(vals) / len(vals))
    return means


def _corruption_section(results: Mapping[str, Any]) -> dict[str, Any] | None:
    corr = suite(results, "corruption")
    if corr is None:
        return None
    names, sevs, table = _corruption_cells(corr)
    means = _corruption_means(corr)
    grid: list[list[float | None]] = []
    rows: list[dict[str, Any]] = []
    for n in names:
        cells = [Estimate.parse(table[n].get(s)) for s in sevs]
        grid.append([None if c is None else c.value for c in cells])
        ce = _num((corr.get("ce") or {}).get(n)) if isinstance(corr.get("ce"), Mapping) else None
        rows.append(
            {
                "name": n,
                "mean": _est(means.get(n)),
                "cells": [_est(c) for c in cells],
                "ce": None if ce is None else f"{ce:.1f}",
            }
        )
    rows.sort(key=lambda r: r["mean"]["raw"] if r["mean"] else math.inf)
    heatmap = plots.corruption_heatmap(names, sevs, grid) if names and sevs else None
    return {
        "spec": str(corr.get("spec", "")),
        "n": corr.get("n"),
        "severities": sevs,
        "rows": rows,
        "mean_accuracy": _est(corr.get("mean_accuracy")),
        "mce": _fmt(corr.get("mce")) if corr.get("mce") is not None else None,
        "relative_mce": _fmt(corr.get("relative_mce"))
        if corr.get("relative_mce") is not None
        else None,
        "baseline": str(corr["baseline"]) if corr.get("baseline") else None,
        "clean_accuracy": _est(corr.get("clean_accuracy")),
        "heatmap": heatmap,
        "has_ce": any(r["ce"] is not None for r in rows),
        "notes": _notes(corr.get("notes")),
    }


def _reference_accuracy(results: Mapping[str, Any], norm_res: Mapping[str, Any]) -> Estimate | None:
    return Estimate.parse(norm_res.get("clean_accuracy")) or Estimate.parse(
        (suite(results, "clean") or {}).get("accuracy")
    )


def _adversarial_section(results: Mapping[str, Any]) -> dict[str, Any] | None:
    adv = suite(results, "adversarial")
    if adv is None:
        return None
    norms = []
    curves: dict[str, dict[str, Any]] = {}
    hists: dict[str, dict[str, Any]] = {}
    for norm, nr in (adv.get("norms") or {}).items():
        if not isinstance(nr, Mapping):
            continue
        norm = str(norm)
        pts = curve_estimates(nr)
        ref = _reference_accuracy(results, nr)
        half = (
            _num(nr.get("eps_half"))
            if "eps_half" in nr
            else (
                curve_eps_half([(e, a.value) for e, a in pts], ref.value)
                if ref is not None
                else None
            )
        )
        if pts:
            curves[norm] = {
                "eps": [e for e, _ in pts],
                "value": [a.value for _, a in pts],
                "low": [a.low for _, a in pts],
                "high": [a.high for _, a in pts],
                "clean": None if ref is None else ref.value,
                "eps_half": half,
            }
            upper = [Estimate.parse(a) for a in (nr.get("min_norm_accuracy") or [])]
            if len(upper) == len(nr.get("eps") or []) and all(u is not None for u in upper):
                by_eps = dict(zip((_num(e) for e in nr["eps"]), upper, strict=True))
                curves[norm]["upper"] = [by_eps[e].value for e, _ in pts]  # type: ignore[union-attr]
        min_norms = nr.get("min_norms") or []
        finite = [v for v in (_num(m) for m in min_norms) if v is not None]
        positive = [v for v in finite if v > 0]  # 0 marks an image misclassified unattacked
        if positive:
            hists[norm] = {
                "values": positive,
                "not_found": len(min_norms) - len(finite),
                "misclassified": len(finite) - len(positive),
                "median": _num(nr.get("median_min_norm")),
            }
        budgets = nr.get("budgets") or {}
        ensemble = [str(a) for a in (nr.get("ensemble") or adv.get("ensemble") or [])]
        norms.append(
            {
                "name": norm,
                "n": nr.get("n", adv.get("n")),
                "points": [{"eps": f"{e:g}", "est": _est(a)} for e, a in pts],
                "eps_half": None if half is None else f"{half:.4g}",
                "median_min_norm": _fmt(nr.get("median_min_norm")),
                "ensemble": ensemble,
                "budgets": [
                    {
                        "attack": str(k),
                        "budget": ", ".join(f"{a}={b}" for a, b in v.items())
                        if isinstance(v, Mapping)
                        else str(v),
                    }
                    for k, v in (budgets.items() if isinstance(budgets, Mapping) else [])
                ],
                "broken_by": [
                    {"attack": str(k), "share": _fmt(v, 3)}
                    for k, v in (nr.get("broken_by") or {}).items()
                ],
                "sanity": _all_findings(nr.get("sanity")),
                "grid_source": str(nr.get("grid_source") or ""),
                "pilot": _pilot_text(nr.get("pilot")),
                "notes": _notes(
                    [f"{k}: {v}" for k, v in (nr.get("attack_notes") or {}).items()]
                    if isinstance(nr.get("attack_notes"), Mapping)
                    else None
                ),
            }
        )
    return {
        "strength": str(adv.get("strength", "")),
        "gradient_free": bool(adv.get("gradient_free")),
        "notes": _notes(adv.get("notes")),
        "n": adv.get("n"),
        "norms": norms,
        "sanity": _all_findings(adv.get("sanity")),
        "curves": plots.accuracy_vs_eps(curves) if curves else None,
        "histogram": plots.min_norm_histogram(hists) if hists else None,
    }


def _pilot_text(pilot: Any) -> str:
    if not isinstance(pilot, Mapping) or not pilot.get("attack"):
        return ""
    params = pilot.get("params")
    args = ", ".join(f"{k}={v}" for k, v in params.items()) if isinstance(params, Mapping) else ""
    n = f" on N = {pilot['n']}" if pilot.get("n") is not None else ""
    return f"{pilot['attack']}({args}){n}"


def _calibration_section(results: Mapping[str, Any]) -> dict[str, Any] | None:
    cal = suite(results, "calibration")
    if cal is None:
        return None
    before, after = cal.get("before") or {}, cal.get("after") or {}
    metrics = []
    for key, label, is_est in (
        ("accuracy", "accuracy", True),
        ("ece", f"ECE (equal-width, {cal.get('n_bins', '?')} bins)", True),
        ("ece_equal_mass", f"ECE (equal-mass, {cal.get('n_bins', '?')} bins)", True),
        ("mce", "MCE (max bin gap)", False),
        ("brier", "Brier score", False),
        ("nll", "NLL", False),
    ):
        if key not in before and key not in after:
            continue
        digits = 3 if is_est else 4
        metrics.append(
            {
                "label": label,
                "before": _est(before.get(key), digits),
                "after": _est(after.get(key), digits),
            }
        )
    panels = {}
    t = _num(cal.get("temperature"))
    for title, part in (
        ("before temperature scaling", before),
        (f"after (T = {_fmt(t, 3)})", after),
    ):
        rel = part.get("reliability")
        if isinstance(rel, Mapping) and rel.get("edges"):
            panels[title] = dict(rel)
    shift_rows: list[tuple[float, dict[str, Estimate | None]]] = []
    for row in cal.get("under_shift") or []:
        sev = _num(row.get("severity")) if isinstance(row, Mapping) else None
        if sev is not None:
            keys = ("accuracy", "ece", "ece_after")
            shift_rows.append((sev, {k: Estimate.parse(row.get(k)) for k in keys}))
    shift_rows.sort(key=lambda r: r[0])
    shift_fig = None
    if shift_rows:
        series = {}
        for key, label in (
            ("accuracy", "accuracy"),
            ("ece", "ECE"),
            ("ece_after", "ECE after scaling"),
        ):
            ests = [r[1][key] for r in shift_rows]
            if any(e is not None for e in ests):
                series[label] = {
                    "value": [e.value if e else None for e in ests],
                    "low": [e.low if e else None for e in ests],
                    "high": [e.high if e else None for e in ests],
                }
        if len(shift_rows) > 1:
            shift_fig = plots.shift_curves([r[0] for r in shift_rows], series)
    return {
        "n": cal.get("n"),
        "n_bins": cal.get("n_bins"),
        "fit_n": cal.get("fit_n"),
        "fit_data": str(cal.get("fit_data") or (results.get("config") or {}).get("fit_data") or ""),
        "temperature": _fmt(t, 4),
        "metrics": metrics,
        "reliability": plots.reliability_diagrams(panels) if panels else None,
        "shift": [
            {
                "severity": f"{sev:g}",
                "accuracy": _est(e["accuracy"]),
                "ece": _est(e["ece"]),
                "ece_after": _est(e["ece_after"]),
            }
            for sev, e in shift_rows
        ],
        "has_ece_after": any(e["ece_after"] is not None for _, e in shift_rows),
        "notes": _notes(cal.get("convention"), cal.get("shift_note"), cal.get("notes")),
        "shift_figure": shift_fig,
    }


def _ood_section(results: Mapping[str, Any]) -> dict[str, Any] | None:
    ood = suite(results, "ood")
    if ood is None:
        return None
    sets = []
    for name, sres in (ood.get("sets") or {}).items():
        if not isinstance(sres, Mapping):
            continue
        methods = {
            str(m): r for m, r in (sres.get("methods") or {}).items() if isinstance(r, Mapping)
        }
        fig_input = {}
        rows = []
        for m, r in methods.items():
            auroc = Estimate.parse(r.get("auroc"))
            fig_input[m] = {
                "roc": r.get("roc"),
                "hist": r.get("hist"),
                "auroc": None if auroc is None else auroc.value,
            }
            row: dict[str, Any] = {"name": m, "auroc": _est(auroc)}
            for key in ("aupr_in", "aupr_out", "fpr95"):
                e = Estimate.parse(r.get(key))
                row[key] = _fmt(None if e is None else e.value, 3)
            rows.append(row)
        sets.append(
            {
                "name": str(name),
                "derived": bool(sres.get("derived")),
                "description": str(sres.get("description") or sres.get("spec") or ""),
                "n": sres.get("n"),
                "n_in": sres.get("n_in", ood.get("n_in")),
                "methods": rows,
                "figure": plots.ood_figure(fig_input) if methods else None,
            }
        )
    params = ood.get("method_params")
    return {
        "convention": str(ood.get("convention") or ""),
        "sets": sets,
        "fit_n": ood.get("fit_n"),
        "method_params": [
            (str(m), ", ".join(f"{k}={v}" for k, v in p.items()) if isinstance(p, Mapping) else "")
            for m, p in (params.items() if isinstance(params, Mapping) else [])
        ],
        "notes": _notes(ood.get("notes")),
    }


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
            fmt = (img.format or "").upper()
            if (
                fmt not in ("PNG", "JPEG")
                or len(data) > _MAX_EXAMPLE_BYTES
                or max(img.size) > _MAX_EXAMPLE_SIDE
            ):
                small = img.convert("RGB") if img.mode not in ("L", "RGB") else img.copy()
                small.thumbnail((_MAX_EXAMPLE_SIDE, _MAX_EXAMPLE_SIDE))
                buf = io.BytesIO()
                small.save(buf, format="PNG", optimize=True)
                data, fmt = buf.getvalue(), "PNG"
            else:
                img.load()  # a truncated or corrupt file fails here, not in the browser
    except (UnidentifiedImageError, OSError, ValueError):
        return None
    mime = "image/png" if fmt == "PNG" else "image/jpeg"
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _examples_section(results: Mapping[str, Any], folder: Path | None) -> list[dict[str, Any]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    items = results.get("examples") or []
    for ex in items[:MAX_EXAMPLES] if isinstance(items, list) else []:
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
                "confidence": _fmt(ex.get("confidence"), 2) if _num(ex.get("confidence")) else "",
            }
        )
    order = {"clean": 0, "corrupted": 1, "adversarial": 2}
    return [
        {"kind": k, "items": v}
        for k, v in sorted(groups.items(), key=lambda kv: order.get(kv[0], 9))
    ]


# ---------------------------------------------------------------------------------------------
# the summary: where the model breaks


def _summary(results: Mapping[str, Any], sections: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("clean", "worst_corruptions", "worst_cell", "corruption_mean", "eps_half")
    out: dict[str, Any] = dict.fromkeys((*keys, "calibration", "weakest_ood"))
    clean = suite(results, "clean")
    if clean:
        out["clean"] = _est(clean.get("accuracy"))
    corr = suite(results, "corruption")
    if corr:
        means = sorted(_corruption_means(corr).items(), key=lambda kv: kv[1].value)
        ref = Estimate.parse(corr.get("clean_accuracy")) or Estimate.parse(
            (clean or {}).get("accuracy")
        )
        out["worst_corruptions"] = [
            {
                "name": n,
                "est": _est(e),
                "drop": None
                if ref is None
                else f"{ref.value - e.value:+.3f}".replace("+", "−", 1)
                if ref.value - e.value > 0
                else None,
            }
            for n, e in means[:3]
        ]
        worst_cell = None
        names, sevs, table = _corruption_cells(corr)
        for n in names:
            for s in sevs:
                e = Estimate.parse(table[n].get(s))
                if e is not None and (worst_cell is None or e.value < worst_cell[2].value):
                    worst_cell = (n, s, e)
        if worst_cell:
            out["worst_cell"] = {
                "name": worst_cell[0],
                "severity": worst_cell[1],
                "est": _est(worst_cell[2]),
            }
        out["corruption_mean"] = _est(corr.get("mean_accuracy"))
    adv = sections.get("adversarial")
    if adv:
        out["eps_half"] = [
            {
                "norm": n["name"],
                "eps_half": n["eps_half"],
                "max_eps": n["points"][-1]["eps"] if n["points"] else None,
                "last": n["points"][-1]["est"] if n["points"] else None,
            }
            for n in adv["norms"]
        ]
    cal = suite(results, "calibration")
    if cal:
        b = Estimate.parse((cal.get("before") or {}).get("ece"))
        a = Estimate.parse((cal.get("after") or {}).get("ece"))
        out["calibration"] = {
            "before": _est(b),
            "after": _est(a),
            "temperature": _fmt(cal.get("temperature"), 3),
            "gap": None if (a is None or b is None) else f"{b.value - a.value:.3f}",
        }
    ood = suite(results, "ood")
    if ood:
        weakest = None
        for set_name, sres in (ood.get("sets") or {}).items():
            for m, r in ((sres or {}).get("methods") or {}).items():
                e = Estimate.parse((r or {}).get("auroc"))
                if e is not None and (weakest is None or e.value < weakest[2].value):
                    weakest = (str(set_name), str(m), e)
        if weakest:
            out["weakest_ood"] = {"set": weakest[0], "method": weakest[1], "est": _est(weakest[2])}
    return out


def _warnings(results: Mapping[str, Any]) -> list[dict[str, str]]:
    found: list[dict[str, str]] = []
    found += _fired_findings(results.get("warnings"), "audit")
    adv = suite(results, "adversarial")
    if adv:
        found += _fired_findings(adv.get("sanity"), "adversarial")
        for norm, nr in (adv.get("norms") or {}).items():
            if isinstance(nr, Mapping):
                found += _fired_findings(nr.get("sanity"), f"adversarial {norm}")
    return found


def _suite_status(results: Mapping[str, Any]) -> list[dict[str, str]]:
    config = results.get("config") or {}
    requested = config.get("suites")
    skipped = results.get("skipped") or {}
    status = []
    for name in SUITES:
        if suite(results, name) is not None:
            status.append({"name": name, "status": "run", "why": ""})
        elif name in skipped:
            status.append({"name": name, "status": "skipped", "why": str(skipped[name])})
        elif isinstance(requested, list) and name not in requested:
            status.append({"name": name, "status": "not run", "why": "not requested (--suites)"})
        else:
            status.append({"name": name, "status": "not run", "why": "no results in results.json"})
    return status


def _context(results: Mapping[str, Any], folder: Path | None) -> dict[str, Any]:
    sections: dict[str, Any] = {
        "clean": _clean_section(results),
        "corruption": _corruption_section(results),
        "adversarial": _adversarial_section(results),
        "calibration": _calibration_section(results),
        "ood": _ood_section(results),
    }
    config = results.get("config") or {}
    model = results.get("model") or {}
    data = results.get("data") or {}
    config_text = json.dumps(config, indent=2, sort_keys=True, default=str)
    if len(config_text) > _MAX_CONFIG_CHARS:
        config_text = config_text[:_MAX_CONFIG_CHARS] + "\n… (truncated)"
    skipped = results.get("skipped") or {}
    timings = results.get("timings") or {}
    return {
        "csp": _CSP,
        "model_spec": str(model.get("spec") or config.get("model") or "unknown model"),
        "data_spec": str(data.get("spec") or config.get("data") or "unknown data"),
        "split": str(config.get("split") or data.get("split") or ""),
        "data_n": data.get("n"),
        "model_info": [
            (str(k), str(v))
            for k, v in model.items()
            if k != "spec" and isinstance(v, (str, int, float, bool, list))
        ],
        "created": str(results.get("created") or ""),
        "version": str(results.get("robustcv_version") or ""),
        "schema": str(results.get("schema") or ""),
        "fingerprint": str(results.get("fingerprint") or ""),
        "strength": str(config.get("strength") or ""),
        "seed": config.get("seed"),
        "subsample": [(str(k), str(v)) for k, v in (config.get("subsample") or {}).items()],
        "status": _suite_status(results),
        "skipped": [
            {"what": str(k), "why": str(v)}
            for k, v in (skipped.items() if isinstance(skipped, Mapping) else [])
        ],
        "warnings": _warnings(results),
        "top_notes": _notes(results.get("notes")),
        "summary": _summary(results, sections),
        "timings": [
            (str(k), _fmt(v, 3))
            for k, v in (timings.items() if isinstance(timings, Mapping) else [])
        ],
        "config_text": config_text,
        "examples": _examples_section(results, folder),
        **sections,
    }


@functools.lru_cache(maxsize=1)
def _environment() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(Path(__file__).parent / "templates")),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env


def _render(results: Mapping[str, Any], folder: Path | None) -> str:
    return str(_environment().get_template("report.html.j2").render(**_context(results, folder)))


def render_report(
    source: str | os.PathLike[str] | Mapping[str, Any],
    *,
    folder: str | os.PathLike[str] | None = None,
) -> str:
    """Render the audit report as an HTML string (see :func:`write_report`).

    Args:
        source: the audit folder, its ``results.json``, or the results as a dict.
        folder: where example images are looked up; default: the audit folder.

    Example:
        >>> html = render_report({"schema": "robustcv.audit/1", "suites": {}})
        >>> "<!DOCTYPE html>" in html and "not run" in html
        True
    """
    results, found = load_results(source)
    return _render(results, Path(folder) if folder is not None else found)


def write_report(
    results_dir_or_dict: str | os.PathLike[str] | Mapping[str, Any],
    out_path: str | os.PathLike[str] | None = None,
) -> Path:
    """Write the audit report: one self-contained HTML file (default ``DIR/report.html``).

    The file embeds its plots and example images, has inline CSS and no script, and declares a
    Content-Security-Policy that blocks every external load, so it opens with no network.

    Args:
        results_dir_or_dict: the audit folder (or its ``results.json``), or the results dict
            (then ``out_path`` is required and example files are looked up next to it).
        out_path: where to write; default ``DIR/report.html``.

    Returns:
        The path written.

    Raises:
        InputError: no results.json, an unreadable one, or a dict without ``out_path``.

    Example:
        >>> import tempfile, pathlib
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "r.html"
        >>> write_report({"schema": "robustcv.audit/1", "suites": {}}, out) == out
        True
    """
    results, folder = load_results(results_dir_or_dict)
    if folder is None:
        if out_path is None:
            raise InputError("write_report(dict) needs out_path (where to write report.html)")
        folder = Path(out_path).parent
    out = Path(out_path) if out_path is not None else folder / "report.html"
    html = _render(results, folder)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(html, encoding="utf-8")
        tmp.replace(out)
    except OSError as err:
        raise InputError(f"cannot write the report to {out}: {err}; pass a writable path") from err
    return out
