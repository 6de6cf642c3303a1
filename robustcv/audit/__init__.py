"""The audit: one call (or ``robustcv audit``) runs every suite and writes ``results.json``.

``run_audit(model, data, out_dir, ...)`` (alias ``audit``) expands a config into independent
units of work, runs the ones ``DIR/audit.sqlite`` does not hold yet, aggregates each suite from
the stored rows and writes ``DIR/results.json`` (layout: ``docs/results-schema.md``,
version :data:`SCHEMA_VERSION`).
"""

from robustcv.audit.config import (
    SUITES,
    AdversarialConfig,
    AuditConfig,
    CalibrationConfig,
    CleanConfig,
    CorruptionConfig,
    ExamplesConfig,
    OODConfig,
    load_config_file,
    parse_eps,
)
from robustcv.audit.engine import THROTTLE_ENV, audit, resolve_config, run_audit
from robustcv.audit.executor import Executor, InProcessExecutor
from robustcv.audit.plan import AuditContext, Suite, Unit
from robustcv.audit.results import AuditResults
from robustcv.audit.schema import SCHEMA_VERSION, read_results
from robustcv.audit.store import Store

__all__ = [
    "SCHEMA_VERSION",
    "SUITES",
    "THROTTLE_ENV",
    "AdversarialConfig",
    "AuditConfig",
    "AuditContext",
    "AuditResults",
    "CalibrationConfig",
    "CleanConfig",
    "CorruptionConfig",
    "ExamplesConfig",
    "Executor",
    "InProcessExecutor",
    "OODConfig",
    "Store",
    "Suite",
    "Unit",
    "audit",
    "load_config_file",
    "parse_eps",
    "read_results",
    "resolve_config",
    "run_audit",
]
