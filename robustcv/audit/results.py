""":class:`AuditResults`: the object :func:`robustcv.audit.run_audit` returns (= results.json)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from robustcv.audit.registry import ordered_suites
from robustcv.audit.schema import load_results
from robustcv.core.results import Result, to_jsonable

__all__ = ["AuditResults"]


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
        run: counters of this invocation (units run and skipped, runs on the folder).
        extra: top-level sections of suites with their own ``results_key`` (``examples``:
            metadata of the example images in ``DIR/examples/``); written as top-level keys.
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
    run: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict, metadata={"json": False})
    path: Path | None = field(default=None, metadata={"json": False})

    @property
    def examples(self) -> list[dict[str, Any]]:
        """Metadata of the example images (the ``examples`` suite's top-level section)."""
        return list(self.extra.get("examples") or [])

    def to_dict(self) -> dict[str, Any]:
        """Exactly the content of results.json (``extra`` sections as top-level keys)."""
        out = super().to_dict()
        out.update(to_jsonable(self.extra))
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], path: Path | None = None) -> AuditResults:
        """Build from a results.json mapping (unknown keys are kept in ``extra``)."""
        known = {f for f in cls.__dataclass_fields__ if f not in ("path", "extra")}
        extra = {k: v for k, v in data.items() if k not in known}
        return cls(**{k: v for k, v in data.items() if k in known}, extra=extra, path=path)

    @classmethod
    def load(cls, folder: str | Path) -> AuditResults:
        """Read ``folder/results.json`` (or a results.json path)."""
        data, found = load_results(Path(folder))
        return cls.from_dict(data, found)

    def summary(self) -> str:
        """A few lines with the headline numbers of every suite (in registry order)."""
        lines = [
            f"audit of {self.model.get('spec')} on {self.data.get('spec')}/"
            f"{self.data.get('split')} (N={self.data.get('n')}, {self.config.get('strength')})"
        ]
        data = self.to_dict()
        for suite in ordered_suites():
            key = suite.results_key
            section = data.get(key) if key else self.suites.get(suite.name)
            if section is None:
                continue
            for i, line in enumerate(suite.summary_lines(section)):
                label = suite.name if i == 0 else ""
                lines.append(f"  {label:<12} {line}")
        for key, why in self.skipped.items():
            lines.append(f"  {'skipped':<12} {key}: {why}")
        run = self.run
        if run:
            lines.append(
                f"  {'units':<12} {run.get('units_run')} run, {run.get('units_skipped')} skipped "
                f"(finished earlier); results in {self.path}"
            )
        return "\n".join(lines)
