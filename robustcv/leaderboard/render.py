"""Render a :class:`Leaderboard`: markdown, a self-contained sortable HTML page, and JSON.

The HTML page has inline CSS and one small inline script (click a column header to sort; a
``#sort=KEY`` or ``#sort=KEY:asc`` fragment sorts on load). Its Content-Security-Policy allows
exactly that script (by its SHA-256) and nothing from outside the file, so it opens with no
network. Every name goes through Jinja2's autoescaping.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from robustcv.core.errors import InputError
from robustcv.leaderboard.table import Leaderboard, LeaderboardCell, LeaderboardColumn

__all__ = [
    "DOCS_BEGIN",
    "DOCS_END",
    "SORT_SCRIPT",
    "cell_text",
    "check_docs",
    "render_html",
    "render_markdown",
    "update_docs",
    "write_leaderboard",
]

DOCS_BEGIN = "<!-- table:begin -->"
DOCS_END = "<!-- table:end -->"

SORT_SCRIPT = """(function () {
  var table = document.getElementById("leaderboard");
  if (!table) { return; }
  var body = table.tBodies[0];
  var heads = table.tHead.rows[0].cells;
  function key(cell) {
    var v = cell.getAttribute("data-v");
    if (v === null || v === "") { return null; }
    var f = parseFloat(v);
    return isNaN(f) ? v.toLowerCase() : f;
  }
  function sortBy(col, dir) {
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = key(a.cells[col]), y = key(b.cells[col]);
      if (x === null && y === null) { return 0; }
      if (x === null) { return 1; }
      if (y === null) { return -1; }
      var c = x < y ? -1 : (x > y ? 1 : 0);
      return dir === "desc" ? -c : c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
    for (var i = 0; i < heads.length; i++) {
      var state = dir === "desc" ? "descending" : "ascending";
      heads[i].setAttribute("aria-sort", i === col ? state : "none");
    }
    table.setAttribute("data-sorted", heads[col].getAttribute("data-key") + ":" + dir);
  }
  Array.prototype.forEach.call(heads, function (th, col) {
    var button = th.querySelector("button");
    if (!button) { return; }
    button.addEventListener("click", function () {
      var now = th.getAttribute("aria-sort");
      var first = th.getAttribute("data-first") || "asc";
      var dir = now === "none" || !now ? first : (now === "descending" ? "asc" : "desc");
      sortBy(col, dir);
    });
  });
  var hash = "";
  try { hash = decodeURIComponent(window.location.hash); } catch (e) { hash = ""; }
  var m = /^#sort=([^:]+)(?::(asc|desc))?$/.exec(hash);
  if (m) {
    Array.prototype.forEach.call(heads, function (th, col) {
      if (th.getAttribute("data-key") === m[1]) {
        sortBy(col, m[2] || th.getAttribute("data-first") || "asc");
      }
    });
  }
})();"""
"""The inline script of the HTML page (its SHA-256 is in the page's Content-Security-Policy)."""

_HTML = """{% extends "_base.html.j2" %}
{% block title %}robustcv leaderboard{% endblock %}
{% block body %}
<style>
#leaderboard th button { font: inherit; color: inherit; background: none; border: 0; padding: 0; cursor: pointer; text-align: left; }
#leaderboard th[aria-sort="ascending"] button::after { content: " \\25B2"; }
#leaderboard th[aria-sort="descending"] button::after { content: " \\25BC"; }
#leaderboard td { white-space: nowrap; }
#leaderboard td.best { font-weight: 700; background: #f0fff4; }
#leaderboard .dir { font-size: 10px; color: var(--muted); display: block; }
</style>
<h1>Leaderboard</h1>
<p class="muted small">data <span class="mono">{{ data }}</span>{% if created %} · written {{ created }}{% endif %}{% if version %} · robustcv {{ version }}{% endif %}</p>
{% if command %}<p class="small">Regenerate: <code>{{ command }}</code></p>{% endif %}
<p class="small muted">Click a column header to sort. Each cell: value [95% interval]; N is in the header when every row shares it, else in the cell.</p>
<table id="leaderboard">
<thead><tr>
<th data-key="model" data-first="asc" aria-sort="none"><button type="button">model</button></th>
{% for c in columns %}<th data-key="{{ c.key }}" data-first="{{ c.first }}" aria-sort="none" title="{{ c.key }}"><button type="button">{{ c.label }}</button>{% if c.n is not none %}<span class="dir">N={{ c.n }}</span>{% endif %}<span class="dir">{{ c.direction }}</span></th>
{% endfor %}
</tr></thead>
<tbody>
{% for r in rows %}<tr>
<td data-v="{{ r.name }}" class="mono">{{ r.name }}</td>
{% for cell in r.cells %}<td data-v="{{ cell.v }}"{% if cell.best %} class="best"{% endif %}>{{ cell.text }}</td>
{% endfor %}
</tr>
{% endfor %}
</tbody>
</table>
<p class="note small"><b>Rule:</b> {{ rule }}.</p>
{% if notes %}<ul class="small">{% for n in notes %}<li>{{ n }}</li>{% endfor %}</ul>{% endif %}
{% if settings %}<details><summary>settings</summary><table>{% for k, v in settings %}<tr><th>{{ k }}</th><td class="mono">{{ v }}</td></tr>{% endfor %}</table></details>{% endif %}
<footer>Written by robustcv leaderboard; self-contained (no network; one inline script sorts the table).</footer>
<script>{{ script|safe }}</script>
{% endblock %}
"""  # noqa: E501


def _num(v: float) -> str:
    return f"{v:.1f}" if abs(v) >= 10 else f"{v:.3f}"


def cell_text(cell: LeaderboardCell, column: LeaderboardColumn | None = None) -> str:
    """A cell as text: value, interval, and N when it differs from the column's.

    Example:
        >>> cell_text(LeaderboardCell(0.9, 0.85, 0.94, 100))
        '0.900 [0.850, 0.940] N=100'
        >>> cell_text(LeaderboardCell(87.25, 80.0, 94.5, 100),
        ...           LeaderboardColumn("k", "mCE", "corruption", False, n=100))
        '87.2 [80.0, 94.5]'
    """
    parts = [_num(cell.value)]
    if cell.low is not None and cell.high is not None:
        parts.append(f"[{_num(cell.low)}, {_num(cell.high)}]")
    if cell.n is not None and (column is None or column.n != cell.n):
        parts.append(f"N={cell.n}")
    return " ".join(parts)


def _direction(col: LeaderboardColumn) -> str:
    if col.higher_is_better is None:
        return "no direction"
    return "higher is better" if col.higher_is_better else "lower is better"


def _md_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def render_markdown(board: Leaderboard) -> str:
    """The leaderboard as markdown: the command, a table (best in bold), N, rules and notes.

    Example:
        >>> from robustcv.leaderboard.table import LeaderboardRow
        >>> col = LeaderboardColumn("clean/accuracy", "clean accuracy", "clean", True, True, 10)
        >>> row = LeaderboardRow("m", "m", {"clean/accuracy": LeaderboardCell(0.9, 0.6, 1.0, 10)})
        >>> print(render_markdown(Leaderboard([col], [row])).splitlines()[4])
        | m | 0.900 [0.600, 1.000] |
    """
    lines = []
    if board.command:
        lines.append(f"Regenerate: `{board.command}`")
    else:
        lines.append("Regenerate: see `robustcv leaderboard --help`")
    lines.append("")
    header = ["model"]
    for c in board.columns:
        extra = [] if c.n is None else [f"N={c.n}"]
        arrow = {True: "↑", False: "↓", None: ""}[c.higher_is_better]
        header.append(
            _md_escape(f"{c.label} {arrow}".strip() + (f" ({extra[0]})" if extra else ""))
        )
    lines.append("| " + " | ".join(header) + " |")
    lines.append("| --- |" + " ---: |" * len(board.columns))
    for r in board.rows:
        cells = [_md_escape(r.name)]
        for c in board.columns:
            cell = r.cells.get(c.key)
            if cell is None:
                cells.append("–")
                continue
            text = _md_escape(cell_text(cell, c))
            cells.append(f"**{text}**" if cell.best else text)
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        "Each cell: value [95% interval]; ↑ higher is better, ↓ lower is better. N is in the "
        "header when every row shares it, else in the cell."
    )
    lines.append("")
    lines.append(f"Rule: {board.rule}.")
    for note in board.notes:
        lines.append(f"- {_md_escape(note)}")
    settings = _settings_rows(board.settings)
    if settings:
        lines.append("")
        lines.append("Settings: " + "; ".join(f"{k} {v}" for k, v in settings))
    return "\n".join(lines) + "\n"


