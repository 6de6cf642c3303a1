"""Out-of-distribution detection: scores, detection metrics and derived far-OOD sets.

**Score sign.** Every score here is *higher = more in-distribution* (a confidence, as in OpenOOD;
pytorch-ood uses the opposite sign). :func:`ood_metrics` takes ID scores and OOD scores with that
sign.

**Metric conventions** (written into :attr:`OODMetrics.convention` as well):

* AUROC: area under the ROC curve with ID as the positive class, i.e.
  ``P(s_in > s_out) + 0.5 * P(s_in = s_out)`` (ties count one half, the same value as
  scikit-learn's trapezoidal ``roc_auc_score``). It does not depend on which class is positive.
* AUPR-in: average precision with ID positive and the score as is. AUPR-out: OOD positive and the
  score negated. Average precision is the step-wise sum ``sum_k (R_k - R_{k-1}) P_k`` over the
  distinct score thresholds (tied scores form one threshold; no interpolation), the definition
  scikit-learn's ``average_precision_score`` uses.
* FPR@95TPR, ID positive (the ODIN / OpenOOD v1 convention): take the highest threshold ``t``
  that accepts (``s >= t``) at least 95% of the ID samples; report the fraction of OOD samples it
  also accepts. OpenOOD v1.5, pytorch-ood and torch-uncertainty use OOD as positive instead, which
  gives a different number.

**Scores** (:data:`OOD_SCORES`): ``msp`` (max softmax), ``max-logit``, ``energy``
(``T * logsumexp(logits / T)``, the negative free energy), ``odin`` (temperature-scaled MSP after a
gradient step on the input; needs gradients), ``mahalanobis`` (negative minimum class-conditional
Mahalanobis distance of penultimate features with a shared covariance; needs features and a fit on
ID training data).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from robustcv.core.contract import check_images
from robustcv.core.errors import GradientUnavailableError, InputError
from robustcv.core.model import Model
from robustcv.core.registry import Registry
from robustcv.core.results import Result
from robustcv.core.seeding import check_seed, content_keys, derive_seed, make_generator
from robustcv.core.stats import Estimate, bootstrap_indices, percentile_interval
from robustcv.diagnostics.calibration import _check_labels, _check_temperature, check_logits

__all__ = [
    "DEFAULT_DERIVED_OOD",
    "DERIVED_OOD_SETS",
    "OOD_SCORES",
    "LogitScorer",
    "MahalanobisDetector",
    "ODINScorer",
    "OODMetrics",
    "OODScoreSpec",
    "OODScorer",
    "derived_ood_sets",
    "energy",
    "max_logit",
    "msp",
    "odin",
    "ood_metrics",
]

CONVENTION = (
    "scores: higher = more in-distribution. AUROC: ID positive, ties count 1/2 (= scikit-learn "
    "roc_auc_score). AUPR-in: average precision with ID positive; AUPR-out: OOD positive, scores "
    "negated; average precision = step-wise sum_k (R_k - R_{k-1}) P_k over distinct thresholds "
    "(= scikit-learn average_precision_score). FPR@95TPR: ID positive; threshold = the highest one "
    "accepting (score >= t) at least 95% of ID; value = fraction of OOD accepted. AUROC interval: "
    "percentile bootstrap resampling ID and OOD separately."
)


# ---------------------------------------------------------------------------- logit scores
def msp(logits: Any, *, temperature: float = 1.0) -> torch.Tensor:
    """Maximum softmax probability ``max_k softmax(logits / T)_k`` (higher = more ID).

    Args:
        logits: ``(N, K)`` logits (tensor or array-like).
        temperature: softmax temperature (1: plain MSP).

    Returns:
        ``(N,)`` float64 scores on the CPU, in ``[1/K, 1]``.

    Example:
        >>> msp([[0.0, 0.0], [4.0, 0.0]]).tolist()
        [0.5, 0.9820137900379085]
    """
    z = check_logits(logits)
    t = _check_temperature(temperature)
    return torch.softmax(z / t, dim=1).max(dim=1).values


def max_logit(logits: Any) -> torch.Tensor:
    """The largest logit ``max_k logits_k`` (higher = more ID).

    Example:
        >>> max_logit([[1.0, 3.0], [-2.0, -1.0]]).tolist()
        [3.0, -1.0]
    """
    return check_logits(logits).max(dim=1).values


def energy(logits: Any, *, temperature: float = 1.0) -> torch.Tensor:
    """Negative free energy ``T * logsumexp(logits / T)`` (higher = more ID).

    This is minus the energy ``E(x) = -T logsumexp(f(x)/T)`` of Liu et al. (2020), so that, like
    every score here, larger values mean in-distribution.

    Example:
        >>> round(energy([[0.0, 0.0]]).item(), 6)  # log 2
        0.693147
    """
    z = check_logits(logits)
    t = _check_temperature(temperature)
    return t * torch.logsumexp(z / t, dim=1)


# ---------------------------------------------------------------------------- helpers
def _check_model(model: Any) -> Model:
    if not isinstance(model, Model):
        raise InputError(
            f"model is a {type(model).__name__}; wrap it with robustcv.Model(net, ...) or use "
            "robustcv.load_model"
        )
    return model


def _check_batch_size(batch_size: int) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(f"batch_size must be an int >= 1, got {batch_size!r}")
    return batch_size


def _features(model: Model, x: torch.Tensor, layer: str | None, batch_size: int) -> torch.Tensor:
    """Features (N, D) as float64 on the CPU, from the model's feature spec or a named layer."""
    check_images(x)
    if layer is None and not model.has_features:
        raise InputError(
            f"model '{model.name}' exposes no features for Mahalanobis; pass features='layer_name' "
            "to robustcv.Model / load_model, or layer='layer_name' here"
        )
    sub: torch.nn.Module | None = None
    if layer is not None:
        if not isinstance(model.net, torch.nn.Module):
            raise InputError(
                "layer= needs the model to wrap an nn.Module; give the Model a features callable"
            )
        try:
            sub = model.net.get_submodule(layer)
        except AttributeError as err:
            names = [n for n, _ in model.net.named_modules() if n][:20]
            raise InputError(
                f"the network has no submodule '{layer}'; known names include {names}"
            ) from err
    outs = []
    captured: list[torch.Tensor] = []
    with torch.no_grad():
        for i in range(0, x.shape[0], batch_size):
            xb = x[i : i + batch_size]
            if sub is None:
                f = model.features(xb, validate=False)
            else:
                captured.clear()
                handle = sub.register_forward_hook(lambda _m, _i, out: captured.append(out))
                try:
                    model.logits(xb, validate=False)
                finally:
                    handle.remove()
                if not captured:
                    raise InputError(f"layer '{layer}' was not called during the forward pass")
                f = captured[-1]
            outs.append(f.flatten(1).to("cpu", torch.float64))
    return torch.cat(outs)


