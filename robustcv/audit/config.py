"""Audit configuration: frozen dataclasses, parsing from YAML/JSON files and CLI strings.

One :class:`AuditConfig` describes an audit completely. Settings come, in increasing priority,
from the defaults below, a config file (``--config audit.yaml`` / ``.json``) and explicit
arguments (CLI flags or :func:`robustcv.audit.run_audit` keywords).

Settings are of two kinds. *Work* settings decide what the units compute (model, data, sizes,
seeds, eps, attack budgets); they enter the fingerprint that guards an audit folder.
*Aggregation* settings (:data:`AGGREGATION_ONLY`: the mCE baseline, the number of calibration
bins) only change how stored rows are summarised, so they can be changed on a re-run without
recomputing anything.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from robustcv.core.errors import InputError

__all__ = [
    "AGGREGATION_ONLY",
    "STRENGTHS",
    "SUITES",
    "AdversarialConfig",
    "AuditConfig",
    "CalibrationConfig",
    "CleanConfig",
    "CorruptionConfig",
    "ExamplesConfig",
    "OODConfig",
    "load_config_file",
    "parse_eps",
    "parse_suites",
]

SUITES: tuple[str, ...] = ("clean", "corruption", "adversarial", "calibration", "ood")
"""The audit's suites, in the order they run (example images are made after them)."""

STRENGTHS: tuple[str, ...] = ("fast", "full")

NORMS: tuple[str, ...] = ("linf", "l2")

AGGREGATION_ONLY: tuple[str, ...] = (
    "corruption.baseline",
    "calibration.n_bins",
    "batch_size",
    "device",
    "check",
)
"""Settings left out of the fingerprint: changing them on a re-run only re-aggregates."""


def _suggest(name: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=2, cutoff=0.5)
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def _positive_int(value: Any, name: str, *, allow_none: bool = False, minimum: int = 1) -> Any:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        none = " or null (all)" if allow_none else ""
        raise InputError(f"{name} must be an int >= {minimum}{none}, got {value!r}")
    return value


def _str_tuple(value: Any, name: str) -> tuple[str, ...]:
    if isinstance(value, str):
        items = [v.strip() for v in value.split(",") if v.strip()]
    elif isinstance(value, Sequence):
        items = list(value)
    else:
        raise InputError(f"{name} must be a list of names or a comma-separated string")
    if not all(isinstance(v, str) and v.strip() for v in items):
        raise InputError(f"{name} must hold non-empty strings, got {value!r}")
    return tuple(v.strip() for v in items)


def _float_tuple(value: Any, name: str, *, positive: bool = True) -> tuple[float, ...]:
    items = [value] if isinstance(value, (int, float)) else value
    if isinstance(items, str) or not isinstance(items, Sequence) or not items:
        raise InputError(f"{name} must be a non-empty list of numbers, got {value!r}")
    out = []
    for v in items:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise InputError(f"{name} must hold finite numbers, got {v!r}")
        if positive and v <= 0:
            raise InputError(f"{name} must hold numbers > 0, got {v!r}")
        out.append(float(v))
    return tuple(out)


def _int_tuple(value: Any, name: str) -> tuple[int, ...]:
    items = [value] if isinstance(value, int) else value
    if isinstance(items, str) or not isinstance(items, Sequence) or not items:
        raise InputError(f"{name} must be a non-empty list of ints, got {value!r}")
    for v in items:
        _positive_int(v, name)
    if len(set(items)) != len(items):
        raise InputError(f"{name} lists a value twice: {list(items)}")
    return tuple(int(v) for v in items)


# ---------------------------------------------------------------------------- suite configs
@dataclass(frozen=True)
class CleanConfig:
    """Clean accuracy.

    Attributes:
        n: images evaluated (None: every evaluated image).
    """

    n: int | None = None

    def __post_init__(self) -> None:
        _positive_int(self.n, "clean.n", allow_none=True)


