"""The audit as a platform: the suite registry contract, a toy suite from outside the package,
one-way configuration, and results that do not depend on unit order, sharding or executor."""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from tiny_audit import TINY, photos_npz, results_of, run_tiny_audit, tiny_context, tiny_model

from robustcv.audit import (
    SUITES,
    AuditConfig,
    CheckSpec,
    Metric,
    Outcome,
    Store,
    Suite,
    Threshold,
    default_suites,
    parse_suites,
    register_suite,
    resolve_config,
    run_audit,
)
from robustcv.audit.plan import Row, Unit, shards
from robustcv.audit.schema import section_problems
from robustcv.audit.store import FolderLock
from robustcv.audit.suite import est_view, section_keys_match
from robustcv.cli.main import main
from robustcv.core.errors import InputError
from robustcv.core.results import to_jsonable
from robustcv.core.stats import Estimate
from robustcv.report import check, compare, render_report

BUILTIN = ["clean", "corruption", "adversarial", "calibration", "ood", "examples"]

# these differ from run to run or name the executor; everything else must be identical
_VOLATILE = ("created", "timings", "run")


def _stable(results: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in results.items() if k not in _VOLATILE}
    out["config"] = {k: v for k, v in results["config"].items() if k != "executor"}
    return out


def _section(results: Mapping[str, Any], suite: Suite) -> Any:
    return results.get(suite.results_key) if suite.results_key else results["suites"][suite.name]


# ---------------------------------------------------------------------------- registry
def test_registry_lists_the_builtin_suites_in_run_order() -> None:
    assert SUITES.names()[: len(BUILTIN)] == BUILTIN
    assert default_suites() == ("clean", "corruption", "adversarial", "calibration", "ood")
    # "all": every selectable suite (examples always runs, it is not selectable)
    assert parse_suites("all") == (*default_suites(), "probes", "explanations")
    assert default_suites("full") == (*default_suites(), "probes", "explanations")
    assert AuditConfig("m", "d", strength="full").suites == default_suites("full")
    assert AuditConfig("m", "d", strength="full", suites="clean").suites == ("clean",)
    with pytest.raises(InputError, match="did you mean 'calibration'"):
        parse_suites("calibraton")
    with pytest.raises(InputError, match="Suite"):
        register_suite(object())  # type: ignore[arg-type]
    with pytest.raises(InputError, match="already registered"):
        register_suite(SUITES.get("clean"))


# ---------------------------------------------------------------------------- contract
@pytest.mark.parametrize("name", BUILTIN)
def test_suite_contract(name: str, tiny_audit: Path, tmp_path: Path) -> None:
    """Keys unique and stable; rows JSON and pure; aggregation from stored rows alone, in any
    order, equals results.json."""
    suite = SUITES.get(name)
    prep = tiny_context(tiny_audit.parent, out=tmp_path / "out")
    ctx = prep.ctx
    units = suite.plan(ctx)
    keys = [u.key for u in units]
    assert keys, f"{name} planned no unit"
    assert len(set(keys)) == len(keys), f"{name} plans duplicate keys"
    assert keys == [u.key for u in suite.plan(ctx)], f"{name} plans differently twice"
    assert all(u.suite == name for u in units)

    store = Store(tiny_audit)
    try:
        stored = {s.key: s.row for s in store.units(name)}
        deps = {s.key: s.row for other in suite.requires(ctx.config) for s in store.units(other)}
    finally:
        store.close()
    assert set(stored) == set(keys), "the store holds exactly the planned units"
    for row in stored.values():
        json.dumps(row, allow_nan=False)

    # a unit is a pure function of its inputs: re-running the first unit gives its stored row
    first = units[0]
    earlier = {k: v for k, v in stored.items() if k != first.key}
    row = suite.run(ctx, first, {**deps, **earlier})
    assert to_jsonable(row) == stored[first.key]

    expected = _section(results_of(tiny_audit), suite)
    if suite.section_type is not None:  # the declared section type matches the real writer
        assert section_keys_match(expected, suite.section_type) == []
        # ... and its value types (what load_results uses to tell malformed files from bugs)
        assert section_problems(expected, suite.section_type, f"suites.{name}") == []
    for order in (sorted(stored), sorted(stored, reverse=True)):
        notes: dict[str, Any] = {"skipped": {}, "notes": []}
        section = suite.aggregate(ctx, {k: stored[k] for k in order}, notes)
        assert json.loads(json.dumps(to_jsonable(section))) == expected


