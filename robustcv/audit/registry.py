"""The registry of audit suites: ``SUITES``, ``register_suite`` and the suite selection.

Built-in suites are the modules listed in :data:`BUILTIN_SUITES` (each defines ``SUITE``, an
instance of a :class:`robustcv.audit.suite.Suite` subclass); adding a built-in suite is one line
there. Other packages register with :func:`register_suite` or through the entry-point group
``robustcv.suites`` (each entry point names a suite instance, e.g.
``mysuite = "mypkg.audit:SUITE"``), loaded the first time the registry is imported.
"""

from __future__ import annotations

import difflib
import importlib
import warnings
from collections.abc import Sequence

from robustcv.audit.suite import Suite
from robustcv.core.errors import InputError
from robustcv.core.registry import Registry

__all__ = [
    "BUILTIN_SUITES",
    "ENTRY_POINT_GROUP",
    "SUITES",
    "default_suites",
    "ordered_suites",
    "parse_suites",
    "register_suite",
    "selectable_suites",
]

BUILTIN_SUITES: tuple[str, ...] = (
    "robustcv.audit.suites.clean",
    "robustcv.audit.suites.corruption",
    "robustcv.audit.suites.adversarial",
    "robustcv.audit.suites.calibration",
    "robustcv.audit.suites.ood",
    "robustcv.audit.suites.examples",
    "robustcv.audit.suites.probes",
    "robustcv.audit.suites.explanations",
)
"""Modules of the built-in suites (each holds ``SUITE``)."""

ENTRY_POINT_GROUP = "robustcv.suites"

SUITES: Registry[Suite] = Registry("suite")
"""Suite name -> suite instance. ``SUITES.names()`` lists every registered suite."""


def register_suite(suite: Suite, *, replace: bool = False) -> Suite:
    """Register a suite instance so that audits, reports, ``compare`` and ``check`` use it.

    Args:
        suite: an instance of a :class:`robustcv.audit.suite.Suite` subclass with a ``name``.
        replace: replace a suite registered under the same name instead of refusing.

    Returns:
        The suite, unchanged.

    Raises:
        InputError: not a suite, no name, or the name is taken (without ``replace``).

    Example:
        >>> from robustcv.audit.suite import Suite
        >>> class Nothing(Suite):
        ...     name = "nothing-example"
        ...     default = False
        >>> _ = register_suite(Nothing())
        >>> "nothing-example" in SUITES
        True
        >>> _ = SUITES.remove("nothing-example")
    """
    if not isinstance(suite, Suite):
        raise InputError(
            f"register_suite needs an instance of robustcv.audit.suite.Suite, got "
            f"{type(suite).__name__}; subclass Suite and pass an instance"
        )
    name = suite.name
    if not isinstance(name, str) or not name.strip() or name != name.strip().lower():
        raise InputError(f"a suite needs a lower-case name without spaces, got {name!r}")
    if name in ("all", "none") or "," in name:
        raise InputError(f"'{name}' cannot be a suite name (reserved or contains a comma)")
    if name in SUITES:
        if not replace:
            raise InputError(f"a suite named '{name}' is already registered; pass replace=True")
        SUITES.remove(name)
    SUITES.add(name, suite, summary=suite.description)
    return suite


def _load_builtin() -> None:
    for module in BUILTIN_SUITES:
        suite = importlib.import_module(module).SUITE
        register_suite(suite)


def _load_entry_points() -> None:
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            register_suite(ep.load())
        except Exception as err:  # a broken plug-in must not break robustcv
            warnings.warn(
                f"robustcv: could not load the audit suite plug-in '{ep.name}' ({ep.value}): {err}",
                RuntimeWarning,
                stacklevel=2,
            )


def ordered_suites() -> list[Suite]:
    """Every registered suite, in the order suites run (``order``, then registration).

    Example:
        >>> [s.name for s in ordered_suites()][:3]
        ['clean', 'corruption', 'adversarial']
    """
    entries = list(SUITES)
    rank = {e.name: i for i, e in enumerate(entries)}
    return sorted((e.obj for e in entries), key=lambda s: (s.order, rank[s.name]))


def selectable_suites() -> tuple[str, ...]:
    """Names ``--suites`` accepts, in run order (suites that always run are left out)."""
    return tuple(s.name for s in ordered_suites() if s.selectable)


def default_suites(strength: str = "fast") -> tuple[str, ...]:
    """Names of the suites an audit runs when none are named, in run order.

    At ``strength="full"`` the suites marked ``in_full`` (such as ``probes`` and
    ``explanations``) join the default ones.

    Example:
        >>> default_suites()
        ('clean', 'corruption', 'adversarial', 'calibration', 'ood')
        >>> default_suites("full")[-2:]
        ('probes', 'explanations')
    """
    full = strength == "full"
    return tuple(
        s.name for s in ordered_suites() if s.selectable and (s.default or (full and s.in_full))
    )


def parse_suites(value: str | Sequence[str]) -> tuple[str, ...]:
    """Validate a suite selection (a list or a comma-separated string), in run order.

    ``all`` selects every selectable suite, ``default`` the default ones.

    Example:
        >>> parse_suites("ood,clean")
        ('clean', 'ood')
        >>> parse_suites(["clen"])  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        robustcv.core.errors.InputError: unknown suite 'clen'; did you mean 'clean'? ...
    """
    if isinstance(value, str):
        names = [v.strip() for v in value.split(",") if v.strip()]
    elif isinstance(value, Sequence) and all(isinstance(v, str) for v in value):
        names = [v.strip() for v in value if v.strip()]
    else:
        raise InputError(f"suites must be a list of names or a comma-separated string: {value!r}")
    known = selectable_suites()
    if not names:
        raise InputError(f"suites is empty; choose from {', '.join(known)}")
    out: list[str] = []
    for raw in names:
        name = raw.lower()
        if name == "all":
            return known
        if name == "default":
            out += default_suites()
            continue
        if name not in known:
            close = difflib.get_close_matches(name, list(known), n=2, cutoff=0.5)
            hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            raise InputError(f"unknown suite '{raw}'{hint} (suites: {', '.join(known)}, all)")
        out.append(name)
    return tuple(s for s in known if s in out)


_load_builtin()
_load_entry_points()
