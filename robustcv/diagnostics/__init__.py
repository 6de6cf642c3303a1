"""Diagnostics as pure functions: accuracy, calibration (ECE, temperature scaling), OOD scores."""

from robustcv.diagnostics.accuracy import AccuracyResult, accuracy
from robustcv.diagnostics.calibration import (
    CalibrationResult,
    ReliabilityTable,
    TemperatureScaler,
    calibration,
    fit_temperature,
)
from robustcv.diagnostics.ood import (
    DEFAULT_DERIVED_OOD,
    DERIVED_OOD_SETS,
    OOD_SCORES,
    MahalanobisDetector,
    OODMetrics,
    OODScoreSpec,
    derived_ood_sets,
    energy,
    max_logit,
    msp,
    odin,
    ood_metrics,
)

__all__ = [
    "DEFAULT_DERIVED_OOD",
    "DERIVED_OOD_SETS",
    "OOD_SCORES",
    "AccuracyResult",
    "CalibrationResult",
    "MahalanobisDetector",
    "OODMetrics",
    "OODScoreSpec",
    "ReliabilityTable",
    "TemperatureScaler",
    "accuracy",
    "calibration",
    "derived_ood_sets",
    "energy",
    "fit_temperature",
    "max_logit",
    "msp",
    "odin",
    "ood_metrics",
]
