"""The audit's suites; each plans units, runs one unit, and aggregates stored rows."""

from typing import Any

from robustcv.audit.suites.adversarial import AdversarialSuite
from robustcv.audit.suites.calibration import CalibrationSuite
from robustcv.audit.suites.clean import CleanSuite
from robustcv.audit.suites.corruption import CorruptionSuite
from robustcv.audit.suites.examples import ExamplesSuite
from robustcv.audit.suites.ood import OODSuite

__all__ = [
    "SUITE_CLASSES",
    "AdversarialSuite",
    "CalibrationSuite",
    "CleanSuite",
    "CorruptionSuite",
    "ExamplesSuite",
    "OODSuite",
]

SUITE_CLASSES: dict[str, Any] = {
    "clean": CleanSuite,
    "corruption": CorruptionSuite,
    "adversarial": AdversarialSuite,
    "calibration": CalibrationSuite,
    "ood": OODSuite,
    "examples": ExamplesSuite,
}
"""Suite name -> class, in the order suites run (``examples`` last, after the others)."""