def _check_features(feats: Any, name: str) -> torch.Tensor:
    try:
        t = (
            feats.detach()
            if isinstance(feats, torch.Tensor)
            else torch.as_tensor(np.asarray(feats))
        )
    except (TypeError, ValueError, RuntimeError) as err:
        raise InputError(f"{name} could not be read as a numeric array ({err})") from err
    if t.dim() != 2 or t.shape[0] == 0 or t.shape[1] == 0:
        raise InputError(f"{name} has shape {tuple(t.shape)}; pass a non-empty (N, D) matrix")
    t = t.to("cpu", torch.float64)
    if not bool(torch.isfinite(t).all()):
        raise InputError(f"{name} contains NaN or infinite values; check the feature extractor")
    return t


# ---------------------------------------------------------------------------- ODIN
def odin(
    model: Model,
    x: torch.Tensor,
    *,
    temperature: float = 1000.0,
    epsilon: float = 0.0014,
    batch_size: int = 128,
) -> torch.Tensor:
    """ODIN score (Liang et al. 2018): temperature-scaled MSP after one input gradient step.

    Each image moves by ``epsilon`` (in [0, 1] pixel units, L-inf) in the direction that raises
    its temperature-scaled top-1 softmax, ``x' = clip(x - eps * sign(grad_x(-log S_yhat(x; T))),
    0, 1)``; the score is ``max_k softmax(f(x') / T)_k`` (higher = more ID). A pixel-space step of
    ``eps`` equals the original's step of ``eps / std`` in normalised space, so the published
    ``eps`` values carry over.

    Args:
        model: a differentiable :class:`robustcv.Model` (``epsilon=0`` needs no gradients).
        x: images under the image contract.
        temperature: softmax temperature T.
        epsilon: input step size; 0 disables the gradient step.
        batch_size: images per forward/backward pass.

    Returns:
        ``(N,)`` float64 scores on the CPU.

    Raises:
        GradientUnavailableError: the model is gradient-free and ``epsilon > 0``.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> model = Model(nn.Sequential(nn.Flatten(), nn.Linear(4, 3)))
        >>> odin(model, torch.rand(5, 1, 2, 2)).shape
        torch.Size([5])
    """
    model = _check_model(model)
    check_images(x)
    t = _check_temperature(temperature)
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)):
        raise InputError(f"epsilon must be a number >= 0, got {epsilon!r}")
    eps = float(epsilon)
    if not (math.isfinite(eps) and eps >= 0):
        raise InputError(f"epsilon must be a finite number >= 0, got {epsilon!r}")
    batch_size = _check_batch_size(batch_size)
    if eps > 0 and not model.differentiable:
        raise GradientUnavailableError(
            f"ODIN needs input gradients, but model '{model.name}' is gradient-free (e.g. ONNX "
            "through onnxruntime); skip 'odin', pass epsilon=0 (temperature scaling only), use "
            "'msp'/'energy', or load the PyTorch version of the model"
        )
    scores = []
    for i in range(0, x.shape[0], batch_size):
        xb = x[i : i + batch_size].detach()
        if eps > 0:
            xg = xb.clone().requires_grad_(True)
            with torch.enable_grad():
                z = model.logits(xg, validate=False)
                loss = -torch.log_softmax(z / t, dim=1).max(dim=1).values.sum()
                (grad,) = torch.autograd.grad(loss, xg)
            xb = (xb - eps * grad.sign()).clamp(0.0, 1.0)
        with torch.no_grad():
            z = model.logits(xb, validate=False).to("cpu", torch.float64)
        scores.append(torch.softmax(z / t, dim=1).max(dim=1).values)
    return torch.cat(scores)