def test_results_equal_across_executor_and_sharding(tmp_path: Path) -> None:
    """In-process and worker processes give the same results.json bit for bit; other shard
    sizes give the same counts (float metrics may differ in the last bits: the backend's
    convolutions depend on the batch composition)."""
    data = photos_npz(tmp_path / "p.npz")
    runs = {}
    for label, executor, shard in (("a", "in-process", 64), ("b", "processes", 64), ("c", None, 7)):
        cfg = copy.deepcopy(TINY)
        cfg["shard_size"] = shard
        res = run_audit(
            tiny_model(), f"npz:{data}", tmp_path / label, config=cfg, executor=executor,
            workers=2 if executor == "processes" else None, progress=False,
        )  # fmt: skip
        runs[label] = res.to_dict()
    a, b, c = runs["a"], runs["b"], runs["c"]
    assert b["config"]["executor"] == {"name": "processes", "workers": 2}
    assert b["run"]["executor"] == b["config"]["executor"]
    assert _stable(a) == _stable(b)
    assert a["fingerprint"] == b["fingerprint"]  # the executor is not part of the work
    # sharding: integer results are identical, float results agree to 1e-6
    assert c["config"]["shard_size"] == 7
    for name in ("clean", "corruption", "adversarial"):
        assert c["suites"][name] == a["suites"][name], name
    _close(c["suites"]["calibration"], a["suites"]["calibration"])
    _close(c["suites"]["ood"], a["suites"]["ood"])


def _close(x: Any, y: Any, path: str = "") -> None:
    if isinstance(x, dict):
        assert set(x) == set(y), path
        for k in x:
            _close(x[k], y[k], f"{path}.{k}")
    elif isinstance(x, list):
        assert len(x) == len(y), path
        for i, (u, v) in enumerate(zip(x, y, strict=True)):
            _close(u, v, f"{path}[{i}]")
    elif isinstance(x, float) and isinstance(y, float):
        assert math.isclose(x, y, rel_tol=1e-5, abs_tol=1e-6), f"{path}: {x} vs {y}"
    else:
        assert x == y, path


@pytest.mark.parametrize("limit", [1, 5])
def test_limit_edge_cases(limit: int, tmp_path: Path) -> None:
    """One image, or fewer images than every suite's subset: every suite still runs."""
    res = run_tiny_audit(tmp_path, limit=limit)
    assert res.data["n"] == limit
    for name in default_suites():
        assert name in res.suites, name
    assert res.suites["clean"]["accuracy"]["n"] == limit
    assert res.suites["corruption"]["n"] == limit
    assert res.config["subsample"]["ood"] == limit
    assert res.suites["adversarial"]["norms"]["linf"]["n"] == limit
    html = render_report(res.to_dict())
    assert "Calibration" in html


# ---------------------------------------------------------------------------- a toy suite
@dataclass(frozen=True)
class ToyConfig:
    """Settings of the toy suite."""

    n: int = 10


def _check_toy(results: Mapping[str, Any], section: Mapping[str, Any], t: Threshold) -> list:
    est = Estimate.parse(section["mean_confidence"])
    assert est is not None
    return [Outcome.judge(t, "toy mean confidence", est, higher_is_better=False)]


