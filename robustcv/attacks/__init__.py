"""Adversarial attacks: threat models, clipping-aware rescaling, attacks and the runner.

``robustcv.attacks.attack(model, x, y, name, eps=..., norm=...)`` runs any registered attack
(``ATTACKS``) and returns a checked :class:`AttackResult`.
"""

from robustcv.attacks import apgd as _apgd  # noqa: F401  (registers apgd-ce, apgd-dlr, apgd-t)
from robustcv.attacks import bb as _bb  # noqa: F401  (registers bb)
from robustcv.attacks import cw as _cw  # noqa: F401  (registers cw)
from robustcv.attacks import ddn as _ddn  # noqa: F401  (registers ddn)
from robustcv.attacks import deepfool as _deepfool  # noqa: F401  (registers deepfool)
from robustcv.attacks import fmn as _fmn  # noqa: F401  (registers fmn)
from robustcv.attacks import gradient as _gradient  # noqa: F401  (registers fgsm, pgd)
from robustcv.attacks import hsj as _hsj  # noqa: F401  (registers hsj)
from robustcv.attacks import noise as _noise  # noqa: F401  (registers noise baselines)
from robustcv.attacks import square as _square  # noqa: F401  (registers square)
from robustcv.attacks.base import (
    ATTACKS,
    AttackContext,
    AttackResult,
    AttackSpec,
    attack,
    perturb,
)
from robustcv.attacks.ensemble import DEFAULT_ENSEMBLE, RobustAccuracyResult, robust_accuracy
from robustcv.attacks.rescale import clipping_aware_rescale, rescale_to_norm
from robustcv.attacks.threat import L0, L1, L2, Linf, ThreatModel, get_threat

__all__ = [
    "ATTACKS",
    "DEFAULT_ENSEMBLE",
    "L0",
    "L1",
    "L2",
    "AttackContext",
    "AttackResult",
    "AttackSpec",
    "Linf",
    "RobustAccuracyResult",
    "ThreatModel",
    "attack",
    "clipping_aware_rescale",
    "get_threat",
    "perturb",
    "rescale_to_norm",
    "robust_accuracy",
]