# ---------------------------------------------------------------------------- scorers
class OODScorer(Protocol):
    """What every entry of :data:`OOD_SCORES` creates: ``fit`` (may be a no-op), then ``score``."""

    def fit(
        self, model: Model, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = 256
    ) -> OODScorer:
        """Fit on in-distribution training images and labels; returns ``self``."""
        ...

    def score(self, model: Model, x: torch.Tensor, *, batch_size: int = 256) -> torch.Tensor:
        """``(N,)`` float64 CPU scores, higher = more in-distribution."""
        ...


@dataclass(frozen=True)
class LogitScorer:
    """A score computed from logits alone (MSP, max-logit, energy).

    Example:
        >>> import torch
        >>> from torch import nn
        >>> model = Model(nn.Sequential(nn.Flatten(), nn.Linear(4, 3)))
        >>> LogitScorer("max-logit", max_logit).score(model, torch.rand(2, 1, 2, 2)).shape
        torch.Size([2])
    """

    name: str
    fn: Callable[[Any], torch.Tensor]

    def fit(
        self, model: Model, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = 256
    ) -> LogitScorer:
        """No fitting needed; returns ``self``."""
        return self

    def score(self, model: Model, x: torch.Tensor, *, batch_size: int = 256) -> torch.Tensor:
        """Scores of images ``x`` (one batched no-grad pass)."""
        model = _check_model(model)
        return self.fn(model.predict_logits(x, batch_size=_check_batch_size(batch_size)))


@dataclass(frozen=True)
class ODINScorer:
    """:func:`odin` as a scorer object.

    Example:
        >>> ODINScorer().temperature, ODINScorer().epsilon
        (1000.0, 0.0014)
    """

    temperature: float = 1000.0
    epsilon: float = 0.0014

    def fit(
        self, model: Model, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = 256
    ) -> ODINScorer:
        """No fitting needed (hyper-parameters are fixed, not tuned on OOD data)."""
        return self

    def score(self, model: Model, x: torch.Tensor, *, batch_size: int = 256) -> torch.Tensor:
        """ODIN scores of images ``x``."""
        return odin(
            model, x, temperature=self.temperature, epsilon=self.epsilon, batch_size=batch_size
        )