@dataclass(frozen=True)
class CorruptionConfig:
    """Accuracy under common corruptions.

    Attributes:
        n: images corrupted per (corruption, severity) (None: all).
        corruptions: ``"benchmark"`` (ImageNet-C's 15), ``"all"`` (19), or names.
        severities: severities per corruption.
        spec: corruption parameter spec (``auto``, ``imagenet-c``, ``cifar-10-c``).
        baseline: an earlier audit folder (or its results.json) whose corruption table is the
            mCE baseline (aggregation only), or ``"alexnet"`` (ImageNet-C's published errors).
    """

    n: int | None = 1000
    corruptions: tuple[str, ...] = ("benchmark",)
    severities: tuple[int, ...] = (1, 2, 3, 4, 5)
    spec: str = "auto"
    baseline: str | None = None

    def __post_init__(self) -> None:
        _positive_int(self.n, "corruption.n", allow_none=True)
        object.__setattr__(self, "corruptions", _str_tuple(self.corruptions, "corruptions"))
        object.__setattr__(self, "severities", _int_tuple(self.severities, "corruption.severities"))
        if self.baseline is not None and not isinstance(self.baseline, str):
            raise InputError("corruption.baseline must be an audit folder path or 'alexnet'")


@dataclass(frozen=True)
class AdversarialConfig:
    """Robust accuracy under L-inf and L2 attacks.

    Attributes:
        norms: threat models.
        n: images of the pilot minimum-norm run (and of the whole ensemble at ``full``).
        subset: images the pilot curve is tightened on with APGD-CE and APGD-T (``fast``).
        factors: the eps grid is these factors times the pilot's median minimal perturbation.
        pilot_steps: FMN steps of the pilot.
        apgd_steps: APGD-CE / APGD-T steps (``fast``).
        apgd_targets: APGD-T target classes (``fast``).
        sanity: run the gradient-masking sanity checks.
        sanity_subset: images the sanity checks use.
        gradient_free_n: images attacked when the model is gradient-free (score/decision
            attacks are query-hungry).
        hsj_queries: query budget per image of the HopSkipJump pilot (gradient-free models).
        square_queries: Square attack queries per image (gradient-free models, ``fast``).
    """

    norms: tuple[str, ...] = NORMS
    n: int = 500
    subset: int = 100
    factors: tuple[float, ...] = (0.25, 0.5, 1.0, 1.5, 2.0)
    pilot_steps: int = 50
    apgd_steps: int = 25
    apgd_targets: int = 3
    sanity: bool = True
    sanity_subset: int = 50
    gradient_free_n: int = 100
    hsj_queries: int = 2000
    square_queries: int = 1000

    def __post_init__(self) -> None:
        norms = _str_tuple(self.norms, "adversarial.norms")
        bad = [n for n in norms if n not in NORMS]
        if bad or not norms or len(set(norms)) != len(norms):
            raise InputError(
                f"adversarial.norms must be distinct names from {', '.join(NORMS)}, got {norms}"
            )
        object.__setattr__(self, "norms", norms)
        object.__setattr__(self, "factors", _float_tuple(self.factors, "adversarial.factors"))
        for name in (
            "n",
            "subset",
            "pilot_steps",
            "apgd_steps",
            "apgd_targets",
            "sanity_subset",
            "gradient_free_n",
            "hsj_queries",
            "square_queries",
        ):
            _positive_int(getattr(self, name), f"adversarial.{name}")
        if not isinstance(self.sanity, bool):
            raise InputError(f"adversarial.sanity must be true or false, got {self.sanity!r}")


