"""The leaderboard table, built from audit results alone (pure: nothing runs a model here).

:func:`build_table` turns ``(name, results.json dict, headline dict)`` entries into a
:class:`Leaderboard`. It names no suite: the columns are the union, in suite order, of what each
registered suite declares with ``Suite.leaderboard_columns`` (and, against the baseline row,
``Suite.leaderboard_baseline_columns``), after the headline robust accuracy. A suite registered
later adds its columns without an edit here.

"Best" (:data:`BEST_RULE`): in each column with a direction, the row with the best value is
marked only when its 95% interval overlaps no other row's interval in that column.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from robustcv.audit.registry import ordered_suites
from robustcv.audit.suite import Metric, Suite, section_of
from robustcv.core.errors import InputError
from robustcv.core.results import Result
from robustcv.core.stats import Estimate

__all__ = [
    "BEST_RULE",
    "DEFAULT_BASELINE",
    "HEADLINE_PREFIX",
    "LEADERBOARD_SCHEMA",
    "Leaderboard",
    "LeaderboardCell",
    "LeaderboardColumn",
    "LeaderboardRow",
    "best_row",
    "build_table",
    "card_mismatches",
    "card_numbers",
    "find_row",
    "load_leaderboard",
]

LEADERBOARD_SCHEMA = "robustcv.leaderboard/1"
"""The ``schema`` of leaderboard.json."""

DEFAULT_BASELINE = "fmnist-cnn"
"""The model the mCE column is relative to when it is in the table (else the first row)."""

HEADLINE_PREFIX = "headline"
"""Column keys of the headline robust accuracy start with this (``headline/linf/acc@0.1``)."""

BEST_RULE = (
    "best (bold): in each column with a direction (higher or lower is better), the row with "
    "the best value is marked only when its 95% interval overlaps no other row's interval in "
    "that column; nothing is marked in a column with fewer than two rows, a tie for the best "
    "value, or a row without an interval"
)
"""How "best" is decided (stated in every output)."""


@dataclass
class LeaderboardCell(Result):
    """One number of one row.

    Attributes:
        value: the point estimate.
        low: lower end of its 95% interval (None when unknown).
        high: upper end (None when unknown).
        n: samples behind it, when known.
        method: how the interval was computed.
        best: marked best in its column (:data:`BEST_RULE`).
    """

    value: float
    low: float | None = None
    high: float | None = None
    n: int | None = None
    method: str = ""
    best: bool = False

    @classmethod
    def of(cls, est: Estimate) -> LeaderboardCell:
        """The cell of an estimate.

        Example:
            >>> LeaderboardCell.of(Estimate.binomial(9, 10)).n
            10
        """
        low = est.low if est.has_interval else None
        high = est.high if est.has_interval else None
        return cls(float(est.value), low, high, est.n, est.method)

    @property
    def estimate(self) -> Estimate:
        """The cell as an :class:`Estimate`."""
        return Estimate.parse(
            {"value": self.value, "low": self.low, "high": self.high, "n": self.n}
        ) or Estimate(self.value)


@dataclass
class LeaderboardColumn(Result):
    """One column: a metric every row may have.

    Attributes:
        key: stable id, e.g. ``clean/accuracy`` or ``adversarial/linf/acc@0.1``.
        label: human-readable name.
        source: the suite that declared it (``headline`` for the headline robust accuracy).
        higher_is_better: the direction; None: "best" is never marked.
        proportion: the value is a fraction of N samples.
        n: the N every row's cell shares, else None (then each cell states its own).
        best: the name of the row marked best, or None.
    """

    key: str
    label: str
    source: str
    higher_is_better: bool | None
    proportion: bool = False
    n: int | None = None
    best: str | None = None


@dataclass
class LeaderboardRow(Result):
    """One model.

    Attributes:
        name: the model as given (a spec such as ``zoo:fmnist-cnn``).
        spec: the model spec recorded in its results.json.
        cells: column key -> cell (a column the row lacks is absent).
        audit: the audit folder, when known.
    """

    name: str
    spec: str
    cells: dict[str, LeaderboardCell] = field(default_factory=dict)
    audit: str | None = None


@dataclass
class Leaderboard(Result):
    """The leaderboard: columns, rows, the baseline and the rules (= leaderboard.json).

    Attributes:
        columns: in display order (headline first, then suite order).
        rows: in the order given.
        baseline: the row mCE-like columns are relative to (None when there is no row).
        baseline_reason: why that row (the default, given, or the first row).
        rule: :data:`BEST_RULE`.
        notes: anything a reader needs (baseline, missing sections, sanity findings).
        settings: the common settings the rows were measured with (data, eps, N, seed...).
        command: the command that regenerates the table.
        created: ISO time it was written.
        robustcv_version: the version that wrote it.
        schema: :data:`LEADERBOARD_SCHEMA`.
    """

    columns: list[LeaderboardColumn]
    rows: list[LeaderboardRow]
    baseline: str | None = None
    baseline_reason: str = ""
    rule: str = BEST_RULE
    notes: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    command: str = ""
    created: str = ""
    robustcv_version: str = ""
    schema: str = LEADERBOARD_SCHEMA

    def column(self, key: str) -> LeaderboardColumn:
        """The column with ``key``.

        Raises:
            InputError: no such column (the message lists them).
        """
        for c in self.columns:
            if c.key == key:
                return c
        raise InputError(f"no column '{key}'; columns: {', '.join(c.key for c in self.columns)}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Leaderboard:
        """Rebuild from :meth:`to_dict` output (leaderboard.json).

        Example:
            >>> board = Leaderboard([], [LeaderboardRow("m", "m")])
            >>> Leaderboard.from_dict(board.to_dict()).rows[0].name
            'm'
        """
        known = {k for k in cls.__dataclass_fields__ if k not in ("columns", "rows")}
        columns = [LeaderboardColumn(**c) for c in data.get("columns") or []]
        rows = [
            LeaderboardRow(
                name=r["name"],
                spec=r.get("spec", r["name"]),
                cells={k: LeaderboardCell(**c) for k, c in (r.get("cells") or {}).items()},
                audit=r.get("audit"),
            )
            for r in data.get("rows") or []
        ]
        return cls(columns, rows, **{k: v for k, v in data.items() if k in known})


Entry = tuple[str, Mapping[str, Any], Mapping[str, Any] | None]
"""``(model name, results.json dict, headline dict or None)``: one row's inputs."""


