"""Calibration of a classifier's top-1 confidence: ECE, MCE, Brier, NLL, temperature scaling.

Everything here is a pure function over logits (``(N, K)``, a tensor or an array) and labels
(``(N,)`` int class indices); models are never called, so the same functions serve clean data,
corrupted data and calibration under shift. Computation is in float64 on the CPU.

Conventions (they differ between libraries, see ``docs`` / the diagnostics note):

* **Confidence** is the top-1 softmax probability ``max_k softmax(logits / T)_k`` and a sample is
  *correct* when its argmax equals the label (ties in the argmax go to the lowest class index).
* **Equal-width bins** split ``[0, 1]`` into ``n_bins`` intervals ``(e_{b}, e_{b+1}]`` with edges
  ``linspace(0, 1, n_bins + 1)``: the right edge is inclusive and the first bin also holds 0, so a
  confidence of exactly 1.0 falls in the last bin (no hidden extra bin).
* **Equal-mass bins** sort the samples by (confidence, correct) and cut the sorted list into
  ``n_bins`` consecutive groups whose sizes differ by at most one (the first ``N mod n_bins``
  groups get the extra sample). Sorting on correctness as a tie-breaker makes the result
  independent of the input order. With fewer samples than bins, the surplus bins are empty.
* **ECE** = sum over bins of ``(N_b / N) * |acc_b - conf_b|`` (L1, plug-in estimator; it is biased
  upwards for small N). **MCE** = the largest ``|acc_b - conf_b|`` over *non-empty* equal-width
  bins. Empty bins contribute nothing and appear in the reliability table with count 0 and NaN
  accuracy/confidence (``null`` in JSON).
* **Brier** is the multiclass score ``mean_i sum_k (p_ik - 1[y_i = k])^2`` (range [0, 2]); it is
  *not* divided by the number of classes and is not scikit-learn's binary ``brier_score_loss``.
* **NLL** is ``-mean_i log softmax(logits_i / T)_{y_i}`` in nats.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from robustcv.core.errors import InputError
from robustcv.core.results import Result
from robustcv.core.seeding import check_seed, make_generator
from robustcv.core.stats import Estimate, bootstrap_indices, percentile_interval

__all__ = [
    "CalibrationResult",
    "ReliabilityTable",
    "TemperatureScaler",
    "calibration",
    "check_logits",
    "fit_temperature",
]

#: The range :func:`fit_temperature` searches (inclusive); the optimum is clipped to it.
TEMPERATURE_BOUNDS = (1e-2, 1e2)


# ---------------------------------------------------------------------------- validation
def check_logits(logits: Any, labels: Any = None, *, name: str = "logits") -> torch.Tensor:
    """Validate logits (and optionally labels) and return them as a float64 CPU tensor.

    Args:
        logits: ``(N, K)`` scores, a tensor or anything ``torch.as_tensor`` accepts.
        labels: optional ``(N,)`` integer class indices checked against ``logits``.
        name: the argument name used in messages.

    Returns:
        The logits as a detached float64 CPU tensor.

    Raises:
        InputError: wrong rank, fewer than 2 classes, empty, NaN/inf, or labels that do not
            match (length, dtype, range).

    Example:
        >>> check_logits([[2.0, 0.0], [0.0, 1.0]], [0, 1]).dtype
        torch.float64
    """
    t = _as_float64(logits, name)
    if t.dim() != 2:
        raise InputError(
            f"{name} has shape {tuple(t.shape)}; pass a (N, num_classes) matrix of logits "
            "(one row per image)"
        )
    if t.shape[0] == 0:
        raise InputError(f"{name} is empty (shape {tuple(t.shape)}); pass at least one row")
    if t.shape[1] < 2:
        raise InputError(
            f"{name} has {t.shape[1]} column(s); pass logits for at least 2 classes "
            "(for a binary model, stack [-z, z] or [0, z])"
        )
    bad = ~torch.isfinite(t)
    if bool(bad.any()):
        raise InputError(
            f"{name} contains {int(bad.sum())} NaN or infinite values; check the model's output "
            "(or drop those rows) before measuring"
        )
    if labels is not None:
        _check_labels(labels, t.shape[0], t.shape[1])
    return t


def _as_float64(value: Any, name: str) -> torch.Tensor:
    try:
        if isinstance(value, torch.Tensor):
            t = value.detach()
        else:
            t = torch.as_tensor(np.asarray(value))
    except (TypeError, ValueError, RuntimeError) as err:
        raise InputError(
            f"{name} could not be read as a numeric array ({err}); pass a tensor or numpy array"
        ) from err
    if t.dtype == torch.bool or t.is_complex():
        raise InputError(f"{name} has dtype {t.dtype}; pass real-valued scores")
    return t.to("cpu", torch.float64)


def _check_labels(labels: Any, n: int, num_classes: int | None) -> torch.Tensor:
    if isinstance(labels, torch.Tensor):
        y = labels.detach().cpu()
    else:
        try:
            y = torch.as_tensor(np.asarray(labels))
        except (TypeError, ValueError, RuntimeError) as err:
            raise InputError(f"labels could not be read as an integer array ({err})") from err
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise InputError(
            f"labels have dtype {y.dtype}; pass integer class indices (e.g. labels.long())"
        )
    if y.dim() != 1:
        raise InputError(
            f"labels have shape {tuple(y.shape)}; pass a 1-D vector of class indices "
            "(if they are one-hot, use labels.argmax(1))"
        )
    if y.shape[0] != n:
        raise InputError(
            f"there are {y.shape[0]} labels but {n} rows of logits; pass one label per row"
        )
    if y.shape[0] == 0:
        raise InputError("labels are empty; pass at least one label")
    y = y.long()
    lo, hi = int(y.min()), int(y.max())
    if lo < 0:
        raise InputError(f"labels contain the negative value {lo}; pass class indices >= 0")
    if num_classes is not None and hi >= num_classes:
        raise InputError(
            f"labels go up to {hi} but the logits have {num_classes} classes; labels must be in "
            f"[0, {num_classes}) (check that model and data match)"
        )
    return y


def _check_temperature(temperature: float) -> float:
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)):
        raise InputError(f"temperature must be a number, got {type(temperature).__name__}")
    t = float(temperature)
    if not (math.isfinite(t) and t > 0):
        raise InputError(f"temperature must be a positive finite number, got {temperature!r}")
    return t


def _check_count(value: int, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InputError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


# ---------------------------------------------------------------------------- results
@dataclass
class ReliabilityTable(Result):
    """Per-bin statistics of the equal-width bins (what a reliability diagram draws).

    Attributes:
        edges: ``n_bins + 1`` bin edges, ``linspace(0, 1, n_bins + 1)``; bin ``b`` is
            ``(edges[b], edges[b+1]]`` (the first bin also holds 0).
        confidence: mean top-1 confidence per bin (NaN for an empty bin).
        accuracy: fraction correct per bin (NaN for an empty bin).
        count: number of samples per bin.
    """

    edges: list[float]
    confidence: list[float]
    accuracy: list[float]
    count: list[int]


@dataclass
class CalibrationResult(Result):
    """Calibration metrics of one set of predictions (see the module docstring for conventions).

    Attributes:
        ece: expected calibration error, equal-width bins, L1 (``float(result)`` gives it).
        ece_equal_mass: ECE with equal-count (adaptive) bins.
        mce: maximum calibration error over non-empty equal-width bins.
        brier: multiclass Brier score, summed over classes, averaged over samples (in [0, 2]).
        nll: mean negative log-likelihood of the label (nats).
        accuracy: top-1 accuracy.
        mean_confidence: mean top-1 confidence (``mean_confidence - accuracy`` is the
            overconfidence gap).
        n: number of samples.
        n_bins: number of bins (both binnings use the same count).
        temperature: the temperature the logits were divided by before the softmax.
        ece_ci: the ECE with a percentile-bootstrap 95% interval (resampling the samples).
        accuracy_ci: the accuracy with an exact Clopper-Pearson 95% interval.
        reliability: the equal-width bins, for a reliability diagram.
        convention: the conventions above in words, for reports.
    """

    ece: float
    ece_equal_mass: float
    mce: float
    brier: float
    nll: float
    accuracy: float
    mean_confidence: float
    n: int
    n_bins: int
    temperature: float
    ece_ci: Estimate
    accuracy_ci: Estimate
    reliability: ReliabilityTable
    convention: str = field(default="")

    def __float__(self) -> float:
        return self.ece


CONVENTION = (
    "top-1 confidence; ECE = sum_b (N_b/N)|acc_b - conf_b| (L1) over {n_bins} equal-width bins "
    "(b/{n_bins}, (b+1)/{n_bins}], right edge inclusive, confidence 1.0 in the last bin, empty "
    "bins skipped; equal-mass ECE over {n_bins} equal-count bins of the samples sorted by "
    "(confidence, correct); MCE = max over non-empty equal-width bins; Brier = mean_i sum_k "
    "(p_ik - y_ik)^2 (multiclass, not divided by K, range [0, 2]); NLL in nats; softmax of "
    "logits / T with T = {temperature:g}; ECE interval: percentile bootstrap"
)


# ---------------------------------------------------------------------------- core maths
def _width_bins(conf: torch.Tensor, n_bins: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Equal-width bin index of each confidence (right-inclusive) and the edges."""
    edges = torch.linspace(0.0, 1.0, n_bins + 1, dtype=torch.float64)
    # bucketize(right=False) returns i with edges[i-1] < v <= edges[i]; on the inner edges this
    # is the right-inclusive bin index, and 0 and 1.0 land in the first and last bins.
    idx = torch.bucketize(conf, edges[1:-1], right=False)
    return idx, edges


