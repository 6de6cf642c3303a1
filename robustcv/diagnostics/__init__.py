"""Diagnostics as pure functions: accuracy, calibration (ECE, temperature scaling), OOD scores.

``robustcv.diagnostics.accuracy`` and ``robustcv.diagnostics.calibration`` are the modules; the
functions are ``robustcv.accuracy`` (also ``robustcv.diagnostics.accuracy.accuracy``) and
``robustcv.diagnostics.calibration.calibration``.
"""

from __future__ import annotations

import types
import warnings
from typing import Any

from robustcv.diagnostics import accuracy, calibration
from robustcv.diagnostics.accuracy import AccuracyResult
from robustcv.diagnostics.calibration import (
    CalibrationResult,
    ReliabilityTable,
    TemperatureScaler,
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

_REPLACEMENT = {
    "accuracy": "robustcv.accuracy (or robustcv.diagnostics.accuracy.accuracy)",
    "calibration": "robustcv.diagnostics.calibration.calibration",
}


class _CallableModule(types.ModuleType):
    """A module that still runs, with a warning, when called like the function it once hid.

    Until 0.5 ``robustcv.diagnostics.accuracy`` was the function; calling the module keeps old
    code working for one release.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        short = self.__name__.rsplit(".", 1)[1]
        warnings.warn(
            f"calling the module {self.__name__} is deprecated: use {_REPLACEMENT[short]}, "
            "removed in 0.6",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(self, short)(*args, **kwargs)


for _module in (accuracy, calibration):
    _module.__class__ = _CallableModule
