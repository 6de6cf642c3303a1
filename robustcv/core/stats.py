"""Small statistics helpers: exact binomial intervals, bootstrap resampling, :class:`Estimate`."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from robustcv.core.errors import InputError
from robustcv.core.results import Result

__all__ = ["Estimate", "binomial_ci", "bootstrap_indices", "percentile_interval"]


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


@dataclass(frozen=True)
class Estimate(Result):
    """A measured number with its sample size and a confidence interval.

    Every accuracy, AUROC and ECE robustcv reports is one of these, so reports and ``compare``
    can show N and the interval next to the value.

    Attributes:
        value: the point estimate (computed on all samples).
        low: lower bound of the interval (NaN when no interval was computed).
        high: upper bound of the interval (NaN when no interval was computed).
        n: number of samples the estimate rests on (for two-sample metrics such as AUROC, the
            total of both samples).
        method: how the interval was computed, e.g. ``"clopper-pearson"`` or
            ``"percentile bootstrap, 200 resamples, seed 0"``.
        level: confidence level of the interval.

    Example:
        >>> est = Estimate.binomial(90, 100)
        >>> round(est.value, 2), round(est.low, 3), round(est.high, 3), est.n, est.method
        (0.9, 0.824, 0.951, 100, 'clopper-pearson')
        >>> est.overlaps(Estimate(0.8, 0.7, 0.83, 100, "manual"))
        True
    """

    value: float
    low: float
    high: float
    n: int
    method: str
    level: float = 0.95

    def __float__(self) -> float:
        return float(self.value)

    @classmethod
    def binomial(cls, successes: int, n: int, *, level: float = 0.95) -> Estimate:
        """A proportion ``successes / n`` with its exact (Clopper-Pearson) interval.

        Example:
            >>> Estimate.binomial(3, 4).value
            0.75
        """
        low, high = binomial_ci(successes, n, level)
        return cls(successes / n, low, high, n, "clopper-pearson", level)

    @property
    def width(self) -> float:
        """``high - low`` (NaN when there is no interval)."""
        return self.high - self.low

    def overlaps(self, other: Estimate) -> bool:
        """Whether the two intervals overlap (a rough "within the noise" test for reports).

        Example:
            >>> Estimate(0.5, 0.4, 0.6, 10, "m").overlaps(Estimate(0.9, 0.8, 1.0, 10, "m"))
            False
        """
        return bool(self.low <= other.high and other.low <= self.high)


def bootstrap_indices(n: int, n_boot: int, generator: torch.Generator) -> torch.Tensor:
    """Indices of ``n_boot`` bootstrap resamples of ``n`` items, shape ``(n_boot, n)`` (int64).

    Example:
        >>> from robustcv.core.seeding import make_generator
        >>> bootstrap_indices(5, 3, make_generator(0)).shape
        torch.Size([3, 5])
    """
    if n < 1 or n_boot < 1:
        raise InputError(f"bootstrap needs n >= 1 and n_boot >= 1, got n={n}, n_boot={n_boot}")
    return torch.randint(0, n, (n_boot, n), generator=generator, device=generator.device)


def percentile_interval(replicates: torch.Tensor, level: float = 0.95) -> tuple[float, float]:
    """The percentile interval of bootstrap replicates (linear interpolation between order stats).

    Example:
        >>> low, high = percentile_interval(torch.arange(101, dtype=torch.float64))
        >>> round(low, 6), round(high, 6)
        (2.5, 97.5)
    """
    if not 0.0 < level < 1.0:
        raise InputError(f"level must be in (0, 1), got {level}")
    if replicates.numel() == 0:
        raise InputError("percentile_interval needs at least one replicate")
    r = replicates.detach().to("cpu", torch.float64).flatten()
    alpha = (1.0 - level) / 2
    q = torch.tensor([alpha, 1.0 - alpha], dtype=torch.float64)
    low, high = torch.quantile(r, q).tolist()
    return float(low), float(high)