def _binned_gaps(
    bins: torch.Tensor, conf: torch.Tensor, correct: torch.Tensor, n_bins: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-bin count, confidence sum and correct sum."""
    count = torch.bincount(bins, minlength=n_bins).to(torch.float64)
    conf_sum = torch.bincount(bins, weights=conf, minlength=n_bins)
    corr_sum = torch.bincount(bins, weights=correct, minlength=n_bins)
    return count, conf_sum, corr_sum


def _equal_mass_bins(conf: torch.Tensor, correct: torch.Tensor, n_bins: int) -> torch.Tensor:
    """Equal-count bin index of each sample (sorted by confidence, then correctness)."""
    n = conf.shape[0]
    order = torch.argsort(correct, stable=True)
    order = order[torch.argsort(conf[order], stable=True)]
    sizes = torch.full((n_bins,), n // n_bins, dtype=torch.long)
    sizes[: n % n_bins] += 1
    ranked_bin = torch.repeat_interleave(torch.arange(n_bins), sizes)
    bins = torch.empty(n, dtype=torch.long)
    bins[order] = ranked_bin
    return bins


def _ece_from_sums(count: torch.Tensor, conf_sum: torch.Tensor, corr_sum: torch.Tensor) -> float:
    n = float(count.sum())
    return float((corr_sum - conf_sum).abs().sum() / n)


def _bootstrap_ece(
    bins: torch.Tensor,
    conf: torch.Tensor,
    correct: torch.Tensor,
    n_bins: int,
    n_boot: int,
    seed: int,
) -> torch.Tensor:
    """ECE of ``n_boot`` resamples, vectorised: one bincount per chunk of resamples."""
    n = conf.shape[0]
    gen = make_generator(seed)
    out = []
    # ECE = (1/N) sum_b |sum_correct_b - sum_conf_b|; resample by index and bincount with an
    # offset of r * n_bins per replicate r. Chunks keep memory at ~4M indices.
    chunk = max(1, 4_000_000 // max(n, 1))
    done = 0
    while done < n_boot:
        m = min(chunk, n_boot - done)
        idx = bootstrap_indices(n, m, gen)
        keys = (bins[idx] + torch.arange(m).unsqueeze(1) * n_bins).flatten()
        gap = torch.bincount(keys, weights=(correct - conf)[idx].flatten(), minlength=m * n_bins)
        out.append(gap.view(m, n_bins).abs().sum(1) / n)
        done += m
    return torch.cat(out)


def calibration(
    logits: Any,
    labels: Any,
    *,
    n_bins: int = 15,
    temperature: float = 1.0,
    seed: int = 0,
    n_boot: int = 200,
) -> CalibrationResult:
    """Calibration metrics of logits against labels.

    See the module docstring for the binning and metric conventions.

    Args:
        logits: ``(N, K)`` logits (tensor or array-like), N >= 1, K >= 2, all finite.
        labels: ``(N,)`` integer class indices in ``[0, K)``.
        n_bins: number of bins for both the equal-width and the equal-mass ECE (>= 1).
        temperature: divide the logits by this before the softmax (1.0: as given; pass the
            value from :func:`fit_temperature` to measure after temperature scaling).
        seed: seed of the bootstrap resampling.
        n_boot: bootstrap resamples for the ECE interval (0: no interval, bounds are NaN).

    Returns:
        A :class:`CalibrationResult`.

    Raises:
        InputError: bad shapes, NaN/inf logits, labels out of range, ``n_bins < 1``, a
            non-positive temperature.

    Example:
        >>> import torch
        >>> logits = torch.tensor([[3.0, 0.0], [0.0, 1.0], [2.0, 0.0], [0.0, 0.5]])
        >>> res = calibration(logits, torch.tensor([0, 1, 1, 0]), n_bins=5)
        >>> res.accuracy, round(res.ece, 4), res.reliability.count
        (0.5, 0.2967, [0, 0, 0, 2, 2])
    """
    z = check_logits(logits)
    y = _check_labels(labels, z.shape[0], z.shape[1])
    n_bins = _check_count(n_bins, "n_bins", 1)
    n_boot = _check_count(n_boot, "n_boot", 0)
    seed = check_seed(seed)
    t = _check_temperature(temperature)

    log_p = torch.log_softmax(z / t, dim=1)
    p = log_p.exp()
    conf, pred = p.max(dim=1)
    correct = (pred == y).to(torch.float64)
    n = int(z.shape[0])

    nll = float(-log_p.gather(1, y.unsqueeze(1)).mean())
    onehot = torch.zeros_like(p)
    onehot[torch.arange(n), y] = 1.0
    brier = float(((p - onehot) ** 2).sum(1).mean())

    bins, edges = _width_bins(conf, n_bins)
    count, conf_sum, corr_sum = _binned_gaps(bins, conf, correct, n_bins)
    ece = _ece_from_sums(count, conf_sum, corr_sum)
    nonempty = count > 0
    gaps = (corr_sum[nonempty] - conf_sum[nonempty]).abs() / count[nonempty]
    mce = float(gaps.max())
    safe = count.clamp(min=1)
    nan = torch.full_like(count, math.nan)
    table = ReliabilityTable(
        edges=edges.tolist(),
        confidence=torch.where(nonempty, conf_sum / safe, nan).tolist(),
        accuracy=torch.where(nonempty, corr_sum / safe, nan).tolist(),
        count=[int(c) for c in count.tolist()],
    )

    mass_bins = _equal_mass_bins(conf, correct, n_bins)
    ece_mass = _ece_from_sums(*_binned_gaps(mass_bins, conf, correct, n_bins))

    if n_boot > 0:
        reps = _bootstrap_ece(bins, conf, correct, n_bins, n_boot, seed)
        low, high = percentile_interval(reps)
        method = f"percentile bootstrap, {n_boot} resamples, seed {seed}"
    else:
        low, high, method = math.nan, math.nan, "none"
    n_correct = int(correct.sum())
    return CalibrationResult(
        ece=ece,
        ece_equal_mass=ece_mass,
        mce=mce,
        brier=brier,
        nll=nll,
        accuracy=n_correct / n,
        mean_confidence=float(conf.mean()),
        n=n,
        n_bins=n_bins,
        temperature=t,
        ece_ci=Estimate(ece, low, high, n, method),
        accuracy_ci=Estimate.binomial(n_correct, n),
        reliability=table,
        convention=CONVENTION.format(n_bins=n_bins, temperature=t),
    )


# ---------------------------------------------------------------------------- temperature
def _nll_at(z: torch.Tensor, y: torch.Tensor, log_t: float) -> float:
    log_p = torch.log_softmax(z * math.exp(-log_t), dim=1)
    return float(-log_p.gather(1, y.unsqueeze(1)).mean())


def fit_temperature(
    logits: Any,
    labels: Any,
    *,
    bounds: tuple[float, float] = TEMPERATURE_BOUNDS,
    tol: float = 1e-6,
) -> float:
    """The temperature T minimising the NLL of ``softmax(logits / T)`` on held-out data.

    The NLL is convex in ``1/T`` and hence unimodal in ``log T``: a 49-point grid over
    ``log T`` in ``bounds`` brackets the minimum, then golden-section search refines it to
    ``tol`` (relative, in T). Fit on a split that is *not* the one you evaluate on.

    Args:
        logits: ``(N, K)`` held-out logits.
        labels: ``(N,)`` held-out labels.
        bounds: ``(low, high)`` search range for T; the result is clipped to it (a perfectly
            separable set drives T to ``low``).
        tol: convergence tolerance on ``log T``.

    Returns:
        The fitted temperature (> 0). T > 1 softens overconfident predictions.

    Raises:
        InputError: bad logits/labels or bounds.

    Example:
        >>> import torch
        >>> g = torch.Generator().manual_seed(0)
        >>> z = torch.randn(400, 5, generator=g)
        >>> y = torch.distributions.Categorical(logits=z).sample()  # calibrated at T = 1
        >>> t = fit_temperature(3 * z, y)  # overconfident by a factor 3
        >>> 2.0 < t < 4.5
        True
    """
    z = check_logits(logits)
    y = _check_labels(labels, z.shape[0], z.shape[1])
    lo_t, hi_t = (float(b) for b in bounds)
    if not (math.isfinite(lo_t) and math.isfinite(hi_t) and 0 < lo_t < hi_t):
        raise InputError(f"bounds must be (low, high) with 0 < low < high, got {bounds!r}")
    if not (isinstance(tol, (int, float)) and 0 < tol < 1):
        raise InputError(f"tol must be in (0, 1), got {tol!r}")
    a, b = math.log(lo_t), math.log(hi_t)
    grid = np.linspace(a, b, 49)
    values = [_nll_at(z, y, float(g)) for g in grid]
    i = int(np.argmin(values))
    lo, hi = float(grid[max(i - 1, 0)]), float(grid[min(i + 1, len(grid) - 1)])
    inv_phi = (math.sqrt(5.0) - 1.0) / 2.0
    c, d = hi - inv_phi * (hi - lo), lo + inv_phi * (hi - lo)
    fc, fd = _nll_at(z, y, c), _nll_at(z, y, d)
    while hi - lo > tol:
        if fc <= fd:
            hi, d, fd = d, c, fc
            c = hi - inv_phi * (hi - lo)
            fc = _nll_at(z, y, c)
        else:
            lo, c, fc = c, d, fd
            d = lo + inv_phi * (hi - lo)
            fd = _nll_at(z, y, d)
    best = (lo + hi) / 2
    candidates = [(values[i], float(grid[i])), (_nll_at(z, y, best), best)]
    return float(min(max(math.exp(min(candidates)[1]), lo_t), hi_t))


@dataclass
class TemperatureScaler:
    """Temperature scaling as a fit/transform object (a thin wrapper of :func:`fit_temperature`).

    Attributes:
        temperature: the fitted temperature (1.0 until :meth:`fit` is called).

    Example:
        >>> import torch
        >>> z = torch.tensor([[4.0, 0.0], [0.0, 4.0], [4.0, 0.0], [4.0, 0.0]])
        >>> scaler = TemperatureScaler().fit(z, torch.tensor([0, 1, 1, 0]))
        >>> scaler.temperature > 1.0
        True
        >>> scaler.transform(z).shape
        torch.Size([4, 2])
    """

    temperature: float = 1.0
    fitted: bool = False

    def fit(self, logits: Any, labels: Any) -> TemperatureScaler:
        """Fit the temperature on held-out logits and labels; returns ``self``."""
        self.temperature = fit_temperature(logits, labels)
        self.fitted = True
        return self

    def transform(self, logits: Any) -> torch.Tensor:
        """Scaled logits ``logits / temperature`` (float64)."""
        return check_logits(logits) / self.temperature

    def probabilities(self, logits: Any) -> torch.Tensor:
        """Calibrated probabilities ``softmax(logits / temperature)`` (float64)."""
        return torch.softmax(self.transform(logits), dim=1)
