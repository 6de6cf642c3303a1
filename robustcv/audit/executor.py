"""Executors run units of work; the engine stores each row as soon as it comes back.

An executor receives the context, the units still to do and a callback. It may run units in any
order and in parallel (every unit is independent, with its own derived seed); it must call
``on_done(unit, row, seconds)`` once per finished unit, from the caller's thread, so that the
engine commits rows one by one. :class:`InProcessExecutor` runs them one after another in this
process. A cluster executor (e.g. Ray) would ship ``ctx.config`` and the units to workers that
rebuild the context once each and call ``suite.run``; nothing in suites, store or report changes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from robustcv.audit.plan import AuditContext, Row, Suite, Unit

__all__ = ["Executor", "InProcessExecutor", "OnDone"]

OnDone = Callable[[Unit, Row, float], None]


class Executor(Protocol):
    """Runs units of one phase of one suite."""

    def run(
        self,
        ctx: AuditContext,
        suite: Suite,
        units: Sequence[Unit],
        deps: Mapping[str, Row],
        on_done: OnDone,
    ) -> None:
        """Run ``units`` (``deps``: rows of earlier phases) and report each with ``on_done``."""
        ...


class InProcessExecutor:
    """Run units sequentially in the current process (the default executor).

    Example:
        >>> InProcessExecutor().name
        'in-process'
    """

    name = "in-process"

    def run(
        self,
        ctx: AuditContext,
        suite: Suite,
        units: Sequence[Unit],
        deps: Mapping[str, Row],
        on_done: OnDone,
    ) -> None:
        """Run each unit in order and report it immediately."""
        for unit in units:
            start = time.perf_counter()
            row = suite.run(ctx, unit, deps)
            on_done(unit, row, time.perf_counter() - start)
