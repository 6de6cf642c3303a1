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
import types
import typing
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
    "malformed_section",
    "read_results",
    "section_problems",
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
        if "schema" not in results and "suites" not in results:
            raise InputError(
                "the results are not a robustcv audit result (no 'schema' and no 'suites'); "
                "pass what run_audit returned or an audit folder"
            )
    else:
        if isinstance(source, str) and not source.strip():
            raise InputError("the audit folder is empty (''); pass the folder 'robustcv audit "
                             "--out' wrote")  # fmt: skip
        if not isinstance(source, (str, os.PathLike)):
            raise InputError(
                f"audit results come from a folder, a results.json path or a dict, got "
                f"{type(source).__name__}"
            )
        if "\x00" in str(os.fspath(source)):
            raise InputError(f"the audit folder {source!r} holds a NUL byte; give a plain path")
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
            text = file.read_text(encoding="utf-8")
            if not text.strip():
                raise InputError(
                    f"{file} is empty; re-run the audit (robustcv audit ... --out {folder}) to "
                    "rewrite it"
                )
            results = json.loads(text)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
            why = "nested too deeply" if isinstance(err, RecursionError) else str(err)
            raise InputError(f"cannot read {file}: {why}; re-run the audit to rewrite it") from err
        if not isinstance(results, dict):
            raise InputError(f"{file} does not hold a JSON object; is it an audit's results.json?")
        where = str(file)
        if "schema" not in results:
            raise InputError(
                f"{file} is not a robustcv audit result (no 'schema' field); pass the folder "
                "that 'robustcv audit --out' wrote, or re-run the audit to rewrite it"
            )
    schema = results.get("schema")
    if schema is not None:
        family, _, major = str(schema).partition("/")
        if (
            not isinstance(schema, str)
            or family != SCHEMA_FAMILY
            or not major.split(".")[0].isdigit()
        ):
            raise InputError(
                f"{where}: schema {schema!r} is not a robustcv audit result ({SCHEMA_FAMILY}/N)"
            )
        if int(major.split(".")[0]) > SCHEMA_MAJOR:
            raise InputError(
                f"{where} has schema '{schema}', newer than this robustcv reads "
                f"({SCHEMA_VERSION}); upgrade robustcv"
            )
    if "suites" not in results and folder is not None:
        raise InputError(
            f"{where} has no 'suites'; it is not a complete audit result - re-run the audit "
            "(robustcv audit ... --out DIR) to rewrite it"
        )
    for key, kind in _TOP_LEVEL_TYPES.items():
        value = results.get(key)
        if value is not None and not isinstance(value, kind):
            what = "an object" if kind is dict else "a list"
            raise InputError(
                f"{where}: '{key}' must be {what}, got {_json_type(value)}; re-run the audit "
                "(robustcv audit ... --out DIR) to rewrite it"
            )
    suites = results.get("suites", {})
    if not isinstance(suites, dict) or not all(
        isinstance(k, str) and isinstance(v, dict) for k, v in suites.items()
    ):
        raise InputError(
            f"{where}: 'suites' must be an object mapping each suite name to an object of "
            "results; re-run the audit (robustcv audit ... --out DIR) to rewrite it"
        )
    return results, folder


_TOP_LEVEL_TYPES: dict[str, type] = {
    "config": dict,
    "model": dict,
    "data": dict,
    "timings": dict,
    "skipped": dict,
    "run": dict,
    "warnings": list,
    "examples": list,
}
"""Top-level fields of results.json whose JSON type every reader relies on (null = absent)."""