@dataclass(frozen=True)
class CalibrationConfig:
    """Calibration before/after temperature scaling and under shift.

    Attributes:
        n: evaluated images (None: all).
        fit_n: images of the fit data the temperature is fitted on.
        n_bins: bins of the ECE and reliability tables (aggregation only).
        shift_corruptions: corruptions pooled per severity for calibration under shift.
        shift_n: images per corruption and severity for calibration under shift.
        shift_severities: severities of the shift curve (severity 0, clean, is always added).
    """

    n: int | None = None
    fit_n: int = 5000
    n_bins: int = 15
    shift_corruptions: tuple[str, ...] = ("gaussian_noise", "defocus_blur", "fog", "contrast")
    shift_n: int = 500
    shift_severities: tuple[int, ...] = (1, 2, 3, 4, 5)

    def __post_init__(self) -> None:
        _positive_int(self.n, "calibration.n", allow_none=True)
        _positive_int(self.fit_n, "calibration.fit_n")
        _positive_int(self.n_bins, "calibration.n_bins")
        _positive_int(self.shift_n, "calibration.shift_n")
        object.__setattr__(
            self, "shift_corruptions", _str_tuple(self.shift_corruptions, "shift_corruptions")
        )
        object.__setattr__(
            self,
            "shift_severities",
            _int_tuple(self.shift_severities, "calibration.shift_severities"),
        )


@dataclass(frozen=True)
class OODConfig:
    """Out-of-distribution detection.

    Attributes:
        n: in-distribution images, and images per OOD set.
        methods: OOD scores (``robustcv.diagnostics.OOD_SCORES``).
        fit_n: fit-data images for scores that need a fit (Mahalanobis).
    """

    n: int = 1000
    methods: tuple[str, ...] = ("msp", "max-logit", "energy", "odin", "mahalanobis")
    fit_n: int = 5000

    def __post_init__(self) -> None:
        _positive_int(self.n, "ood.n")
        _positive_int(self.fit_n, "ood.fit_n")
        object.__setattr__(self, "methods", _str_tuple(self.methods, "ood.methods"))


@dataclass(frozen=True)
class ExamplesConfig:
    """Example images saved for the report.

    Attributes:
        n: images per kind (clean, corrupted, adversarial); 0 saves none.
        corruptions: corruptions cycled over the corrupted examples.
        severity: their severity.
    """

    n: int = 4
    corruptions: tuple[str, ...] = ("gaussian_noise", "fog", "motion_blur", "contrast")
    severity: int = 3

    def __post_init__(self) -> None:
        _positive_int(self.n, "examples.n", minimum=0)
        _positive_int(self.severity, "examples.severity")
        object.__setattr__(self, "corruptions", _str_tuple(self.corruptions, "corruptions"))


_SECTIONS: dict[str, type] = {
    "clean": CleanConfig,
    "corruption": CorruptionConfig,
    "adversarial": AdversarialConfig,
    "calibration": CalibrationConfig,
    "ood": OODConfig,
    "examples": ExamplesConfig,
}


# ---------------------------------------------------------------------------- parsing helpers
def parse_suites(value: str | Sequence[str]) -> tuple[str, ...]:
    """Validate a suite selection (a list or a comma-separated string), in canonical order.

    Example:
        >>> parse_suites("ood,clean")
        ('clean', 'ood')
        >>> parse_suites(["clen"])  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        robustcv.core.errors.InputError: unknown suite 'clen'; did you mean 'clean'? ...
    """
    names = _str_tuple(value, "suites")
    if not names:
        raise InputError(f"suites is empty; choose from {', '.join(SUITES)}")
    out = []
    for raw in names:
        name = raw.lower()
        if name == "all":
            return SUITES
        if name not in SUITES:
            raise InputError(
                f"unknown suite '{raw}'{_suggest(name, SUITES)} (suites: {', '.join(SUITES)})"
            )
        out.append(name)
    return tuple(s for s in SUITES if s in out)


def _canonical_norm(name: str) -> str:
    key = name.strip().lower().replace("-", "")
    key = {"inf": "linf", "linfty": "linf", "l_inf": "linf", "2": "l2"}.get(key, key)
    if key not in NORMS:
        raise InputError(f"unknown norm '{name}'{_suggest(key, NORMS)}; use linf or l2")
    return key


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
            out.setdefault(key, []).extend(_float_tuple(vals, f"eps[{norm}]"))
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
            out.setdefault(current, []).extend(_float_tuple(v, "--eps"))
    else:
        raise InputError(f"eps must be a string like 'linf:0.1,l2:0.5' or a dict, got {value!r}")
    return {k: tuple(sorted(set(v))) for k, v in out.items()}