def _section(results: Mapping[str, Any], suite: Suite) -> Any:
    return results.get(suite.results_key) if suite.results_key else section_of(results, suite.name)


def _metrics(results: Mapping[str, Any], suite: Suite, read: Any, *args: Any) -> list[Metric]:
    from robustcv.report.html import reading

    found = reading(results, suite, read, *args)
    for m in found:
        if not isinstance(m, Metric):
            raise InputError(
                f"suite '{suite.name}': a leaderboard column must be a robustcv.audit.Metric, "
                f"got {type(m).__name__}"
            )
    return list(found)


def headline_column(headline: Mapping[str, Any]) -> Metric | None:
    """The headline robust accuracy of a headline dict (headline.json) as a metric, or None.

    Example:
        >>> h = {"norm": "linf", "eps": 0.1, "attacks": "default",
        ...      "robust_accuracy": {"value": 0.5, "low": 0.4, "high": 0.6, "n": 100}}
        >>> headline_column(h).key
        'headline/linf/acc@0.1'
    """
    est = Estimate.parse(headline.get("robust_accuracy"))
    if est is None or headline.get("complete") is False:
        return None
    norm = str(headline.get("norm", "linf"))
    eps = float(headline.get("eps", 0.0))
    attacks = str(headline.get("attacks", "default"))
    label = f"robust accuracy, {attacks} ensemble, {norm} eps {eps:g}"
    return Metric(f"{HEADLINE_PREFIX}/{norm}/acc@{eps:g}", label, est, True, True)


