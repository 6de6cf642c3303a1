"""Units of work, the context they run in, and the suite interface.

An audit is a plan of independent **units** ``(suite, condition, shard)``. A unit is a pure
function of (model, data shard, unit parameters, unit seed, earlier rows it depends on) and
returns a small JSON row. Unit seeds come from ``derive_seed(global seed, suite, condition)``
(the shard is left out, so sharding never changes numbers), never from execution order.

A :class:`Suite` plans its units (``plan``), computes one unit (``run``) and summarises its
stored rows (``aggregate``). A suite with phases (the adversarial suite's eps grid depends on
its pilot run) gives later units a higher ``phase``: they run only after every unit of the
earlier phases is stored, and receive those rows.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from robustcv.core.model import Model
from robustcv.core.seeding import derive_seed
from robustcv.data.dataset import Dataset

__all__ = [
    "AuditContext",
    "Row",
    "Suite",
    "Unit",
    "pack",
    "shards",
    "unpack",
]

Row = dict[str, Any]


@dataclass(frozen=True)
class Unit:
    """One unit of work.

    Attributes:
        suite: the suite that plans and runs it.
        condition: what it measures inside the suite, e.g. ``"fog/3"`` or ``"linf/pilot"``.
        shard: which slice of the suite's images.
        params: JSON-friendly parameters (image positions are derived from them, not stored).
        cost: a rough cost estimate (forward-pass equivalents) for the progress bar's ETA.
        phase: units of a phase run after every unit of the earlier phases of the same suite.
    """

    suite: str
    condition: str
    shard: int = 0
    params: Mapping[str, Any] = field(default_factory=dict)
    cost: float = 1.0
    phase: int = 0

    @property
    def key(self) -> str:
        """The unit's key in the store: ``suite:condition#shard``."""
        return f"{self.suite}:{self.condition}#{self.shard}"

    def seed(self, global_seed: int) -> int:
        """The unit's seed: derived from (global seed, suite, condition)."""
        return derive_seed(global_seed, "audit", self.suite, self.condition)


def shards(n: int, size: int) -> list[tuple[int, int]]:
    """``(start, stop)`` slices of ``range(n)`` of at most ``size`` items.

    Example:
        >>> shards(5, 2)
        [(0, 2), (2, 4), (4, 5)]
    """
    return [(i, min(i + size, n)) for i in range(0, n, size)]


def pack(array: np.ndarray | torch.Tensor, dtype: str = "float32") -> dict[str, Any]:
    """A numeric array as compact JSON: ``{"dtype", "shape", "b64"}`` (little-endian bytes).

    Example:
        >>> unpack(pack(np.arange(6).reshape(2, 3), "int64")).tolist()
        [[0, 1, 2], [3, 4, 5]]
    """
    arr = array.detach().cpu().numpy() if isinstance(array, torch.Tensor) else np.asarray(array)
    arr = np.ascontiguousarray(arr, dtype=np.dtype(dtype).newbyteorder("<"))
    return {
        "dtype": dtype,
        "shape": list(arr.shape),
        "b64": base64.b64encode(arr.tobytes()).decode("ascii"),
    }


def unpack(obj: Mapping[str, Any]) -> np.ndarray:
    """The array stored by :func:`pack`."""
    dt = np.dtype(str(obj["dtype"])).newbyteorder("<")
    raw = base64.b64decode(str(obj["b64"]))
    return np.frombuffer(raw, dtype=dt).reshape([int(s) for s in obj["shape"]]).copy()


@dataclass
class AuditContext:
    """What units run against: the model, the evaluated data and lazily loaded extra data.

    Attributes:
        config: the resolved :class:`robustcv.audit.config.AuditConfig`.
        model: the wrapped model.
        data: the evaluated images (already limited).
        out_dir: the audit folder.
        fit_loader: loads the fit data (train split by default), called at most once.
        fit_spec: what the fit data is, in words (for results.json).
        ood_loaders: name -> loader of an OOD dataset (derived sets are built by the OOD suite).
        log: the audit's logger.
        memo: per-process cache for things units share (fitted detectors); anything in it
            must be a pure function of the config so that a unit's row does not depend on it.
    """

    config: Any
    model: Model
    data: Dataset
    out_dir: Path
    fit_loader: Callable[[], Dataset] | None = None
    fit_spec: str = ""
    ood_loaders: dict[str, Callable[[], Dataset]] = field(default_factory=dict)
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("robustcv.audit"))
    memo: dict[str, Any] = field(default_factory=dict)

    @property
    def seed(self) -> int:
        """The global seed."""
        return int(self.config.seed)

    def cached(self, key: str, make: Callable[[], Any]) -> Any:
        """``memo[key]``, computed with ``make()`` the first time."""
        if key not in self.memo:
            self.memo[key] = make()
        return self.memo[key]

    def subset(self, name: str, n: int | None, total: int | None = None) -> np.ndarray:
        """Sorted positions of a seeded random subset of ``n`` of the evaluated images.

        The same (seed, name, n, total) always gives the same positions, so two models audited
        with the same seed see the same images. ``n`` None or >= total: every image.
        """
        size = len(self.data) if total is None else total
        if n is None or n >= size:
            return np.arange(size)
        rng = np.random.default_rng(derive_seed(self.seed, "audit-subset", name))
        return np.sort(rng.choice(size, size=n, replace=False))

    def images(self, positions: np.ndarray | Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Evaluated images and labels at ``positions``."""
        idx = torch.as_tensor(np.asarray(positions, dtype=np.int64))
        return self.data.x[idx], self.data.y[idx]

    def fit_data(self) -> Dataset:
        """The fit data (loaded once)."""
        if self.fit_loader is None:
            raise RuntimeError("this audit has no fit data (a bug: the plan should not need it)")
        loader = self.fit_loader
        return self.cached("fit-data", loader)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of ``x`` in batches, no gradients (CPU)."""
        return self.model.predict_logits(x, batch_size=int(self.config.batch_size))


class Suite(Protocol):
    """A family of units plus the aggregation of their rows."""

    name: str

    def plan(self, ctx: AuditContext) -> list[Unit]:
        """Every unit of the suite (keys and costs are known before any runs)."""
        ...

    def run(self, ctx: AuditContext, unit: Unit, deps: Mapping[str, Row]) -> Row:
        """Compute one unit; ``deps`` holds the rows of the suite's earlier phases (by key)."""
        ...

    def aggregate(self, ctx: AuditContext, rows: Mapping[str, Row], notes: dict[str, Any]) -> Any:
        """The suite's section of results.json from its rows (keyed by unit key).

        ``notes`` collects ``skipped`` reasons and free-text notes for the top level.
        """
        ...