_THRESHOLD = re.compile(r"^\s*[-+0-9.eE]+\s*@\s*([A-Za-z0-9_-]+)\s*:\s*([-+0-9.eE]+)\s*$")


def _check_eps(check: Mapping[str, Any]) -> dict[str, tuple[float, ...]]:
    """Eps values named by ``min_robust_acc`` thresholds (``"0.5@linf:0.1"``)."""
    out: dict[str, list[float]] = {}
    for key, value in check.items():
        if key.replace("-", "_") != "min_robust_acc":
            continue
        items = [value] if isinstance(value, str) else list(value or [])
        for item in items:
            m = _THRESHOLD.match(str(item))
            if not m:
                raise InputError(
                    f"check.min_robust_acc '{item}' must look like V@NORM:EPS, e.g. 0.5@linf:0.1"
                )
            out.setdefault(_canonical_norm(m.group(1)), []).append(float(m.group(2)))
    return {k: tuple(sorted(set(v))) for k, v in out.items()}


# ---------------------------------------------------------------------------- the config
@dataclass(frozen=True)
class AuditConfig:
    """Everything that defines an audit (see the module docstring for the two kinds).

    Attributes:
        model: the model spec (``zoo:NAME``, a file, ``file.py:factory``) or a name for a model
            object passed directly.
        data: the dataset spec (``fashion-mnist``, ``npz:F``, ...).
        split: the evaluated split.
        suites: suites to run.
        ood_data: OOD set specs (dataset specs, or ``derived:NAME``); empty: the derived sets.
        fit_data: dataset spec of the data temperature and Mahalanobis are fitted on (None: the
            train split of ``data``); never the evaluated images.
        limit: evaluate only the first ``limit`` images.
        strength: ``fast`` (min-norm curve tightened by APGD on a subset) or ``full`` (the
            default ensemble on every attacked image).
        seed: the global seed; every unit's seed is derived from it and the unit's key.
        eps: extra eps per norm added to the grid (includes those of ``check`` thresholds).
        check: CI thresholds as for ``robustcv check`` (their eps join the grid).
        batch_size: images per forward pass.
        shard_size: images per unit of work for the big suites.
        device: where the model runs (None: CPU / the model's device).

    Example:
        >>> cfg = AuditConfig.from_dict({"model": "zoo:fmnist-cnn", "data": "fashion-mnist",
        ...                              "adversarial": {"n": 200}, "eps": "linf:0.1"})
        >>> cfg.adversarial.n, cfg.eps, cfg.strength
        (200, {'linf': (0.1,)}, 'fast')
    """

    model: str
    data: str
    split: str = "test"
    suites: tuple[str, ...] = SUITES
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
    clean: CleanConfig = field(default_factory=CleanConfig)
    corruption: CorruptionConfig = field(default_factory=CorruptionConfig)
    adversarial: AdversarialConfig = field(default_factory=AdversarialConfig)
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
    ood: OODConfig = field(default_factory=OODConfig)
    examples: ExamplesConfig = field(default_factory=ExamplesConfig)

    def __post_init__(self) -> None:
        for name in ("model", "data", "split"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name).strip():
                raise InputError(f"{name} must be a non-empty string, got {getattr(self, name)!r}")
        object.__setattr__(self, "suites", parse_suites(self.suites))
        object.__setattr__(self, "ood_data", _str_tuple(self.ood_data, "ood_data"))
        if self.fit_data is not None and (not isinstance(self.fit_data, str) or not self.fit_data):
            raise InputError(f"fit_data must be a dataset spec or None, got {self.fit_data!r}")
        _positive_int(self.limit, "limit", allow_none=True)
        if self.strength not in STRENGTHS:
            raise InputError(
                f"unknown strength '{self.strength}'{_suggest(str(self.strength), STRENGTHS)}; "
                "use fast or full"
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise InputError(f"seed must be an int >= 0, got {self.seed!r}")
        if not isinstance(self.check, Mapping):
            raise InputError("check must be a mapping of thresholds, e.g. {min_acc: 0.9}")
        eps = parse_eps(dict(self.eps)) if not isinstance(self.eps, str) else parse_eps(self.eps)
        for norm, values in _check_eps(self.check).items():
            eps[norm] = tuple(sorted(set(eps.get(norm, ())) | set(values)))
        extra = [n for n in eps if n not in self.adversarial.norms]
        if extra and "adversarial" in self.suites:
            raise InputError(
                f"eps given for {extra} but adversarial.norms is {list(self.adversarial.norms)}; "
                "add the norm there or drop those eps"
            )
        object.__setattr__(self, "eps", {n: eps[n] for n in NORMS if n in eps})
        _positive_int(self.batch_size, "batch_size")
        _positive_int(self.shard_size, "shard_size")
        if self.device is not None and not isinstance(self.device, str):
            raise InputError(f"device must be a string such as 'cpu', got {self.device!r}")

    # -------------------------------------------------------------- construction
    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> AuditConfig:
        """Build a config from a plain mapping (a parsed YAML/JSON file); unknown keys raise."""
        if not isinstance(raw, Mapping):
            raise InputError(f"an audit config must be a mapping, got {type(raw).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in raw.items():
            name = str(key).replace("-", "_")
            if name not in known:
                raise InputError(
                    f"unknown audit config key '{key}'{_suggest(name, sorted(known))} "
                    f"(known: {', '.join(sorted(known))})"
                )
            if name in _SECTIONS:
                kwargs[name] = _section(name, value)
            else:
                kwargs[name] = value
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
            return cls(**kwargs)
        except TypeError as err:  # a wrong type reached a dataclass
            raise InputError(f"invalid audit config: {err}") from err

    def to_dict(self) -> dict[str, Any]:
        """The config as plain JSON-friendly data (what results.json records)."""
        out = dataclasses.asdict(self)
        out["eps"] = {k: list(v) for k, v in self.eps.items()}
        out["check"] = dict(self.check)
        return _lists(out)

    def work_dict(self) -> dict[str, Any]:
        """The work settings: :meth:`to_dict` without :data:`AGGREGATION_ONLY`."""
        out = self.to_dict()
        for path in AGGREGATION_ONLY:
            head, _, tail = path.partition(".")
            if tail:
                out[head].pop(tail, None)
            else:
                out.pop(head, None)
        return out

    def replace(self, **changes: Any) -> AuditConfig:
        """A copy with some fields changed (sections may be given as dicts)."""
        fixed = {k: _section(k, v) if k in _SECTIONS else v for k, v in changes.items()}
        return dataclasses.replace(self, **fixed)


def _lists(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _lists(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_lists(v) for v in value]
    return value


def _section(name: str, value: Any) -> Any:
    cls = _SECTIONS[name]
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
            raise InputError(
                f"unknown key '{name}.{key}'{_suggest(k, sorted(known))} "
                f"(known: {', '.join(sorted(known))})"
            )
        clean[k] = tuple(v) if isinstance(v, list) else v
    try:
        return cls(**clean)
    except TypeError as err:
        raise InputError(f"invalid config section '{name}': {err}") from err


def load_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read an audit config file: YAML (``.yaml``/``.yml``, needs PyYAML) or JSON.

    Raises:
        InputError: missing file, a YAML file without PyYAML installed, a parse error, or a
            file that does not hold a mapping.

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
        try:
            import yaml
        except ImportError as err:
            raise InputError(
                f"{file} is YAML but PyYAML is not installed; pip install pyyaml, or write the "
                "same settings as JSON (audit.json)"
            ) from err
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
