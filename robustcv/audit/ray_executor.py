"""Run audit units on a Ray cluster (``--executor ray``), with the numbers of one machine.

:class:`RayExecutor` implements the executor interface (:mod:`robustcv.audit.executor`) on Ray
Core actors. Ray is an optional extra (``pip install 'robustcv[ray]'``); this module imports it
only when an executor is created, never when robustcv is imported.

How it works:

* **Connect.** Without an address it starts a private local Ray instance with every CPU of
  this machine (``ray.init(address="local")``); with ``address="auto"`` (or ``HOST:PORT``,
  ``ray://HOST:PORT``) it attaches to a running cluster. When Ray is already initialised in
  this process it uses that instance and leaves it running afterwards.
* **Workers.** One actor per ``cpus_per_worker`` CPUs of the cluster (and per
  ``gpus_per_worker`` GPUs when given), or ``workers`` actors. Each actor reserves its CPUs and
  GPUs, sets ``torch`` threads to its CPUs and rebuilds the audit context once from the
  pickled :class:`robustcv.audit.context.ContextSpec` (the evaluated images travel inside it)
  and the model, both put in the object store once and fetched by reference. Actors are
  created on the first units (none when every unit is stored already).
* **Back-pressure.** At most ``in_flight`` calls per actor (default 2: one running, one
  queued, so no actor waits for the driver). The driver waits for whichever finishes first and
  commits its row through ``on_done`` (the engine writes it to the SQLite store at once), then
  submits the next unit. The rows a phase depends on are put in the store once per call of
  :meth:`RayExecutor.run` and cached by the actors.
* **Faults.** When an actor dies (its process killed, its node lost, out of memory), the unit
  it was running is charged one attempt, every unit queued on it is resubmitted, and a fresh
  actor takes its place. A unit charged more than ``max_retries`` times stops the audit with
  :class:`WorkerLostError`, naming the unit and Ray's error; every finished unit stays stored,
  so the command resumes. A row is reported at most once per unit, so nothing is stored twice.
  An exception raised by a unit itself is not retried (units are deterministic): it is
  re-raised in the driver with the worker's traceback as its cause.

Results equal the in-process executor's bit for bit: units are pure functions of the spec and
their own seeds (tested in ``tests/test_ray_executor.py``). See ``docs/scale-out.md``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pickle
import time
import traceback
import warnings
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import numpy as np
import torch

from robustcv.audit.context import AuditContext, ContextSpec, TensorSource, build_context
from robustcv.audit.plan import Row, Unit
from robustcv.audit.suite import Suite
from robustcv.core.errors import InputError, RobustcvError
from robustcv.core.rayutil import INSTALL_HINT, connect_ray, import_ray
from robustcv.data.dataset import Dataset

__all__ = ["INSTALL_HINT", "RayExecutor", "WorkerLostError", "import_ray"]

_START_TIMEOUT = 900.0
"""Seconds new workers may take to be placed and to load the audit before the run fails."""

_Status = tuple[str, Any, float, int, float]
"""What an actor returns per unit: ("ok", row, seconds, pid, CPU seconds) or ("error", payload,
0.0, pid, 0.0)."""


class WorkerLostError(RobustcvError):
    """A unit's Ray worker died more often than the executor retries it.

    Example:
        >>> str(WorkerLostError("unit clean:all#0 failed"))
        'unit clean:all#0 failed'
    """


class _RemoteTraceback(Exception):
    """The traceback of an exception raised on a Ray worker (chained as the cause)."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return self.text


