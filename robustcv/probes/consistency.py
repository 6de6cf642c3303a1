"""Error consistency (Geirhos et al. 2020): do two observers make errors on the same trials?

For two observers with trial-by-trial correctness ``a`` and ``b`` (booleans on the same images),
``c_obs`` is the share of trials where both are right or both are wrong, ``c_exp = p_a * p_b +
(1 - p_a) * (1 - p_b)`` the share expected from their accuracies alone, and **Cohen's kappa**
``kappa = (c_obs - c_exp) / (1 - c_exp)`` (set to 1 when ``c_obs = 1``, as model-vs-human does).
kappa is 0 for independent errors, 1 for identical ones, negative for complementary ones. Its
interval is a percentile bootstrap over trials. Computed per condition (clean, each filter,
each probe); model-vs-human averages over conditions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from robustcv.core.contract import check_count
from robustcv.core.errors import InputError
from robustcv.core.model import Model
from robustcv.core.results import Result
from robustcv.core.seeding import check_seed, derive_seed, make_generator
from robustcv.core.stats import Estimate, bootstrap_indices, percentile_interval
from robustcv.probes.base import as_model, check_inputs, predict
from robustcv.probes.frequency import high_pass, low_pass
from robustcv.probes.locality import patch_shuffle, tile_permutations

__all__ = [
    "ErrorConsistency",
    "ErrorConsistencyResult",
    "cohens_kappa",
    "default_conditions",
    "error_consistency",
    "error_consistency_by_condition",
    "model_error_consistency",
]


def _as_bool(v: Any, name: str) -> torch.Tensor:
    t = torch.as_tensor(v)
    if t.dim() != 1 or t.numel() == 0:
        raise InputError(f"{name} must be a non-empty 1-D vector of per-trial correctness")
    if t.dtype != torch.bool:
        if not bool(((t == 0) | (t == 1)).all()):
            raise InputError(f"{name} must hold booleans or 0/1 values (correct or not per trial)")
        t = t != 0
    return t


def cohens_kappa(correct_a: torch.Tensor, correct_b: torch.Tensor) -> tuple[float, float, float]:
    """``(kappa, c_obs, c_exp)`` of two boolean correctness vectors (definitions: module doc).

    Example:
        >>> a = torch.tensor([True, True, False, False])
        >>> b = torch.tensor([True, False, False, True])
        >>> cohens_kappa(a, b)
        (0.0, 0.5, 0.5)
    """
    a, b = correct_a.double(), correct_b.double()
    c_obs = float((a == b).double().mean())
    pa, pb = float(a.mean()), float(b.mean())
    c_exp = pa * pb + (1 - pa) * (1 - pb)
    if c_obs == 1.0:
        return 1.0, c_obs, c_exp
    return (c_obs - c_exp) / (1 - c_exp), c_obs, c_exp


@dataclass(frozen=True)
class ErrorConsistency(Result):
    """Error consistency of two observers on one condition.

    Attributes:
        kappa: Cohen's kappa with its bootstrap interval.
        observed: ``c_obs``.
        expected: ``c_exp``.
        accuracy_a: accuracy of the first observer.
        accuracy_b: accuracy of the second.
        n: trials.
    """

    kappa: Estimate
    observed: float
    expected: float
    accuracy_a: float
    accuracy_b: float
    n: int


def error_consistency(
    correct_a: Any, correct_b: Any, *, n_boot: int = 1000, seed: int = 0
) -> ErrorConsistency:
    """Cohen's kappa between two observers' trial-by-trial correctness, with an interval.

    Args:
        correct_a: per-trial correctness of observer A (bool or 0/1, 1-D).
        correct_b: the same trials for observer B.
        n_boot: bootstrap resamples for the interval (0: none).
        seed: seeds the bootstrap.

    Raises:
        InputError: vectors of different length, empty or not boolean.

    Example:
        >>> ec = error_consistency([1, 1, 0, 0], [1, 0, 0, 1], n_boot=0)
        >>> ec.kappa.value, ec.observed, ec.expected
        (0.0, 0.5, 0.5)
    """
    a, b = _as_bool(correct_a, "correct_a"), _as_bool(correct_b, "correct_b")
    if a.shape != b.shape:
        raise InputError(
            f"correct_a has {a.numel()} trials and correct_b {b.numel()}; pass both observers' "
            "results on the same images, in the same order"
        )
    n_boot = check_count(n_boot, "n_boot", minimum=0)
    kappa, c_obs, c_exp = cohens_kappa(a, b)
    low = high = math.nan
    n = int(a.numel())
    if n_boot and n > 1:
        idx = bootstrap_indices(n, n_boot, make_generator(derive_seed(check_seed(seed), "kappa")))
        reps = torch.tensor([cohens_kappa(a[i], b[i])[0] for i in idx], dtype=torch.float64)
        low, high = percentile_interval(reps)
    method = f"percentile bootstrap, {n_boot} resamples, seed {seed}" if n_boot else ""
    return ErrorConsistency(
        Estimate(kappa, low, high, n, method),
        c_obs,
        c_exp,
        float(a.double().mean()),
        float(b.double().mean()),
        n,
    )


@dataclass(frozen=True)
class ErrorConsistencyResult(Result):
    """Error consistency per condition and its mean over conditions.

    Attributes:
        conditions: condition name -> :class:`ErrorConsistency`.
        mean_kappa: the mean of kappa over conditions (model-vs-human's aggregation).
    """

    conditions: dict[str, ErrorConsistency]
    mean_kappa: float


def error_consistency_by_condition(
    correct_a: Mapping[str, Any],
    correct_b: Mapping[str, Any],
    *,
    n_boot: int = 1000,
    seed: int = 0,
) -> ErrorConsistencyResult:
    """Kappa per condition for the conditions both observers have (e.g. from two audits).

    Example:
        >>> r = error_consistency_by_condition({"clean": [1, 0]}, {"clean": [1, 0]}, n_boot=0)
        >>> r.conditions["clean"].kappa.value, r.mean_kappa
        (1.0, 1.0)
    """
    shared = [k for k in correct_a if k in correct_b]
    if not shared:
        raise InputError(
            f"the two observers share no condition (A: {sorted(correct_a)}, B: {sorted(correct_b)})"
        )
    out = {
        k: error_consistency(correct_a[k], correct_b[k], n_boot=n_boot, seed=derive_seed(seed, k))
        for k in shared
    }
    return ErrorConsistencyResult(out, sum(v.kappa.value for v in out.values()) / len(out))


Condition = Callable[[torch.Tensor], torch.Tensor]


def default_conditions(seed: int = 0) -> dict[str, Condition]:
    """The conditions :func:`model_error_consistency` uses by default.

    clean, low-pass and high-pass at 0.3 of the Nyquist frequency, and 4 x 4 patch shuffling
    (permutations seeded by ``seed``, the same for both models).

    Example:
        >>> sorted(default_conditions())
        ['clean', 'high-pass@0.3', 'low-pass@0.3', 'patch-shuffle@4']
    """

    def shuffle(x: torch.Tensor) -> torch.Tensor:
        gen = make_generator(derive_seed(seed, "probes", "patch-shuffle", 4))
        return patch_shuffle(x, 4, tile_permutations(int(x.shape[0]), 4, gen))

    return {
        "clean": lambda x: x,
        "low-pass@0.3": lambda x: low_pass(x, 0.3),
        "high-pass@0.3": lambda x: high_pass(x, 0.3),
        "patch-shuffle@4": shuffle,
    }


def model_error_consistency(
    model_a: Model | Any,
    model_b: Model | Any,
    x: torch.Tensor,
    y: torch.Tensor,
    conditions: Mapping[str, Condition] | None = None,
    *,
    batch_size: int = 256,
    n_boot: int = 1000,
    seed: int = 0,
) -> ErrorConsistencyResult:
    """Error consistency of two models on the same images under each condition.

    Args:
        model_a: first model.
        model_b: second model.
        x: images, float32 ``(B,C,H,W)`` in [0, 1].
        y: labels ``(B,)``.
        conditions: name -> image transform (:func:`default_conditions` when None); each
            transform is applied once and both models see the same images.
        batch_size: images per forward pass.
        n_boot: bootstrap resamples per condition.
        seed: seeds the default conditions and the bootstraps.

    Example:
        >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 2))
        >>> r = model_error_consistency(net, net, torch.rand(6, 1, 8, 8), torch.tensor([0, 1] * 3),
        ...                             n_boot=0)
        >>> r.mean_kappa
        1.0
    """
    seed = check_seed(seed)
    ma, x, y = check_inputs(model_a, x, y)
    mb = as_model(model_b)
    conds = default_conditions(seed) if conditions is None else dict(conditions)
    if not conds:
        raise InputError("conditions is empty; pass at least one name -> transform")
    ca: dict[str, torch.Tensor] = {}
    cb: dict[str, torch.Tensor] = {}
    for name, fn in conds.items():
        xc = fn(x)
        ca[name] = predict(ma, xc, batch_size) == y
        cb[name] = predict(mb, xc, batch_size) == y
    return error_consistency_by_condition(ca, cb, n_boot=n_boot, seed=seed)
