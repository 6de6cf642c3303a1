"""Small statistics helpers: binomial intervals, bootstrap, :class:`Estimate`, rank-sum test."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from robustcv.core.errors import InputError
from robustcv.core.results import Result

__all__ = [
    "Estimate",
    "RankSumTest",
    "binomial_ci",
    "bootstrap_indices",
    "finite_or_none",
    "mann_whitney",
    "percentile_interval",
]


def finite_or_none(value: Any) -> float | None:
    """``value`` as a finite float, or None (bools, strings and NaN give None).

    Example:
        >>> finite_or_none("0.5"), finite_or_none(float("nan")), finite_or_none(True)
        (0.5, None, None)
    """
    if isinstance(value, bool) or value is None:
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


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
    low: float = math.nan
    high: float = math.nan
    n: int | None = None
    method: str = ""
    level: float = 0.95

    def __float__(self) -> float:
        return float(self.value)

    @classmethod
    def parse(cls, obj: Any) -> Estimate | None:
        """An estimate from a results.json value: a dict, a bare number or None.

        Missing interval ends become NaN, a missing N None; None when there is no finite value
        (so a reader never has to guess what an absent number means). The old ``ci95: [low,
        high]`` spelling is accepted too.

        Example:
            >>> Estimate.parse({"value": 0.9, "low": 0.82, "high": 0.95, "n": 100}).text()
            '0.900 [0.820, 0.950] N=100'
            >>> Estimate.parse(0.5).text(), Estimate.parse(None), Estimate.parse("x")
            ('0.500', None, None)
        """
        if isinstance(obj, Estimate):
            return obj
        if isinstance(obj, Mapping):
            value = finite_or_none(obj.get("value"))
            if value is None:
                return None
            low, high = finite_or_none(obj.get("low")), finite_or_none(obj.get("high"))
            ci = obj.get("ci95")
            if (low is None or high is None) and isinstance(ci, (list, tuple)) and len(ci) == 2:
                low, high = finite_or_none(ci[0]), finite_or_none(ci[1])
            n_raw = obj.get("n")
            n = (
                int(n_raw)
                if isinstance(n_raw, (int, float))
                and not isinstance(n_raw, bool)
                and math.isfinite(n_raw)
                else None
            )
            method = obj.get("method")
            level = finite_or_none(obj.get("level"))
            return cls(
                value,
                math.nan if low is None else low,
                math.nan if high is None else high,
                n,
                "" if method is None else str(method),
                0.95 if level is None else level,
            )
        value = finite_or_none(obj)
        return None if value is None else cls(value)

    @property
    def has_interval(self) -> bool:
        """True when both ends of the interval are known (finite)."""
        return math.isfinite(self.low) and math.isfinite(self.high)

    def interval_text(self, digits: int = 3) -> str:
        """The interval as ``[low, high]``, or an empty string when unknown.

        Example:
            >>> Estimate(0.5, 0.4, 0.6).interval_text(2), Estimate(0.5).interval_text()
            ('[0.40, 0.60]', '')
        """
        if not self.has_interval:
            return ""
        return f"[{self.low:.{digits}f}, {self.high:.{digits}f}]"

    def text(self, digits: int = 3) -> str:
        """``value [low, high] N=n`` with the parts that are known.

        Example:
            >>> Estimate.binomial(9, 10).text(2)
            '0.90 [0.55, 1.00] N=10'
        """
        parts = [f"{self.value:.{digits}f}"]
        if self.has_interval:
            parts.append(self.interval_text(digits))
        if self.n is not None:
            parts.append(f"N={self.n}")
        return " ".join(parts)

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


@dataclass(frozen=True)
class RankSumTest(Result):
    """The result of :func:`mann_whitney`.

    Attributes:
        u: the U statistic of sample ``a``: the number of pairs ``(a_i, b_j)`` with
            ``a_i > b_j``, ties counting one half.
        z: the standardised statistic (with the tie and continuity corrections), signed so that
            ``z > 0`` when ``a`` tends to be larger.
        p_value: two-sided p-value from the normal approximation.
        n_a: size of sample ``a``.
        n_b: size of sample ``b``.
    """

    u: float
    z: float
    p_value: float
    n_a: int
    n_b: int

    @property
    def effect(self) -> float:
        """``u / (n_a n_b)``: the chance that a random ``a`` exceeds a random ``b`` (ties 1/2).

        0.5 means no tendency either way; above 0.5, ``a`` tends to be larger.
        """
        return self.u / (self.n_a * self.n_b)


def _sample(values: Any, name: str) -> np.ndarray:
    try:
        arr = np.asarray(
            [math.inf if v is None else v for v in np.asarray(values, dtype=object).reshape(-1)],
            dtype=np.float64,
        )
    except (TypeError, ValueError) as err:
        raise InputError(f"mann_whitney: sample {name} must hold numbers (None = +inf)") from err
    if arr.size == 0:
        raise InputError(f"mann_whitney: sample {name} is empty")
    if np.isnan(arr).any():
        raise InputError(f"mann_whitney: sample {name} contains NaN")
    return arr


def mann_whitney(a: Any, b: Any, *, continuity: bool = True) -> RankSumTest:
    """Two-sided Mann-Whitney U (Wilcoxon rank-sum) test of two independent samples.

    Both samples are ranked together (tied values share their average rank). The p-value uses
    the normal approximation of U with the variance corrected for ties and, by default, a
    continuity correction of 1/2: the same numbers as ``scipy.stats.mannwhitneyu(a, b,
    method="asymptotic")``. Infinite values are allowed (they rank above every finite value and
    tie with each other); ``None`` counts as ``+inf``, so "no perturbation found" can enter a
    sample of minimal perturbations as is.

    Args:
        a: the first sample (any iterable of numbers or None).
        b: the second sample.
        continuity: apply the continuity correction.

    Returns:
        A :class:`RankSumTest`. When every value is tied, ``z = 0`` and ``p_value = 1``.

    Raises:
        InputError: a sample is empty or holds NaN or a non-number.

    Example:
        >>> res = mann_whitney([1, 2, 3, 4, 5], [3, 4, 5, 6, 7, None])
        >>> res.u, round(res.p_value, 4), round(res.effect, 2)
        (4.5, 0.066, 0.15)
        >>> mann_whitney([1, 1], [1, 1, 1]).p_value
        1.0
    """
    xa, xb = _sample(a, "a"), _sample(b, "b")
    n_a, n_b = int(xa.size), int(xb.size)
    n = n_a + n_b
    both = np.concatenate([xa, xb])
    _, inverse, counts = np.unique(both, return_inverse=True, return_counts=True)
    # the average rank of a group of tied values: its last rank minus (size - 1) / 2
    mid = np.cumsum(counts) - (counts - 1) / 2.0
    ranks = mid[inverse.reshape(-1)]
    u = float(ranks[:n_a].sum() - n_a * (n_a + 1) / 2.0)
    mean = n_a * n_b / 2.0
    ties = float(((counts.astype(np.float64) ** 3) - counts).sum())
    var = n_a * n_b / 12.0 * ((n + 1) - ties / (n * (n - 1)))
    if var <= 0.0:
        return RankSumTest(u, 0.0, 1.0, n_a, n_b)
    dev = abs(u - mean) - (0.5 if continuity else 0.0)
    z = max(dev, 0.0) / math.sqrt(var)
    p = min(1.0, math.erfc(z / math.sqrt(2.0)))
    return RankSumTest(u, math.copysign(z, u - mean), p, n_a, n_b)
