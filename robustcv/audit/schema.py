"""The versioned layout of ``DIR/results.json`` and helpers to build and read it.

The full field-by-field description lives in ``docs/results-schema.md``. The ``schema`` field
reads ``robustcv.audit/MAJOR``: readers accept any result whose major version they know; a
change that removes or renames a field bumps the major version, added fields do not.

Every accuracy, AUROC and ECE is an *estimate*: ``{"value", "low", "high", "n", "method",
"level"}`` (:class:`robustcv.core.stats.Estimate`), ``low``/``high`` being a 95% interval
(exact Clopper-Pearson for accuracies, a percentile bootstrap for ECE and AUROC).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from robustcv.core.errors import InputError
from robustcv.core.results import to_jsonable
from robustcv.core.stats import Estimate

__all__ = [
    "RESULTS_FILE",
    "SCHEMA_MAJOR",
    "SCHEMA_VERSION",
    "accuracy_estimate",
    "read_results",
    "write_json_atomic",
]

SCHEMA_MAJOR = 1
SCHEMA_VERSION = f"robustcv.audit/{SCHEMA_MAJOR}"
"""The value of ``results.json``'s ``schema`` field."""

RESULTS_FILE = "results.json"


def accuracy_estimate(correct: int, n: int) -> dict[str, Any]:
    """An accuracy ``correct / n`` as a results.json estimate with its exact 95% interval.

    Example:
        >>> est = accuracy_estimate(90, 100)
        >>> est["value"], round(est["low"], 3), est["n"], est["method"]
        (0.9, 0.824, 100, 'clopper-pearson')
    """
    return Estimate.binomial(int(correct), int(n)).to_dict()


def write_json_atomic(path: str | os.PathLike[str], payload: Any) -> Path:
    """Write ``payload`` as JSON to ``path`` through a temporary file and an atomic rename.

    A reader (or a kill -9) never sees a half-written file.

    Example:
        >>> import tempfile, json
        >>> p = write_json_atomic(Path(tempfile.mkdtemp()) / "x.json", {"a": float("nan")})
        >>> json.loads(p.read_text())
        {'a': None}
    """
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    text = json.dumps(to_jsonable(payload), indent=1, allow_nan=False)
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, target)
    return target


def read_results(source: str | os.PathLike[str]) -> dict[str, Any]:
    """Read an audit's ``results.json`` (give the audit folder or the file) and check its schema.

    Raises:
        InputError: missing or unreadable file, not an audit result, or a newer major version.

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp())
        >>> _ = write_json_atomic(d / RESULTS_FILE, {"schema": SCHEMA_VERSION, "suites": {}})
        >>> read_results(d)["schema"]
        'robustcv.audit/1'
    """
    path = Path(source)
    file = path / RESULTS_FILE if path.is_dir() else path
    if not file.is_file():
        raise InputError(
            f"no audit results at {file}; pass an audit folder (robustcv audit --out DIR) or its "
            "results.json"
        )
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"cannot read {file}: {err}; re-run the audit to rewrite it") from err
    schema = str(data.get("schema", "")) if isinstance(data, dict) else ""
    family, _, major = schema.partition("/")
    if family != "robustcv.audit" or not major.split(".")[0].isdigit():
        raise InputError(f"{file} is not a robustcv audit result (schema '{schema}')")
    if int(major.split(".")[0]) > SCHEMA_MAJOR:
        raise InputError(
            f"{file} has schema '{schema}', newer than this robustcv reads ({SCHEMA_VERSION}); "
            "upgrade robustcv"
        )
    assert isinstance(data, dict)
    return data