def _name_matches(name: str, spec: str, wanted: str) -> bool:
    bare = wanted.strip()
    options = {bare, f"zoo:{bare}"} if not bare.startswith("zoo:") else {bare, bare[4:]}
    return name in options or spec in options or name.removeprefix("zoo:") in options


def find_row(rows: Sequence[LeaderboardRow], name: str) -> LeaderboardRow:
    """The row of model ``name`` (``fmnist-cnn`` and ``zoo:fmnist-cnn`` name the same row).

    Raises:
        InputError: no row matches (the message lists the rows).

    Example:
        >>> find_row([LeaderboardRow("zoo:fmnist-cnn", "zoo:fmnist-cnn")], "fmnist-cnn").name
        'zoo:fmnist-cnn'
    """
    for r in rows:
        if _name_matches(r.name, r.spec, name):
            return r
    known = ", ".join(r.name for r in rows) or "none"
    raise InputError(f"no leaderboard row for model '{name}'; rows: {known}")


def best_row(cells: Mapping[str, Estimate], higher_is_better: bool | None) -> str | None:
    """The row marked best in one column under :data:`BEST_RULE`, or None.

    Args:
        cells: row name -> the row's estimate in this column.
        higher_is_better: the column's direction (None: never marked).

    Example:
        >>> apart = {"a": Estimate(0.9, 0.88, 0.92), "b": Estimate(0.8, 0.78, 0.82)}
        >>> best_row(apart, True), best_row(apart, False)
        ('a', 'b')
        >>> best_row({"a": Estimate(0.9, 0.85, 0.95), "b": Estimate(0.8, 0.7, 0.86)}, True)
    """
    if higher_is_better is None or len(cells) < 2:
        return None
    sign = 1.0 if higher_is_better else -1.0
    ranked = sorted(cells.items(), key=lambda kv: -sign * kv[1].value)
    (top, est), (_, second) = ranked[0], ranked[1]
    if est.value == second.value:
        return None
    if not all(e.has_interval for e in cells.values()):
        return None
    for name, other in cells.items():
        if name != top and est.overlaps(other):
            return None
    return top


def _pick_baseline(
    rows: Sequence[LeaderboardRow], baseline: str | None
) -> tuple[LeaderboardRow | None, str]:
    if not rows:
        return None, "no rows"
    if baseline is not None:
        return find_row(rows, baseline), "given"
    for r in rows:
        if _name_matches(r.name, r.spec, DEFAULT_BASELINE):
            return r, f"the default baseline ({DEFAULT_BASELINE})"
    return rows[0], f"the first row ({DEFAULT_BASELINE}, the default baseline, is not in the table)"


