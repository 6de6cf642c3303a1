"""The audit: a registry of suites run over a plan of independent, resumable units.

``robustcv.run_audit(model, data, out_dir, ...)`` (here :func:`run_audit`) resolves the config,
checks every input, runs the units ``DIR/audit.sqlite`` does not hold yet (in-process or on
worker processes), aggregates each suite from its stored rows and writes ``DIR/results.json``
(layout: ``docs/results-schema.md``, version :data:`SCHEMA_VERSION`).

Suites are plug-ins: :data:`SUITES` lists them (``SUITES.names()``), :func:`register_suite`
adds one (see :class:`Suite` for what a suite owns), and packages can register through the
``robustcv.suites`` entry-point group.

Example:
    >>> from robustcv.audit import SUITES
    >>> SUITES.names()[:5]
    ['clean', 'corruption', 'adversarial', 'calibration', 'ood']
"""

from robustcv.audit.checks import all_checks, parse_threshold, parse_thresholds, required_eps
from robustcv.audit.config import AuditConfig, load_config_file, parse_eps
from robustcv.audit.context import AuditContext, ContextSpec, DataRef, ModelRef, build_context
from robustcv.audit.engine import THROTTLE_ENV, resolve_config, run_audit
from robustcv.audit.executor import Executor, InProcessExecutor, ProcessExecutor, RayExecutor
from robustcv.audit.plan import Unit
from robustcv.audit.registry import (
    SUITES,
    default_suites,
    ordered_suites,
    parse_suites,
    register_suite,
)
from robustcv.audit.results import AuditResults
from robustcv.audit.schema import SCHEMA_VERSION, load_results, read_results
from robustcv.audit.store import Store
from robustcv.audit.suite import CheckSpec, Metric, Needs, Outcome, Suite, Threshold
from robustcv.audit.suites.adversarial import AdversarialConfig
from robustcv.audit.suites.calibration import CalibrationConfig
from robustcv.audit.suites.clean import CleanConfig
from robustcv.audit.suites.corruption import CorruptionConfig
from robustcv.audit.suites.examples import ExamplesConfig
from robustcv.audit.suites.ood import OODConfig
from robustcv.core.deprecation import deprecated_getattr

__all__ = [
    "SCHEMA_VERSION",
    "SUITES",
    "THROTTLE_ENV",
    "AdversarialConfig",
    "AuditConfig",
    "AuditContext",
    "AuditResults",
    "CalibrationConfig",
    "CheckSpec",
    "CleanConfig",
    "ContextSpec",
    "CorruptionConfig",
    "DataRef",
    "ExamplesConfig",
    "Executor",
    "InProcessExecutor",
    "Metric",
    "ModelRef",
    "Needs",
    "OODConfig",
    "Outcome",
    "ProcessExecutor",
    "RayExecutor",
    "Store",
    "Suite",
    "Threshold",
    "Unit",
    "all_checks",
    "build_context",
    "default_suites",
    "load_config_file",
    "load_results",
    "ordered_suites",
    "parse_eps",
    "parse_suites",
    "parse_threshold",
    "parse_thresholds",
    "read_results",
    "register_suite",
    "required_eps",
    "resolve_config",
    "run_audit",
]

__getattr__ = deprecated_getattr(__name__, {"audit": "robustcv.audit.engine:run_audit"})
