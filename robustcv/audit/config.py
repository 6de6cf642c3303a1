"""Audit configuration: one frozen :class:`AuditConfig`, parsed from YAML/JSON files and flags.

Settings come, in increasing priority, from the defaults, a config file (``--config
audit.yaml`` / ``.json``) and explicit arguments (CLI flags or :func:`robustcv.run_audit`
keywords). An explicit argument is one that is not None, so an explicitly passed value always
wins, also when it equals the default (``seed=0`` beats ``seed: 3`` in the file).

Top-level settings are shared by every suite; each registered suite adds a **section** of the
same name (``cfg.corruption.n``), a frozen dataclass that the suite owns
(``Suite.config_class``). Settings are of two kinds. *Work* settings decide what units compute;
they enter the fingerprint that guards an audit folder. *Aggregation* settings (the generic
:data:`AGGREGATION_ONLY` plus each suite's ``aggregation_only``) only change how stored rows
are summarised, how fast work runs or where: changing them on a re-run recomputes nothing.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import reprlib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from robustcv.audit.registry import SUITES, default_suites, ordered_suites, parse_suites
from robustcv.audit.validate import float_tuple, positive_int, str_tuple, suggest
from robustcv.core.errors import InputError
from robustcv.core.names import NORMS, canonical_norm

__all__ = [
    "AGGREGATION_ONLY",
    "EXECUTORS",
    "MAX_WORKERS",
    "STRENGTHS",
    "AuditConfig",
    "check_size",
    "load_config_file",
    "parse_eps",
    "parse_suites",
    "short_repr",
]

STRENGTHS: tuple[str, ...] = ("fast", "full")

EXECUTORS: tuple[str, ...] = ("in-process", "processes", "ray")
"""Executor names ``config.executor.name`` accepts."""

MAX_WORKERS = 256
"""Most worker processes ``executor.workers`` (``--workers``) accepts: each is a process with its
own copy of the model, and a typo such as 100000 would start that many."""

AGGREGATION_ONLY: tuple[str, ...] = ("batch_size", "device", "check", "executor")
"""Top-level settings left out of the fingerprint (suites add their own section keys)."""

_TOP_LEVEL = (
    "model",
    "data",
    "split",
    "suites",
    "ood_data",
    "fit_data",
    "limit",
    "strength",
    "seed",
    "eps",
    "check",
    "batch_size",
    "shard_size",
    "device",
    "executor",
)


_MAX_VALUES = 10_000
"""Most values (leaves and containers) an audit config may hold: it is a few dozen settings."""

_MAX_DEPTH = 20
"""Deepest nesting of an audit config (sections are two levels, thresholds three)."""

_MAX_TEXT = 10_000
"""Longest string in an audit config (paths and specs are far shorter)."""

_MAX_INT = 2**63
"""Ints must be below this (seeds, sizes and counts all fit in 64 bits)."""

_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 60
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 6
_REPR.maxlevel = 3


def short_repr(value: Any) -> str:
    """A bounded ``repr`` for messages (a huge or deeply nested value stays short).

    Example:
        >>> short_repr(list(range(100)))
        '[0, 1, 2, 3, 4, 5, ...]'
    """
    try:
        return _REPR.repr(value)
    except (ValueError, RecursionError):  # an int beyond str()'s digit limit
        return f"<{type(value).__name__}>"


def check_size(value: Any, where: str = "the audit config") -> None:
    """Refuse a config too large, too deep, or with huge numbers or strings (a YAML bomb).

    Walks at most :data:`_MAX_VALUES` values, so a billion-laughs YAML (shared aliases that
    expand exponentially) or a self-referencing list is refused in microseconds.

    Raises:
        InputError: naming the key where the limit was hit.

    Example:
        >>> try:
        ...     check_size({"adversarial": {"n": 2**70}})
        ... except InputError as err:
        ...     print(str(err).split(" (")[0])
        config key 'adversarial.n' is a huge number
    """
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    seen = 0
    while stack:
        item, key, depth = stack.pop()
        seen += 1
        shown = key if len(key) <= 80 else key[:77] + "..."
        name = f"config key '{shown}'" if key else where
        if seen > _MAX_VALUES:
            raise InputError(
                f"{where} is too large (over {_MAX_VALUES} values, stopped at {name}); an audit "
                "config holds a few dozen settings"
            )
        if depth > _MAX_DEPTH:
            raise InputError(f"{name} is nested too deeply (over {_MAX_DEPTH} levels)")
        if isinstance(item, bool) or item is None:
            continue
        if isinstance(item, int) and not -_MAX_INT < item < _MAX_INT:
            text = short_repr(item) if item.bit_length() < 10_000 else "over 3000 digits"
            raise InputError(f"{name} is a huge number ({text}); use a value below 2**63")
        if isinstance(item, (str, bytes)) and len(item) > _MAX_TEXT:
            raise InputError(f"{name} is a string of {len(item)} characters; is the file right?")
        if isinstance(item, Mapping):
            for k, v in item.items():
                sub = f"{key}.{short_repr(k) if not isinstance(k, str) else k}".lstrip(".")
                stack.append((k, key, depth + 1))
                stack.append((v, sub, depth + 1))
        elif isinstance(item, (list, tuple, set, frozenset)):
            stack.extend((v, f"{key}[{i}]", depth + 1) for i, v in enumerate(item))


def _canonical_norm(name: str) -> str:
    return canonical_norm(name, NORMS)


def parse_eps(value: str | Mapping[str, Any] | None) -> dict[str, tuple[float, ...]]:
    """Parse extra eps values: ``"linf:0.1,0.2,l2:0.5"`` or ``{"linf": [0.1], "l2": 0.5}``.

    A bare number continues the norm named before it.

    Example:
        >>> parse_eps("linf:0.1,0.2,l2:0.5")
        {'linf': (0.1, 0.2), 'l2': (0.5,)}
    """
    if value is None:
        return {}
    out: dict[str, list[float]] = {}
    if isinstance(value, Mapping):
        for norm, vals in value.items():
            try:
                key = _canonical_norm(str(norm))
            except InputError as err:
                raise InputError(f"eps: {err}") from err
            out.setdefault(key, []).extend(float_tuple(vals, f"eps[{norm}]"))
    elif isinstance(value, str):
        current: str | None = None
        for item in (p.strip() for p in value.split(",")):
            if not item:
                continue
            if ":" in item:
                head, _, item = item.partition(":")
                try:
                    current = _canonical_norm(head)
                except InputError as err:
                    raise InputError(f"--eps '{value}': {err}") from err
            if current is None:
                raise InputError(f"--eps '{value}': name the norm first, e.g. linf:0.1,l2:0.5")
            try:
                v = float(item)
            except ValueError as err:
                raise InputError(f"--eps '{value}': '{item}' is not a number") from err
            out.setdefault(current, []).extend(float_tuple(v, "--eps"))
    else:
        raise InputError(
            f"eps must be a string like 'linf:0.1,l2:0.5' or a mapping such as "
            f"{{linf: [0.1]}}, got {short_repr(value)}"
        )
    return {k: tuple(sorted(set(v))) for k, v in out.items()}


_EXECUTOR_KEYS: tuple[str, ...] = ("name", "workers")
_RAY_KEYS: tuple[str, ...] = ("address", "cpus_per_worker", "gpus_per_worker", "max_retries")
"""Executor settings only the ``ray`` executor takes (see robustcv.audit.ray_executor)."""

_MAX_RAY_RETRIES = 100
"""Most retries ``executor.max_retries`` accepts for a unit whose Ray worker died."""


def _ray_address(value: Any) -> str:
    text = value.strip() if isinstance(value, str) else ""
    host, sep, port = text.removeprefix("ray://").rpartition(":")
    if text in ("auto", "local"):
        return text
    if sep and host and port.isdigit() and not any(c.isspace() for c in host):
        return text
    raise InputError(
        f"executor.address must be auto (a running cluster), local (a new local instance), "
        f"HOST:PORT or ray://HOST:PORT, got {short_repr(value)} (--ray-address)"
    )


def _ray_settings(value: Mapping[str, Any], name: str) -> dict[str, Any]:
    given = [k for k in _RAY_KEYS if value.get(k) is not None]
    if name != "ray":
        if given:
            raise InputError(
                f"executor.{given[0]} is a setting of the ray executor, but the executor is "
                f"{name}; set executor.name to ray (--executor ray) or remove it"
            )
        return {}
    out: dict[str, Any] = {}
    if value.get("address") is not None:
        out["address"] = _ray_address(value["address"])
    if value.get("cpus_per_worker") is not None:
        cpus = positive_int(value["cpus_per_worker"], "executor.cpus_per_worker")
        if cpus > MAX_WORKERS:
            raise InputError(
                f"executor.cpus_per_worker is {cpus}; use at most {MAX_WORKERS} "
                "(--ray-cpus-per-worker)"
            )
        out["cpus_per_worker"] = cpus
    gpus = value.get("gpus_per_worker")
    if gpus is not None:
        if (
            isinstance(gpus, bool)
            or not isinstance(gpus, (int, float))
            or not math.isfinite(gpus)
            or not 0 <= gpus <= 64
        ):
            raise InputError(
                f"executor.gpus_per_worker must be a number in [0, 64] (a fraction shares a "
                f"GPU), got {short_repr(gpus)} (--ray-gpus-per-worker)"
            )
        out["gpus_per_worker"] = int(gpus) if float(gpus).is_integer() else float(gpus)
    if value.get("max_retries") is not None:
        retries = positive_int(value["max_retries"], "executor.max_retries", minimum=0)
        if retries > _MAX_RAY_RETRIES:
            raise InputError(
                f"executor.max_retries is {retries}; use at most {_MAX_RAY_RETRIES} (a unit whose "
                "worker keeps dying needs a fix, not more retries)"
            )
        out["max_retries"] = retries
    return out


def _executor(value: Any) -> dict[str, Any]:
    if value is None:
        return {"name": "in-process"}
    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, Mapping):
        raise InputError(
            f"executor must be a name or a mapping {{name, workers, ...}}, got {short_repr(value)}"
        )
    known = (*_EXECUTOR_KEYS, *_RAY_KEYS)
    unknown = [str(k) for k in value if k not in known]
    if unknown:
        raise InputError(
            f"unknown executor setting(s) {short_repr(sorted(unknown))}"
            f"{suggest(unknown[0], known)}; known: {', '.join(known)}"
        )
    if not isinstance(value.get("name", "in-process"), str):
        raise InputError(
            f"executor.name must be one of {', '.join(EXECUTORS)}, got "
            f"{short_repr(value.get('name'))}"
        )
    name = str(value.get("name", "in-process")).strip().lower().replace("_", "-")
    if name == "inprocess":
        name = "in-process"
    if name not in EXECUTORS:
        raise InputError(
            f"unknown executor {short_repr(value.get('name'))}{suggest(name, EXECUTORS)}; use "
            "one of "
            f"{', '.join(EXECUTORS)}"
        )
    out: dict[str, Any] = {"name": name}
    if value.get("workers") is not None:
        workers = positive_int(value["workers"], "executor.workers")
        if workers > MAX_WORKERS:
            raise InputError(
                f"executor.workers is {workers}; use at most {MAX_WORKERS} (one worker per CPU "
                "is the useful maximum)"
            )
        out["workers"] = workers
    out.update(_ray_settings(value, name))
    return out


def _field_types(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except Exception:  # an annotation that does not resolve: leave the checks to the class
        return {}


_SCALARS: dict[Any, tuple[str, tuple[type, ...], str]] = {
    bool: ("true or false", (bool,), "true/false values"),
    int: ("an int", (int,), "ints"),
    float: ("a number", (int, float), "numbers"),
    str: ("a string", (str,), "names"),
}


def _check_field(key: str, hint: Any, value: Any) -> None:
    """Refuse a value of the wrong type for a section field annotated ``hint``.

    Scalars (bool, int, float, str, each optionally ``| None``) are checked exactly; tuple fields
    may be given as one scalar or a list of scalars (the section converts them), never nested.
    """
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        if value is None and len(options) < len(args):
            return
        if len(options) != 1:
            return
        hint = options[0]
        origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint in _SCALARS:
        what, kinds, _ = _SCALARS[hint]
        ok = isinstance(value, kinds) and (hint is bool or not isinstance(value, bool))
        if ok and isinstance(value, float) and not math.isfinite(value):
            ok = False
        if not ok:
            raise InputError(f"config key '{key}' must be {what}, got {short_repr(value)}")
    elif origin is tuple and args:
        elem = args[0]
        items = value if isinstance(value, (list, tuple)) else [value]
        if not items or (isinstance(value, str) and not value.strip(" ,")):
            raise InputError(
                f"config key '{key}' is empty; list at least one value, or leave the key out "
                "for the default"
            )
        for item in items:
            if isinstance(item, (list, tuple, dict, set)) or (
                elem in _SCALARS and not isinstance(item, (str, int, float))
            ):
                plural = _SCALARS[elem][2] if elem in _SCALARS else "plain values"
                raise InputError(
                    f"config key '{key}' must be a list of {plural}, got {short_repr(value)}"
                )


def _culprit(cls: type, name: str, given: Mapping[str, Any]) -> str:
    """Which key of a section the section class refuses (tried one at a time)."""
    for key, value in given.items():
        try:
            cls(**{key: value})
        except (TypeError, ValueError):
            return f"key '{name}.{key}'"
    return f"section '{name}'"


def _section(name: str, value: Any) -> Any:
    cls = SUITES.get(name).config_class
    if isinstance(value, cls):
        return value
    if value is None:
        return cls()
    if not isinstance(value, Mapping):
        raise InputError(
            f"config section '{name}' must be a mapping of its settings, got {short_repr(value)}"
        )
    known = {f.name for f in dataclasses.fields(cls)}
    hints = _field_types(cls)
    clean = {}
    for key, v in value.items():
        k = str(key).replace("-", "_")
        if k not in known:
            listed = ", ".join(sorted(known)) or "none"
            raise InputError(
                f"unknown key '{name}.{short_repr(key) if not isinstance(key, str) else key}'"
                f"{suggest(k, sorted(known))} (known: {listed})"
            )
        if k in hints:
            _check_field(f"{name}.{k}", hints[k], v)
        clean[k] = tuple(v) if isinstance(v, list) else v
    try:
        return cls(**clean)
    except InputError as err:
        if name in str(err):
            raise
        raise InputError(f"config {_culprit(cls, name, clean)}: {err}") from err
    except (TypeError, ValueError) as err:
        raise InputError(f"invalid config section '{name}': {err}") from err


@dataclass(frozen=True)
class AuditConfig:
    """Everything that defines an audit (see the module docstring for the two kinds).

    Attributes:
        model: the model spec (``zoo:NAME``, a file, ``file.py:factory``) or a name for a model
            object passed directly.
        data: the dataset spec (``fashion-mnist``, ``npz:F``, ...).
        split: the evaluated split.
        suites: suites to run (None: the default suites).
        ood_data: OOD set specs (dataset specs, or ``derived:NAME``); empty: the derived sets.
        fit_data: dataset spec of the data temperature and Mahalanobis are fitted on (None: the
            train split of ``data``); never the evaluated images.
        limit: evaluate only the first ``limit`` images.
        strength: ``fast`` (min-norm curve tightened by APGD on a subset) or ``full`` (the
            default ensemble on every attacked image).
        seed: the global seed; every unit's seeds are derived from it.
        eps: extra eps per norm added to the grid (includes those of ``check`` thresholds).
        check: CI thresholds as for ``robustcv check`` (their eps join the grid).
        batch_size: images per forward pass.
        shard_size: images per unit of work for the big suites.
        device: where the model runs (None: CPU / the model's device).
        executor: how units run: ``{"name": "in-process"}``, ``{"name": "processes",
            "workers": N}`` or ``{"name": "ray", "address": ..., "workers": N,
            "cpus_per_worker": C, "gpus_per_worker": G, "max_retries": R}`` (every key but
            the name optional; see docs/scale-out.md). Recorded, never part of the fingerprint.
        sections: suite name -> its config section (also reachable as ``cfg.<name>``).

    Example:
        >>> cfg = AuditConfig.from_dict({"model": "zoo:fmnist-cnn", "data": "fashion-mnist",
        ...                              "adversarial": {"n": 200}, "eps": "linf:0.1"})
        >>> cfg.adversarial.n, cfg.eps, cfg.strength
        (200, {'linf': (0.1,)}, 'fast')
    """

    model: str
    data: str
    split: str = "test"
    suites: tuple[str, ...] | None = None
    ood_data: tuple[str, ...] = ()
    fit_data: str | None = None
    limit: int | None = None
    strength: str = "fast"
    seed: int = 0
    eps: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    check: Mapping[str, Any] = field(default_factory=dict)
    batch_size: int = 256
    shard_size: int = 2000
    device: str | None = None
    executor: Mapping[str, Any] = field(default_factory=dict)
    sections: Mapping[str, Any] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "sections":
            raise AttributeError(name)
        sections = self.__dict__.get("sections", {})
        if name in sections:
            return sections[name]
        raise AttributeError(f"AuditConfig has no setting or suite section '{name}'")

    def __post_init__(self) -> None:
        for name in ("model", "data", "split"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name).strip():
                raise InputError(f"{name} must be a non-empty string, got {getattr(self, name)!r}")
        strength = self.strength if self.strength in STRENGTHS else "fast"  # checked below
        suites = default_suites(strength) if self.suites is None else parse_suites(self.suites)
        object.__setattr__(self, "suites", suites)
        object.__setattr__(self, "ood_data", str_tuple(self.ood_data, "ood_data"))
        if self.fit_data is not None and (not isinstance(self.fit_data, str) or not self.fit_data):
            raise InputError(f"fit_data must be a dataset spec or None, got {self.fit_data!r}")
        positive_int(self.limit, "limit", allow_none=True)
        if self.strength not in STRENGTHS:
            raise InputError(
                f"unknown strength '{self.strength}'{suggest(str(self.strength), STRENGTHS)}; "
                "use fast or full"
            )
        if (
            isinstance(self.seed, bool)
            or not isinstance(self.seed, int)
            or not 0 <= self.seed < _MAX_INT
        ):
            raise InputError(f"seed must be an int in [0, 2**63), got {short_repr(self.seed)}")
        if not isinstance(self.check, Mapping):
            raise InputError("check must be a mapping of thresholds, e.g. {min_acc: 0.9}")
        eps = parse_eps(dict(self.eps) if isinstance(self.eps, Mapping) else self.eps)
        from robustcv.audit.checks import required_eps

        try:
            needed = required_eps(self.check)
        except InputError as err:
            raise InputError(f"check: {err}") from err
        for norm, values in needed.items():
            key = _canonical_norm(norm)
            eps[key] = tuple(sorted(set(eps.get(key, ())) | set(values)))
        object.__setattr__(self, "eps", {n: eps[n] for n in NORMS if n in eps})
        positive_int(self.batch_size, "batch_size")
        positive_int(self.shard_size, "shard_size")
        if self.device is not None and (
            not isinstance(self.device, str) or not self.device.strip()
        ):
            raise InputError(
                f"device must be a string such as 'cpu', got {short_repr(self.device)}"
            )
        executor: Any = self.executor
        if isinstance(executor, Mapping) and not executor:
            executor = None  # the default (an empty mapping): in-process
        object.__setattr__(self, "executor", _executor(executor))
        if not isinstance(self.sections, Mapping):
            raise InputError("sections must map suite names to their settings")
        given = dict(self.sections)
        unknown = [k for k in given if k not in SUITES]
        if unknown:
            raise InputError(
                f"unknown suite section(s) {short_repr(unknown)}; registered suites: "
                f"{', '.join(SUITES.names())}"
            )
        sections = {s.name: _section(s.name, given.get(s.name)) for s in ordered_suites()}
        object.__setattr__(self, "sections", sections)

    # -------------------------------------------------------------- construction
    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> AuditConfig:
        """Build a config from a plain mapping (a parsed YAML/JSON file); unknown keys raise."""
        if not isinstance(raw, Mapping):
            raise InputError(f"an audit config must be a mapping, got {type(raw).__name__}")
        check_size(raw)
        known = [*_TOP_LEVEL, *SUITES.names()]
        kwargs: dict[str, Any] = {}
        sections: dict[str, Any] = {}
        for key, value in raw.items():
            if not isinstance(key, str):
                raise InputError(
                    f"audit config key {short_repr(key)} is not a name; keys are settings such as "
                    "limit or suite sections such as adversarial"
                )
            name = str(key).replace("-", "_")
            if str(key) in SUITES and str(key) not in _TOP_LEVEL:
                sections[SUITES.canonical(str(key))] = _section(str(key), value)
            elif name in SUITES and name not in _TOP_LEVEL:
                sections[name] = _section(name, value)
            elif name in _TOP_LEVEL:
                kwargs[name] = value
            else:
                raise InputError(
                    f"unknown audit config key '{key}'{suggest(name, known)} "
                    f"(known: {', '.join(sorted(known))})"
                )
        for required in ("model", "data"):
            if required not in kwargs:
                raise InputError(
                    f"the audit config has no '{required}'; give --{required} or set it in the "
                    "config file"
                )
        for name in ("suites", "ood_data"):
            if name in kwargs and isinstance(kwargs[name], list):
                kwargs[name] = tuple(kwargs[name])
        for name in ("suites", "ood_data", "strength", "fit_data", "device", "split"):
            _check_names(name, kwargs.get(name))
        try:
            return cls(**kwargs, sections=sections)
        except InputError:
            raise
        except (TypeError, ValueError) as err:  # a wrong type reached a dataclass
            raise InputError(f"invalid audit config: {err}") from err

    def to_dict(self) -> dict[str, Any]:
        """The config as plain JSON-friendly data (what results.json records).

        Sections appear as top-level keys named after their suite.
        """
        out: dict[str, Any] = {k: getattr(self, k) for k in _TOP_LEVEL}
        out["eps"] = {k: list(v) for k, v in self.eps.items()}
        out["check"] = dict(self.check)
        out["executor"] = dict(self.executor)
        for name, section in self.sections.items():
            out[name] = dataclasses.asdict(section)
        return _lists(out)

    def running(self) -> list[str]:
        """Names of the suites this audit runs (selected ones plus those that always run)."""
        chosen = self.suites or ()
        return [s.name for s in ordered_suites() if s.name in chosen or not s.selectable]

    def work_dict(self) -> dict[str, Any]:
        """The work settings (what the fingerprint hashes).

        :meth:`to_dict` without aggregation-only settings and without the sections of suites
        that do not run.
        """
        out = self.to_dict()
        for key in AGGREGATION_ONLY:
            out.pop(key, None)
        running = set(self.running())
        for suite in ordered_suites():
            if suite.name not in running:
                out.pop(suite.name, None)
                continue
            for key in suite.aggregation_only:
                out[suite.name].pop(key, None)
        return out

    def replace(self, **changes: Any) -> AuditConfig:
        """A copy with some settings changed (sections may be given as dicts by suite name)."""
        sections = dict(self.sections)
        top = {}
        for k, v in changes.items():
            if k in SUITES and k not in _TOP_LEVEL:
                sections[k] = _section(k, v)
            else:
                top[k] = v
        return dataclasses.replace(self, **top, sections=sections)


def _check_names(key: str, value: Any) -> None:
    """Top-level settings that hold names: a string, or (suites, ood_data) a list of strings."""
    if value is None or isinstance(value, str):
        return
    if key in ("suites", "ood_data") and isinstance(value, (list, tuple)):
        bad = [v for v in value if not isinstance(v, str)]
        if not bad:
            return
    raise InputError(
        f"config key '{key}' must be "
        + ("a name or a list of names" if key in ("suites", "ood_data") else "a string")
        + f", got {short_repr(value)}"
    )


def _lists(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _lists(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_lists(v) for v in value]
    return value


def load_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read an audit config file: YAML (``.yaml``/``.yml``) or JSON.

    Raises:
        InputError: missing, unreadable or binary file, a parse error, a file that does not hold
            a mapping, or one too large or nested too deeply (a YAML bomb).

    Example:
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "audit.json")
        >>> _ = open(p, "w").write('{"limit": 100, "adversarial": {"n": 50}}')
        >>> load_config_file(p)
        {'limit': 100, 'adversarial': {'n': 50}}
    """
    if not isinstance(path, (str, os.PathLike)):
        raise InputError(
            f"a config file must be a path (audit.yaml or audit.json), got {short_repr(path)}"
        )
    if not str(os.fspath(path)).strip():
        raise InputError("the config file path is empty; give --config audit.yaml or audit.json")
    if "\x00" in str(os.fspath(path)):
        raise InputError(f"config file path {short_repr(path)} holds a NUL byte; give a plain path")
    file = Path(path).expanduser()
    if file.is_dir():
        raise InputError(f"config file {file} is a folder; give a .yaml, .yml or .json file")
    if not file.is_file():
        raise InputError(f"config file {file} does not exist; check the --config path")
    try:
        if file.stat().st_size > 1_000_000:
            raise InputError(
                f"config file {file} is {file.stat().st_size} bytes; an audit config is a few "
                "hundred bytes - is it the right file?"
            )
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise InputError(
            f"config file {file} is not UTF-8 text ({err.reason} at byte {err.start}); give a "
            "YAML or JSON file"
        ) from err
    except OSError as err:
        raise InputError(
            f"cannot read config file {file}: {err.strerror or err}; check its permissions"
        ) from err
    if "\x00" in text:
        raise InputError(
            f"config file {file} holds NUL bytes (binary data); give a YAML or JSON file"
        )
    if file.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError as err:
            raise InputError(
                f"reading {file} needs PyYAML (pip install pyyaml), or write the config as JSON"
            ) from err
        try:
            data = yaml.load(text, Loader=_unique_key_loader())
        except (yaml.YAMLError, ValueError, RecursionError, OverflowError) as err:
            raise InputError(f"cannot parse {file} as YAML: {_parse_error(err)}") from err
    else:
        try:
            data = json.loads(text, object_pairs_hook=_unique_keys)
        except (ValueError, RecursionError) as err:  # JSONDecodeError is a ValueError
            hint = " (YAML needs a .yaml or .yml suffix)" if file.suffix.lower() != ".json" else ""
            raise InputError(f"cannot parse {file} as JSON: {_parse_error(err)}{hint}") from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError(
            f"{file} must hold a mapping of settings (e.g. 'limit: 100'), got {type(data).__name__}"
        )
    check_size(data, f"config file {file}")
    return data


def _parse_error(err: BaseException) -> str:
    """A parser's error on one short line (also for the errors Python raises, not the parser)."""
    if isinstance(err, RecursionError):
        return "it is nested too deeply (an audit config has two or three levels)"
    if "integer string conversion" in str(err):
        return "it holds a number with thousands of digits (use values below 2**63)"
    if isinstance(err, _DuplicateKey):
        return str(err)
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= 300 else text[:300] + "..."


class _DuplicateKey(ValueError):
    """A key given twice in one mapping of a config file (the first value would be lost)."""


def _unique_keys(pairs: list[tuple[Any, Any]]) -> dict[Any, Any]:
    """``json.loads`` hook: a key given twice is an error, not 'the last one wins'."""
    out: dict[Any, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(f"the key '{key}' is given twice; keep one")
        out[key] = value
    return out


def _unique_key_loader() -> Any:
    """A ``yaml.SafeLoader`` subclass that refuses a key given twice in one mapping."""
    import yaml

    class UniqueKeyLoader(yaml.SafeLoader):
        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=deep)
                try:
                    duplicate = key in seen
                    seen.add(key)
                except TypeError:  # an unhashable key: SafeLoader reports it
                    continue
                if duplicate:
                    raise _DuplicateKey(
                        f"the key '{key}' is given twice (line {key_node.start_mark.line + 1}); "
                        "keep one"
                    )
            return super().construct_mapping(node, deep=deep)

    return UniqueKeyLoader