def _settings_rows(settings: Mapping[str, Any]) -> list[tuple[str, str]]:
    out = []
    for k, v in settings.items():
        if isinstance(v, Mapping):
            text = ", ".join(f"{a}={b}" for a, b in v.items())
        elif isinstance(v, (list, tuple)):
            text = ", ".join(str(x) for x in v)
        else:
            text = str(v)
        out.append((str(k), text))
    return out


def _csp(script: str) -> str:
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")
    return (
        "default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
        f"script-src 'sha256-{digest}'"
    )


def _environment() -> Any:
    import jinja2

    import robustcv.report

    return jinja2.Environment(
        loader=jinja2.ChoiceLoader(
            [
                jinja2.DictLoader({"leaderboard.html.j2": _HTML}),
                jinja2.FileSystemLoader(str(Path(robustcv.report.__file__).parent / "templates")),
            ]
        ),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_html(board: Leaderboard) -> str:
    """The leaderboard as one self-contained HTML page with sortable columns.

    Example:
        >>> html = render_html(Leaderboard([], []))
        >>> "script-src &#39;sha256-" in html and "https:" not in html
        True
    """
    columns = [
        {
            "key": c.key,
            "label": c.label,
            "n": c.n,
            "direction": _direction(c),
            "first": "asc" if c.higher_is_better is False else "desc",
        }
        for c in board.columns
    ]
    rows = []
    for r in board.rows:
        cells = []
        for c in board.columns:
            cell = r.cells.get(c.key)
            cells.append(
                {"v": "", "text": "–", "best": False}
                if cell is None
                else {"v": repr(float(cell.value)), "text": cell_text(cell, c), "best": cell.best}
            )
        rows.append({"name": r.name, "cells": cells})
    html = (
        _environment()
        .get_template("leaderboard.html.j2")
        .render(
            csp=_csp(SORT_SCRIPT),
            script=SORT_SCRIPT,
            data=str(board.settings.get("data", "")),
            created=board.created,
            version=board.robustcv_version,
            command=board.command,
            columns=columns,
            rows=rows,
            rule=board.rule,
            notes=board.notes,
            settings=_settings_rows(board.settings),
        )
    )
    return str(html)


def write_leaderboard(board: Leaderboard, out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Write ``leaderboard.json``, ``leaderboard.md`` and ``leaderboard.html`` into ``out_dir``.

    Returns:
        ``{"json", "md", "html"}`` -> the paths written.

    Raises:
        InputError: the folder cannot be written.

    Example:
        >>> import tempfile
        >>> sorted(write_leaderboard(Leaderboard([], []), tempfile.mkdtemp()))
        ['html', 'json', 'md']
    """
    from robustcv.audit.schema import write_json_atomic
    from robustcv.report.html import write_html

    out = Path(out_dir).expanduser()
    try:
        out.mkdir(parents=True, exist_ok=True)
        paths = {"json": write_json_atomic(out / "leaderboard.json", board.to_dict())}
    except OSError as err:
        raise InputError(f"cannot write the leaderboard into {out}: {err}") from err
    paths["md"] = write_html(
        render_markdown(board), out / "leaderboard.md", default_name="leaderboard.md", what="table"
    )
    paths["html"] = write_html(
        render_html(board), out / "leaderboard.html", default_name="leaderboard.html", what="page"
    )
    return paths


def update_docs(doc: str | os.PathLike[str], markdown: str) -> Path:
    r"""Replace the part of ``doc`` between :data:`DOCS_BEGIN` and :data:`DOCS_END` by ``markdown``.

    Raises:
        InputError: the file is missing or unreadable, or lacks the two markers in order.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "lb.md"
        >>> _ = p.write_text(f"# T\n{DOCS_BEGIN}\nold\n{DOCS_END}\n")
        >>> update_docs(p, "| new |\n").read_text().splitlines()[2]
        '| new |'
    """
    path, text = check_docs(doc)
    body = markdown if markdown.endswith("\n") else markdown + "\n"
    new = _DOCS_SECTION.sub(lambda _: f"{DOCS_BEGIN}\n{body}{DOCS_END}", text, count=1)
    from robustcv.report.html import write_html

    return write_html(new, path, default_name=path.name, what="docs page")


_DOCS_SECTION = re.compile(re.escape(DOCS_BEGIN) + r".*?" + re.escape(DOCS_END), re.DOTALL)


def check_docs(doc: str | os.PathLike[str]) -> tuple[Path, str]:
    """``(path, text)`` of a docs page that has the table markers (checked before any work).

    Raises:
        InputError: the file is missing or unreadable, or lacks the two markers in order.

    Example:
        >>> check_docs("/nonexistent/lb.md")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        robustcv.core.errors.InputError: cannot read /nonexistent/lb.md: ...
    """
    path = Path(doc).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(
            f"cannot read {path}: {err}; give a markdown file with the table markers"
        ) from err
    if not _DOCS_SECTION.search(text):
        raise InputError(
            f"{path} has no '{DOCS_BEGIN}' ... '{DOCS_END}' section; add the two markers where "
            "the table goes"
        )
    return path, text
