"""The leaderboard: many models audited with common settings, one comparable table.

:func:`leaderboard` audits each model (resumable, in ``DIR/audits/<slug>/``), measures the
headline robust accuracy (default attack ensemble, L-inf 0.1, the first 1000 test images) and
writes ``leaderboard.json``, ``leaderboard.md`` and a self-contained, sortable
``leaderboard.html``. :func:`build_table` is the pure part: results.json dicts in, a
:class:`Leaderboard` out. Columns come from the registered suites
(``Suite.leaderboard_columns``), so a new suite adds its columns without an edit here.
:func:`card_numbers` gives a row's numbers for a zoo model card. See ``docs/leaderboard.md``.

Example:
    >>> from robustcv.leaderboard import build_table
    >>> res = {"suites": {"clean": {"accuracy": {"value": 0.9, "low": 0.88, "high": 0.92,
    ...                                          "n": 1000}}}}
    >>> build_table([("m", res, None)]).rows[0].cells["clean/accuracy"].value
    0.9
"""

from robustcv.leaderboard.render import (
    DOCS_BEGIN,
    DOCS_END,
    render_html,
    render_markdown,
    update_docs,
    write_leaderboard,
)
from robustcv.leaderboard.run import (
    COMMON_EPS,
    LeaderboardResult,
    headline_robust_accuracy,
    leaderboard,
    model_slug,
)
from robustcv.leaderboard.table import (
    BEST_RULE,
    DEFAULT_BASELINE,
    Leaderboard,
    LeaderboardCell,
    LeaderboardColumn,
    LeaderboardRow,
    best_row,
    build_table,
    card_mismatches,
    card_numbers,
    load_leaderboard,
)

__all__ = [
    "BEST_RULE",
    "COMMON_EPS",
    "DEFAULT_BASELINE",
    "DOCS_BEGIN",
    "DOCS_END",
    "Leaderboard",
    "LeaderboardCell",
    "LeaderboardColumn",
    "LeaderboardResult",
    "LeaderboardRow",
    "best_row",
    "build_table",
    "card_mismatches",
    "card_numbers",
    "headline_robust_accuracy",
    "leaderboard",
    "load_leaderboard",
    "model_slug",
    "render_html",
    "render_markdown",
    "update_docs",
    "write_leaderboard",
]
