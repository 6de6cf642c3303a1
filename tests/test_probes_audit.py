"""The ``probes`` audit suite: a real tiny audit through results.json, check, compare, the report
and the suite contract; masks-needing probes skipped with the reason on photos."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tiny_audit import results_of, run_tiny_audit, tiny_model

from robustcv.audit import run_audit
from robustcv.audit.registry import SUITES, default_suites
from robustcv.audit.store import Store
from robustcv.audit.suite import section_keys_match
from robustcv.audit.suites.probes import audit_error_consistency
from robustcv.cli.main import main
from robustcv.core.errors import InputError
from robustcv.core.results import to_jsonable
from robustcv.report import check, compare, render_report

SMALL: dict[str, Any] = {
    "probes": {
        "n": 24,
        "cue_n": 16,
        "fourier_n": 4,
        "cues": ["bright-patch", "border", "tint", "watermark"],
        "patch_sizes": [8],
        "fourier_step": 2,
        "ks": [1, 2, 4],
    }
}


def shapes_npz(path: Path, n_per_class: int = 8, seed: int = 0) -> Path:
    """32x32 RGB images of four coloured shapes on black (a uniform background)."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for label in range(4):
        for _ in range(n_per_class):
            img = np.zeros((32, 32, 3), dtype=np.uint8)
            colour = rng.integers(120, 255, size=3)
            r, c = (int(v) for v in rng.integers(8, 13, size=2))
            if label == 0:
                img[r : r + 12, c : c + 12] = colour
            elif label == 1:
                img[r + 4 : r + 8, c - 4 : c + 16] = colour
            elif label == 2:
                img[r - 4 : r + 16, c + 4 : c + 8] = colour
            else:
                yy, xx = np.mgrid[:32, :32]
                img[(yy - r - 6) ** 2 + (xx - c - 6) ** 2 <= 36] = colour
            xs.append(img)
            ys.append(label)
    path.parent.mkdir(parents=True, exist_ok=True)
    x, y = np.stack(xs), np.array(ys)
    np.savez(path, x_train=x, y_train=y, x_test=x, y_test=y, classes=np.array(["a", "b", "c", "d"]))
    return path


def test_probes_is_registered_but_not_default() -> None:
    assert "probes" in SUITES and "probes" not in default_suites()