class ToySuite(Suite):
    """Mean top-1 softmax confidence on a few images: a suite defined outside robustcv/."""

    name = "toy-confidence"
    title = "Toy confidence"
    description = "mean softmax confidence (a test plug-in)"
    config_class = ToyConfig
    default = False
    order = 60
    report_template = "<p class='toy'>mean confidence {{ v.value }} (N={{ v.n }})</p>"
    card_template = "<div class='card'><h3>Toy card</h3>{{ v.value }}</div>"
    checks = (CheckSpec("max-toy-confidence", "toy confidence <= V", "V", "0.9", _check_toy),)

    def plan(self, ctx: Any) -> list[Unit]:
        n = min(ctx.config.sections[self.name].n, len(ctx.data))
        return [
            Unit(self.name, "all", i, {"start": a, "stop": b}, cost=float(b - a))
            for i, (a, b) in enumerate(shards(n, 4))
        ]

    def run(self, ctx: Any, unit: Unit, deps: Mapping[str, Row]) -> Row:
        x, _ = ctx.images(np.arange(unit.params["start"], unit.params["stop"]))
        conf = torch.softmax(ctx.logits(x).double(), 1).max(1).values
        return {"sum": float(conf.sum()), "n": int(x.shape[0])}

    def aggregate(self, ctx: Any, rows: Mapping[str, Row], notes: dict[str, Any]) -> Any:
        total = math.fsum(r["sum"] for _, r in sorted(rows.items()))
        n = sum(r["n"] for r in rows.values())
        return {"mean_confidence": {"value": total / n, "n": n}, "n": n}

    def summary_lines(self, section: Any) -> list[str]:
        return [f"mean confidence {section['mean_confidence']['value']:.4f}"]

    def view(self, results: Mapping[str, Any], section: Any, folder: Path | None) -> Any:
        return est_view(section["mean_confidence"])

    def card(self, results: Mapping[str, Any], section: Any) -> Any:
        return est_view(section["mean_confidence"])

    def metrics(self, results: Mapping[str, Any], section: Any) -> list[Metric]:
        est = Estimate.parse(section["mean_confidence"])
        return [] if est is None else [Metric("toy/mean_confidence", "toy conf", est, False)]


@pytest.fixture
def toy() -> Iterator[Suite]:
    suite = register_suite(ToySuite())
    yield suite
    SUITES.remove(suite.name)