def build_table(entries: Sequence[Entry], *, baseline: str | None = None) -> Leaderboard:
    """Build the leaderboard from each model's results.json and headline dict.

    Columns: the headline robust accuracy (when a row has one), then every registered suite's
    ``leaderboard_columns`` in suite order, each followed by its ``leaderboard_baseline_columns``
    against the baseline row. A row lacking a column has no cell there.

    Args:
        entries: ``(model name, results dict, headline dict or None)`` per row, in row order.
        baseline: the row baseline-relative columns (mCE) use: a row's name (``fmnist-cnn`` and
            ``zoo:fmnist-cnn`` match the same row); default :data:`DEFAULT_BASELINE` when it is
            a row, else the first row.

    Returns:
        The :class:`Leaderboard` with "best" marked under :data:`BEST_RULE`.

    Raises:
        InputError: duplicate names, a ``baseline`` that names no row, a malformed section.

    Example:
        >>> def res(k):
        ...     return {"suites": {"clean": {"accuracy": {"value": k / 1000, "low": k / 1000 - .02,
        ...                                               "high": k / 1000 + .02, "n": 1000}}}}
        >>> board = build_table([("a", res(900), None), ("b", res(700), None)])
        >>> board.column("clean/accuracy").best, board.baseline
        ('a', 'a')
    """
    names = [str(e[0]) for e in entries]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise InputError(f"the leaderboard lists model(s) {', '.join(dup)} more than once")
    rows: list[LeaderboardRow] = []
    results_of: dict[str, Mapping[str, Any]] = {}
    for name, results, _ in entries:
        model = results.get("model")
        spec = str((model.get("spec") if isinstance(model, Mapping) else None) or name)
        rows.append(LeaderboardRow(str(name), spec))
        results_of[str(name)] = results
    base_row, reason = _pick_baseline(rows, baseline)
    columns: dict[str, LeaderboardColumn] = {}

    def add(row: LeaderboardRow, metric: Metric, source: str) -> None:
        if metric.key in row.cells:
            raise InputError(
                f"two leaderboard columns have the key '{metric.key}' (suite '{source}'); "
                "column keys must be unique over every suite"
            )
        row.cells[metric.key] = LeaderboardCell.of(metric.estimate)
        if metric.key not in columns:
            columns[metric.key] = LeaderboardColumn(
                metric.key, metric.label, source, metric.higher_is_better, metric.proportion
            )

    for row, (_, _, headline) in zip(rows, entries, strict=True):
        metric = headline_column(headline) if isinstance(headline, Mapping) else None
        if metric is not None:
            add(row, metric, HEADLINE_PREFIX)
    notes: list[str] = []
    base_results = results_of[base_row.name] if base_row is not None else {}
    for suite in ordered_suites():
        base_section = _section(base_results, suite) if base_row is not None else None
        for row in rows:
            results = results_of[row.name]
            section = _section(results, suite)
            if section is None:
                continue
            for m in _metrics(results, suite, suite.leaderboard_columns, results, section):
                add(row, m, suite.name)
            if base_section is None:
                continue
            for m in _metrics(
                results,
                suite,
                suite.leaderboard_baseline_columns,
                results,
                section,
                base_results,
                base_section,
            ):
                add(row, m, suite.name)
    ordered = list(columns.values())
    for col in ordered:
        cells = {r.name: r.cells[col.key] for r in rows if col.key in r.cells}
        ns = {c.n for c in cells.values()}
        col.n = ns.pop() if len(ns) == 1 else None
        col.best = best_row({k: c.estimate for k, c in cells.items()}, col.higher_is_better)
        if col.best is not None:
            cells[col.best].best = True
        missing = [r.name for r in rows if col.key not in r.cells]
        if missing and cells:
            notes.append(f"{col.label}: no value for {', '.join(missing)}")
    if base_row is not None:
        notes.insert(0, f"baseline of the relative columns (mCE): {base_row.name}, {reason}")
    return Leaderboard(
        ordered,
        rows,
        baseline=None if base_row is None else base_row.name,
        baseline_reason=reason,
        notes=notes,
    )


