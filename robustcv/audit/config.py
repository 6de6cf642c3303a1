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
import os
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
    "STRENGTHS",
    "AuditConfig",
    "load_config_file",
    "parse_eps",
    "parse_suites",
]

STRENGTHS: tuple[str, ...] = ("fast", "full")

EXECUTORS: tuple[str, ...] = ("in-process", "processes")
"""Executor names ``config.executor.name`` accepts."""

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
            key = _canonical_norm(str(norm))
            out.setdefault(key, []).extend(float_tuple(vals, f"eps[{norm}]"))
    elif isinstance(value, str):
        current: str | None = None
        for item in (p.strip() for p in value.split(",")):
            if not item:
                continue
            if ":" in item:
                head, _, item = item.partition(":")
                current = _canonical_norm(head)
            if current is None:
                raise InputError(f"--eps '{value}': name the norm first, e.g. linf:0.1,l2:0.5")
            try:
                v = float(item)
            except ValueError as err:
                raise InputError(f"--eps '{value}': '{item}' is not a number") from err
            out.setdefault(current, []).extend(float_tuple(v, "--eps"))
    else:
        raise InputError(f"eps must be a string like 'linf:0.1,l2:0.5' or a dict, got {value!r}")
    return {k: tuple(sorted(set(v))) for k, v in out.items()}


def _executor(value: Any) -> dict[str, Any]:
    if value is None:
        return {"name": "in-process"}
    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, Mapping):
        raise InputError(f"executor must be a name or a mapping {{name, workers}}, got {value!r}")
    unknown = set(value) - {"name", "workers"}
    if unknown:
        raise InputError(f"unknown executor setting(s) {sorted(unknown)}; known: name, workers")
    name = str(value.get("name", "in-process")).strip().lower().replace("_", "-")
    if name == "inprocess":
        name = "in-process"
    if name not in EXECUTORS:
        raise InputError(
            f"unknown executor '{value.get('name')}'{suggest(name, EXECUTORS)}; use one of "
            f"{', '.join(EXECUTORS)}"
        )
    out: dict[str, Any] = {"name": name}
    if value.get("workers") is not None:
        out["workers"] = positive_int(value["workers"], "executor.workers")
    return out


def _section(name: str, value: Any) -> Any:
    cls = SUITES.get(name).config_class
    if isinstance(value, cls):
        return value
    if value is None:
        return cls()
    if not isinstance(value, Mapping):
        raise InputError(f"config section '{name}' must be a mapping, got {value!r}")
    known = {f.name for f in dataclasses.fields(cls)}
    clean = {}
    for key, v in value.items():
        k = str(key).replace("-", "_")
        if k not in known:
            listed = ", ".join(sorted(known)) or "none"
            raise InputError(
                f"unknown key '{name}.{key}'{suggest(k, sorted(known))} (known: {listed})"
            )
        clean[k] = tuple(v) if isinstance(v, list) else v
    try:
        return cls(**clean)
    except TypeError as err:
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
        executor: how units run: ``{"name": "in-process"}`` or ``{"name": "processes",
            "workers": N}`` (recorded, never part of the fingerprint).
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
        suites = default_suites() if self.suites is None else parse_suites(self.suites)
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
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise InputError(f"seed must be an int >= 0, got {self.seed!r}")
        if not isinstance(self.check, Mapping):
            raise InputError("check must be a mapping of thresholds, e.g. {min_acc: 0.9}")
        eps = parse_eps(dict(self.eps)) if not isinstance(self.eps, str) else parse_eps(self.eps)
        from robustcv.audit.checks import required_eps

        for norm, values in required_eps(self.check).items():
            key = _canonical_norm(norm)
            eps[key] = tuple(sorted(set(eps.get(key, ())) | set(values)))
        object.__setattr__(self, "eps", {n: eps[n] for n in NORMS if n in eps})
        positive_int(self.batch_size, "batch_size")
        positive_int(self.shard_size, "shard_size")
        if self.device is not None and not isinstance(self.device, str):
            raise InputError(f"device must be a string such as 'cpu', got {self.device!r}")
        object.__setattr__(self, "executor", _executor(self.executor or None))
        if not isinstance(self.sections, Mapping):
            raise InputError("sections must map suite names to their settings")
        given = dict(self.sections)
        unknown = [k for k in given if k not in SUITES]
        if unknown:
            raise InputError(
                f"unknown suite section(s) {unknown}; registered suites: "
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
        known = [*_TOP_LEVEL, *SUITES.names()]
        kwargs: dict[str, Any] = {}
        sections: dict[str, Any] = {}
        for key, value in raw.items():
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
        try:
            return cls(**kwargs, sections=sections)
        except TypeError as err:  # a wrong type reached a dataclass
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


def _lists(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _lists(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_lists(v) for v in value]
    return value


def load_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read an audit config file: YAML (``.yaml``/``.yml``) or JSON.

    Raises:
        InputError: missing file, a parse error, or a file that does not hold a mapping.

    Example:
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "audit.json")
        >>> _ = open(p, "w").write('{"limit": 100, "adversarial": {"n": 50}}')
        >>> load_config_file(p)
        {'limit': 100, 'adversarial': {'n': 50}}
    """
    file = Path(path).expanduser()
    if not file.is_file():
        raise InputError(f"config file {file} does not exist")
    text = file.read_text(encoding="utf-8")
    if file.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise InputError(f"cannot parse {file}: {err}") from err
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            hint = " (YAML needs a .yaml or .yml suffix)" if file.suffix.lower() != ".json" else ""
            raise InputError(f"cannot parse {file} as JSON: {err}{hint}") from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError(f"{file} must hold a mapping of settings, got {type(data).__name__}")
    return data