class MahalanobisDetector:
    """Mahalanobis OOD score on penultimate features (Lee et al. 2018, without input preprocessing).

    ``fit`` computes one mean per class and a single covariance shared by all classes (the pooled
    within-class covariance, divided by N) on in-distribution *training* features, plus a small
    ridge ``ridge * trace(cov) / D`` on the diagonal so the inverse exists. The score is
    ``-min_c (f - mu_c)^T Sigma^-1 (f - mu_c)`` (higher = more ID). The paper's input
    preprocessing step and multi-layer ensemble are not used by default.

    Args:
        ridge: relative diagonal loading of the covariance.

    Attributes:
        classes_: class indices seen in the fit data.
        means_: ``(C, D)`` class means.
        precision_: ``(D, D)`` inverse of the (ridged) shared covariance.
        layer_: the layer the features came from (None: the model's own feature spec).

    Example:
        >>> import torch
        >>> g = torch.Generator().manual_seed(0)
        >>> feats = torch.randn(200, 3, generator=g)
        >>> labels = (feats[:, 0] > 0).long()
        >>> det = MahalanobisDetector().fit_features(feats, labels)
        >>> bool(det.score_features(feats).mean() > det.score_features(feats + 6).mean())
        True
    """

    def __init__(self, *, ridge: float = 1e-6) -> None:
        if not (isinstance(ridge, (int, float)) and math.isfinite(ridge) and ridge >= 0):
            raise InputError(f"ridge must be a finite number >= 0, got {ridge!r}")
        self.ridge = float(ridge)
        self.classes_: torch.Tensor | None = None
        self.means_: torch.Tensor | None = None
        self.precision_: torch.Tensor | None = None
        self.layer_: str | None = None

    def fit_features(self, feats: Any, labels: Any) -> MahalanobisDetector:
        """Fit class means and the shared covariance on ``(N, D)`` features; returns ``self``."""
        f = _check_features(feats, "features")
        y = _check_labels(labels, f.shape[0], None)
        classes, inv = torch.unique(y, return_inverse=True)
        counts = torch.bincount(inv, minlength=len(classes)).to(torch.float64)
        sums = torch.zeros(len(classes), f.shape[1], dtype=torch.float64)
        sums.index_add_(0, inv, f)
        means = sums / counts.unsqueeze(1)
        centred = f - means[inv]
        cov = centred.T @ centred / f.shape[0]
        d = cov.shape[0]
        scale = float(torch.diagonal(cov).mean()) if float(cov.trace()) > 0 else 1.0
        cov = cov + (self.ridge * scale + 1e-12) * torch.eye(d, dtype=torch.float64)
        self.classes_, self.means_ = classes, means
        self.precision_ = torch.linalg.inv(cov)
        self.precision_ = (self.precision_ + self.precision_.T) / 2
        return self

    def distances(self, feats: Any) -> torch.Tensor:
        """``(N, C)`` squared Mahalanobis distances to each class mean."""
        if self.means_ is None or self.precision_ is None:
            raise InputError("MahalanobisDetector is not fitted; call .fit(...) first")
        f = _check_features(feats, "features")
        if f.shape[1] != self.means_.shape[1]:
            raise InputError(
                f"features have {f.shape[1]} dimensions but the detector was fitted on "
                f"{self.means_.shape[1]}; use the same model and layer for fit and score"
            )
        p, mu = self.precision_, self.means_
        fp = f @ p
        quad = (fp * f).sum(1, keepdim=True) - 2 * fp @ mu.T + ((mu @ p) * mu).sum(1)
        return quad.clamp(min=0.0)

    def score_features(self, feats: Any) -> torch.Tensor:
        """``(N,)`` scores ``-min_c distance`` of features (higher = more ID)."""
        return -self.distances(feats).min(dim=1).values

    def fit(
        self,
        model: Model,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        layer: str | None = None,
        batch_size: int = 256,
    ) -> MahalanobisDetector:
        """Fit on in-distribution training images ``x`` with labels ``y``; returns ``self``.

        Args:
            model: a :class:`robustcv.Model` with features (or pass ``layer``).
            x: ID training images (never the images you evaluate on).
            y: their labels.
            layer: a submodule name of ``model.net`` to take features from instead of the
                model's feature spec.
            batch_size: images per forward pass.
        """
        model = _check_model(model)
        batch_size = _check_batch_size(batch_size)
        feats = _features(model, x, layer, batch_size)
        self.fit_features(feats, y)
        self.layer_ = layer
        return self

    def score(self, model: Model, x: torch.Tensor, *, batch_size: int = 256) -> torch.Tensor:
        """Scores of images ``x`` (features from the layer used in :meth:`fit`)."""
        model = _check_model(model)
        batch_size = _check_batch_size(batch_size)
        if self.means_ is None:
            raise InputError("MahalanobisDetector is not fitted; call .fit(model, x, y) first")
        return self.score_features(_features(model, x, self.layer_, batch_size))


