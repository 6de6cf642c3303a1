"""The versioned layout of ``DIR/results.json``: the one writer and the one reader.

``audit/`` writes results with :func:`write_json_atomic`; ``report/`` (HTML, ``compare``,
``check``) and :class:`robustcv.audit.AuditResults` read them with :func:`load_results`. Each
suite documents its own section (``suites.<name>``) in its module docstring.

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
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from robustcv.core.errors import InputError
from robustcv.core.results import to_jsonable
from robustcv.core.stats import Estimate

__all__ = [
    "RESULTS_FILE",
    "SCHEMA_FAMILY",
    "SCHEMA_MAJOR",
    "SCHEMA_VERSION",
    "accuracy_estimate",
    "load_results",
    "read_results",
    "write_json_atomic",
]

SCHEMA_FAMILY = "robustcv.audit"
SCHEMA_MAJOR = 1
SCHEMA_VERSION = f"{SCHEMA_FAMILY}/{SCHEMA_MAJOR}"
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


def load_results(
    source: str | os.PathLike[str] | Mapping[str, Any],
) -> tuple[dict[str, Any], Path | None]:
    """Load an audit's results from a folder, a ``results.json`` file or an already-loaded dict.

    The one reader of results.json (the audit's ``AuditResults.load``, the report, ``compare``
    and ``check`` all use it). A missing suite is simply absent; readers of a section tolerate
    missing keys.

    Args:
        source: the audit folder (holding ``results.json``), the JSON file itself, or a dict.

    Returns:
        ``(results, folder)``; ``folder`` is where example images are looked up (None for a dict).

    Raises:
        InputError: the folder or file is missing, is not valid JSON, is not an audit result, or
            has a newer major schema version than this robustcv reads.

    Example:
        >>> res, folder = load_results({"schema": "robustcv.audit/1", "suites": {}})
        >>> sorted(res), folder
        (['schema', 'suites'], None)
    """
    if isinstance(source, Mapping):
        results = dict(source)
        folder = None
        where = "the results"
    else:
        path = Path(source).expanduser()
        if not path.exists():
            raise InputError(
                f"{path} does not exist; pass the folder given to 'robustcv audit --out'"
            )
        if path.is_dir():
            folder, file = path, path / RESULTS_FILE
        elif path.suffix == ".json":
            folder, file = path.parent, path
        else:
            raise InputError(
                f"{path} is not an audit folder; pass the folder given to 'robustcv audit --out'"
            )
        if not file.is_file():
            raise InputError(
                f"no {RESULTS_FILE} in {folder}; run 'robustcv audit ... --out {folder}' first"
            )
        try:
            results = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise InputError(f"cannot read {file}: {err}; re-run the audit to rewrite it") from err
        if not isinstance(results, dict):
            raise InputError(f"{file} does not hold a JSON object; is it an audit's results.json?")
        where = str(file)
    schema = results.get("schema")
    if schema is not None:
        family, _, major = str(schema).partition("/")
        if family != SCHEMA_FAMILY or not major.split(".")[0].isdigit():
            raise InputError(
                f"{where}: schema '{schema}' is not a robustcv audit result ({SCHEMA_FAMILY}/N)"
            )
        if int(major.split(".")[0]) > SCHEMA_MAJOR:
            raise InputError(
                f"{where} has schema '{schema}', newer than this robustcv reads "
                f"({SCHEMA_VERSION}); upgrade robustcv"
            )
    if not isinstance(results.get("suites", {}), dict):
        raise InputError(
            f"{where}: 'suites' must be an object mapping suite name to results; re-run the "
            "audit (robustcv audit ... --out DIR) to rewrite it"
        )
    return results, folder


def read_results(source: str | os.PathLike[str]) -> dict[str, Any]:
    """Read an audit's ``results.json`` (give the audit folder or the file) and check its schema.

    Unlike :func:`load_results` it insists on a ``schema`` field.

    Raises:
        InputError: missing or unreadable file, not an audit result, or a newer major version.

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp())
        >>> _ = write_json_atomic(d / RESULTS_FILE, {"schema": SCHEMA_VERSION, "suites": {}})
        >>> read_results(d)["schema"]
        'robustcv.audit/1'
    """
    data, _ = load_results(source)
    if "schema" not in data:
        raise InputError(
            f"{source} is not a robustcv audit result (no 'schema' field); re-run the audit"
        )
    return data
