"""Fragility of attribution maps: how far small input changes that keep the prediction move them.

* **Average case** (:func:`average_fragility`): maps of noisy copies ``x + u`` (``u`` uniform in
  an L-inf ball, clipped to [0, 1]) against the map of ``x``: max and average sensitivity
  (``||e(x+u) - e(x)||_F / ||e(x)||_F``, Captum's normalisation), the local Lipschitz estimate
  ``max ||e(x+u) - e(x)||_2 / ||u||_2`` (Alvarez-Melis & Jaakkola 2018) and the top-k
  intersection under noise.
* **Worst case** (:func:`fragility_attack`): the attack of Ghorbani, Abid & Zou (AAAI 2019).
  Iterated signed-gradient steps on a dissimilarity of the map, projected to the L-inf ball of
  radius ``eps`` around the image and to [0, 1]; a step is accepted only for images whose
  predicted label it keeps (a rejected image halves its step size and tries again from its last
  accepted point), and the most damaging accepted iterate is kept (judged on the surrogate map,
  which the attack computes anyway; every reported number comes from the *real* map).
  Objectives: ``"topk"`` (push mass off the originally top-k pixels: ascend
  ``-sum_{i in topk(x0)} s_i(x)`` of the map normalised to sum 1) and ``"center"`` (ascend the
  squared shift of the map's centre of mass). Reported as top-k intersection, Spearman rank
  correlation and centre-of-mass shift, against random sign noise of the same L-inf norm on the
  same images.
* **Misleading maps** (:func:`misleading_attack`, Dombrowski et al. 2019): descend
  ``||h(x) - h_t||^2 + gamma ||p(x) - p(x0)||^2`` (``h`` the map normalised to sum 1, ``p`` the
  softmax) within the L-inf ball, label kept at every accepted step, so the map moves towards a
  target map ``h_t`` (default: the original map shifted by a quarter of the image down and to
  the right) while the output and the image barely change.

**Second derivatives.** The gradient of a ReLU network is piecewise constant in the input, so
the gradient of a gradient map is 0 almost everywhere. The attacks therefore differentiate a
**softplus surrogate**: while they compute the map they differentiate, a
:class:`SoftplusRelu` ``TorchFunctionMode`` routes every relu call (``nn.ReLU``, ``F.relu``,
``torch.relu``, ``Tensor.relu`` and their in-place forms; the same routing as guided backprop's
:class:`robustcv.explanations.guided.ReluRule`) through ``softplus(beta * x) / beta``. Nothing
global is patched, and labels and the reported maps always come from the real network.

Methods the worst-case attacks support: :data:`ATTACKABLE` (differentiable maps:
saliency, input x gradient, integrated gradients, smoothgrad). The average-case measures work
for every registered method.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.nn import functional as F

from robustcv.core.errors import InputError
from robustcv.core.model import Model
from robustcv.core.results import Result
from robustcv.core.seeding import derive_seed
from robustcv.explanations._trust import (
    check_count,
    check_fraction,
    check_method,
    check_positive,
    mean_ci,
    predict,
    prepare,
    targets_for,
)
from robustcv.explanations.base import explain
from robustcv.explanations.gradients import quadrature
from robustcv.explanations.guided import ReluRouting
from robustcv.explanations.similarity import (
    center_shift,
    spearman,
    topk_count,
    topk_intersection,
)

__all__ = [
    "ATTACKABLE",
    "AverageFragilityResult",
    "FragilityConfig",
    "FragilityResult",
    "MisleadingConfig",
    "MisleadingResult",
    "SoftplusRelu",
    "average_fragility",
    "fragility_attack",
    "misleading_attack",
    "shifted_maps",
    "surrogate_maps",
]

ATTACKABLE = ("saliency", "input-x-gradient", "integrated-gradients", "smoothgrad")
"""Methods whose maps :func:`surrogate_maps` can differentiate (the worst-case attacks)."""


class SoftplusRelu(ReluRouting):
    """Inside the block every relu call computes ``softplus(beta * x) / beta`` instead.

    Only calls made while gradients are enabled are routed (the label checks run the real
    network under ``no_grad``). In-place relu writes the softplus value into its input.

    Args:
        beta: sharpness; larger is closer to relu (``softplus(beta x)/beta -> relu(x)``).

    Attributes:
        calls: relu calls routed so far.

    Example:
        >>> x = torch.tensor([-1.0, 0.0, 2.0], requires_grad=True)
        >>> with SoftplusRelu(beta=1.0) as mode:
        ...     y = torch.relu(x)
        >>> [round(v, 4) for v in y.tolist()], mode.calls
        ([0.3133, 0.6931, 2.1269], 1)
    """

    def __init__(self, beta: float = 10.0) -> None:
        super().__init__()
        self.beta = check_positive(beta, "beta")

    def route(self, x: torch.Tensor, inplace: bool) -> torch.Tensor:
        """``softplus(beta x) / beta``; written into ``x`` when the relu was in place."""
        out = F.softplus(x.clone() if inplace else x, beta=self.beta)
        if inplace:
            x.copy_(out)
            return x
        return out


# ---------------------------------------------------------------------- differentiable maps


def surrogate_maps(
    model: Model,
    x: torch.Tensor,
    targets: torch.Tensor,
    method: str,
    *,
    beta: float = 10.0,
    params: dict[str, Any] | None = None,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """(B,C,H,W) maps of ``method`` through the softplus surrogate, differentiable in ``x``.

    Args:
        model: the wrapped model.
        x: images (a tensor that may require grad).
        targets: (B,) classes.
        method: one of :data:`ATTACKABLE`.
        beta: softplus sharpness.
        params: the method's parameters (``abs`` for saliency; ``steps`` and ``rule`` for
            integrated gradients, zero baseline; ``samples`` and ``noise`` for smoothgrad).
        noise: smoothgrad's fixed noise (B, S, C, H, W) (drawn once by the caller, so the
            objective is a deterministic function of ``x``).

    Example:
        >>> from torch import nn
        >>> m = Model(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)))
        >>> x = torch.rand(1, 1, 2, 2)
        >>> surrogate_maps(m, x, torch.tensor([0]), "saliency").shape
        torch.Size([1, 1, 2, 2])
    """
    p = dict(params or {})
    if method not in ATTACKABLE:
        raise InputError(
            f"the worst-case attacks need a differentiable map; method '{method}' is not one "
            f"of {', '.join(ATTACKABLE)}"
        )
    b = x.shape[0]
    shape = tuple(x.shape[1:])

    def grads(points: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            z = model.logits(points, validate=False)
            picked = z.gather(1, t[:, None]).sum()
            (g,) = torch.autograd.grad(picked, points, create_graph=True)
        return g

    with torch.enable_grad(), SoftplusRelu(beta):
        xr = x if x.requires_grad else x.detach().requires_grad_(True)
        if method in ("saliency", "input-x-gradient"):
            g = grads(xr, targets)
            if method == "input-x-gradient":
                return g * xr
            return g.abs() if p.get("abs", True) else g
        if method == "integrated-gradients":
            steps = int(p.get("steps", 16))
            alphas, weights = quadrature(str(p.get("rule", "gauss-legendre")), steps)
            a = alphas.to(x.device).view(1, steps, *[1] * len(shape))
            pts = (a * xr.unsqueeze(1)).reshape(b * steps, *shape)
            g = grads(pts, targets.repeat_interleave(steps)).view(b, steps, *shape)
            w = weights.to(x.device).view(1, steps, *[1] * len(shape))
            return (g * w).sum(1) * xr
        # smoothgrad
        if noise is None:
            raise InputError("smoothgrad's surrogate needs its fixed noise (B, S, C, H, W)")
        s = noise.shape[1]
        pts = (xr.unsqueeze(1) + noise.to(x.device)).reshape(b * s, *shape)
        g = grads(pts, targets.repeat_interleave(s)).view(b, s, *shape)
        return g.mean(1)


def _normalised(maps: torch.Tensor) -> torch.Tensor:
    """(B, H*W) |map| summed over channels, divided by its sum (differentiable)."""
    s = maps.abs().sum(1).flatten(1)
    return s / s.sum(1, keepdim=True).clamp_min(1e-12)


def _com(norm: torch.Tensor, h: int, w: int) -> torch.Tensor:
    rows = torch.arange(h, dtype=norm.dtype, device=norm.device).repeat_interleave(w)
    cols = torch.arange(w, dtype=norm.dtype, device=norm.device).repeat(h)
    return torch.stack([(norm * rows).sum(1), (norm * cols).sum(1)], 1)


# ---------------------------------------------------------------------- average case


@dataclass
class AverageFragilityResult(Result):
    """Average-case fragility of one method under uniform L-inf noise.

    Attributes:
        method: the method.
        radius: the L-inf radius of the noise.
        samples: noisy copies per image.
        n: images.
        max_sensitivity: per image max over samples of ``||e(x+u)-e(x)||_F / ||e(x)||_F``.
        avg_sensitivity: the same, averaged over samples.
        local_lipschitz: per image ``max ||e(x+u)-e(x)||_2 / ||u||_2``.
        topk_noise: per image mean top-k intersection between ``e(x)`` and ``e(x+u)``.
        notes: how.
    """

    method: str
    radius: float
    samples: int
    n: int
    max_sensitivity: dict[str, Any]
    avg_sensitivity: dict[str, Any]
    local_lipschitz: dict[str, Any]
    topk_noise: dict[str, Any]
    notes: list[str] = field(default_factory=list)


def average_fragility(
    model: Model | torch.nn.Module,
    x: torch.Tensor,
    method: str,
    *,
    target: int | torch.Tensor | None = None,
    radius: float = 0.02,
    samples: int = 10,
    k: float = 0.1,
    seed: int | None = None,
    **params: Any,
) -> AverageFragilityResult:
    """Max/avg sensitivity, local Lipschitz estimate and top-k intersection under noise.

    Example:
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Flatten(), nn.Linear(64, 3))
        >>> x = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
        >>> r = average_fragility(net, x, "saliency", samples=2)
        >>> r.max_sensitivity["value"]  # a linear model's gradient does not move
        0.0
    """
    name = check_method(method)
    wrapped, xs, s = prepare(model, x, seed)
    check_count(samples, "samples")
    check_positive(radius, "radius")
    check_fraction(k, "k")
    targets = targets_for(wrapped, xs, target)
    b = len(xs)
    gen = torch.Generator().manual_seed(derive_seed(s, "average-fragility"))
    u = (torch.rand((b, samples, *xs.shape[1:]), generator=gen) * 2 - 1) * radius
    noisy = (xs.repeat_interleave(samples, 0) + u.reshape(b * samples, *xs.shape[1:])).clamp(0, 1)
    u_eff = noisy - xs.repeat_interleave(samples, 0)
    e0 = explain(wrapped, xs, targets, method=name, seed=s, **params).maps.double()
    e1 = explain(
        wrapped, noisy, targets.repeat_interleave(samples), method=name, seed=s, **params
    ).maps.double()
    e0r = e0.repeat_interleave(samples, 0)
    diff = (e1 - e0r).flatten(1).norm(dim=1)
    base = e0.flatten(1).norm(dim=1)
    base = torch.where(base == 0, torch.ones_like(base), base).repeat_interleave(samples)
    sens = (diff / base).view(b, samples)
    lip = (diff / u_eff.double().flatten(1).norm(dim=1).clamp_min(1e-12)).view(b, samples)
    topk = topk_intersection(e0r, e1, k).view(b, samples)
    return AverageFragilityResult(
        method=name,
        radius=float(radius),
        samples=int(samples),
        n=b,
        max_sensitivity=mean_ci(sens.amax(1)),
        avg_sensitivity=mean_ci(sens.mean(1)),
        local_lipschitz=mean_ci(lip.amax(1)),
        topk_noise=mean_ci(topk.mean(1)),
        notes=[
            f"{samples} noisy copies per image, uniform in the L-inf ball of radius {radius:g}, "
            "clipped to [0, 1]; the same target class for every copy",
            f"top-k intersection with k = {k:g} of the pixels (|map|)",
        ],
    )


# ---------------------------------------------------------------------- worst case


OBJECTIVES = ("topk", "center")


@dataclass(frozen=True)
class FragilityConfig:
    """Settings of :func:`fragility_attack`.

    Attributes:
        eps: L-inf radius of the perturbation (pixel values in [0, 1]).
        steps: attack iterations.
        step_size: initial step per iteration (None: ``eps / 4``); halved per image whenever a
            step would change that image's label.
        objective: ``"topk"`` or ``"center"`` (centre of mass).
        k: top-k share of pixels (objective and measure).
        beta: softplus sharpness of the surrogate.
        surrogate_steps: integrated gradients' path points inside the surrogate.
        surrogate_samples: smoothgrad's noisy copies inside the surrogate.
    """

    eps: float = 0.02
    steps: int = 20
    step_size: float | None = None
    objective: str = "topk"
    k: float = 0.1
    beta: float = 10.0
    surrogate_steps: int = 16
    surrogate_samples: int = 8

    def __post_init__(self) -> None:
        check_positive(self.eps, "eps")
        if self.eps > 1:
            raise InputError(f"eps={self.eps} exceeds the image range [0, 1]; e.g. eps=0.02")
        check_count(self.steps, "steps")
        if self.step_size is not None:
            check_positive(self.step_size, "step_size")
        if self.objective not in OBJECTIVES:
            raise InputError(
                f"objective={self.objective!r} is not known; choose from {', '.join(OBJECTIVES)}"
            )
        check_fraction(self.k, "k")
        check_positive(self.beta, "beta")
        check_count(self.surrogate_steps, "surrogate_steps")
        check_count(self.surrogate_samples, "surrogate_samples")


@dataclass
class FragilityResult(Result):
    """The worst-case fragility attack on one method, against noise of the same norm.

    Attributes:
        method: the method.
        objective: ``topk`` or ``center``.
        eps: the L-inf radius.
        n: images attacked.
        k: top-k pixel count.
        topk_attack: top-k intersection, original vs attacked map (mean, 95% interval).
        topk_noise: the same for random sign noise of the attack's L-inf norm.
        spearman_attack: Spearman (|map|) original vs attacked.
        spearman_noise: the same for the noise.
        center_shift_attack: centre-of-mass shift in pixels.
        center_shift_noise: the same for the noise.
        label_kept: share of images whose predicted label the attack kept (1.0 by construction).
        noise_label_kept: share for the noise.
        linf: largest L-inf norm of the attack's perturbations.
        accepted_steps: mean accepted steps per image.
        per_image: per-image ``topk_attack``, ``topk_noise``, ``center_shift_attack``.
        notes: how.
        seconds: wall time.
        x_adv: attacked images (not in JSON).
        maps_before: real maps of the images (not in JSON).
        maps_after: real maps of the attacked images (not in JSON).
    """

    method: str
    objective: str
    eps: float
    n: int
    k: int
    topk_attack: dict[str, Any]
    topk_noise: dict[str, Any]
    spearman_attack: dict[str, Any]
    spearman_noise: dict[str, Any]
    center_shift_attack: dict[str, Any]
    center_shift_noise: dict[str, Any]
    label_kept: float
    noise_label_kept: float
    linf: float
    accepted_steps: float
    per_image: dict[str, list[float]]
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    x_adv: torch.Tensor = field(default_factory=lambda: torch.empty(0), metadata={"json": False})
    maps_before: torch.Tensor = field(
        default_factory=lambda: torch.empty(0), metadata={"json": False}
    )
    maps_after: torch.Tensor = field(
        default_factory=lambda: torch.empty(0), metadata={"json": False}
    )


def _attack_setup(
    model: Any, x: Any, method: Any, seed: Any, params: dict[str, Any]
) -> tuple[Model, torch.Tensor, int, str]:
    name = check_method(method)
    if name not in ATTACKABLE:
        raise InputError(
            f"method '{name}' has no differentiable map for the worst-case attack; use one of "
            f"{', '.join(ATTACKABLE)} (average_fragility works for every method)"
        )
    wrapped, xs, s = prepare(model, x, seed)
    wrapped.require_gradients("the fragility attack")
    return wrapped, xs, s, name


def _surrogate_params(
    name: str, params: dict[str, Any], steps: int, samples: int
) -> dict[str, Any]:
    p = dict(params)
    if name == "integrated-gradients":
        if p.get("baseline", "zeros") not in ("zeros", 0, 0.0):
            raise InputError(
                "the fragility attack's surrogate uses the zero baseline; drop baseline= or "
                "pass baseline='zeros'"
            )
        p["steps"] = steps
    if name == "smoothgrad":
        p["samples"] = samples
    return p


def _fixed_noise(name: str, xs: torch.Tensor, s: int, samples: int, params: dict[str, Any]) -> Any:
    if name != "smoothgrad":
        return None
    gen = torch.Generator().manual_seed(derive_seed(s, "fragility-smoothgrad"))
    sigma = float(params.get("noise", 0.15))
    return torch.randn((len(xs), samples, *xs.shape[1:]), generator=gen) * sigma


def fragility_attack(
    model: Model | torch.nn.Module,
    x: torch.Tensor,
    method: str = "saliency",
    *,
    seed: int | None = None,
    config: FragilityConfig | None = None,
    **params: Any,
) -> FragilityResult:
    """Ghorbani et al.'s worst-case attack on a method's maps, label kept at every step.

    The explained class is each image's predicted class. See the module docstring.

    Args:
        model: a differentiable :class:`robustcv.Model` or ``nn.Module``.
        x: images under the image contract.
        method: one of :data:`ATTACKABLE`.
        seed: seeds the noise baseline and smoothgrad's fixed noise (None: 0).
        config: :class:`FragilityConfig` (None: defaults, eps 0.02, 20 steps, top-k).
        **params: the method's parameters for the real maps.

    Returns:
        The :class:`FragilityResult`.

    Raises:
        InputError: a method without a differentiable map, bad settings or images.

    Example:
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Flatten(), nn.Linear(64, 8), nn.ReLU(), nn.Linear(8, 3))
        >>> x = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
        >>> r = fragility_attack(net, x, config=FragilityConfig(eps=0.05, steps=3))
        >>> r.label_kept, r.linf <= 0.05 + 1e-6
        (1.0, True)
    """
    start = time.perf_counter()
    cfg = config if config is not None else FragilityConfig()
    if not isinstance(cfg, FragilityConfig):
        raise InputError("config must be a FragilityConfig, e.g. FragilityConfig(eps=0.02)")
    wrapped, xs, s, name = _attack_setup(model, x, method, seed, params)
    b, _, h, w = xs.shape
    kk = topk_count(cfg.k, h * w)
    y0 = predict(wrapped, xs).argmax(1)
    sparams = _surrogate_params(name, params, cfg.surrogate_steps, cfg.surrogate_samples)
    noise = _fixed_noise(name, xs, s, cfg.surrogate_samples, params)

    def real(z: torch.Tensor) -> torch.Tensor:
        return explain(wrapped, z, y0, method=name, seed=s, **params).maps

    before = real(xs)
    norm0 = _normalised(before.to(xs.device).float())
    top0 = torch.zeros_like(norm0, dtype=torch.bool)
    top0.scatter_(1, torch.sort(norm0, dim=1, descending=True, stable=True).indices[:, :kk], True)
    com0 = _com(norm0, h, w)
    alpha = torch.full((b,), cfg.step_size if cfg.step_size is not None else cfg.eps / 4)
    alpha = alpha.to(xs.device)
    cur = xs.clone()
    best = xs.clone()
    best_damage = torch.full((b,), -float("inf"), device=xs.device)
    accepted = torch.zeros(b)
    for it in range(cfg.steps + 1):
        xr = cur.detach().requires_grad_(True)
        m = surrogate_maps(wrapped, xr, y0, name, beta=cfg.beta, params=sparams, noise=noise)
        norm = _normalised(m)
        with torch.no_grad():  # damage of the current (accepted) point, on the surrogate map
            if cfg.objective == "topk":
                top = torch.zeros_like(top0)
                top.scatter_(1, torch.topk(norm, kk, dim=1).indices, True)
                damage = -(top & top0).sum(1).float() / kk
            else:
                damage = (_com(norm, h, w) - com0).norm(dim=1)
            better = damage > best_damage
            best[better] = cur[better]
            best_damage = torch.where(better, damage, best_damage)
        if it == cfg.steps:
            break
        if cfg.objective == "topk":
            obj = -(norm * top0).sum(1)
        else:
            obj = (_com(norm, h, w) - com0).square().sum(1)
        (g,) = torch.autograd.grad(obj.sum(), xr)
        step = alpha.view(-1, 1, 1, 1) * g.sign()
        cand = torch.min(torch.max(cur + step, xs - cfg.eps), xs + cfg.eps).clamp(0.0, 1.0)
        ok = predict(wrapped, cand).argmax(1) == y0
        alpha = torch.where(ok, alpha, alpha / 2)
        cur = torch.where(ok.view(-1, 1, 1, 1), cand, cur).detach()
        accepted += ok.float().cpu()
    best_maps = real(best)
    delta = best - xs
    linf = delta.flatten(1).abs().amax(1)
    gen = torch.Generator().manual_seed(derive_seed(s, "fragility-noise"))
    signs = torch.randint(0, 2, xs.shape, generator=gen).to(xs) * 2 - 1
    noisy = (xs + signs * linf.view(-1, 1, 1, 1)).clamp(0.0, 1.0)
    noise_maps = real(noisy)
    noise_kept = predict(wrapped, noisy).argmax(1) == y0
    kept = predict(wrapped, best).argmax(1) == y0
    before_c, after_c = before.cpu(), best_maps.cpu()
    t_att = topk_intersection(before_c, after_c, kk)
    t_noise = topk_intersection(before_c, noise_maps, kk)
    c_att = center_shift(before_c, after_c)
    return FragilityResult(
        method=name,
        objective=cfg.objective,
        eps=cfg.eps,
        n=b,
        k=kk,
        topk_attack=mean_ci(t_att),
        topk_noise=mean_ci(t_noise),
        spearman_attack=mean_ci(spearman(before_c, after_c)),
        spearman_noise=mean_ci(spearman(before_c, noise_maps)),
        center_shift_attack=mean_ci(c_att),
        center_shift_noise=mean_ci(center_shift(before_c, noise_maps)),
        label_kept=float(kept.float().mean()),
        noise_label_kept=float(noise_kept.float().mean()),
        linf=float(linf.max()),
        accepted_steps=float(accepted.mean()),
        per_image={
            "topk_attack": t_att.tolist(),
            "topk_noise": t_noise.tolist(),
            "center_shift_attack": c_att.tolist(),
        },
        notes=[
            f"{cfg.steps} signed-gradient steps (start {float(cfg.step_size or cfg.eps / 4):g}, "
            f"halved per image on a label change), L-inf eps {cfg.eps:g}, clipped to [0, 1]; "
            f"objective '{cfg.objective}' through softplus(beta={cfg.beta:g}); the accepted "
            "iterate most damaging on the surrogate map is kept, and measured on the real map",
            f"noise: random signs times each image's attack L-inf norm, clipped to [0, 1]; "
            f"top-k with k = {kk} pixels",
        ],
        seconds=time.perf_counter() - start,
        x_adv=best.detach().cpu(),
        maps_before=before_c,
        maps_after=after_c,
    )


# ---------------------------------------------------------------------- misleading maps


@dataclass(frozen=True)
class MisleadingConfig:
    """Settings of :func:`misleading_attack`.

    Attributes:
        eps: L-inf radius.
        steps: iterations.
        step_size: initial step (None: ``eps / 10``), decayed linearly to a tenth over the
            steps, and halved per image on a label change.
        gamma: weight of the output term ``||p(x) - p(x0)||^2``.
        beta: softplus sharpness of the surrogate.
        surrogate_steps: integrated gradients' path points inside the surrogate.
        surrogate_samples: smoothgrad's noisy copies inside the surrogate.
    """

    eps: float = 0.05
    steps: int = 50
    step_size: float | None = None
    gamma: float = 1.0
    beta: float = 10.0
    surrogate_steps: int = 16
    surrogate_samples: int = 8

    def __post_init__(self) -> None:
        check_positive(self.eps, "eps")
        if self.eps > 1:
            raise InputError(f"eps={self.eps} exceeds the image range [0, 1]; e.g. eps=0.05")
        check_count(self.steps, "steps")
        if self.step_size is not None:
            check_positive(self.step_size, "step_size")
        check_positive(self.gamma, "gamma", allow_zero=True)
        check_positive(self.beta, "beta")
        check_count(self.surrogate_steps, "surrogate_steps")
        check_count(self.surrogate_samples, "surrogate_samples")


@dataclass
class MisleadingResult(Result):
    """The misleading-explanation attack on one method.

    Attributes:
        method: the method.
        eps: the L-inf radius.
        n: images.
        distance_before: per-image mean squared distance between the normalised real map and
            the normalised target map, before the attack (mean, interval).
        distance_after: the same after the attack (lower: closer to the target).
        spearman_target_before: Spearman (|map|) of the real map with the target, before.
        spearman_target_after: the same after.
        label_kept: share of images whose predicted label was kept (1.0 by construction).
        max_probability_change: largest change of any class probability.
        linf: largest L-inf norm of the perturbations.
        notes: how.
        seconds: wall time.
        x_adv: the attacked images (not in JSON).
        maps_after: real maps of the attacked images (not in JSON).
        target_maps: the target maps (not in JSON).
    """

    method: str
    eps: float
    n: int
    distance_before: dict[str, Any]
    distance_after: dict[str, Any]
    spearman_target_before: dict[str, Any]
    spearman_target_after: dict[str, Any]
    label_kept: float
    max_probability_change: float
    linf: float
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    x_adv: torch.Tensor = field(default_factory=lambda: torch.empty(0), metadata={"json": False})
    maps_after: torch.Tensor = field(
        default_factory=lambda: torch.empty(0), metadata={"json": False}
    )
    target_maps: torch.Tensor = field(
        default_factory=lambda: torch.empty(0), metadata={"json": False}
    )


def shifted_maps(
    maps: torch.Tensor, rows: int | None = None, cols: int | None = None
) -> torch.Tensor:
    """Maps moved down by ``rows`` and right by ``cols`` pixels (default a quarter), zero fill.

    Example:
        >>> m = torch.arange(4.0).view(1, 1, 2, 2)
        >>> shifted_maps(m, 1, 1).flatten().tolist()
        [0.0, 0.0, 0.0, 0.0]
        >>> shifted_maps(m, 0, 1).flatten().tolist()
        [0.0, 0.0, 0.0, 2.0]
    """
    h, w = int(maps.shape[-2]), int(maps.shape[-1])
    r = h // 4 if rows is None else int(rows)
    c = w // 4 if cols is None else int(cols)
    out = torch.zeros_like(maps)
    if r >= h or c >= w:
        return out
    out[..., r:, c:] = maps[..., : h - r, : w - c]
    return out


def misleading_attack(
    model: Model | torch.nn.Module,
    x: torch.Tensor,
    method: str = "saliency",
    *,
    target_maps: torch.Tensor | None = None,
    seed: int | None = None,
    config: MisleadingConfig | None = None,
    **params: Any,
) -> MisleadingResult:
    """Steer a method's maps towards target maps with the prediction kept (Dombrowski et al.).

    Args:
        model: a differentiable :class:`robustcv.Model` or ``nn.Module``.
        x: images under the image contract.
        method: one of :data:`ATTACKABLE`.
        target_maps: (B,1 or C,H,W) maps to steer towards (None: each original map shifted by
            a quarter of the image down and right, :func:`shifted_maps`).
        seed: seeds smoothgrad's fixed noise (None: 0).
        config: :class:`MisleadingConfig` (None: defaults).
        **params: the method's parameters for the real maps.

    Returns:
        The :class:`MisleadingResult`.

    Example:
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Flatten(), nn.Linear(64, 8), nn.ReLU(), nn.Linear(8, 3))
        >>> x = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
        >>> r = misleading_attack(net, x, config=MisleadingConfig(steps=3))
        >>> r.label_kept
        1.0
    """
    start = time.perf_counter()
    cfg = config if config is not None else MisleadingConfig()
    if not isinstance(cfg, MisleadingConfig):
        raise InputError("config must be a MisleadingConfig, e.g. MisleadingConfig(eps=0.05)")
    wrapped, xs, s, name = _attack_setup(model, x, method, seed, params)
    b, _, h, w = xs.shape
    p0 = predict(wrapped, xs).softmax(1)
    y0 = p0.argmax(1)
    sparams = _surrogate_params(name, params, cfg.surrogate_steps, cfg.surrogate_samples)
    noise = _fixed_noise(name, xs, s, cfg.surrogate_samples, params)

    def real(z: torch.Tensor) -> torch.Tensor:
        return explain(wrapped, z, y0, method=name, seed=s, **params).maps

    before = real(xs)
    if target_maps is None:
        tmaps = shifted_maps(before)
    else:
        ok = isinstance(target_maps, torch.Tensor) and target_maps.dim() == 4
        ok = ok and target_maps.shape[0] == b and tuple(target_maps.shape[2:]) == (h, w)
        if not ok:
            raise InputError(
                f"target_maps must have shape ({b}, 1 or C, {h}, {w}); pass one map per image "
                "(None: a shifted copy of each original map)"
            )
        tmaps = target_maps.detach().float().cpu()
    ht = _normalised(tmaps.to(xs.device))
    alpha = torch.full((b,), cfg.step_size if cfg.step_size is not None else cfg.eps / 10)
    alpha = alpha.to(xs.device)
    cur = xs.clone()
    for it in range(cfg.steps):
        xr = cur.detach().requires_grad_(True)
        m = surrogate_maps(wrapped, xr, y0, name, beta=cfg.beta, params=sparams, noise=noise)
        decay = 1.0 - 0.9 * it / max(cfg.steps - 1, 1)  # linear to a tenth: less oscillation
        with torch.enable_grad():
            pz = wrapped.logits(xr, validate=False).softmax(1)
            loss = (_normalised(m) - ht).square().sum(1) * (h * w) + cfg.gamma * (
                pz - p0
            ).square().sum(1)
            (g,) = torch.autograd.grad(loss.sum(), xr)
        step = decay * alpha.view(-1, 1, 1, 1) * g.sign()
        cand = torch.min(torch.max(cur - step, xs - cfg.eps), xs + cfg.eps).clamp(0.0, 1.0)
        ok_lab = predict(wrapped, cand).argmax(1) == y0
        alpha = torch.where(ok_lab, alpha, alpha / 2)
        cur = torch.where(ok_lab.view(-1, 1, 1, 1), cand, cur).detach()
    after = real(cur)
    p1 = predict(wrapped, cur).softmax(1)
    kept = p1.argmax(1) == y0
    ht_c = ht.cpu().double()
    d0 = (_normalised(before.double()) - ht_c).square().mean(1)
    d1 = (_normalised(after.double()) - ht_c).square().mean(1)
    return MisleadingResult(
        method=name,
        eps=cfg.eps,
        n=b,
        distance_before=mean_ci(d0),
        distance_after=mean_ci(d1),
        spearman_target_before=mean_ci(spearman(before, tmaps)),
        spearman_target_after=mean_ci(spearman(after, tmaps)),
        label_kept=float(kept.float().mean()),
        max_probability_change=float((p1 - p0).abs().max()),
        linf=float((cur - xs).abs().max()),
        notes=[
            f"{cfg.steps} signed-gradient steps (decaying) on ||h - h_target||^2 * pixels + "
            f"{cfg.gamma:g} ||p - p0||^2 through softplus(beta={cfg.beta:g}), L-inf eps "
            f"{cfg.eps:g}, clipped to [0, 1], label kept at every accepted step",
            "target: "
            + (
                "each original map shifted by a quarter down and right"
                if target_maps is None
                else "user-supplied maps"
            ),
            "distance: mean squared difference of the maps normalised to sum 1 (|map|)",
        ],
        seconds=time.perf_counter() - start,
        x_adv=cur.detach().cpu(),
        maps_after=after.cpu(),
        target_maps=tmaps,
    )