@pytest.mark.slow
def test_probes_suite_flows_through_results_check_compare_and_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = shapes_npz(tmp_path / "shapes.npz")
    out = tmp_path / "audit"
    res = run_audit(
        tiny_model(), f"npz:{data}", out, suites=["clean", "probes"], config=SMALL, progress=False
    )
    section = res.suites["probes"]
    suite = SUITES.get("probes")
    assert section_keys_match(section, suite.section_type) == []
    assert section["skipped"] == {}
    for key in ("background_reliance", "shape_bias", "top_cue_flip_rate"):
        est = section[key]
        assert set(est) >= {"value", "low", "high", "n"} and 0 <= est["value"] <= 1, key
        assert est["low"] <= est["value"] <= est["high"] and est["n"] > 0, key
    assert section["background"]["mask_source"] == "estimated"
    assert section["n"] == 24 and section["fourier_n"] == 4
    assert len(section["fourier_heat_map"]["error"]) == 32
    assert "background reliance" in res.summary()

    # check: each threshold on each side of the measured value
    results = results_of(out)
    for flag, key, above_passes in (
        ("max_background_reliance", "background_reliance", True),
        ("min_shape_bias", "shape_bias", False),
        ("max_cue_flip_rate", "top_cue_flip_rate", True),
    ):
        v = section[key]["value"]
        hi, lo = min(1.0, v + 0.01), max(0.0, v - 0.01)
        if v < 1.0:
            assert check(results, {flag: hi}).passed is above_passes, flag
        if v > 0.0:
            assert check(results, {flag: lo}).passed is not above_passes, flag
    capsys.readouterr()
    v = section["top_cue_flip_rate"]["value"]
    if v > 0:
        assert main(["check", str(out), "--max-cue-flip-rate", f"{v / 2:.6f}"]) == 1
        assert "FAIL top cue flip rate" in capsys.readouterr().out

    keys = {r.key for r in compare(out, out).rows}
    assert {"probes/background_reliance", "probes/shape_bias", "probes/top_cue_flip_rate"} <= keys
    assert "probes/patch_shuffle@4" in keys

    examples = section["examples"]
    assert set(examples["cues"]) == set(SMALL["probes"]["cues"])
    assert len(examples["cue_conflict"]["shape"]) == 4
    html = render_report(out)
    assert 'id="probes"' in html and "Shortcut-cue scan" in html
    assert 'alt="cue-conflict examples' in html and 'alt="an image with the best variant' in html
    assert 'alt="Fourier heat map"' in html and "Shape vs texture" in html

    # the suite contract: stable plan, pure units, aggregation from the stored rows alone
    from tiny_audit import tiny_context  # noqa: F401  (same helpers as the platform tests)

    from robustcv.audit.config import AuditConfig
    from robustcv.audit.engine import prepare

    raw = {k: v for k, v in results["config"].items() if k != "subsample"}
    ctx = prepare(AuditConfig.from_dict(raw), tiny_model(), out, loaded_from_spec=False).ctx
    units = suite.plan(ctx)
    assert [u.key for u in units] == [u.key for u in suite.plan(ctx)]
    store = Store(out)
    try:
        stored = {s.key: s.row for s in store.units("probes")}
    finally:
        store.close()
    assert set(stored) == {u.key for u in units}
    cue_unit = next(u for u in units if u.condition.startswith("cue/"))
    for unit in (units[0], cue_unit):
        assert to_jsonable(suite.run(ctx, unit, {})) == stored[unit.key], unit.key
    for order in (sorted(stored), sorted(stored, reverse=True)):
        notes: dict[str, Any] = {"skipped": {}, "notes": []}
        again = suite.aggregate(ctx, {k: stored[k] for k in order}, notes)
        assert json.loads(json.dumps(to_jsonable(again))) == results["suites"]["probes"]


def test_mask_probes_are_skipped_with_the_reason_on_photos(tmp_path: Path) -> None:
    res = run_tiny_audit(tmp_path, suites=["clean", "probes"], config=SMALL)
    section = res.suites["probes"]
    assert set(section["skipped"]) == {"background", "shape", "cue"}
    assert "uniform background" in section["skipped"]["background"]
    assert section["background_reliance"]["value"] is None
    assert section["frequency"] is not None and section["patch_shuffle"] is not None
    assert res.path is not None
    with pytest.raises(InputError, match=r"no background reliance .*uniform background"):
        check(res.path, {"max_background_reliance": 0.5})
    results = results_of(res.path)
    assert "probes/background" in results["skipped"]
    # error consistency between two audits of the same images (here: the audit with itself)
    same = audit_error_consistency(res.path, results, n_boot=0)
    assert set(same.conditions) == {
        "clean", *(f"low-pass@{c}" for c in ("0.1", "0.2", "0.3", "0.5", "0.7")),
        *(f"high-pass@{c}" for c in ("0.1", "0.2", "0.3", "0.5", "0.7")),
        "patch-shuffle@1", "patch-shuffle@2", "patch-shuffle@4",
    }  # fmt: skip
    assert same.mean_kappa == 1.0 and same.conditions["clean"].n == 24
    other = json.loads(json.dumps(results))
    other["config"]["seed"] = 1
    with pytest.raises(InputError, match="differ in seed"):
        audit_error_consistency(results, other)
    del other["suites"]["probes"]["correct"]
    with pytest.raises(InputError, match="audit B has no per-image probe results"):
        audit_error_consistency(results, other)


def test_probes_settings_are_validated_before_any_work(tmp_path: Path) -> None:
    data = shapes_npz(tmp_path / "shapes.npz", n_per_class=1)
    for bad, match in (
        ({"ks": [40]}, r"probes\.ks: \[40\] larger than the 32x32 images"),
        ({"cues": ["brigth-patch"]}, "did you mean 'bright-patch'"),
    ):
        with pytest.raises(InputError, match=match):
            run_audit(
                tiny_model(), f"npz:{data}", tmp_path / "bad", suites=["probes"],
                config={"probes": bad}, progress=False,
            )  # fmt: skip
