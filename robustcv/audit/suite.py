"""The suite plug-in interface: what one audit suite owns, in one place.

A suite is one module that defines a :class:`Suite` subclass and registers an instance (built-in
suites are listed once in :mod:`robustcv.audit.registry`; others call
:func:`robustcv.audit.register_suite` or use the ``robustcv.suites`` entry-point group). The
engine, ``AuditResults.summary()``, the HTML report, ``compare`` and ``check`` iterate over the
registry and never name a suite. A suite owns:

* its **config section**: a frozen dataclass (``config_class``) with defaults and validation in
  ``__post_init__``; the audit config gets a section of that name (``cfg.<name>``);
* its **work**: ``plan`` (units), ``run`` (one unit -> a JSON row), ``aggregate`` (stored rows ->
  its section of results.json), ``needs`` (fit data, OOD data, gradients, features),
  ``requires`` (other suites whose rows it reads), ``validate`` (names, before any work);
* its **words**: ``subsample`` (what was measured on how many images), ``summary_lines``;
* its **report**: ``view`` (its section -> template variables), ``report_template`` (a Jinja2
  partial rendered with ``v`` = the view), ``card``/``card_template`` (the summary card), and
  ``warnings`` (findings shown at the top of the report);
* its **numbers for tools**: ``metrics`` (what ``compare`` shows), ``checks`` (the thresholds
  ``robustcv check`` accepts), ``leaderboard_columns`` (its cells in ``robustcv leaderboard``,
  one :class:`Metric` per column) and ``leaderboard_baseline_columns`` (cells relative to the
  leaderboard's baseline row, such as mCE);
* its **section type** (``section_type``): a ``TypedDict`` of the keys its section of
  results.json holds (the contract test checks the real output against it);
* ``default``: whether it runs when no ``--suites`` are given.

Everything here reads only plain data; nothing runs a model.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import (
    TYPE_CHECKING,
    Any,
    ClassVar,
    TypedDict,
    get_args,
    get_origin,
    get_type_hints,
    is_typeddict,
)

from robustcv.audit.plan import Row, Unit
from robustcv.core.errors import InputError
from robustcv.core.results import Result
from robustcv.core.stats import Estimate, finite_or_none

if TYPE_CHECKING:
    from robustcv.audit.context import AuditContext

__all__ = [
    "CheckSpec",
    "EstimateDict",
    "Metric",
    "Needs",
    "NoConfig",
    "Outcome",
    "Suite",
    "Threshold",
    "est_view",
    "fmt",
    "notes_list",
    "section_keys_match",
    "section_of",
    "validate_corruption_names",
]


class EstimateDict(TypedDict):
    """An estimate as stored in results.json (:meth:`robustcv.core.stats.Estimate.to_dict`)."""

    value: float
    low: float | None
    high: float | None
    n: int | None
    method: str
    level: float


@dataclass(frozen=True)
class NoConfig:
    """The config section of a suite without settings."""


@dataclass(frozen=True)
class Needs:
    """What a suite needs besides the model and the evaluated images.

    Attributes:
        fit_data: held-out labelled images (temperature scaling, Mahalanobis).
        ood_data: the OOD sets (``--ood-data`` or the derived ones).
        gradients: input gradients (informational: suites fall back or skip with a reason).
        features: penultimate features (informational).
    """

    fit_data: bool = False
    ood_data: bool = False
    gradients: bool = False
    features: bool = False


@dataclass(frozen=True)
class Metric:
    """One headline number of an audit, as compared by ``compare``.

    Attributes:
        key: a stable identifier such as ``clean/accuracy`` or ``adversarial/linf/acc@0.1``.
        label: a human-readable name.
        estimate: the value with its N and interval when known.
        higher_is_better: True, False, or None when the direction has no meaning.
        proportion: True when the value is a fraction of N samples (accuracies).
        samples: the per-item values the estimate summarises (e.g. each image's minimal
            perturbation, ``inf`` where none was found), when a distribution is compared:
            ``compare`` then judges the two audits with a rank test on them.
    """

    key: str
    label: str
    estimate: Estimate
    higher_is_better: bool | None
    proportion: bool = False
    samples: tuple[float, ...] | None = None


@dataclass(frozen=True)
class Threshold:
    """One threshold of ``robustcv check``: a check name, a limit and an optional qualifier.

    Attributes:
        metric: the check's name (the CLI flag without ``--``), e.g. ``min-acc``.
        limit: the bound.
        qualifier: the canonical part after ``@`` (``linf:0.1``, ``after``, ...), if any.

    Example:
        >>> Threshold("min-robust-acc", 0.5, "linf:0.1").flag
        '--min-robust-acc 0.5@linf:0.1'
    """

    metric: str
    limit: float
    qualifier: str | None = None

    @property
    def flag(self) -> str:
        """The threshold as the command-line flag that sets it."""
        q = f"@{self.qualifier}" if self.qualifier else ""
        return f"--{self.metric} {self.limit:g}{q}"

    @property
    def norm_eps(self) -> tuple[str, float]:
        """``(norm, eps)`` of a ``NORM:EPS`` qualifier."""
        if not self.qualifier or ":" not in self.qualifier:
            raise InputError(f"{self.flag} has no NORM:EPS")
        norm, eps = self.qualifier.split(":")
        return norm, float(eps)


@dataclass
class Outcome(Result):
    """The verdict on one threshold (one per matching value, e.g. per OOD set and method).

    Attributes:
        threshold: the flag, e.g. ``--min-acc 0.9``.
        metric: what was measured, in words.
        value: the measured point estimate.
        limit: the threshold.
        passed: True when the value is on the right side of the limit.
        low: lower end of the value's 95% interval, when known.
        high: upper end, when known.
        n: samples behind the value, when known.
    """

    threshold: str
    metric: str
    value: float
    limit: float
    passed: bool
    low: float | None = None
    high: float | None = None
    n: int | None = None

    @classmethod
    def judge(cls, t: Threshold, metric: str, est: Estimate, *, higher_is_better: bool) -> Outcome:
        """The outcome of comparing ``est``'s point value with ``t``.

        Example:
            >>> Outcome.judge(Threshold("min-acc", 0.9), "acc", Estimate(0.95), higher_is_better=True).passed
            True
        """  # noqa: E501
        passed = est.value >= t.limit if higher_is_better else est.value <= t.limit
        return cls(
            t.flag,
            metric,
            est.value,
            t.limit,
            passed,
            est.low if est.has_interval else None,
            est.high if est.has_interval else None,
            est.n,
        )

    @property
    def text(self) -> str:
        """One line: PASS/FAIL, the metric, value vs threshold, and the flag."""
        op = ">=" if self.threshold.startswith("--min") else "<="
        ci = (
            f" [95% {self.low:.3f}-{self.high:.3f}]"
            if self.low is not None and self.high is not None
            else ""
        )
        n = f" N={self.n}" if self.n is not None else ""
        verdict = "PASS" if self.passed else "FAIL"
        return (
            f"{verdict} {self.metric}: {self.value:.4f}{ci}{n} "
            f"{'is' if self.passed else 'is not'} {op} {self.limit:g} ({self.threshold})"
        )


Evaluate = Callable[[Mapping[str, Any], Mapping[str, Any], Threshold], list[Outcome]]


@dataclass(frozen=True)
class CheckSpec:
    """A threshold a suite offers to ``robustcv check`` (flag ``--NAME V[@QUALIFIER]``).

    Attributes:
        name: the flag without ``--`` (``min-acc``); ``min-`` checks pass when the value is
            >= the limit, ``max-`` checks when it is <=.
        description: what is checked, e.g. ``"clean accuracy >= V"``.
        metavar: the flag's value in help, e.g. ``"V@NORM:EPS"``.
        example: an example value, e.g. ``"0.5@linf:0.1"``.
        evaluate: ``(results, section, threshold) -> outcomes``; raise ``InputError`` naming
            the fix when the results cannot answer.
        qualifier: ``None`` (no ``@`` part allowed) or a function that validates the raw
            qualifier and returns its canonical form (raise ``InputError`` when malformed).
        fraction: the limit must lie in [0, 1].
        eps: for checks on robust accuracy, ``threshold -> (norm, eps)`` that the audit's grid
            must hold (the audit adds it when the threshold is in its ``check`` config).
        parse: parses the whole value (``"0.5@linf:0.1"``) into ``(limit, canonical
            qualifier)`` for checks with a grammar of their own; replaces the generic
            ``V[@QUALIFIER]`` parsing and ``qualifier``.
    """

    name: str
    description: str
    metavar: str
    example: str
    evaluate: Evaluate
    qualifier: Callable[[str], str] | None = None
    fraction: bool = False
    eps: Callable[[Threshold], tuple[str, float]] | None = None
    parse: Callable[[str], tuple[float, str | None]] | None = None


class Suite:
    """Base class of audit suites: defaults for every hook (see the module docstring).

    Subclasses set ``name`` and implement ``plan``, ``run`` and ``aggregate``; every other hook
    has a harmless default. Instances must be stateless (settings come from ``ctx.config``) and
    picklable, so an executor can ship them to worker processes.
    """

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    description: ClassVar[str] = ""
    config_class: ClassVar[type] = NoConfig
    default: ClassVar[bool] = True
    in_full: ClassVar[bool] = False
    """Also run at ``strength="full"`` when no suites are named (for non-default suites)."""
    selectable: ClassVar[bool] = True
    order: ClassVar[int] = 100
    results_key: ClassVar[str | None] = None
    aggregation_only: ClassVar[tuple[str, ...]] = ()
    section_type: ClassVar[Any] = None
    report_template: ClassVar[str] = ""
    card_template: ClassVar[str] = ""
    checks: ClassVar[tuple[CheckSpec, ...]] = ()

    # ------------------------------------------------------------------ work
    def needs(self, config: Any) -> Needs:
        """What this audit's settings make the suite need (default: nothing extra)."""
        return Needs()

    def requires(self, config: Any) -> tuple[str, ...]:
        """Suites whose stored rows ``run`` receives in ``deps`` (they run first)."""
        return ()

    def validate(self, config: Any, shape: tuple[int, ...]) -> None:
        """Check names and sizes before any work; raise ``InputError`` naming the fix."""

    def plan(self, ctx: AuditContext) -> list[Unit]:
        """Every unit of the suite (keys and costs are known before any runs)."""
        raise NotImplementedError

    def run(self, ctx: AuditContext, unit: Unit, deps: Mapping[str, Row]) -> Row:
        """Compute one unit; ``deps`` holds rows of earlier phases and required suites."""
        raise NotImplementedError

    def aggregate(self, ctx: AuditContext, rows: Mapping[str, Row], notes: dict[str, Any]) -> Any:
        """The suite's section of results.json from its stored rows alone.

        ``notes`` collects ``skipped`` reasons (``notes["skipped"][key] = why``) and free-text
        ``notes["notes"]`` for the top level.
        """
        raise NotImplementedError

    def clear_outputs(self, out_dir: Path) -> None:
        """Delete files the suite wrote besides its rows (``--force`` discards an audit)."""

    def subsample(self, ctx: AuditContext, units: Sequence[Unit]) -> tuple[str, dict[str, Any]]:
        """``(text, sizes)``: what the suite measures on how many images, for the log/results."""
        return "", {}

    # ------------------------------------------------------------------ words and report
    def summary_lines(self, section: Any) -> list[str]:
        """Lines of ``AuditResults.summary()`` (without the leading suite label)."""
        return []

    def view(
        self, results: Mapping[str, Any], section: Any, folder: Path | None
    ) -> dict[str, Any] | None:
        """Template variables of the report section (``v`` in ``report_template``)."""
        return None

    def card(self, results: Mapping[str, Any], section: Any) -> dict[str, Any] | None:
        """Template variables of the summary card (``v`` in ``card_template``), or None."""
        return None

    def warnings(self, results: Mapping[str, Any], section: Any) -> list[dict[str, str]]:
        """Findings for the report's alert box: ``{"scope", "check", "message", "action"}``."""
        return []

    def metrics(self, results: Mapping[str, Any], section: Any) -> list[Metric]:
        """The numbers ``compare`` puts side by side, in a stable order."""
        return []

    def comparison_curves(self, section: Any) -> dict[str, dict[str, list[float | None]]]:
        """Curves ``compare`` overlays for two audits (default: none).

        Returns ``{panel: {"eps", "value", "low", "high"}}`` with the x values under ``eps``.
        """
        return {}

    def leaderboard_columns(self, results: Mapping[str, Any], section: Any) -> list[Metric]:
        """The suite's cells of one leaderboard row, one :class:`Metric` per column (default none).

        Keys name columns across rows (``clean/accuracy``), so they must be stable and unique
        over every suite; each metric states ``higher_is_better`` (None: "best" is not marked)
        and keeps its interval, which the leaderboard's "best" rule needs.
        """
        return []

    def leaderboard_baseline_columns(
        self,
        results: Mapping[str, Any],
        section: Any,
        baseline_results: Mapping[str, Any],
        baseline_section: Any,
    ) -> list[Metric]:
        """Cells of one leaderboard row relative to the baseline row's section (default none).

        Called once per row (also for the baseline row itself) when the baseline ran the suite;
        for numbers defined against a reference model, such as mCE.
        """
        return []


