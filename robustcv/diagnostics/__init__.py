"""Diagnostics: accuracy today; calibration and OOD scores as pure functions later."""

from robustcv.diagnostics.accuracy import AccuracyResult, accuracy

__all__ = ["AccuracyResult", "accuracy"]
