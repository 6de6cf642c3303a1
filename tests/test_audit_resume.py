"""Resumption: kill -9 an audit subprocess mid-way, re-run, compare with an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from robustcv.audit import THROTTLE_ENV, Store, run_audit

pytestmark = pytest.mark.fmnist

# many small units (shard_size 40), every suite, tiny budgets
CONFIG = {
    "shard_size": 40,
    "corruption": {
        "n": 40,
        "corruptions": ["mvh-contrast", "mvh-uniform-noise"],
        "severities": [1, 2],
    },
    "adversarial": {
        "n": 24,
        "subset": 12,
        "pilot_steps": 10,
        "apgd_steps": 5,
        "apgd_targets": 2,
        "sanity": False,
    },
    "calibration": {
        "fit_n": 120,
        "shift_n": 40,
        "shift_corruptions": ["mvh-contrast"],
        "shift_severities": [2],
    },
    "ood": {"n": 40, "fit_n": 120},
    "examples": {"n": 2, "corruptions": ["mvh-contrast"], "severity": 2},
}
VOLATILE = ("created", "timings", "run")


def _count(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1.0)
        try:
            return int(con.execute("SELECT COUNT(*) FROM units").fetchone()[0])
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def _stable(folder: Path) -> dict:
    res = json.loads((folder / "results.json").read_text())
    return {k: v for k, v in res.items() if k not in VOLATILE}


def _cli(out: Path, cfg: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "robustcv",
        "audit",
        "--model",
        "zoo:fmnist-cnn",
        "--data",
        "fashion-mnist",
        "--limit",
        "120",
        "--out",
        str(out),
        "--config",
        str(cfg),
        "--quiet",
    ]


def test_kill9_then_resume_equals_uninterrupted(tmp_path: Path) -> None:
    cfg = tmp_path / "audit.json"
    cfg.write_text(json.dumps(CONFIG))
    out = tmp_path / "interrupted"
    env = {**os.environ, "OMP_NUM_THREADS": "1", THROTTLE_ENV: "0.4"}
    proc = subprocess.Popen(
        _cli(out, cfg), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    db = out / "audit.sqlite"
    deadline = time.monotonic() + 120
    try:
        while _count(db) < 3:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "the audit committed no unit in 120 s"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
        if proc.stderr:
            proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    finished = _count(db)
    assert not (out / "results.json").exists()

    # resume in a fresh process (no throttle)
    env.pop(THROTTLE_ENV)
    done = subprocess.run(_cli(out, cfg), env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    with Store(out) as store:
        runs = store.runs()
        total = len(store)
    assert finished < total, "the kill came after the last unit; the test proved nothing"
    assert len(runs) == 2
    assert runs[0].status == "interrupted" and runs[0].units_run == finished  # killed mid-run
    assert runs[1].status == "finished"
    assert runs[1].units_skipped == finished
    assert runs[1].units_run == total - finished
    log = (out / "audit.log").read_text()
    assert log.count("(finished earlier)") >= finished
    assert f"{total - finished} units run, {finished} skipped" in log

    # an uninterrupted run with the same seed gives identical results and example images
    ref = tmp_path / "uninterrupted"
    run_audit("zoo:fmnist-cnn", "fashion-mnist", ref, limit=120, config=str(cfg), progress=False)
    assert _stable(out) == _stable(ref)
    a = sorted((out / "examples").glob("*.png"))
    b = sorted((ref / "examples").glob("*.png"))
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b] and a

    # a third run finds everything done: skips all, recomputes nothing, same results
    again = run_audit(
        "zoo:fmnist-cnn", "fashion-mnist", ref, limit=120, config=str(cfg), progress=False
    )
    assert again.run["units_run"] == 0 and again.run["units_skipped"] == total
    assert _stable(ref) == {k: v for k, v in again.to_dict().items() if k not in VOLATILE}


def test_two_audits_on_one_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A second audit (with or without --force) on a folder in use is refused, naming the
    holder; the first finishes undisturbed and publishes what a single run publishes."""
    from robustcv.cli.main import main

    cfg = tmp_path / "audit.json"
    cfg.write_text(json.dumps(CONFIG))
    out = tmp_path / "shared"
    env = {**os.environ, "OMP_NUM_THREADS": "1", THROTTLE_ENV: "0.3"}
    proc = subprocess.Popen(
        _cli(out, cfg), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    db = out / "audit.sqlite"
    deadline = time.monotonic() + 120
    try:
        while _count(db) < 1:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "the audit committed no unit in 120 s"
            time.sleep(0.02)
        capsys.readouterr()
        same = _cli(out, cfg)[3:]
        assert main(same) == 2
        err = capsys.readouterr().err
        assert f"another robustcv audit (pid {proc.pid}" in err and "Traceback" not in err
        # --force with another config must not discard the running audit's folder either
        assert main([*same, "--force", "--seed", "5"]) == 2
        assert "another robustcv audit" in capsys.readouterr().err
        assert proc.wait(timeout=300) == 0, proc.stderr.read().decode() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        if proc.stderr:
            proc.stderr.close()
    with Store(out) as store:
        assert [r.status for r in store.runs()] == ["finished"]
    ref = tmp_path / "single"
    run_audit("zoo:fmnist-cnn", "fashion-mnist", ref, limit=120, config=str(cfg), progress=False)
    assert _stable(out) == _stable(ref)
