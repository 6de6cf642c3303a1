"""Executors run units of work; the engine stores each row as soon as it comes back.

An executor is started once per audit with the :class:`ContextSpec` (plain data) and the
context the engine built from it; then, per suite and phase, it receives units and the rows
they depend on. It may run units in any order and in parallel (every unit is independent, its
seeds derived from the config, never from order); it must call ``on_done(unit, row, seconds)``
once per finished unit, from the caller's thread, so that the engine commits rows one by one.

* :class:`InProcessExecutor` runs units one after another in this process.
* :class:`ProcessExecutor` (``--executor processes``) runs them on a pool of worker processes
  of the standard library (spawned, so nothing is shared by accident); each worker rebuilds the
  context once from the pickled spec and then runs many units. Results equal the in-process ones
  bit for bit (tested).
* :class:`RayExecutor` (``--executor ray``, module :mod:`robustcv.audit.ray_executor`) runs them
  on Ray actors, on this machine or a cluster, with bounded retries when a worker dies. Ray is an
  optional extra, imported only when the executor is created.

Executor settings are recorded under ``config.executor`` and in the ``run`` record only.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any, Protocol

import torch

from robustcv.audit.context import AuditContext, ContextSpec, build_context
from robustcv.audit.plan import Row, Unit
from robustcv.audit.ray_executor import RayExecutor
from robustcv.audit.suite import Suite
from robustcv.core.errors import InputError

__all__ = [
    "Executor",
    "InProcessExecutor",
    "OnDone",
    "ProcessExecutor",
    "RayExecutor",
    "make_executor",
]

OnDone = Callable[[Unit, Row, float], None]


class Executor(Protocol):
    """Runs the units of an audit (see the module docstring)."""

    name: str

    def start(self, spec: ContextSpec, ctx: AuditContext) -> None:
        """Prepare to run units of the audit described by ``spec`` (``ctx`` is its context)."""
        ...

    def run(
        self, suite: Suite, units: Sequence[Unit], deps: Mapping[str, Row], on_done: OnDone
    ) -> None:
        """Run ``units`` of ``suite`` (``deps``: rows they may read) and report each."""
        ...

    def close(self) -> None:
        """Release workers (called once, also after an error)."""
        ...

    def settings(self) -> dict[str, Any]:
        """The settings recorded under ``config.executor`` and in the run record."""
        ...


class InProcessExecutor:
    """Run units sequentially in the current process (the default executor).

    Example:
        >>> InProcessExecutor().settings()
        {'name': 'in-process'}
    """

    name = "in-process"

    def __init__(self) -> None:
        self._ctx: AuditContext | None = None

    def start(self, spec: ContextSpec, ctx: AuditContext) -> None:
        """Keep the engine's context."""
        self._ctx = ctx

    def run(
        self, suite: Suite, units: Sequence[Unit], deps: Mapping[str, Row], on_done: OnDone
    ) -> None:
        """Run each unit in order and report it immediately."""
        if self._ctx is None:
            raise RuntimeError("InProcessExecutor.run before start (a bug in the engine)")
        for unit in units:
            start = time.perf_counter()
            row = suite.run(self._ctx, unit, deps)
            on_done(unit, row, time.perf_counter() - start)

    def close(self) -> None:
        """Forget the context."""
        self._ctx = None

    def settings(self) -> dict[str, Any]:
        """``{"name": "in-process"}``."""
        return {"name": self.name}


# ---------------------------------------------------------------------------- worker side
_WORKER: dict[str, Any] = {}


def _init_worker(spec_bytes: bytes, threads: int) -> None:
    torch.set_num_threads(threads)
    spec: ContextSpec = pickle.loads(spec_bytes)
    _WORKER["spec"] = spec
    _WORKER["ctx"] = build_context(spec)


def _run_unit(suite_name: str, unit: Unit, deps: Mapping[str, Row]) -> tuple[Row, float]:
    spec: ContextSpec = _WORKER["spec"]
    ctx: AuditContext = _WORKER["ctx"]
    start = time.perf_counter()
    row = spec.suites[suite_name].run(ctx, unit, deps)
    return row, time.perf_counter() - start


class ProcessExecutor:
    """Run units on worker processes (standard library, ``spawn`` start method).

    Each worker rebuilds the context once (loads the model from its spec, or unpickles a model
    object) and uses ``torch`` threads = CPUs / workers. Units are submitted in plan order and
    reported as they finish.

    Args:
        workers: worker processes (default: the CPU count, at most 8).

    Example:
        >>> ProcessExecutor(workers=2).settings()
        {'name': 'processes', 'workers': 2}
    """

    name = "processes"

    def __init__(self, workers: int | None = None) -> None:
        cpus = os.cpu_count() or 1
        self.workers = int(workers) if workers else min(cpus, 8)
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self._pool: ProcessPoolExecutor | None = None
        self._spec_bytes: bytes | None = None

    def start(self, spec: ContextSpec, ctx: AuditContext) -> None:
        """Pickle the spec; the pool starts on the first units (none when all are stored).

        Raises:
            InputError: the model (or a suite) cannot be pickled for the workers.
        """
        try:
            self._spec_bytes = pickle.dumps(spec)
        except Exception as err:  # pickling user objects fails in many ways
            raise InputError(
                f"the audit cannot be sent to worker processes ({type(err).__name__}: {err}); "
                "pass the model as a spec (zoo:NAME, a file, file.py:factory) rather than an "
                "object, or use the in-process executor"
            ) from err

    def _ensure_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            if self._spec_bytes is None:
                raise RuntimeError("ProcessExecutor.run before start (a bug in the engine)")
            threads = max(1, (os.cpu_count() or 1) // self.workers)
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
                initargs=(self._spec_bytes, threads),
            )
        return self._pool

    def run(
        self, suite: Suite, units: Sequence[Unit], deps: Mapping[str, Row], on_done: OnDone
    ) -> None:
        """Submit every unit; report each as it finishes (in the caller's thread)."""
        if not units:
            return
        pool = self._ensure_pool()
        pending: dict[Future[tuple[Row, float]], Unit] = {
            pool.submit(_run_unit, suite.name, u, dict(deps)): u for u in units
        }
        try:
            while pending:
                done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
                for fut in done:
                    unit = pending.pop(fut)
                    row, seconds = fut.result()
                    on_done(unit, row, seconds)
        finally:
            for fut in pending:
                fut.cancel()

    def close(self) -> None:
        """Shut the pool down."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def settings(self) -> dict[str, Any]:
        """``{"name": "processes", "workers": N}``."""
        return {"name": self.name, "workers": self.workers}


def make_executor(settings: Mapping[str, Any]) -> Executor:
    """The executor named by ``config.executor``.

    Raises:
        InputError: ``ray`` is named but Ray is not installed (the message says how).

    Example:
        >>> make_executor({"name": "processes", "workers": 3}).settings()
        {'name': 'processes', 'workers': 3}
    """
    if settings.get("name") == "processes":
        return ProcessExecutor(settings.get("workers"))
    if settings.get("name") == "ray":
        ray_settings = ("address", "workers", "cpus_per_worker", "gpus_per_worker", "max_retries")
        return RayExecutor(**{k: settings[k] for k in ray_settings if settings.get(k) is not None})
    return InProcessExecutor()