# ---------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class OODScoreSpec:
    """One registered OOD score: what it needs and how to build it.

    Attributes:
        name: canonical name.
        summary: one line for listings and reports.
        factory: builds an :class:`OODScorer` (keyword hyper-parameters override the defaults).
        needs_gradients: needs input gradients (skipped for gradient-free models).
        needs_features: needs penultimate features.
        needs_fit: needs ID training data (``fit`` does real work).
        from_logits: for scores that are a function of the logits alone, that function (so
            callers can reuse logits they already have); None otherwise.
        defaults: the default hyper-parameters, for reports.
    """

    name: str
    summary: str
    factory: Callable[..., OODScorer]
    needs_gradients: bool = False
    needs_features: bool = False
    needs_fit: bool = False
    from_logits: Callable[[Any], torch.Tensor] | None = None
    defaults: dict[str, float] = field(default_factory=dict)

    def create(self, **kwargs: Any) -> OODScorer:
        """A fresh scorer; ``kwargs`` override the default hyper-parameters."""
        return self.factory(**kwargs)

    def unavailable_reason(self, model: Model) -> str | None:
        """Why this score cannot run on ``model`` (None when it can).

        Example:
            >>> import torch
            >>> from torch import nn
            >>> model = Model(nn.Sequential(nn.Flatten(), nn.Linear(4, 3)), differentiable=False)
            >>> OOD_SCORES.get("msp").unavailable_reason(model) is None
            True
            >>> OOD_SCORES.get("odin").unavailable_reason(model)  # doctest: +ELLIPSIS
            "odin needs input gradients, but model 'Sequential' is gradient-free..."
        """
        if self.needs_gradients and not model.differentiable:
            return (
                f"{self.name} needs input gradients, but model '{model.name}' is gradient-free "
                "(e.g. ONNX); load the PyTorch model to get it"
            )
        if self.needs_features and not model.has_features:
            return (
                f"{self.name} needs penultimate features, but model '{model.name}' exposes none; "
                "pass features='layer_name' to robustcv.Model / load_model"
            )
        return None


def _msp_scorer(temperature: float = 1.0) -> LogitScorer:
    t = _check_temperature(temperature)
    return LogitScorer("msp", lambda z: msp(z, temperature=t))


def _energy_scorer(temperature: float = 1.0) -> LogitScorer:
    t = _check_temperature(temperature)
    return LogitScorer("energy", lambda z: energy(z, temperature=t))


def _max_logit_scorer() -> LogitScorer:
    return LogitScorer("max-logit", max_logit)


#: OOD scores by name. Every score is higher = more in-distribution.
OOD_SCORES: Registry[OODScoreSpec] = Registry("OOD score")
for _spec, _aliases in (
    (
        OODScoreSpec(
            "msp",
            "maximum softmax probability (Hendrycks & Gimpel 2017)",
            _msp_scorer,
            from_logits=msp,
            defaults={"temperature": 1.0},
        ),
        ("maxsoftmax",),
    ),
    (
        OODScoreSpec(
            "max-logit",
            "largest logit (Hendrycks et al. 2022)",
            _max_logit_scorer,
            from_logits=max_logit,
        ),
        ("maxlogit", "max_logit", "mls"),
    ),
    (
        OODScoreSpec(
            "energy",
            "negative free energy T*logsumexp(logits/T) (Liu et al. 2020)",
            _energy_scorer,
            from_logits=energy,
            defaults={"temperature": 1.0},
        ),
        ("ebo",),
    ),
    (
        OODScoreSpec(
            "odin",
            "temperature-scaled MSP after an input gradient step (Liang et al. 2018)",
            ODINScorer,
            needs_gradients=True,
            defaults={"temperature": 1000.0, "epsilon": 0.0014},
        ),
        (),
    ),
    (
        OODScoreSpec(
            "mahalanobis",
            "negative min class-conditional Mahalanobis distance of features, shared covariance "
            "(Lee et al. 2018, no input preprocessing)",
            MahalanobisDetector,
            needs_features=True,
            needs_fit=True,
            defaults={"ridge": 1e-6},
        ),
        ("mds",),
    ),
):
    OOD_SCORES.add(_spec.name, _spec, summary=_spec.summary, aliases=_aliases)


