"""Units of work: plain data that, with the audit config, fully describe a piece of work.

An audit is a plan of independent **units** ``(suite, condition, shard)``. A unit is a pure
function of (model, data shard, unit parameters, seeds, earlier rows it depends on) and returns
a small JSON row. Seeds are derived with :func:`robustcv.core.seeding.derive_seed` from the
global seed and a key the suite chooses; the key never holds the shard or anything about
execution order, so sharding, resuming or running units in parallel never changes numbers.
:meth:`Unit.seed` gives the default key (suite, condition); suites whose numbers must equal a
library function's (e.g. the corruption table equals ``corruption_accuracy``) use that
function's key instead and say so in their docstring.

A suite with phases (the adversarial suite's eps grid depends on its pilot run) gives later units
a higher ``phase``: they run only after every unit of the earlier phases is stored, and receive
those rows. The suite interface is :class:`robustcv.audit.suite.Suite`.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from robustcv.core.seeding import derive_seed

__all__ = [
    "Row",
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
