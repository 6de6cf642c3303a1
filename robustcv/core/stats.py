"""Small statistics helpers: exact binomial confidence intervals for accuracies."""

from __future__ import annotations

import math

import numpy as np

from robustcv.core.errors import InputError

__all__ = ["binomial_ci"]


def _upper_bound(k: int, n: int, target: float) -> float:
    """Find p with P[X <= k; n, p] == target by bisection (the CDF decreases in p)."""
    log_fact = np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, n + 1, dtype=np.float64)))])
    i = np.arange(k + 1, dtype=np.float64)
    log_comb = log_fact[n] - log_fact[: k + 1] - log_fact[n - k :][::-1]
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        terms = log_comb + i * math.log(mid) + (n - i) * math.log1p(-mid)
        top = float(terms.max())
        cdf = math.exp(top) * float(np.exp(terms - top).sum())
        if cdf > target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def binomial_ci(successes: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) confidence interval for a proportion ``successes / n``.

    Args:
        successes: number of successes (e.g. correctly classified images).
        n: number of trials (images); must be positive.
        level: confidence level in (0, 1).

    Returns:
        ``(low, high)`` bounds of the interval.

    Example:
        >>> lo, hi = binomial_ci(90, 100)
        >>> round(lo, 3), round(hi, 3)
        (0.824, 0.951)
    """
    if isinstance(successes, bool) or not isinstance(successes, int) or not isinstance(n, int):
        raise InputError(f"binomial_ci needs integer counts, got {successes!r}/{n!r}")
    if n <= 0 or not 0 <= successes <= n:
        raise InputError(f"binomial_ci needs 0 <= successes <= n and n > 0, got {successes}/{n}")
    if not 0.0 < level < 1.0:
        raise InputError(f"level must be in (0, 1), got {level}")
    alpha = 1.0 - level
    low = 0.0 if successes == 0 else 1.0 - _upper_bound(n - successes, n, alpha / 2)
    high = 1.0 if successes == n else _upper_bound(successes, n, alpha / 2)
    return low, high
