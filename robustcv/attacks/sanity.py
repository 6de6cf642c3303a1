"""Automatic gradient-masking sanity checks for a robustness evaluation.

Each check is cheap (a subset of samples, a few extra attack runs), returns a :class:`Finding`
with a one-line explanation and a suggested action, and is meant to catch evaluations that look
robust only because the attacks could not work (Carlini et al. 2019, "On Evaluating Adversarial
Robustness"; AutoAttack's flags):

* ``stochastic-forward``: the same input gives different logits;
* ``probability-outputs``: the model returns probabilities, not logits;
* ``zero-gradients``: input gradients are zero or vanishing for many samples;
* ``not-monotone``: an attack's robust accuracy rises with eps;
* ``large-budget``: an attack with a huge budget does not reach ~100% success;
* ``black-box-beats-white-box``: noise (or a score-based attack) breaks samples the ensemble missed
  (at the largest eps that left any sample robust);
* ``more-iterations-help``: doubling steps and restarts still lowers robust accuracy;
* ``fgsm-beats-pgd``: single-step FGSM breaks samples the iterative ensemble missed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from robustcv.attacks.adaptive import STOCHASTIC_TOL, stochastic_spread
from robustcv.attacks.base import ATTACKS, attack
from robustcv.core.model import Model
from robustcv.core.results import Result

__all__ = ["LARGE_EPS", "Finding", "run_sanity_checks"]

# A budget that lets any attack turn every image grey (L-inf 0.5), scaled per norm by dimension.
LARGE_EPS = {"linf": 0.5, "l2": 0.5, "l1": 0.5, "l0": 0.5}  # times 1, sqrt(d), d, d


@dataclass
class Finding(Result):
    """The outcome of one sanity check.

    Attributes:
        check: the check's name.
        fired: True when the check found a problem.
        explanation: one line saying what was observed.
        action: what to do about it.
        detail: the numbers behind the verdict.
    """

    check: str
    fired: bool
    explanation: str
    action: str
    detail: dict[str, Any] = field(default_factory=dict)


def _large_eps(norm: str, dim: int) -> float:
    scale = {"linf": 1.0, "l2": math.sqrt(dim), "l1": float(dim), "l0": float(dim)}[norm]
    return LARGE_EPS[norm] * scale


def _stochastic(model: Model, x: torch.Tensor) -> Finding:
    diff = stochastic_spread(model, x, n=len(x))
    fired = diff > STOCHASTIC_TOL
    return Finding(
        "stochastic-forward",
        fired,
        f"two forward passes on the same images differ by up to {diff:.3g}"
        if fired
        else "the forward pass is deterministic",
        "evaluate with EOT (average gradients over many forward passes) or fix the randomness"
        if fired
        else "",
        {"max_abs_diff": diff},
    )


def _probabilities(model: Model, x: torch.Tensor) -> Finding:
    with torch.no_grad():
        out = model.logits(x, validate=False).float()
    in_unit = bool((out >= 0).all() and (out <= 1).all())
    sums = float((out.sum(1) - 1).abs().max())
    fired = in_unit and sums < 1e-3
    return Finding(
        "probability-outputs",
        fired,
        "outputs are in [0, 1] and rows sum to 1: the model returns probabilities"
        if fired
        else "outputs look like logits",
        "remove the final softmax so attacks see logits (softmax saturates gradients)"
        if fired
        else "",
        {"max_row_sum_error": sums},
    )


def _gradients(model: Model, x: torch.Tensor, y: torch.Tensor) -> Finding:
    xr = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        loss = F.cross_entropy(model.logits(xr, validate=False), y, reduction="sum")
        # a layer that cuts the graph (numpy, Pillow, .detach()) leaves no path: zero gradients
        (grad,) = torch.autograd.grad(loss, xr, allow_unused=True)
    if grad is None:
        grad = torch.zeros_like(xr)
    per = grad.flatten(1).abs().sum(1)
    zero = float((per == 0).float().mean())
    tiny = float((per < 1e-8 * grad[0].numel()).float().mean())
    fired = tiny > 0.1
    return Finding(
        "zero-gradients",
        fired,
        f"{zero:.0%} of samples have exactly zero and {tiny:.0%} vanishing input gradients"
        if fired
        else "input gradients are non-zero",
        "the model masks gradients (quantisation, saturation, non-differentiable layers): use "
        "BPDA, a margin/DLR loss, or score- and decision-based attacks"
        if fired
        else "",
        {"zero_fraction": zero, "vanishing_fraction": tiny},
    )


def run_sanity_checks(
    model: Model,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    norm: str,
    eps: list[float],
    robust: torch.Tensor,
    member: tuple[str, dict[str, Any]],
    seed: int = 0,
    subset: int = 100,
    adaptive: Mapping[str, Any] | None = None,
) -> list[Finding]:
    """Run every sanity check; see the module docstring.

    Args:
        model: the evaluated model.
        x: the evaluated images.
        y: their labels.
        norm: the threat model.
        eps: the budgets of the evaluation (ascending).
        robust: (B, len(eps)) bool: sample i was left robust by the ensemble at eps[j].
        member: the first (strongest white-box) ensemble member and its parameters.
        seed: seed for the extra attack runs.
        subset: how many samples the more expensive checks use.
        adaptive: EOT/BPDA keywords of :func:`robustcv.attacks.attack` the gradient attacks
            of the checks run with (those the ensemble's gradient members ran with).

    Returns:
        One :class:`Finding` per check, in the order of the module docstring.
    """
    n = min(subset, len(y))
    xs, ys = x[:n], y[:n]
    findings = [_stochastic(model, xs), _probabilities(model, xs)]
    name, params = member
    grad_extra = dict(adaptive or {})
    evals = {k: v for k, v in grad_extra.items() if k in ("eot_eval", "eot_rule")}
    if ATTACKS.get(name).kind == "gradient":
        params = {**params, **grad_extra}
    white_box = model.differentiable and ATTACKS.get(name).kind == "gradient"
    if model.differentiable:
        findings.append(_gradients(model, xs, ys))
    else:
        findings.append(Finding("zero-gradients", False, "skipped: gradient-free model", ""))

    # monotonicity of one attack run independently per eps
    curve = [
        attack(model, xs, ys, name, eps=e, norm=norm, seed=seed, **params).robust_accuracy
        for e in eps
    ]
    rises = [(eps[i], eps[i + 1]) for i in range(len(eps) - 1) if curve[i + 1] > curve[i] + 1 / n]
    findings.append(
        Finding(
            "not-monotone",
            bool(rises),
            f"{name} robust accuracy rises with eps between {rises}"
            if rises
            else f"{name} robust accuracy falls with eps",
            "the attack is unreliable (bad step size or masked gradients): add restarts, "
            "more steps, or a different loss"
            if rises
            else "",
            {"eps": eps, "accuracy": curve},
        )
    )

    big = _large_eps(norm, int(x[0].numel()))
    strong = attack(
        model,
        xs,
        ys,
        name if white_box else "noise-uniform",
        eps=big,
        norm=norm,
        seed=seed,
        **(params if white_box else evals),
    )
    rate = strong.success_rate
    findings.append(
        Finding(
            "large-budget",
            rate < 0.99,
            f"at eps={big:.3g} (enough to turn images grey) only {rate:.1%} of samples break"
            if rate < 0.99
            else f"at eps={big:.3g} {rate:.1%} of samples break",
            "an unbounded attack must reach 100%: the attack is failing, not the model robust"
            if rate < 0.99
            else "",
            {"eps": big, "success_rate": rate},
        )
    )

    # at the largest eps the ensemble left any sample robust: above it there is nothing to test
    # (a grid can end in fixed points, e.g. an audit's standard eps, that break every sample)
    with_survivors = [j for j in range(len(eps)) if bool(robust[:, j].any())]
    j_top = with_survivors[-1] if with_survivors else len(eps) - 1
    survivors = torch.nonzero(robust[:, j_top]).flatten()
    top = eps[j_top]
    extra: dict[str, int] = {}
    if survivors.numel():
        xv, yv = x[survivors], y[survivors]
        for other in ("noise-uniform", "noise-gaussian", "square"):
            if other in ATTACKS and norm in ATTACKS.get(other).norms:
                budget: dict[str, Any] = {"queries": 1000} if other == "square" else {}
                res = attack(model, xv, yv, other, eps=top, norm=norm, seed=seed, **budget, **evals)
                extra[other] = int(res.success.sum())
    broke = {k: v for k, v in extra.items() if v}
    findings.append(
        Finding(
            "black-box-beats-white-box",
            bool(broke),
            f"at eps={top:g}, {broke} samples the ensemble left robust were broken by "
            "noise/score-based attacks"
            if broke
            else "noise and score-based attacks break nothing the ensemble missed",
            "white-box attacks are being masked: trust the black-box result and investigate "
            "the gradients"
            if broke
            else "",
            {"eps": top, "broken": extra},
        )
    )

    if white_box:
        j_mid = len(eps) // 2
        mid = eps[j_mid]
        spec_params = ATTACKS.get(name).params
        doubled = dict(params)
        for knob in ("steps", "restarts", "queries"):
            if knob in spec_params:
                doubled[knob] = 2 * int(params.get(knob, spec_params[knob]) or 1)
        more = attack(model, xs, ys, name, eps=mid, norm=norm, seed=seed + 1, **doubled)
        # samples the whole ensemble left robust that the doubled run still breaks
        newly = int((robust[:n, j_mid] & more.success).sum())
        fired = newly > max(1, round(0.02 * n))
        drop = newly / n
        findings.append(
            Finding(
                "more-iterations-help",
                fired,
                f"{name} with doubled steps/restarts breaks {newly} samples ({drop:.1%}) the "
                f"ensemble left robust at eps={mid:g}"
                if fired
                else "doubling steps/restarts finds (almost) nothing the ensemble missed",
                "the evaluation has not converged: use more steps and restarts" if fired else "",
                {"eps": mid, "newly_broken": newly, "doubled": more.robust_accuracy},
            )
        )
        fgsm_broke = 0
        if norm not in ATTACKS.get("fgsm").norms:
            findings.append(
                Finding("fgsm-beats-pgd", False, f"skipped: FGSM has no {norm} version", "")
            )
            return findings
        for j, e in enumerate(eps):
            alive = torch.nonzero(robust[:, j]).flatten()
            if alive.numel():
                res = attack(model, x[alive], y[alive], "fgsm", eps=e, norm=norm, **grad_extra)
                fgsm_broke = max(fgsm_broke, int(res.success.sum()))
        findings.append(
            Finding(
                "fgsm-beats-pgd",
                fgsm_broke > 0,
                f"FGSM breaks {fgsm_broke} samples the iterative ensemble left robust"
                if fgsm_broke
                else "FGSM breaks nothing the iterative ensemble missed",
                "iterative attacks are stuck (masked or noisy gradients): add random restarts and "
                "check the step size"
                if fgsm_broke
                else "",
                {"broken": fgsm_broke},
            )
        )
    return findings
