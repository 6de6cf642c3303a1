"""Corruption suite: accuracy at every (corruption, severity), mean accuracy, mCE vs a baseline.

Condition (c, s) corrupts with ``robustcv.corrupt(x, c, s, seed=derive_seed(seed, c, s),
spec=spec)``, the same images :func:`robustcv.corruptions.corruption_accuracy` would produce
with the same global seed, so the table equals that function's on the same images.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from robustcv.audit.plan import AuditContext, Row, Unit, shards
from robustcv.audit.schema import accuracy_estimate, read_results
from robustcv.core.errors import InputError
from robustcv.core.seeding import derive_seed

__all__ = ["CorruptionSuite", "load_baseline", "resolve_corruptions"]


def resolve_corruptions(selection: tuple[str, ...]) -> list[str]:
    """Registered canonical corruption names for a selection (groups or names)."""
    from robustcv.corruptions.evaluate import select_corruptions

    if len(selection) == 1:
        return select_corruptions(selection[0])
    return select_corruptions(list(selection))


def load_baseline(spec: str) -> tuple[str, dict[str, Any], float | None]:
    """(description, error table, clean error or None) of an mCE baseline.

    ``spec`` is ``"alexnet"`` or an earlier audit folder / results.json with a corruption table.
    """
    from robustcv.corruptions import metrics

    if spec.strip().lower() == "alexnet":
        return "alexnet (ImageNet-C)", dict(metrics.ALEXNET_ERRORS), None
    path = Path(spec).expanduser()
    if not path.exists():
        raise InputError(
            f"corruption.baseline {spec!r} does not exist; give an earlier audit folder (its "
            "results.json has the baseline's corruption table) or 'alexnet'"
        )
    res = read_results(path)
    corr = (res.get("suites") or {}).get("corruption")
    if not isinstance(corr, dict) or not corr.get("table"):
        raise InputError(f"{path} has no corruption results; audit the baseline with them first")
    table = {
        c: {int(s): 1.0 - float(est["value"]) for s, est in row.items()}
        for c, row in corr["table"].items()
    }
    clean = corr.get("clean_accuracy")
    clean_err = 1.0 - float(clean["value"]) if isinstance(clean, dict) else None
    model = (res.get("model") or {}).get("spec") or (res.get("config") or {}).get("model")
    return f"audit of {model} ({path})", table, clean_err


class CorruptionSuite:
    """One unit per (corruption, severity, shard), plus the clean accuracy of the same images."""

    name = "corruption"

    def _positions(self, ctx: AuditContext) -> np.ndarray:
        return ctx.subset("corruption", ctx.config.corruption.n)

    def plan(self, ctx: AuditContext) -> list[Unit]:
        """Clean + every corruption x severity, each over shards of the suite's images."""
        cfg = ctx.config.corruption
        n = len(self._positions(ctx))
        parts = shards(n, ctx.config.shard_size)
        units = [
            Unit(self.name, "clean/0", i, {"start": a, "stop": b}, cost=float(b - a))
            for i, (a, b) in enumerate(parts)
        ]
        for name in resolve_corruptions(cfg.corruptions):
            for sev in cfg.severities:
                units += [
                    Unit(
                        self.name,
                        f"{name}/{sev}",
                        i,
                        {"corruption": name, "severity": sev, "start": a, "stop": b},
                        cost=2.0 * (b - a),
                    )
                    for i, (a, b) in enumerate(parts)
                ]
        return units

    def run(self, ctx: AuditContext, unit: Unit, deps: Mapping[str, Row]) -> Row:
        """Correct predictions on one shard of corrupted (or clean) images."""
        from robustcv.corruptions import corrupt

        p = unit.params
        x, y = ctx.images(self._positions(ctx)[p["start"] : p["stop"]])
        if "corruption" in p:
            seed = derive_seed(ctx.seed, p["corruption"], p["severity"])
            x = corrupt(
                x, p["corruption"], p["severity"], seed=seed, spec=ctx.config.corruption.spec
            )
        pred = ctx.logits(x).argmax(1)
        return {"n": len(y), "correct": int((pred == y).sum())}

    def aggregate(
        self, ctx: AuditContext, rows: Mapping[str, Row], notes: dict[str, Any]
    ) -> dict[str, Any]:
        """Accuracy table with intervals, means, and mCE when a baseline is configured."""
        from robustcv.corruptions import metrics

        cfg = ctx.config.corruption
        counts: dict[str, list[int]] = {}
        for key, row in rows.items():
            cond = key.split(":", 1)[1].rsplit("#", 1)[0]
            c = counts.setdefault(cond, [0, 0])
            c[0] += int(row["correct"])
            c[1] += int(row["n"])
        clean_k, n = counts.pop("clean/0")
        table: dict[str, dict[str, Any]] = {}
        pooled: dict[str, list[int]] = {}
        for cond, (k, m) in counts.items():
            name, sev = cond.rsplit("/", 1)
            table.setdefault(name, {})[sev] = accuracy_estimate(k, m)
            p = pooled.setdefault(name, [0, 0])
            p[0] += k
            p[1] += m
        order = resolve_corruptions(cfg.corruptions)
        table = {c: dict(sorted(table[c].items(), key=lambda kv: int(kv[0]))) for c in order}
        per_mean = {c: accuracy_estimate(*pooled[c]) for c in order}
        total_k = sum(p[0] for p in pooled.values())
        total_n = sum(p[1] for p in pooled.values())
        out: dict[str, Any] = {
            "spec": cfg.spec,
            "n": n,
            "corruptions": order,
            "severities": list(cfg.severities),
            "clean_accuracy": accuracy_estimate(clean_k, n),
            "table": table,
            "per_corruption_mean": per_mean,
            "mean_accuracy": accuracy_estimate(total_k, total_n),
            "worst": sorted(order, key=lambda c: per_mean[c]["value"])[:3],
            "baseline": None,
            "ce": None,
            "mce": None,
            "relative_mce": None,
            "mce_corruptions": [],
            "notes": [
                "per-corruption and mean accuracies pool every severity's counts; their "
                "Clopper-Pearson intervals treat the pooled predictions as independent trials "
                "(the same images repeat), so they are approximate"
            ],
        }
        if cfg.baseline:
            desc, base, base_clean = load_baseline(cfg.baseline)
            acc = {c: {int(s): e["value"] for s, e in table[c].items()} for c in order}
            errs = metrics.corruption_errors(acc)
            known = {metrics.canonical_name(k) for k in base}
            covered = [c for c in order if c in known]
            if not covered:
                notes.setdefault("notes", []).append(
                    f"corruption: the baseline {desc} covers none of the evaluated corruptions; "
                    "no mCE"
                )
                return out
            bench = list(metrics.BENCHMARK_CORRUPTIONS)
            mce_names = bench if set(bench) <= set(covered) else covered
            ce = metrics.ce({c: errs[c] for c in covered}, base)
            out.update(
                baseline=desc,
                ce=ce,
                mce=sum(ce[c] for c in mce_names) / len(mce_names),
                mce_corruptions=mce_names,
            )
            if mce_names != bench:
                out["notes"].append(
                    f"mCE averages {len(mce_names)} corruption(s), not ImageNet-C's 15 benchmark "
                    "corruptions"
                )
            if base_clean is not None:
                try:
                    rel = metrics.relative_ce(
                        {c: errs[c] for c in mce_names}, 1.0 - clean_k / n, base, base_clean
                    )
                    out["relative_mce"] = sum(rel.values()) / len(rel)
                except InputError as err:
                    out["notes"].append(f"no relative mCE: {err}")
        return out