# ---------------------------------------------------------------------------------------------
# helpers shared by suite views (plain data in, plain data out)


def section_of(results: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    """The results of one suite (``results["suites"][name]``), or None when it was not run.

    Example:
        >>> section_of({"suites": {"clean": {"n": 3}}}, "clean"), section_of({}, "ood")
        ({'n': 3}, None)
    """
    value = (results.get("suites") or {}).get(name)
    return value if isinstance(value, dict) else None


def est_view(obj: Any, digits: int = 3) -> dict[str, Any] | None:
    """An estimate prepared for a template: value, interval and N as strings (None if absent).

    Example:
        >>> est_view({"value": 0.9, "low": 0.8, "high": 0.95, "n": 10})["ci"]
        '[0.800, 0.950]'
    """
    e = Estimate.parse(obj)
    if e is None:
        return None
    return {
        "value": f"{e.value:.{digits}f}",
        "ci": e.interval_text(digits),
        "n": "" if e.n is None else str(e.n),
        "method": e.method or "",
        "raw": e.value,
    }


def fmt(value: Any, digits: int = 4) -> str:
    """A number with ``digits`` significant digits, or an en dash when absent.

    Example:
        >>> fmt(0.123456), fmt(None)
        ('0.1235', '–')
    """
    v = finite_or_none(value)
    return "–" if v is None else f"{v:.{digits}g}"


def notes_list(*values: Any) -> list[str]:
    """Free-text notes from results (a string or a list of strings), in order.

    Example:
        >>> notes_list("a", ["b", 3], None)
        ['a', 'b', '3']
    """
    out: list[str] = []
    for v in values:
        if isinstance(v, str) and v:
            out.append(v)
        elif isinstance(v, list):
            out += [str(x) for x in v if isinstance(x, (str, int, float)) and str(x)]
    return out


def section_keys_match(section: Any, section_type: Any) -> list[str]:
    """Differences between a section's keys and a ``TypedDict`` (recursing into nested ones).

    Returns human-readable differences (empty when the section matches).

    Example:
        >>> class T(TypedDict):
        ...     n: int
        ...     acc: EstimateDict
        >>> section_keys_match({"n": 3, "acc": {"value": 1.0}}, T)[0]
        'acc: missing low'
    """
    if not is_typeddict(section_type) or not isinstance(section, dict):
        return []
    hints = get_type_hints(section_type)
    out = [f"missing {k}" for k in hints if k not in section]
    out += [f"unexpected {k}" for k in section if k not in hints]
    for key, hint in hints.items():
        if key not in section:
            continue
        value = section[key]
        if is_typeddict(hint):
            out += [f"{key}: {d}" for d in section_keys_match(value, hint)]
            continue
        args = get_args(hint)
        inner = args[-1] if args else None
        if not is_typeddict(inner):
            continue
        if get_origin(hint) is dict and isinstance(value, dict):
            for k, v in value.items():
                out += [f"{key}.{k}: {d}" for d in section_keys_match(v, inner)]
        elif get_origin(hint) is list and isinstance(value, list):
            for i, v in enumerate(value):
                out += [f"{key}[{i}]: {d}" for d in section_keys_match(v, inner)]
    return out


def validate_corruption_names(names: Any, severities: Any, key: str, severity_key: str) -> None:
    """Refuse unknown corruption names and out-of-range severities of a suite setting.

    Example:
        >>> validate_corruption_names(["fgo"], [3], "examples.corruptions", "examples.severity")
        ... # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        robustcv.core.errors.InputError: examples.corruptions: unknown corruption 'fgo'; ...
    """
    from robustcv.corruptions.base import CORRUPTIONS

    for name in names:
        text = str(name)
        spellings = (text, text.replace("_", "-"), text.replace("-", "_"))
        found = next((k for k in spellings if k in CORRUPTIONS), None)
        try:
            canonical = CORRUPTIONS.canonical(found if found is not None else text)
        except InputError as err:
            raise InputError(f"{key}: {err}") from err
        top = CORRUPTIONS.get(canonical).severities
        bad = [s for s in severities if not 1 <= int(s) <= top]
        if bad:
            raise InputError(
                f"{severity_key}: severity {bad} is outside 1..{top} for corruption "
                f"'{canonical}' (in {key})"
            )
