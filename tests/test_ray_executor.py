"""The Ray executor (``--executor ray``) on a real local Ray instance: same results.json as
in-process with 1 and 2 workers, a worker killed with SIGKILL mid-run is retried, a killed
driver resumes, and without Ray the CLI says how to install it.

One module-scoped ``ray.init(num_cpus=2)`` serves every test (start-up costs seconds). Without
Ray installed the Ray tests are skipped locally and fail under CI=true (``make setup`` installs
the ``ray`` extra); the missing-Ray tests run everywhere.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from tiny_audit import TINY, photos_npz, tiny_model

from robustcv.audit import SUITES, THROTTLE_ENV, Store, Suite, register_suite, run_audit
from robustcv.audit.config import AuditConfig
from robustcv.audit.plan import Row, Unit
from robustcv.cli.main import main
from robustcv.core.errors import InputError

pytestmark = pytest.mark.ray

ROOT = Path(__file__).resolve().parents[1]
VOLATILE = ("created", "timings", "run")
TINY_NET = f"{Path(__file__).resolve().parent / 'tiny_audit.py'}:tiny_net"

# clean + corruption in many small units, for the kill tests
SMALL: dict[str, Any] = {
    "shard_size": 8,
    "corruption": {
        "n": 48,
        "corruptions": ["mvh-contrast", "mvh-uniform-noise"],
        "severities": [1, 3],
    },
}


def _ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _stable(results: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in results.items() if k not in VOLATILE}
    out["config"] = {k: v for k, v in results["config"].items() if k != "executor"}
    return out


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


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[str]:
    """A local Ray instance with 2 CPUs for the whole module; yields its address."""
    try:
        import ray
    except ImportError as err:
        if _ci():
            pytest.fail(f"CI=true but Ray is not installed ({err}); make setup installs .[ray]")
        pytest.skip(f"Ray not installed: {err}")
    # workers import the test helpers (tiny_audit) when they unpickle a unit's suite or model
    env = {"PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])}
    info = ray.init(
        address="local",
        num_cpus=2,
        object_store_memory=200 * 1024**2,  # the objects here are small; CI machines too
        include_dashboard=False,
        logging_level="ERROR",
        log_to_driver=False,
        runtime_env={"env_vars": env},
    )
    try:
        yield str(info.address_info["address"])
    finally:
        ray.shutdown()


@pytest.fixture
def one_thread() -> Iterator[None]:
    """In-process runs with 1 torch thread (like each Ray worker; fast on a busy machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return photos_npz(tmp_path_factory.mktemp("ray-data") / "photos.npz")


@pytest.fixture(scope="module")
def reference(photos: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The tiny audit (every default suite) run in-process with 1 torch thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        res = run_audit(
            tiny_model(),
            f"npz:{photos}",
            tmp_path_factory.mktemp("ray-ref") / "audit",
            config=copy.deepcopy(TINY),
            progress=False,
        )
    finally:
        torch.set_num_threads(before)
    return res.to_dict()


# ---------------------------------------------------------------------------- same numbers
@pytest.mark.parametrize("workers", [1, 2])
def test_results_equal_in_process(
    workers: int, ray_cluster: str, photos: Path, reference: dict[str, Any], tmp_path: Path
) -> None:
    from robustcv.audit.ray_executor import RayExecutor

    ex = RayExecutor(workers=workers)
    res = run_audit(
        tiny_model(),
        f"npz:{photos}",
        tmp_path / "audit",
        config=copy.deepcopy(TINY),
        executor=ex,
        progress=False,
    ).to_dict()
    assert _stable(res) == _stable(reference)
    assert res["fingerprint"] == reference["fingerprint"]  # the executor is not part of the work
    expected = {
        "name": "ray",
        "workers": workers,
        "cpus_per_worker": 1,
        "gpus_per_worker": 0,
        "max_retries": 3,
    }
    assert res["config"]["executor"] == expected
    assert res["run"]["executor"] == expected
    assert res["run"]["units_run"] == res["run"]["units_total"]
    assert ex.restarts == 0 and len(ex.pids) == workers
    assert ex.startup_seconds is None  # it used the running instance and left it running
    import ray

    assert ray.is_initialized()


def test_a_worker_killed_mid_run_is_retried(
    ray_cluster: str,
    photos: Path,
    reference: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from robustcv.audit.ray_executor import RayExecutor

    monkeypatch.setenv(THROTTLE_ENV, "0.25")  # the driver commits slowly: units stay in flight
    ex = RayExecutor(workers=2)
    out = tmp_path / "audit"
    killed: list[int] = []

    def kill_one() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            pids = [p for p in ex.worker_pids() if p is not None]
            if _count(out / "audit.sqlite") >= 3 and pids:
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])
                return
            time.sleep(0.02)

    thread = threading.Thread(target=kill_one, daemon=True)
    thread.start()
    res = run_audit(
        tiny_model(),
        f"npz:{photos}",
        out,
        config=copy.deepcopy(TINY),
        executor=ex,
        progress=False,
    ).to_dict()
    thread.join(timeout=10)
    assert killed, "no worker was killed; the test proved nothing"
    assert ex.restarts >= 1 and ex.retried, "the killed worker's units were not retried"
    assert killed[0] in ex.pids and len(ex.pids) >= 3  # a fresh worker took its place
    assert _stable(res) == _stable(reference)
    # every unit stored once: the run counted each exactly once
    assert res["run"]["units_run"] == res["run"]["units_total"]
    with Store(out) as store:
        assert len(store) == res["run"]["units_total"]
    assert "retrying it on a new worker" in (out / "audit.log").read_text()


def test_a_unit_whose_worker_keeps_dying_fails_the_audit_naming_it(
    ray_cluster: str, photos: Path, tmp_path: Path
) -> None:
    """Bounded retries: with max_retries=0 the first lost worker stops the audit; the units
    finished before it are stored and a re-run resumes."""
    from robustcv.audit.ray_executor import RayExecutor, WorkerLostError

    class KillFirst(RayExecutor):
        def _submit(self, suite, queue, box, pending):  # type: ignore[no-untyped-def]
            super()._submit(suite, queue, box, pending)
            pid = self.worker_pids()[0]
            if suite.name == "corruption" and pid is not None and not getattr(self, "done", 0):
                self.done = 1
                os.kill(pid, signal.SIGKILL)

    out = tmp_path / "audit"
    with pytest.raises(WorkerLostError, match=r"unit corruption:\S+ failed: its Ray worker died"):
        run_audit(
            tiny_model(),
            f"npz:{photos}",
            out,
            config=copy.deepcopy(SMALL),
            suites="clean,corruption",
            executor=KillFirst(workers=1, max_retries=0),
            progress=False,
        )
    with Store(out) as store:
        stored = len(store)
        assert stored >= 1 and store.runs()[-1].status == "failed"
    again = run_audit(
        tiny_model(),
        f"npz:{photos}",
        out,
        config=copy.deepcopy(SMALL),
        suites="clean,corruption",
        executor=RayExecutor(workers=1),
        progress=False,
    )
    assert again.run["units_skipped"] == stored


def test_a_killed_driver_resumes(
    ray_cluster: str, photos: Path, tmp_path: Path, one_thread: None
) -> None:
    """kill -9 of a ``robustcv audit --executor ray`` process after some units: the next run
    (here in-process) skips them and the results equal an uninterrupted run."""
    cfg = tmp_path / "audit.json"
    cfg.write_text(json.dumps(SMALL))
    out = tmp_path / "interrupted"
    cmd = [
        sys.executable, "-m", "robustcv", "audit", "--model", TINY_NET, "--data",
        f"npz:{photos}", "--out", str(out), "--config", str(cfg), "--suites", "clean,corruption",
        "--executor", "ray", "--ray-address", ray_cluster, "--workers", "2", "--quiet",
    ]  # fmt: skip
    env = {**os.environ, THROTTLE_ENV: "0.3"}
    proc = subprocess.Popen(
        cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
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
    with Store(out) as store:
        assert store.get_meta("config")["executor"] == {
            "name": "ray",
            "address": ray_cluster,
            "workers": 2,
        }

    resumed = run_audit(
        TINY_NET, f"npz:{photos}", out, config=str(cfg), suites="clean,corruption", progress=False
    )
    assert 0 < resumed.run["units_skipped"] == finished < resumed.run["units_total"]
    assert resumed.run["units_run"] == resumed.run["units_total"] - finished
    ref = run_audit(
        TINY_NET,
        f"npz:{photos}",
        tmp_path / "ref",
        config=str(cfg),
        suites="clean,corruption",
        progress=False,
    )
    assert _stable(resumed.to_dict()) == _stable(ref.to_dict())


@dataclass(frozen=True)
class BoomConfig:
    """Settings of the failing suite."""

    n: int = 3


class BoomSuite(Suite):
    """A suite whose second unit raises (workers import it from this module)."""

    name = "ray-boom"
    title = "Boom"
    description = "raises in one unit (a test plug-in)"
    config_class = BoomConfig
    default = False
    order = 61

    def plan(self, ctx: Any) -> list[Unit]:
        return [Unit(self.name, "all", i) for i in range(3)]

    def run(self, ctx: Any, unit: Unit, deps: Mapping[str, Row]) -> Row:
        if unit.shard == 1:
            raise ValueError("boom in unit 1")
        return {"n": 1}

    def aggregate(self, ctx: Any, rows: Mapping[str, Row], notes: dict[str, Any]) -> Any:
        return {"n": len(rows)}


def test_an_error_in_a_unit_is_raised_by_the_driver_not_retried(
    ray_cluster: str, photos: Path, tmp_path: Path
) -> None:
    from robustcv.audit.ray_executor import RayExecutor

    register_suite(BoomSuite())
    ex = RayExecutor(workers=1)
    try:
        with pytest.raises(ValueError, match="boom in unit 1") as info:
            run_audit(tiny_model(), f"npz:{photos}", tmp_path / "a", suites=["ray-boom"],
                      executor=ex, progress=False)  # fmt: skip
    finally:
        SUITES.remove("ray-boom")
    assert "on a Ray worker" in str(info.value.__cause__)
    assert "raise ValueError" in str(info.value.__cause__)  # the worker's traceback
    assert ex.restarts == 0 and not ex.retried


# ---------------------------------------------------------------------------- settings
def test_cli_flags_merge_with_the_config_file(tmp_path: Path) -> None:
    from robustcv.cli.audit import _executor_args

    cfg = tmp_path / "audit.json"
    cfg.write_text(json.dumps({"limit": 5, "executor": {"name": "ray", "address": "auto"}}))
    flags = {"executor": None, "workers": None, "ray_address": None, "ray_cpus_per_worker": None,
             "ray_gpus_per_worker": None, "config": cfg}  # fmt: skip
    pytest.importorskip("ray")
    args = argparse.Namespace(**{**flags, "workers": 3, "ray_gpus_per_worker": 0.5})
    executor, workers, config = _executor_args(args)
    assert (executor, workers) == (None, None)
    assert config["executor"] == {
        "name": "ray", "address": "auto", "workers": 3, "gpus_per_worker": 0.5,
    }  # fmt: skip
    assert config["limit"] == 5
    cfg_obj = AuditConfig.from_dict({"model": "m", "data": "d", **config})
    assert cfg_obj.executor == config["executor"]
    # another executor on the command line replaces the file's section
    args = argparse.Namespace(**{**flags, "executor": "processes"})
    assert _executor_args(args) == ("processes", None, cfg)
    # --executor ray on the command line keeps nothing of a processes section
    cfg.write_text(json.dumps({"executor": {"name": "processes", "workers": 2}}))
    args = argparse.Namespace(**{**flags, "executor": "ray", "ray_cpus_per_worker": 2})
    assert _executor_args(args)[2]["executor"] == {"name": "ray", "cpus_per_worker": 2}


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--ray-address", "auto"], "--ray-address needs --executor ray"),
        (["--executor", "processes", "--ray-cpus-per-worker", "2"], "--ray-cpus-per-worker needs"),
        (["--executor", "ray", "--ray-cpus-per-worker", "0"], "--ray-cpus-per-worker must be"),
        (["--executor", "ray", "--ray-gpus-per-worker", "-1"], "--ray-gpus-per-worker must be"),
        (["--executor", "ray", "--ray-address", "nohost"], "executor.address must be"),
    ],
)
def test_bad_ray_flags_exit_2(
    argv: list[str], needle: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if "nohost" in argv:
        pytest.importorskip("ray")
    code = main(["audit", "--model", "zoo:fmnist-cnn", "--data", "npz:nope.npz",
                 "--out", str(tmp_path / "a"), *argv])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2, err
    assert needle in err and len(err.strip().splitlines()) == 1


def test_an_address_nobody_answers_fails_fast() -> None:
    pytest.importorskip("ray")
    from robustcv.core.rayutil import check_reachable as _check_reachable

    begin = time.monotonic()
    with pytest.raises(InputError, match=r"no Ray cluster answers at 127\.0\.0\.1:1"):
        _check_reachable("127.0.0.1:1", timeout=5)
    with pytest.raises(InputError, match="no Ray cluster answers"):
        _check_reachable("ray://127.0.0.1:1", timeout=5)
    assert time.monotonic() - begin < 15


def test_config_validates_ray_settings() -> None:
    ok = AuditConfig.from_dict({"model": "m", "data": "d", "executor": {
        "name": "ray", "address": "ray://head:10001", "workers": 4, "cpus_per_worker": 2,
        "gpus_per_worker": 1.0, "max_retries": 0}})  # fmt: skip
    expected = {"name": "ray", "address": "ray://head:10001", "workers": 4,
                "cpus_per_worker": 2, "gpus_per_worker": 1, "max_retries": 0}  # fmt: skip
    assert ok.executor == expected
    assert ok.work_dict() == AuditConfig.from_dict({"model": "m", "data": "d"}).work_dict()
    for bad, needle in (
        ({"name": "processes", "address": "auto"}, "set executor.name to ray"),
        ({"name": "ray", "address": "head"}, "HOST:PORT"),
        ({"name": "ray", "cpus_per_worker": 0}, "executor.cpus_per_worker"),
        ({"name": "ray", "gpus_per_worker": "1"}, "executor.gpus_per_worker"),
        ({"name": "ray", "max_retries": 1000}, "executor.max_retries"),
        ({"name": "ray", "adress": "auto"}, "did you mean 'address'"),
    ):
        with pytest.raises(InputError, match=needle):
            AuditConfig.from_dict({"model": "m", "data": "d", "executor": bad})


# ---------------------------------------------------------------------------- without Ray
def test_without_ray_the_cli_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    code = main(["audit", "--model", "zoo:fmnist-cnn", "--data", "npz:nope.npz",
                 "--out", str(tmp_path / "a"), "--executor", "ray"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert "pip install 'robustcv[ray]'" in err and "nope.npz" not in err
    assert not (tmp_path / "a").exists()  # it failed before touching anything


def test_without_ray_the_python_api_raises_input_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from robustcv.audit.executor import make_executor

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(InputError, match=r"pip install 'robustcv\[ray\]'"):
        make_executor({"name": "ray"})


def test_importing_robustcv_does_not_import_ray() -> None:
    code = (
        "import sys, robustcv, robustcv.audit, robustcv.audit.executor, "
        "robustcv.audit.ray_executor, robustcv.cli.main; "
        "assert 'ray' not in sys.modules, 'ray imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=120)


# ----------------------------------------------------------------------------- robustcv corrupt


def _tree_digest(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "robustcv_manifest.json"
    }


def _toy_dataset(n: int = 23) -> Any:
    import numpy as np

    from robustcv.data import ArraySource, Dataset

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, 20, 20), np.uint8)
    return Dataset("toy", "test", ["a", "b", "c"], ArraySource(images, rng.integers(0, 3, n)))


@pytest.mark.ray
@pytest.mark.parametrize("fmt", ["imagenet-c", "cifar-c"])
def test_corrupt_on_ray_writes_the_same_bytes_as_in_process(
    ray_cluster: str, tmp_path: Path, fmt: str
) -> None:
    from robustcv.corruptions.dataset import write_corrupted

    ds = _toy_dataset()
    kw: dict[str, Any] = {"corruptions": "gaussian_noise,contrast", "fmt": fmt, "progress": False}
    serial = write_corrupted(ds, tmp_path / "serial", **kw)
    ray_res = write_corrupted(
        ds, tmp_path / "ray", executor="ray", ray_address="auto", shard_size=7, **kw
    )
    assert sorted(ray_res.written) == sorted(serial.written) and len(serial.written) == 10
    assert _tree_digest(tmp_path / "ray") == _tree_digest(tmp_path / "serial")
    again = write_corrupted(ds, tmp_path / "ray", executor="ray", shard_size=7, **kw)
    assert again.written == [] and len(again.skipped) == 10  # resumes: nothing to redo


@pytest.mark.ray
def test_cli_corrupt_executor_ray(
    ray_cluster: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import numpy as np

    ds = _toy_dataset(12)
    npz = tmp_path / "toy.npz"
    np.savez(npz, x=ds.x.numpy(), y=ds.y.numpy())
    base = ["corrupt", "--data", f"npz:{npz}", "--corruptions", "fog", "--severities", "2",
            "--quiet"]  # fmt: skip
    assert main([*base, "--out", str(tmp_path / "a")]) == 0
    code = main([*base, "--out", str(tmp_path / "b"), "--executor", "ray", "--ray-address",
                 ray_cluster, "--shard-size", "5"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert _tree_digest(tmp_path / "b") == _tree_digest(tmp_path / "a")


def test_cli_corrupt_without_ray_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)
    code = main(["corrupt", "--data", "npz:nope.npz", "--out", str(tmp_path / "c"),
                 "--executor", "ray"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "pip install 'robustcv[ray]'" in err and not (tmp_path / "c").exists()


@pytest.mark.parametrize(
    "flags,needle",
    [
        (["--workers", "2"], "--workers needs --executor"),
        (["--ray-address", "auto"], "--ray-address needs --executor ray"),
        (["--executor", "processes", "--shard-size", "0"], "--shard-size must be >= 1"),
    ],
)
def test_cli_corrupt_executor_flags_are_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], needle: str
) -> None:
    code = main(["corrupt", "--data", "npz:x.npz", "--out", str(tmp_path / "c"), *flags])
    assert code == 2 and needle in capsys.readouterr().err