def load_leaderboard(source: str | os.PathLike[str] | Mapping[str, Any]) -> Leaderboard:
    """A leaderboard from leaderboard.json (a path, its folder, or the parsed dict).

    Raises:
        InputError: missing, unreadable or not a leaderboard.

    Example:
        >>> load_leaderboard({"schema": LEADERBOARD_SCHEMA, "columns": [], "rows": []}).rows
        []
    """
    if isinstance(source, Mapping):
        data: Any = dict(source)
        where = "the leaderboard"
    else:
        path = Path(source).expanduser()
        if path.is_dir():
            path = path / "leaderboard.json"
        where = str(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as err:
            raise InputError(f"{path} does not exist; run 'robustcv leaderboard' first") from err
        except (OSError, ValueError) as err:
            raise InputError(f"cannot read {path}: {err}") from err
    if not isinstance(data, Mapping) or not str(data.get("schema", "")).startswith(
        "robustcv.leaderboard/"
    ):
        raise InputError(f"{where} is not a robustcv leaderboard (no robustcv.leaderboard schema)")
    try:
        return Leaderboard.from_dict(data)
    except (TypeError, KeyError) as err:
        raise InputError(f"{where} is malformed: {err}") from err


def _cell_dict(cell: LeaderboardCell) -> dict[str, Any]:
    return {"value": cell.value, "low": cell.low, "high": cell.high, "n": cell.n}


def card_numbers(
    leaderboard_json: str | os.PathLike[str] | Mapping[str, Any], model_name: str
) -> dict[str, Any]:
    """The numbers of one row for a zoo model card's ``leaderboard`` section.

    Cards and the leaderboard then state the same numbers: write this dict into
    ``card.json["leaderboard"]`` and check it with :func:`card_mismatches`.

    Args:
        leaderboard_json: leaderboard.json (a path, its folder, or the parsed dict).
        model_name: the row, e.g. ``fmnist-cnn`` or ``zoo:fmnist-cnn``.

    Returns:
        ``{"model", "data", "command", "robust_accuracy", "clean_accuracy", "columns"}``:
        ``robust_accuracy`` is the headline (default ensemble) with ``norm``, ``eps``,
        ``attacks`` and N; ``columns`` holds every cell of the row (value, low, high, n).

    Raises:
        InputError: no such row, or an unreadable leaderboard.

    Example:
        >>> board = Leaderboard(
        ...     [LeaderboardColumn("clean/accuracy", "clean accuracy", "clean", True, True)],
        ...     [LeaderboardRow("zoo:m", "zoo:m", {"clean/accuracy": LeaderboardCell(0.9, n=10)})])
        >>> card_numbers(board.to_dict(), "m")["clean_accuracy"]
        {'value': 0.9, 'low': None, 'high': None, 'n': 10}
    """
    board = load_leaderboard(leaderboard_json)
    row = find_row(board.rows, model_name)
    robust: dict[str, Any] | None = None
    for col in board.columns:
        if col.key.startswith(f"{HEADLINE_PREFIX}/") and col.key in row.cells:
            norm, _, point = col.key[len(HEADLINE_PREFIX) + 1 :].partition("/acc@")
            headline = board.settings.get("headline") or {}
            robust = {
                **_cell_dict(row.cells[col.key]),
                "norm": norm,
                "eps": float(point),
                "attacks": str(headline.get("attacks", "default")),
            }
            break
    clean = row.cells.get("clean/accuracy")
    return {
        "model": row.name,
        "data": board.settings.get("data"),
        "command": board.command,
        "robust_accuracy": robust,
        "clean_accuracy": None if clean is None else _cell_dict(clean),
        "columns": {k: _cell_dict(c) for k, c in row.cells.items()},
    }


def card_mismatches(
    card: Mapping[str, Any],
    leaderboard_json: str | os.PathLike[str] | Mapping[str, Any],
    model_name: str,
) -> list[str]:
    """Where a card's ``leaderboard`` section differs from the leaderboard's row (empty: equal).

    A card without a ``leaderboard`` section has nothing to check (empty list).

    Example:
        >>> board = Leaderboard([], [LeaderboardRow("zoo:m", "zoo:m")]).to_dict()
        >>> card_mismatches({"leaderboard": card_numbers(board, "m")}, board, "m")
        []
        >>> "leaderboard.model: card 'x', leaderboard 'zoo:m'" in card_mismatches(
        ...     {"leaderboard": {"model": "x"}}, board, "m")
        True
    """
    section = card.get("leaderboard")
    if section is None:
        return []
    want = json.loads(json.dumps(card_numbers(leaderboard_json, model_name)))
    have = json.loads(json.dumps(section))
    out: list[str] = []

    def walk(a: Any, b: Any, where: str) -> None:
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            for k in sorted(set(a) | set(b)):
                walk(a.get(k), b.get(k), f"{where}.{k}")
        elif a != b:
            out.append(f"{where}: card {a!r}, leaderboard {b!r}")

    walk(have, want, "leaderboard")
    return out