# ---------------------------------------------------------------------------- metrics
@dataclass
class OODMetrics(Result):
    """How well a score separates ID from OOD samples (conventions in :attr:`convention`).

    Attributes:
        auroc: area under the ROC curve (``float(result)`` gives it).
        auroc_ci: the AUROC with a stratified percentile-bootstrap 95% interval.
        aupr_in: average precision, ID positive.
        aupr_out: average precision, OOD positive, scores negated.
        fpr_at_95_tpr: fraction of OOD accepted at the threshold accepting 95% of ID.
        n_in: number of ID samples.
        n_out: number of OOD samples.
        convention: the conventions in words.
        roc_fpr: false-positive rates of ROC points from (0, 0) to (1, 1), at most 200.
        roc_tpr: matching true-positive rates (ID accepted).
        hist_edges: shared histogram edges of the ID and OOD scores.
        hist_in: ID score counts per histogram bin.
        hist_out: OOD score counts per histogram bin.
    """

    auroc: float
    auroc_ci: Estimate
    aupr_in: float
    aupr_out: float
    fpr_at_95_tpr: float
    n_in: int
    n_out: int
    convention: str
    roc_fpr: list[float]
    roc_tpr: list[float]
    hist_edges: list[float]
    hist_in: list[int]
    hist_out: list[int]

    def __float__(self) -> float:
        return self.auroc


def _check_scores(scores: Any, name: str) -> torch.Tensor:
    try:
        t = (
            scores.detach()
            if isinstance(scores, torch.Tensor)
            else torch.as_tensor(np.asarray(scores, dtype=np.float64))
        )
    except (TypeError, ValueError, RuntimeError) as err:
        raise InputError(f"{name} could not be read as numbers ({err}); pass a 1-D array") from err
    if t.dtype == torch.bool or t.is_complex():
        raise InputError(f"{name} has dtype {t.dtype}; pass real-valued scores")
    if t.dim() != 1:
        raise InputError(
            f"{name} has shape {tuple(t.shape)}; pass a 1-D vector with one score per sample "
            f"(e.g. {name}.flatten())"
        )
    if t.shape[0] == 0:
        raise InputError(f"{name} is empty; pass at least one score")
    t = t.to("cpu", torch.float64)
    bad = ~torch.isfinite(t)
    if bool(bad.any()):
        raise InputError(
            f"{name} contains {int(bad.sum())} NaN or infinite values; check the scores "
            "(e.g. the model's logits) before computing metrics"
        )
    return t


def _auroc_from_hist(h_in: torch.Tensor, h_out: torch.Tensor) -> torch.Tensor:
    """AUROC from counts per distinct score (ascending), batched over leading dims."""
    below = torch.cumsum(h_out, dim=-1) - h_out
    wins = (h_in * (below + 0.5 * h_out)).sum(-1)
    return wins / (h_in.sum(-1) * h_out.sum(-1))


def _average_precision(h_pos: torch.Tensor, h_neg: torch.Tensor) -> float:
    """Step-wise average precision; counts are ordered from the most positive threshold down."""
    tp = torch.cumsum(h_pos, 0)
    fp = torch.cumsum(h_neg, 0)
    precision = tp / (tp + fp)
    return float((h_pos / h_pos.sum() * precision).sum())


def _downsample(n_points: int, limit: int) -> torch.Tensor:
    if n_points <= limit:
        return torch.arange(n_points)
    return torch.unique(torch.linspace(0, n_points - 1, limit).round().long())