def test_toy_suite_flows_through_every_layer(toy: Suite, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert toy.name in SUITES and toy.name not in default_suites()
    res = run_tiny_audit(tmp_path, suites=["clean", toy.name], config={"toy-confidence": {"n": 9}})
    assert res.path is not None
    section = res.suites[toy.name]
    assert section["n"] == 9 and 0 < section["mean_confidence"]["value"] <= 1
    assert res.config["toy-confidence"] == {"n": 9}
    assert "mean confidence" in res.summary()
    data = results_of(res.path)
    assert data["suites"][toy.name] == json.loads(json.dumps(section))
    # the report renders its section, card and nav entry
    assert main(["report", str(res.path)]) == 0
    html = (res.path / "report.html").read_text(encoding="utf-8")
    assert 'id="toy-confidence"' in html and "class='toy'" in html and "Toy card" in html
    # compare and check see its metric and its threshold
    rows = {r.key: r for r in compare(res.path, res.path).rows}
    assert "toy/mean_confidence" in rows
    value = section["mean_confidence"]["value"]
    assert check(res.path, {"max_toy_confidence": value + 0.01}).passed
    assert not check(res.path, {"max_toy_confidence": value - 0.01}).passed
    capsys.readouterr()
    assert main(["check", str(res.path), "--max-toy-confidence", f"{value - 0.01:.6f}"]) == 1
    assert "FAIL toy mean confidence" in capsys.readouterr().out
    # it ships to worker processes like a built-in suite: same numbers
    other = run_tiny_audit(
        tmp_path / "p", suites=[toy.name], config={"toy-confidence": {"n": 9}},
        executor="processes", workers=2,
    )  # fmt: skip
    assert other.suites[toy.name] == section


# ---------------------------------------------------------------------------- precedence
_FILE = {
    "split": "train",
    "suites": ["clean"],
    "ood_data": ["derived:inverted"],
    "strength": "full",
    "seed": 3,
    "batch_size": 64,
    "shard_size": 100,
    "executor": {"name": "processes", "workers": 3},
}
_EXPLICIT_DEFAULTS = {
    "split": "test",
    "suites": list(default_suites()),
    "ood_data": (),
    "strength": "fast",
    "seed": 0,
    "batch_size": 256,
    "shard_size": 2000,
    "executor": "in-process",
}


@pytest.mark.parametrize("key", sorted(_FILE))
def test_an_explicit_default_beats_the_config_file(key: str, tmp_path: Path) -> None:
    path = tmp_path / "audit.json"
    path.write_text(json.dumps({key: _FILE[key]}))
    from_file = resolve_config("m", "d", str(path))
    given = resolve_config("m", "d", str(path), **{key: _EXPLICIT_DEFAULTS[key]})
    default = AuditConfig.from_dict({"model": "m", "data": "d"})
    assert getattr(from_file, key) != getattr(default, key), "the file changes the setting"
    assert getattr(given, key) == getattr(default, key), "the explicit default wins"


def test_none_means_not_given_and_sections_merge(tmp_path: Path) -> None:
    path = tmp_path / "audit.json"
    path.write_text(json.dumps({"seed": 3, "corruption": {"n": 7, "severities": [2]}}))
    cfg = resolve_config("m", "d", str(path), seed=None, corruption={"n": 5})
    assert cfg.seed == 3
    assert cfg.corruption.n == 5 and cfg.corruption.severities == (2,)
    with pytest.raises(InputError, match="unknown audit config key"):
        resolve_config("m", "d", {"sed": 1})


def test_cli_explicit_default_beats_the_config_file(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import robustcv.audit as audit_pkg

    seen: dict[str, Any] = {}

    def fake(model: Any, data: Any, out: Any, **kwargs: Any) -> Any:
        seen.update(kwargs)
        raise InputError("stop here")

    monkeypatch.setattr(audit_pkg, "run_audit", fake)
    cfg = tmp_path / "audit.json"
    cfg.write_text(json.dumps({"seed": 3, "batch_size": 64}))
    base = ["audit", "--model", "m", "--data", "d", "--out", str(tmp_path / "o"), "--quiet"]
    assert main([*base, "--config", str(cfg), "--seed", "0", "--batch-size", "256"]) == 2
    assert seen["seed"] == 0 and seen["batch_size"] == 256 and seen["config"] == str(cfg)
    seen.clear()
    assert main([*base, "--config", str(cfg)]) == 2
    assert seen["seed"] is None and seen["batch_size"] is None  # left to the file


# ---------------------------------------------------------------------------- one writer
def test_a_second_writer_is_refused(tmp_path: Path) -> None:
    data = photos_npz(tmp_path / "p.npz")
    out = tmp_path / "audit"
    run_audit(tiny_model(), f"npz:{data}", out, suites="clean", progress=False)
    holder = FolderLock(out).acquire()
    try:
        with pytest.raises(InputError, match="another robustcv audit"):
            run_audit(tiny_model(), f"npz:{data}", out, suites="clean", progress=False)
    finally:
        holder.release()
    again = run_audit(tiny_model(), f"npz:{data}", out, suites="clean", progress=False)
    assert again.run["units_skipped"] == again.run["units_total"]


def test_old_function_name_still_works_with_a_warning() -> None:
    import robustcv
    import robustcv.audit

    assert robustcv.run_audit is robustcv.audit.run_audit
    with pytest.warns(DeprecationWarning, match="run_audit"):
        old = robustcv.audit.audit  # type: ignore[attr-defined]
    assert old is robustcv.run_audit