_MAX_ITEMS = 2000
"""Items of one list or object :func:`section_problems` looks at (results can be large)."""


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _scalar_ok(value: Any, hint: Any) -> bool | None:
    """True/False for a scalar hint (None: not a scalar hint)."""
    if hint is bool:
        return isinstance(value, bool)
    if hint in (int, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    return None


def _allows_none(hint: Any) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in (
        typing.get_args(hint)
    )


def section_problems(value: Any, hint: Any, where: str) -> list[str]:
    """How a results.json value differs from its type (a suite's ``section_type``), if at all.

    JSON null is accepted for floats (a NaN is written as null) and optional values; numbers may
    be ints or floats. Unknown extra keys are allowed; missing keys of a ``TypedDict`` are
    reported.

    Example:
        >>> from typing import TypedDict
        >>> class Section(TypedDict):
        ...     n: int
        ...     table: dict[str, list[float]]
        >>> section_problems({"n": 3, "table": {"fog": [0.5, "x"]}}, Section, "suites.s")
        ['suites.s.table.fog[1] must be a number, got a string']
        >>> section_problems({"n": 3, "table": {"fog": [None]}}, Section, "suites.s")
        []
    """
    if hint is Any or hint is object:
        return []
    if value is None:  # null: NaN or "not measured" where a float or None may stand
        return [] if hint is float or _allows_none(hint) else [f"{where} is null"]
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        found = [section_problems(value, a, where) for a in options]
        if any(not f for f in found):
            return []
        return found[0] if found else []
    scalar = _scalar_ok(value, hint)
    if scalar is not None:
        names = {bool: "true or false", int: "a number", float: "a number", str: "a string"}
        return [] if scalar else [f"{where} must be {names[hint]}, got {_json_type(value)}"]
    if typing.is_typeddict(hint):
        if not isinstance(value, dict):
            return [f"{where} must be an object, got {_json_type(value)}"]
        try:
            fields = typing.get_type_hints(hint)
        except Exception:  # an annotation that does not resolve: cannot judge
            return []
        out = [f"{where}.{k} is missing" for k in fields if k not in value]
        for key, sub in fields.items():
            if key in value:
                out += section_problems(value[key], sub, f"{where}.{key}")
        return out
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            return [f"{where} must be an object, got {_json_type(value)}"]
        inner = args[1] if len(args) == 2 else Any
        out = []
        for i, (key, sub) in enumerate(value.items()):
            if i >= _MAX_ITEMS:
                break
            out += section_problems(sub, inner, f"{where}.{key}")
        return out
    if origin in (list, tuple) or hint in (list, tuple):
        if not isinstance(value, list):
            return [f"{where} must be a list, got {_json_type(value)}"]
        inner = args[0] if args else Any
        out = []
        for i, sub in enumerate(value[:_MAX_ITEMS]):
            out += section_problems(sub, inner, f"{where}[{i}]")
        return out
    return []


def malformed_section(results: Mapping[str, Any], key: str, section_type: Any) -> InputError | None:
    """The user's error when reading ``suites.<key>`` (or a top-level ``key``) failed, else None.

    Called when a suite's reader raised on a section: if the section does not match its
    ``section_type``, the file is malformed (a user error naming what is wrong); if it matches,
    the failure is a robustcv bug and None is returned (the caller re-raises).

    Example:
        >>> from typing import TypedDict
        >>> class S(TypedDict):
        ...     n: int
        >>> err = malformed_section({"suites": {"s": {"n": "x"}}}, "s", S)
        >>> print(str(err).split("; ")[0])
        results.json section 'suites.s' is malformed: suites.s.n must be a number, got a string
        >>> malformed_section({"suites": {"s": {"n": 3}}}, "s", S) is None
        True
    """
    suites = results.get("suites")
    if isinstance(suites, Mapping) and key in suites:
        section, where = suites[key], f"suites.{key}"
    else:
        section, where = results.get(key), key
    if section_type is None:
        return None
    problems = section_problems(section, section_type, where)
    if not problems:
        return None
    shown = "; ".join(problems[:3]) + (
        f"; and {len(problems) - 3} more" if len(problems) > 3 else ""
    )
    return InputError(
        f"results.json section '{where}' is malformed: {shown}; re-run the audit (robustcv "
        "audit ... --out DIR) to rewrite it"
    )


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
