""":class:`AuditResults`: the object :func:`robustcv.audit.run_audit` returns (= results.json)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from robustcv.audit.schema import read_results
from robustcv.core.results import Result

__all__ = ["AuditResults"]


def _est(obj: Any) -> str:
    if not isinstance(obj, dict) or obj.get("value") is None:
        return "-"
    low, high = obj.get("low"), obj.get("high")
    ci = f" [{low:.3f}, {high:.3f}]" if low is not None and high is not None else ""
    return f"{obj['value']:.4f}{ci} N={obj.get('n')}"


@dataclass
class AuditResults(Result):
    """An audit's results; ``to_dict()`` is exactly ``DIR/results.json``.

    The layout of every field is documented in ``docs/results-schema.md``.

    Attributes:
        schema: ``robustcv.audit/MAJOR``.
        robustcv_version: the version that wrote the results.
        created: ISO time the results were written.
        fingerprint: hash of the work settings, model and data guarding the folder.
        config: the resolved configuration, plus ``subsample`` (images used per suite).
        model: spec, num_classes, differentiable, input_shape, ...
        data: spec, split, n, class_names.
        timings: seconds per suite (unit compute time over every run, plus aggregation).
        skipped: ``"suite/what" -> reason`` for everything that could not run.
        notes: free-text remarks.
        suites: one section per suite that ran.
        examples: metadata of the example images in ``DIR/examples/``.
        run: counters of this invocation (units run and skipped, runs on the folder).
        path: the audit folder (not part of the JSON).

    Example:
        >>> res = AuditResults.from_dict({"schema": "robustcv.audit/1", "suites": {}})
        >>> res.schema, res.suites
        ('robustcv.audit/1', {})
    """

    schema: str
    robustcv_version: str = ""
    created: str = ""
    fingerprint: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    suites: dict[str, Any] = field(default_factory=dict)
    examples: list[dict[str, Any]] = field(default_factory=list)
    run: dict[str, Any] = field(default_factory=dict)
    path: Path | None = field(default=None, metadata={"json": False})

    @classmethod
    def from_dict(cls, data: dict[str, Any], path: Path | None = None) -> AuditResults:
        """Build from a results.json mapping (unknown keys are ignored)."""
        known = {f for f in cls.__dataclass_fields__ if f != "path"}
        return cls(**{k: v for k, v in data.items() if k in known}, path=path)

    @classmethod
    def load(cls, folder: str | Path) -> AuditResults:
        """Read ``folder/results.json`` (or a results.json path)."""
        p = Path(folder)
        return cls.from_dict(read_results(p), p if p.is_dir() else p.parent)

    def summary(self) -> str:
        """A few lines with the headline numbers of every suite."""
        lines = [
            f"audit of {self.model.get('spec')} on {self.data.get('spec')}/"
            f"{self.data.get('split')} (N={self.data.get('n')}, {self.config.get('strength')})"
        ]
        s = self.suites
        if "clean" in s:
            lines.append(f"  clean        accuracy {_est(s['clean']['accuracy'])}")
        if "corruption" in s:
            c = s["corruption"]
            worst = ", ".join(
                f"{w} {c['per_corruption_mean'][w]['value']:.3f}" for w in c.get("worst", [])
            )
            mce = f"; mCE {c['mce']:.1f}" if c.get("mce") is not None else ""
            lines.append(
                f"  corruption   mean accuracy {_est(c['mean_accuracy'])} over "
                f"{len(c['table'])} corruptions x {len(c['severities'])} severities; "
                f"worst: {worst}{mce}"
            )
        if "adversarial" in s:
            for norm, r in s["adversarial"]["norms"].items():
                half = "n/a" if r["eps_half"] is None else f"{r['eps_half']:.4g}"
                med = "n/a" if r["median_min_norm"] is None else f"{r['median_min_norm']:.4g}"
                warn = f"; sanity warnings: {', '.join(r['warnings'])}" if r["warnings"] else ""
                lines.append(
                    f"  adversarial  {norm}: median min-norm {med}, accuracy halves at eps "
                    f"{half}; at eps {r['eps'][-1]:g}: {_est(r['accuracy'][-1])}{warn}"
                )
        if "calibration" in s:
            c = s["calibration"]
            lines.append(
                f"  calibration  ECE {_est(c['before']['ece'])} -> {c['after']['ece']['value']:.4f}"
                f" after T={c['temperature']:.3f} (fitted on {c['fit_n']} images)"
            )
            for note in c.get("notes", []):
                lines.append(f"               note: {note}")
        if "ood" in s and s["ood"].get("weakest"):
            w = s["ood"]["weakest"]
            lines.append(
                f"  ood          weakest: {w['set']} with {w['method']}, AUROC {w['auroc']:.4f}"
            )
        for key, why in self.skipped.items():
            lines.append(f"  skipped      {key}: {why}")
        run = self.run
        if run:
            lines.append(
                f"  units        {run.get('units_run')} run, {run.get('units_skipped')} skipped "
                f"(finished earlier); results in {self.path}"
            )
        return "\n".join(lines)