def ood_metrics(
    scores_in: Any,
    scores_out: Any,
    *,
    seed: int = 0,
    n_boot: int = 200,
    hist_bins: int = 30,
) -> OODMetrics:
    """AUROC, AUPR-in/out and FPR@95TPR of ID vs OOD scores (higher = more ID).

    See the module docstring for the exact conventions (ties are handled like scikit-learn).

    Args:
        scores_in: ``(N_in,)`` scores of in-distribution samples.
        scores_out: ``(N_out,)`` scores of OOD samples.
        seed: seed of the bootstrap.
        n_boot: bootstrap resamples for the AUROC interval (0: no interval, NaN bounds).
        hist_bins: number of shared histogram bins for the report.

    Returns:
        An :class:`OODMetrics`.

    Raises:
        InputError: empty, non-1-D or non-finite scores; bad ``n_boot``/``hist_bins``.

    Example:
        >>> res = ood_metrics([0.9, 0.8, 0.7, 0.4], [0.1, 0.5, 0.3], n_boot=50)
        >>> round(res.auroc, 4), round(res.aupr_in, 4), round(res.fpr_at_95_tpr, 4)  # 11/12
        (0.9167, 0.95, 0.3333)
        >>> ood_metrics([1.0, 1.0], [1.0]).auroc  # all tied: chance
        0.5
    """
    s_in = _check_scores(scores_in, "scores_in")
    s_out = _check_scores(scores_out, "scores_out")
    seed = check_seed(seed)
    for value, name, minimum in ((n_boot, "n_boot", 0), (hist_bins, "hist_bins", 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise InputError(f"{name} must be an int >= {minimum}, got {value!r}")
    n_in, n_out = int(s_in.shape[0]), int(s_out.shape[0])

    values, inverse = torch.unique(torch.cat([s_in, s_out]), sorted=True, return_inverse=True)
    m = int(values.shape[0])
    u_in, u_out = inverse[:n_in], inverse[n_in:]
    h_in = torch.bincount(u_in, minlength=m).to(torch.float64)
    h_out = torch.bincount(u_out, minlength=m).to(torch.float64)

    auroc = float(_auroc_from_hist(h_in, h_out))
    aupr_in = _average_precision(h_in.flip(0), h_out.flip(0))
    aupr_out = _average_precision(h_out, h_in)

    tpr = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumsum(h_in.flip(0), 0) / n_in])
    fpr = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumsum(h_out.flip(0), 0) / n_out])
    first = int(torch.nonzero(tpr >= 0.95)[0, 0])
    fpr95 = float(fpr[first])
    keep = _downsample(int(tpr.shape[0]), 200)

    if n_boot > 0:
        gen = make_generator(seed)
        reps = []
        chunk = max(1, 2_000_000 // max(m, n_in, n_out))
        done = 0
        while done < n_boot:
            k = min(chunk, n_boot - done)
            offs = torch.arange(k).unsqueeze(1) * m
            b_in = torch.bincount(
                (u_in[bootstrap_indices(n_in, k, gen)] + offs).flatten(), minlength=k * m
            )
            b_out = torch.bincount(
                (u_out[bootstrap_indices(n_out, k, gen)] + offs).flatten(), minlength=k * m
            )
            reps.append(
                _auroc_from_hist(
                    b_in.view(k, m).to(torch.float64), b_out.view(k, m).to(torch.float64)
                )
            )
            done += k
        low, high = percentile_interval(torch.cat(reps))
        method = f"stratified percentile bootstrap, {n_boot} resamples, seed {seed}"
    else:
        low, high, method = math.nan, math.nan, "none"

    lo_v, hi_v = float(values[0]), float(values[-1])
    if hi_v <= lo_v:
        lo_v, hi_v = lo_v - 0.5, hi_v + 0.5
    edges = np.linspace(lo_v, hi_v, hist_bins + 1)
    hist_in = np.histogram(s_in.numpy(), bins=edges)[0]
    hist_out = np.histogram(s_out.numpy(), bins=edges)[0]

    return OODMetrics(
        auroc=auroc,
        auroc_ci=Estimate(auroc, low, high, n_in + n_out, method),
        aupr_in=aupr_in,
        aupr_out=aupr_out,
        fpr_at_95_tpr=fpr95,
        n_in=n_in,
        n_out=n_out,
        convention=CONVENTION,
        roc_fpr=fpr[keep].tolist(),
        roc_tpr=tpr[keep].tolist(),
        hist_edges=edges.tolist(),
        hist_in=[int(c) for c in hist_in],
        hist_out=[int(c) for c in hist_out],
    )


# ---------------------------------------------------------------------------- derived OOD sets
def _uniform_noise(img: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    return torch.rand(img.shape, generator=gen)


def _pixel_permuted(img: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    c, h, w = img.shape
    perm = torch.randperm(h * w, generator=gen)
    return img.reshape(c, h * w)[:, perm].reshape(c, h, w)


def _inverted(img: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    return 1.0 - img


def _constant(img: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    return torch.rand(1, generator=gen).expand(img.shape).clone()


def _blobs(img: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    c, h, w = img.shape
    coarse = torch.rand(1, 1, max(2, h // 6), max(2, w // 6), generator=gen)
    smooth = F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)[0]
    mask = (smooth > 0.5).to(torch.float32)
    colour = torch.rand(c, 1, 1, generator=gen)
    return mask * colour


_DERIVED: dict[str, tuple[Callable[[torch.Tensor, torch.Generator], torch.Tensor], bool]] = {
    "uniform-noise": (_uniform_noise, True),
    "pixel-permuted": (_pixel_permuted, True),
    "inverted": (_inverted, False),
    "constant": (_constant, True),
    "blobs": (_blobs, True),
}

#: Every far-OOD set :func:`derived_ood_sets` can build.
DERIVED_OOD_SETS: tuple[str, ...] = tuple(_DERIVED)
#: The ones it builds by default.
DEFAULT_DERIVED_OOD: tuple[str, ...] = ("uniform-noise", "pixel-permuted", "inverted")


def derived_ood_sets(
    x: torch.Tensor, *, seed: int = 0, kinds: Sequence[str] = DEFAULT_DERIVED_OOD
) -> dict[str, torch.Tensor]:
    """Far-OOD image sets derived from in-distribution images (label them as derived in reports).

    * ``uniform-noise``: i.i.d. U(0, 1) pixels;
    * ``pixel-permuted``: each image's pixel positions shuffled by its own permutation (the same
      for all channels), keeping the intensity histogram and destroying the structure;
    * ``inverted``: ``1 - x``;
    * ``constant`` (optional): one uniform random grey level per image;
    * ``blobs`` (optional): smooth random binary blobs with a random colour per image.

    Randomness is per image, keyed on ``(seed, kind, the image's content hash)``: the same image
    always gets the same derived image, whatever the batch.

    Args:
        x: in-distribution images under the image contract.
        seed: base seed.
        kinds: which sets to build, from :data:`DERIVED_OOD_SETS`.

    Returns:
        ``{kind: images}``, each float32 with the shape and device of ``x``.

    Example:
        >>> import torch
        >>> x = torch.rand(3, 1, 4, 4)
        >>> sets = derived_ood_sets(x, seed=1)
        >>> sorted(sets), sets["inverted"].shape
        (['inverted', 'pixel-permuted', 'uniform-noise'], torch.Size([3, 1, 4, 4]))
        >>> torch.equal(sets["pixel-permuted"], derived_ood_sets(x, seed=1)["pixel-permuted"])
        True
    """
    check_images(x)
    seed = check_seed(seed)
    if isinstance(kinds, str):
        kinds = (kinds,)
    unknown = [k for k in kinds if k not in _DERIVED]
    if unknown or not kinds:
        raise InputError(
            f"unknown derived OOD set(s) {unknown or list(kinds)}; choose from "
            f"{', '.join(DERIVED_OOD_SETS)}"
        )
    cpu = x.detach().to("cpu", torch.float32)
    keys = content_keys(cpu).tolist()
    out: dict[str, torch.Tensor] = {}
    for kind in kinds:
        fn, random = _DERIVED[kind]
        if not random:
            out[kind] = fn(cpu, torch.Generator()).to(x.device)
            continue
        imgs = [
            fn(img, make_generator(derive_seed(seed, kind, key)))
            for img, key in zip(cpu, keys, strict=True)
        ]
        out[kind] = torch.stack(imgs).to(device=x.device, dtype=torch.float32)
    return out
