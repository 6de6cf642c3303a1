"""Plain, JSON-serialisable result dataclasses.

Measurements return dataclasses that inherit :class:`Result`; the report and the CLI only read
them. Tensors and numpy arrays inside a result are converted to lists by :meth:`Result.to_dict`.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import torch

__all__ = ["Result", "to_jsonable"]


def to_jsonable(value: Any) -> Any:
    """Convert tensors, numpy values, tuples and nested dataclasses to JSON-friendly objects.

    Non-finite floats become ``None`` so the output is strict JSON. Dataclass fields declared
    with ``field(metadata={"json": False})`` (bulky tensors such as adversarial images) are left
    out.

    Example:
        >>> to_jsonable({"a": torch.tensor([1, 2]), "b": (0.5, float("nan"))})
        {'a': [1, 2], 'b': [0.5, None]}
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: to_jsonable(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if f.metadata.get("json", True)
        }
    if isinstance(value, torch.Tensor):
        return to_jsonable(value.detach().cpu().tolist())
    if hasattr(value, "tolist") and type(value).__module__.startswith("numpy"):
        return to_jsonable(value.tolist())
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class Result:
    """Mixin for result dataclasses: ``to_dict()`` and ``to_json()``."""

    def to_dict(self) -> dict[str, Any]:
        """Return the result as a dict of JSON-serialisable values."""
        out = to_jsonable(self)
        assert isinstance(out, dict)  # internal invariant: results are dataclasses
        return out

    def to_json(self, **kwargs: Any) -> str:
        """Return the result as a JSON string (``kwargs`` go to ``json.dumps``)."""
        return json.dumps(self.to_dict(), **kwargs)
