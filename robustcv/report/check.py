"""Gate CI on an audit: compare its results with thresholds and name every violation.

The thresholds come from the registered suites (each suite's ``checks``; see
:class:`robustcv.audit.suite.CheckSpec`). Each compares the point estimate; ``min-`` checks pass
when the value is >= the limit, ``max-`` checks when it is <=. The built-in ones:

* ``--min-acc V``: clean accuracy >= V;
* ``--min-robust-acc V@NORM:EPS`` (repeatable): robust accuracy at EPS >= V; EPS must be in the
  audit's grid (re-run the audit with ``--eps NORM:EPS`` to add it);
* ``--max-mce V``: mean corruption error (percent of the baseline's error, 100 = as good as
  the baseline) <= V (needs an audit with a baseline model);
* ``--max-ece V[@before|@after]``: ECE (equal-width bins) <= V, before temperature scaling by
  default (the model as shipped);
* ``--min-auroc V[@SET/METHOD]`` (repeatable): OOD AUROC >= V for every (set, method) pair that
  matches; ``SET`` and ``METHOD`` default to every one (``*``), a lone name selects a method
  when it is a method name and a set otherwise;
* ``--max-corruption-drop V[@CORRUPTION]`` (repeatable): clean accuracy minus the mean
  corruption accuracy (or one corruption's mean over severities) <= V; the clean accuracy is
  the corruption suite's own (same images) when recorded, else the clean suite's.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from robustcv.audit.checks import all_checks, parse_threshold, parse_thresholds, required_eps
from robustcv.audit.registry import SUITES
from robustcv.audit.schema import load_results
from robustcv.audit.suite import Outcome, Threshold, section_of
from robustcv.core.errors import InputError
from robustcv.core.results import Result

__all__ = [
    "CheckResult",
    "Outcome",
    "Threshold",
    "check",
    "check_descriptions",
    "parse_threshold",
    "parse_thresholds",
    "required_eps",
]


def check_descriptions() -> dict[str, str]:
    """Threshold names (the CLI flag without ``--``) and what each one checks.

    Example:
        >>> check_descriptions()["min-acc"]
        'clean accuracy >= V'
    """
    return {name: spec.description for name, (_, spec) in all_checks().items()}


@dataclass
class CheckResult(Result):
    """All threshold verdicts for one audit.

    Attributes:
        source: the audit folder (or "results" for a dict).
        passed: True when every outcome passed.
        outcomes: one :class:`Outcome` per checked value.
    """

    source: str
    passed: bool
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def failures(self) -> list[Outcome]:
        """The outcomes that failed."""
        return [o for o in self.outcomes if not o.passed]


def _evaluate(results: Mapping[str, Any], t: Threshold) -> list[Outcome]:
    suite_name, spec = all_checks()[t.metric]
    suite = SUITES.get(suite_name)
    key = suite.results_key
    section = results.get(key) if key else section_of(results, suite_name)
    if section is None:
        raise InputError(
            f"{t.flag}: the audit has no '{suite_name}' suite; re-run 'robustcv audit' with "
            f"--suites including {suite_name}"
        )
    from robustcv.report.html import reading

    outcomes: list[Outcome] = reading(results, suite, spec.evaluate, results, section, t)
    return outcomes


def check(
    results_dir: str | os.PathLike[str] | Mapping[str, Any],
    thresholds: Mapping[str, Any] | Iterable[Threshold],
) -> CheckResult:
    """Check an audit's results against thresholds.

    Args:
        results_dir: the audit folder, its ``results.json``, or the results dict.
        thresholds: :class:`Threshold` objects or a mapping such as
            ``{"min_acc": 0.9, "min_robust_acc": ["0.5@linf:0.1"], "max_ece": 0.05}``
            (names and formats as in :func:`check_descriptions`).

    Returns:
        A :class:`CheckResult`; ``passed`` is False when any threshold is violated.

    Raises:
        InputError: no thresholds, a malformed one, or one that the results cannot answer
            (a suite not run, an eps not in the grid, ...).

    Example:
        >>> res = {"suites": {"clean": {"accuracy": {"value": 0.88, "n": 1000}}}}
        >>> out = check(res, {"min_acc": 0.9})
        >>> out.passed, out.failures[0].text
        (False, 'FAIL clean accuracy: 0.8800 N=1000 is not >= 0.9 (--min-acc 0.9)')
    """
    parsed = parse_thresholds(thresholds)
    if not parsed:
        raise InputError(
            "no thresholds given; pass at least one, e.g. --min-acc 0.9 or "
            "--min-robust-acc 0.5@linf:0.1"
        )
    results, _ = load_results(results_dir)
    outcomes = [o for t in parsed for o in _evaluate(results, t)]
    source = "results" if isinstance(results_dir, Mapping) else str(results_dir)
    return CheckResult(source=source, passed=all(o.passed for o in outcomes), outcomes=outcomes)


def __getattr__(name: str) -> Any:
    if name == "METRICS":  # computed: suites registered later add their checks
        return check_descriptions()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