def _versions() -> dict[str, str]:
    """The versions a worker must share with the driver for identical numbers."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        mine = version("robustcv")
    except PackageNotFoundError:  # a source tree that was never installed
        mine = "unknown"
    return {"robustcv": mine, "torch": torch.__version__}


def _dump_error(err: BaseException) -> bytes:
    """``err`` and its traceback, pickled (a stand-in when ``err`` itself does not pickle)."""
    text = "".join(traceback.format_exception(type(err), err, err.__traceback__))
    try:
        return pickle.dumps((err, text))
    except Exception:  # user exceptions may hold unpicklable state
        return pickle.dumps((RuntimeError(f"{type(err).__name__}: {err}"), text))


def _raise_remote(payload: bytes, where: str) -> None:
    """Re-raise the exception a worker sent, with its traceback as the cause."""
    err, text = pickle.loads(payload)
    raise err from _RemoteTraceback(f"\n\non a Ray worker, {where}:\n{text}")


_Images = tuple[np.ndarray, np.ndarray]


def _split_images(spec: ContextSpec) -> tuple[ContextSpec, _Images | None]:
    """The spec without its evaluated images, and the images as arrays (None: keep them in).

    Arrays go to the object store on their own: every actor of a node maps that node's one
    copy (zero-copy, read-only) instead of unpickling a private copy of the whole set.
    """
    data = spec.data
    source = data.source
    if not isinstance(source, TensorSource) or len(data) != len(source):
        return spec, None
    x, y = data.x, data.y
    if x is not source.x or x.device.type != "cpu" or not x.is_contiguous():
        return spec, None
    meta = (data.name, data.split, list(data.classes))
    return dataclasses.replace(spec, data=cast(Any, meta)), (x.numpy(), y.numpy())


def _join_images(spec: ContextSpec, images: _Images) -> ContextSpec:
    """Undo :func:`_split_images` on a worker (the images stay in the object store)."""
    name, split, classes = cast(Any, spec.data)
    with warnings.catch_warnings():  # read-only store memory; units never write to images
        warnings.simplefilter("ignore", UserWarning)
        x = torch.from_numpy(images[0])
    y = torch.from_numpy(np.array(images[1]))
    data = Dataset(name, split, list(classes), TensorSource(x, y), None, (x, y))
    return dataclasses.replace(spec, data=data)


# ---------------------------------------------------------------------------- worker side
class _Worker:
    """The body of a Ray actor: rebuilds the audit context once, then runs units.

    Errors while building are kept and returned by every call, so the driver re-raises the
    original exception (an :class:`InputError` when a model file is missing on the node).
    """

    def __init__(
        self,
        spec_bytes: bytes,
        model_bytes: bytes | None,
        images: _Images | None,
        threads: int,
        versions: Mapping[str, str],
        cwd: str,
    ) -> None:
        self.pid = os.getpid()
        self.error: bytes | None = None
        self._deps_ref: Any = None
        self._deps: Mapping[str, Row] = {}
        try:
            torch.set_num_threads(threads)
            mine = _versions()
            if mine != dict(versions):
                raise InputError(
                    f"a Ray worker on {os.uname().nodename} has {mine}, the driver "
                    f"{dict(versions)}; install the same robustcv and torch versions on every "
                    "node (numbers depend on them)"
                )
            if os.path.isdir(cwd):  # relative data paths mean the same as on the driver
                os.chdir(cwd)
            self.spec: ContextSpec = pickle.loads(spec_bytes)
            if images is not None:
                self.spec = _join_images(self.spec, images)
            model = pickle.loads(model_bytes) if model_bytes is not None else None
            self.ctx: AuditContext = build_context(self.spec, model=model)
        except Exception as err:
            self.error = _dump_error(err)

    def ready(self) -> tuple[int, bytes | None]:
        """(process id, the construction error or None)."""
        return self.pid, self.error

    def run(self, suite_name: str, unit: Unit, deps_box: list[Any]) -> _Status:
        """Run one unit; ``deps_box`` holds the ref of the rows it may read (cached)."""
        if self.error is not None:
            return "error", self.error, 0.0, self.pid, 0.0
        if self._deps_ref != deps_box[0]:
            import ray

            self._deps = ray.get(deps_box[0])
            self._deps_ref = deps_box[0]
        start, cpu = time.perf_counter(), time.process_time()
        try:
            row = self.spec.suites[suite_name].run(self.ctx, unit, self._deps)
        except Exception as err:
            return "error", _dump_error(err), 0.0, self.pid, 0.0
        return "ok", row, time.perf_counter() - start, self.pid, time.process_time() - cpu


# ---------------------------------------------------------------------------- driver side
class _Slot:
    """One worker position: its current actor and the calls in flight on it, oldest first."""

    def __init__(self, actor: Any) -> None:
        self.actor = actor
        self.calls: deque[tuple[Any, Unit]] = deque()
        self.pid: int | None = None


class RayExecutor:
    """Run units on Ray actors (local instance or cluster); see the module docstring.

    Args:
        address: ``None`` or ``"local"`` (start a private local instance with every CPU of
            this machine), ``"auto"`` (attach to the running cluster, ``RAY_ADDRESS``
            included), ``"HOST:PORT"`` or ``"ray://HOST:PORT"`` (Ray Client). Ignored when
            Ray is already initialised in this process.
        workers: actors to start (default: cluster CPUs // ``cpus_per_worker``, and at most
            cluster GPUs // ``gpus_per_worker`` when GPUs are asked for).
        cpus_per_worker: CPUs each actor reserves; also its ``torch`` threads.
        gpus_per_worker: GPUs each actor reserves (a fraction shares a GPU); the model runs on
            the audit's ``device``.
        max_retries: attempts a unit is charged for dying workers before the audit fails.
        in_flight: most calls queued on one actor (back-pressure).

    Raises:
        InputError: Ray is not installed, or a setting is out of range.

    Example:
        >>> ex = RayExecutor(workers=2, gpus_per_worker=0.5)  # needs Ray; starts nothing yet
        >>> ex.settings()["workers"], ex.settings()["gpus_per_worker"]
        (2, 0.5)
    """

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        workers: int | None = None,
        cpus_per_worker: int = 1,
        gpus_per_worker: float = 0,
        max_retries: int = 3,
        in_flight: int = 2,
    ) -> None:
        self._ray = import_ray()
        for value, what, low in (
            (cpus_per_worker, "cpus_per_worker", 1),
            (max_retries, "max_retries", 0),
            (in_flight, "in_flight", 1),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise InputError(f"RayExecutor {what} must be an int >= {low}, got {value!r}")
        if workers is not None and (
            isinstance(workers, bool) or not isinstance(workers, int) or workers < 1
        ):
            raise InputError(f"RayExecutor workers must be an int >= 1, got {workers!r}")
        if isinstance(gpus_per_worker, bool) or not 0 <= float(gpus_per_worker) <= 64:
            raise InputError(
                f"RayExecutor gpus_per_worker must be in [0, 64], got {gpus_per_worker!r}"
            )
        self.address = address
        self.workers = workers
        self.cpus_per_worker = cpus_per_worker
        self.gpus_per_worker = gpus_per_worker
        self.max_retries = max_retries
        self.in_flight = in_flight
        self.restarts = 0
        """Actors replaced after dying (this executor's lifetime)."""
        self.retried: list[str] = []
        """Keys of the units charged a retry, in order."""
        self.worker_cpu_seconds = 0.0
        """CPU seconds the workers spent in the units reported so far (all processes)."""
        self.pids: list[int] = []
        """Process ids of every actor that answered, in order (also after :meth:`close`)."""
        self.startup_seconds: float | None = None
        """Seconds ``ray.init`` took (None: Ray was already running or never needed)."""
        self._spec_bytes: bytes | None = None
        self._images: _Images | None = None
        self._model_bytes: bytes | None = None
        self._refs: tuple[Any, Any, Any] | None = None
        self._connected = False
        self._owns_ray = False
        self._n_workers: int | None = workers
        self._slots: list[_Slot] = []
        self._log = logging.getLogger("robustcv.audit")

    # -------------------------------------------------------------- interface
    def start(self, spec: ContextSpec, ctx: AuditContext) -> None:
        """Pickle the spec and the model; Ray starts on the first units (none when all stored).

        Raises:
            InputError: the model (or a suite) cannot be pickled for the workers.
        """
        light, self._images = _split_images(spec)
        try:
            self._spec_bytes = pickle.dumps(light)
        except Exception as err:  # pickling user objects fails in many ways
            raise InputError(
                f"the audit cannot be sent to Ray workers ({type(err).__name__}: {err}); pass "
                "the model as a spec (zoo:NAME, a file, file.py:factory) rather than an object, "
                "or use the in-process executor"
            ) from err
        self._log = ctx.log
        self._model_bytes = None
        if spec.model.obj is None and ctx.model.device.type == "cpu":
            try:  # weights travel through the object store: nodes need no model file
                self._model_bytes = pickle.dumps(ctx.model)
            except Exception:  # e.g. an onnxruntime session: workers load the spec instead
                self._model_bytes = None

    def run(
        self,
        suite: Suite,
        units: Sequence[Unit],
        deps: Mapping[str, Row],
        on_done: Callable[[Unit, Row, float], None],
    ) -> None:
        """Run ``units`` on the actors, at most ``in_flight`` per actor; report each once.

        Raises:
            WorkerLostError: a unit's worker died more than ``max_retries`` times.
        """
        if not units:
            return
        ray = self._ray
        self._ensure_workers(len(units))
        box = [ray.put(dict(deps))]
        queue: deque[Unit] = deque(units)
        pending: dict[Any, int] = {}  # call ref -> slot index
        attempts: dict[str, int] = {}
        reported: set[str] = set()
        try:
            while queue or pending:
                self._submit(suite, queue, box, pending)
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    if ref not in pending:  # dropped with a lost worker in this loop
                        continue
                    index = pending.pop(ref)
                    slot = self._slots[index]
                    unit = next(u for r, u in slot.calls if r == ref)
                    try:
                        status = ray.get(ref)
                    except self._lost_errors() as err:
                        self._replace(index, err, unit, queue, pending, attempts)
                        continue
                    slot.calls.remove((ref, unit))
                    self._saw(slot, status[3])
                    self._report(unit, status, reported, on_done)
        finally:
            for slot in self._slots:
                slot.calls.clear()

    def close(self) -> None:
        """Kill the actors; shut Ray down when this executor started it."""
        ray = self._ray
        for slot in self._slots:
            try:
                ray.kill(slot.actor, no_restart=True)
            except Exception:  # already dead or Ray already down
                pass
        self._slots = []
        self._refs = None
        self._images = None
        if self._owns_ray and ray.is_initialized():
            ray.shutdown()
        self._owns_ray = False
        self._connected = False

    def settings(self) -> dict[str, Any]:
        """The settings recorded under ``config.executor`` (valid as a config section).

        Keys: ``name``, ``address`` (when given), ``workers`` (once known),
        ``cpus_per_worker``, ``gpus_per_worker``, ``max_retries``.
        """
        out: dict[str, Any] = {"name": self.name}
        if self.address is not None:
            out["address"] = self.address
        if self._n_workers is not None:
            out["workers"] = self._n_workers
        gpus = self.gpus_per_worker
        out["cpus_per_worker"] = self.cpus_per_worker
        out["gpus_per_worker"] = int(gpus) if float(gpus).is_integer() else float(gpus)
        out["max_retries"] = self.max_retries
        return out

    def worker_pids(self) -> list[int | None]:
        """Process ids of the current actors (None until an actor answered; for tests)."""
        return [slot.pid for slot in self._slots]

    # -------------------------------------------------------------- helpers
    def _lost_errors(self) -> tuple[type[BaseException], ...]:
        exc = self._ray.exceptions
        return (
            exc.RayActorError,  # ActorDiedError, ActorUnavailableError
            exc.WorkerCrashedError,
            exc.ObjectLostError,  # OwnerDiedError, ObjectReconstructionFailedError, ...
            exc.NodeDiedError,
            exc.OutOfMemoryError,
        )

    def _connect(self) -> None:
        ray = self._ray
        if not ray.is_initialized():
            begin = time.perf_counter()
            connect_ray(ray, self.address)
            self._owns_ray = True
            self.startup_seconds = time.perf_counter() - begin
        self._connected = True
        resources = ray.cluster_resources()
        cpus, gpus = float(resources.get("CPU", 0)), float(resources.get("GPU", 0))
        fit = int(cpus // self.cpus_per_worker)
        if self.gpus_per_worker:
            fit = min(fit, int(gpus // float(self.gpus_per_worker)))
        if self._n_workers is None:
            self._n_workers = fit
        if fit < 1 or self._n_workers > fit:
            want = self._n_workers or 1
            raise InputError(
                f"the Ray cluster has {cpus:g} CPUs and {gpus:g} GPUs, too few for {want} "
                f"worker(s) of {self.cpus_per_worker} CPU(s) and {self.gpus_per_worker:g} GPU(s); "
                "ask for fewer workers (--workers), fewer resources per worker "
                "(--ray-cpus-per-worker, --ray-gpus-per-worker), or add nodes"
            )

    def _new_actor(self) -> Any:
        ray = self._ray
        if self._refs is None:
            if self._spec_bytes is None:
                raise RuntimeError("RayExecutor.run before start (a bug in the engine)")
            model_ref = None if self._model_bytes is None else ray.put(self._model_bytes)
            images_ref = None if self._images is None else ray.put(self._images)
            self._refs = (ray.put(self._spec_bytes), model_ref, images_ref)
        spec_ref, model_ref, images_ref = self._refs
        cls = ray.remote(_Worker).options(
            num_cpus=self.cpus_per_worker,
            num_gpus=self.gpus_per_worker,
            max_restarts=0,  # a dead actor is replaced by the driver, which knows its calls
            max_task_retries=0,
        )
        return cls.remote(
            spec_ref, model_ref, images_ref, self.cpus_per_worker, _versions(), os.getcwd()
        )

    def _ensure_workers(self, n_units: int) -> None:
        if not self._connected:
            self._connect()
        target = min(int(self._n_workers or 1), n_units)
        if len(self._slots) >= target:
            return
        new = [_Slot(self._new_actor()) for _ in range(target - len(self._slots))]
        try:
            answers = self._ray.get([s.actor.ready.remote() for s in new], timeout=_START_TIMEOUT)
        except self._ray.exceptions.GetTimeoutError as err:
            for s in new:
                self._ray.kill(s.actor, no_restart=True)
            raise WorkerLostError(
                f"{len(new)} Ray worker(s) did not start within {_START_TIMEOUT:.0f} s: the "
                "cluster's CPUs/GPUs are taken by other work, or loading the audit hangs; ask "
                "for fewer workers or check the workers' logs (/tmp/ray/session_latest/logs)"
            ) from err
        except self._lost_errors() as err:
            raise WorkerLostError(
                f"a Ray worker died while loading the audit ({type(err).__name__}); check the "
                "workers' memory and logs (/tmp/ray/session_latest/logs)"
            ) from err
        for slot, (pid, error) in zip(new, answers, strict=True):
            self._saw(slot, pid)
            if error is not None:
                for s in new:
                    self._ray.kill(s.actor, no_restart=True)
                _raise_remote(error, "while loading the audit")
        self._slots.extend(new)

    def _saw(self, slot: _Slot, pid: int) -> None:
        slot.pid = pid
        if pid not in self.pids:
            self.pids.append(pid)

    def _submit(
        self, suite: Suite, queue: deque[Unit], box: list[Any], pending: dict[Any, int]
    ) -> None:
        """Fill every actor up to ``in_flight`` calls, one level at a time (round robin)."""
        for level in range(self.in_flight):
            for index, slot in enumerate(self._slots):
                if not queue:
                    return
                if len(slot.calls) <= level:
                    unit = queue.popleft()
                    ref = slot.actor.run.remote(suite.name, unit, box)
                    slot.calls.append((ref, unit))
                    pending[ref] = index

    def _report(
        self,
        unit: Unit,
        status: _Status,
        reported: set[str],
        on_done: Callable[[Unit, Row, float], None],
    ) -> None:
        kind, payload, seconds, pid, cpu = status
        self.worker_cpu_seconds += cpu
        if kind == "error":
            _raise_remote(payload, f"pid {pid}, running unit {unit.key}")
        if unit.key in reported:  # a unit is reported (stored) at most once
            return
        reported.add(unit.key)
        on_done(unit, payload, seconds)

    def _replace(
        self,
        index: int,
        err: BaseException,
        failed: Unit,
        queue: deque[Unit],
        pending: dict[Any, int],
        attempts: dict[str, int],
    ) -> None:
        """An actor died: charge its running unit, requeue its calls, start a fresh actor."""
        ray = self._ray
        slot = self._slots[index]
        calls = list(slot.calls)
        for ref, _ in calls:
            pending.pop(ref, None)
        running = calls[0][1] if calls else failed
        attempts[running.key] = attempts.get(running.key, 0) + 1
        self.retried.append(running.key)
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if attempts[running.key] > self.max_retries:
            raise WorkerLostError(
                f"unit {running.key} failed: its Ray worker died {attempts[running.key]} times "
                f"(last: {type(err).__name__}: {reason}); finished units are stored, so "
                "re-running the command resumes; check the workers' memory and logs "
                "(/tmp/ray/session_latest/logs), or raise executor.max_retries"
            ) from err
        self._log.warning(
            "Ray worker (pid %s) lost running %s (%s); retrying it on a new worker",
            slot.pid,
            running.key,
            type(err).__name__,
        )
        try:
            ray.kill(slot.actor, no_restart=True)
        except Exception:  # already gone
            pass
        queue.extendleft(unit for _, unit in reversed(calls))
        self._slots[index] = _Slot(self._new_actor())
        self.restarts += 1
