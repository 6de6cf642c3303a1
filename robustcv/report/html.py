"""The audit report: one self-contained HTML file written from ``results.json``.

The report only reads results (``results.json`` and the small images in ``DIR/examples/``); it
never runs a model. It names no suite: each registered suite renders its own section (a Jinja2
partial and a view function, :class:`robustcv.audit.suite.Suite`), summary card and warnings,
in registry order. Plots are embedded as base64 PNG, CSS is inline, there is no script, and a
Content-Security-Policy forbids loading anything from outside the file, so it opens with no
network and is safe to share. Every piece of user-supplied text (class names, paths, the model
spec) goes through Jinja2's autoescaping.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from robustcv.audit.registry import SUITES, ordered_suites
from robustcv.audit.schema import load_results, malformed_section
from robustcv.audit.suite import Suite, fmt, notes_list, section_of
from robustcv.core.errors import InputError

__all__ = ["render_report", "write_html", "write_report"]

_MAX_CONFIG_CHARS = 20_000
_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


def _fired(items: Any, scope: str) -> list[dict[str, str]]:
    out = []
    for f in items if isinstance(items, list) else []:
        if isinstance(f, Mapping) and f.get("fired"):
            out.append(
                {
                    "scope": scope,
                    "check": str(f.get("check", "?")),
                    "message": str(f.get("message") or f.get("explanation") or ""),
                    "action": str(f.get("action") or ""),
                }
            )
    return out


def _raw_section(results: Mapping[str, Any], suite: Suite) -> Any:
    if suite.results_key:
        return results.get(suite.results_key)
    return section_of(results, suite.name)


def _status(results: Mapping[str, Any], suite: Suite) -> dict[str, str]:
    config = _mapping(results.get("config"))
    requested = config.get("suites")
    skipped = _mapping(results.get("skipped"))
    name = suite.name
    if _raw_section(results, suite) is not None:
        return {"name": name, "status": "run", "why": ""}
    if name in skipped:
        return {"name": name, "status": "skipped", "why": str(skipped[name])}
    if isinstance(requested, list) and name not in requested:
        return {"name": name, "status": "not run", "why": "not requested (--suites)"}
    return {"name": name, "status": "not run", "why": "no results in results.json"}


def reading(results: Mapping[str, Any], suite: Suite, read: Callable[..., Any], *args: Any) -> Any:
    """``read(*args)`` (a suite reading its section); a malformed section is an :class:`InputError`.

    When the suite's code fails and its section does not match the suite's ``section_type``,
    the results file is to blame (a message naming what is wrong); otherwise the failure is a
    robustcv bug and propagates.
    """
    try:
        return read(*args)
    except InputError:
        raise
    except Exception as err:
        key = suite.results_key or suite.name
        user = malformed_section(results, key, getattr(suite, "section_type", None))
        if user is None:
            raise
        raise user from err


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _context(results: Mapping[str, Any], folder: Path | None) -> dict[str, Any]:
    sections: list[dict[str, Any]] = []
    cards: list[dict[str, Any]] = []
    status: list[dict[str, str]] = []
    warnings = _fired(results.get("warnings"), "audit")
    for suite in ordered_suites():
        raw = _raw_section(results, suite)
        if suite.selectable:
            status.append(_status(results, suite))
        view = (
            reading(results, suite, suite.view, results, raw, folder) if raw is not None else None
        )
        if raw is None and suite.results_key:
            view = reading(results, suite, suite.view, results, [], folder)
        if not suite.selectable and view is None:
            continue
        sections.append(
            {
                "name": suite.name,
                "title": suite.title or suite.name,
                "view": view,
                "ran": raw is not None,
                "template": f"suite:{suite.name}" if suite.report_template else None,
            }
        )
        if raw is not None:
            card = (
                reading(results, suite, suite.card, results, raw) if suite.card_template else None
            )
            if card is not None:
                cards.append({"template": f"card:{suite.name}", "view": card})
            warnings += reading(results, suite, suite.warnings, results, raw)
    config = _mapping(results.get("config"))
    model = _mapping(results.get("model"))
    data = _mapping(results.get("data"))
    config_text = json.dumps(config, indent=2, sort_keys=True, default=str)
    if len(config_text) > _MAX_CONFIG_CHARS:
        config_text = config_text[:_MAX_CONFIG_CHARS] + "\n… (truncated)"
    skipped = results.get("skipped") or {}
    timings = results.get("timings") or {}
    return {
        "csp": _CSP,
        "model_spec": str(model.get("spec") or config.get("model") or "unknown model"),
        "data_spec": str(data.get("spec") or config.get("data") or "unknown data"),
        "split": str(config.get("split") or data.get("split") or ""),
        "data_n": data.get("n"),
        "model_info": [
            (str(k), str(v))
            for k, v in model.items()
            if k != "spec" and isinstance(v, (str, int, float, bool, list))
        ],
        "created": str(results.get("created") or ""),
        "version": str(results.get("robustcv_version") or ""),
        "schema": str(results.get("schema") or ""),
        "fingerprint": str(results.get("fingerprint") or ""),
        "strength": str(config.get("strength") or ""),
        "seed": config.get("seed"),
        "subsample": [(str(k), str(v)) for k, v in _mapping(config.get("subsample")).items()],
        "status": status,
        "skipped": [
            {"what": str(k), "why": str(v)}
            for k, v in (skipped.items() if isinstance(skipped, Mapping) else [])
        ],
        "warnings": warnings,
        "top_notes": notes_list(results.get("notes")),
        "cards": cards,
        "sections": sections,
        "timings": [
            (str(k), fmt(v, 3))
            for k, v in (timings.items() if isinstance(timings, Mapping) else [])
        ],
        "config_text": config_text,
    }


def _suite_template(name: str) -> tuple[str, None, Callable[[], bool]] | None:
    kind, _, suite_name = name.partition(":")
    if kind not in ("suite", "card") or suite_name not in SUITES:
        return None
    suite = SUITES.get(suite_name)
    source = suite.report_template if kind == "suite" else suite.card_template

    def uptodate() -> bool:
        if suite_name not in SUITES:
            return False
        now = SUITES.get(suite_name)
        return (now.report_template if kind == "suite" else now.card_template) == source

    return source, None, uptodate


@functools.lru_cache(maxsize=1)
def _environment() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(
            [
                jinja2.FileSystemLoader(str(Path(__file__).parent / "templates")),
                jinja2.FunctionLoader(_suite_template),
            ]
        ),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env


def _render(results: Mapping[str, Any], folder: Path | None) -> str:
    return str(_environment().get_template("report.html.j2").render(**_context(results, folder)))


def render_report(
    source: str | os.PathLike[str] | Mapping[str, Any],
    *,
    folder: str | os.PathLike[str] | None = None,
) -> str:
    """Render the audit report as an HTML string (see :func:`write_report`).

    Args:
        source: the audit folder, its ``results.json``, or the results as a dict.
        folder: where example images are looked up; default: the audit folder.

    Example:
        >>> html = render_report({"schema": "robustcv.audit/1", "suites": {}})
        >>> "<!DOCTYPE html>" in html and "not run" in html
        True
    """
    results, found = load_results(source)
    return _render(results, Path(folder) if folder is not None else found)


def write_report(
    results_dir_or_dict: str | os.PathLike[str] | Mapping[str, Any],
    out_path: str | os.PathLike[str] | None = None,
) -> Path:
    """Write the audit report: one self-contained HTML file (default ``DIR/report.html``).

    The file embeds its plots and example images, has inline CSS and no script, and declares a
    Content-Security-Policy that blocks every external load, so it opens with no network.

    Args:
        results_dir_or_dict: the audit folder (or its ``results.json``), or the results dict
            (then ``out_path`` is required and example files are looked up next to it).
        out_path: where to write; default ``DIR/report.html`` (an existing folder:
            ``folder/report.html``).

    Returns:
        The path written.

    Raises:
        InputError: no results.json, an unreadable one or one that is not an audit result, a
            dict without ``out_path``, or an output path that cannot be written.

    Example:
        >>> import tempfile, pathlib
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "r.html"
        >>> write_report({"schema": "robustcv.audit/1", "suites": {}}, out) == out
        True
    """
    results, folder = load_results(results_dir_or_dict)
    if folder is None:
        if out_path is None:
            raise InputError("write_report(dict) needs out_path (where to write report.html)")
        folder = Path(out_path).parent
    out = Path(out_path) if out_path is not None else folder / "report.html"
    return write_html(_render(results, folder), out, default_name="report.html", what="report")


def write_html(
    html: str, out_path: str | os.PathLike[str], *, default_name: str, what: str
) -> Path:
    """Write ``html`` to ``out_path`` through a temporary file and an atomic rename.

    An existing folder means ``folder/default_name``; the temporary file never stays behind.

    Raises:
        InputError: an empty path, or one that cannot be written (naming the path and the fix).

    Example:
        >>> import tempfile
        >>> d = tempfile.mkdtemp()
        >>> write_html("<p>hi</p>", d, default_name="report.html", what="report").name
        'report.html'
    """
    if not str(os.fspath(out_path)).strip():
        raise InputError(f"the {what} path is empty; give a file name such as {default_name}")
    out = Path(out_path).expanduser()
    if out.is_dir():
        out = out / default_name
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(html, encoding="utf-8")
        os.replace(tmp, out)
    except OSError as err:
        raise InputError(
            f"cannot write the {what} to {out}: {err.strerror or err}; pass a writable file path "
            "(--out FILE.html on the command line)"
        ) from err
    finally:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
    return out
