"""The attack contract: a registry of specs, one result type, and a runner that trusts no attack.

An attack is a pure function ``fn(ctx, x, y, **params) -> x_adv`` over a batch. The runner
(:func:`robustcv.attacks.attack`) validates inputs, builds the :class:`AttackContext`, calls the
function on a copy of the inputs, then re-projects the result into the budget and the [0, 1] box,
re-evaluates the model itself and measures norms and cost. Attacks register an
:class:`AttackSpec` in :data:`ATTACKS`.
"""

from __future__ import annotations

import contextlib
import difflib
import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from numbers import Integral, Real
from typing import Any, Literal, cast

import torch

from robustcv.attacks.threat import ThreatModel, get_threat
from robustcv.core.contract import check_images, check_labels, check_model_fits
from robustcv.core.errors import InputError
from robustcv.core.model import Model
from robustcv.core.registry import Registry
from robustcv.core.results import Result
from robustcv.core.seeding import check_seed, content_keys, derive_seed

__all__ = [
    "ATTACKS",
    "AttackContext",
    "AttackKind",
    "AttackResult",
    "AttackSpec",
    "attack",
    "check_attack_name",
    "check_eps_value",
    "check_params",
    "content_keys",
    "per_sample_generators",
    "perturb",
]

AttackKind = Literal["gradient", "score", "decision", "noise"]


@dataclass(frozen=True)
class AttackContext:
    """What an attack function receives besides the batch.

    Attributes:
        model: the wrapped model (call it with ``validate=False`` inside loops).
        threat: the threat model (norm, projection, random start, steepest direction).
        eps: per-sample budget (B,), or None for an unbounded minimum-norm attack.
        targets: target labels (B,) for a targeted attack, else None.
        seed: the attack's seed; derive per-sample randomness with :func:`per_sample_uniform`.
        notes: things the attack wants recorded in the result (e.g. a loss switch).
        keys: (B,) a hash of each clean image's content; per-sample randomness is keyed by
            (seed, keys[i]), so results depend neither on batch size nor on sample order.
        eot_eval: the runner decides success over this many evaluations (majority or all,
            ``eot_rule``); above 1 the model's prediction is random (:attr:`stochastic`).
        eot_rule: ``"majority"`` or ``"all"``.
    """

    model: Model
    threat: ThreatModel
    eps: torch.Tensor | None
    targets: torch.Tensor | None
    seed: int
    keys: torch.Tensor
    notes: dict[str, str] = field(default_factory=dict)
    eot_eval: int = 1
    eot_rule: str = "majority"

    @property
    def stochastic(self) -> bool:
        """Whether the model's prediction is random (success is decided over draws).

        A prediction seen inside an attack is then one draw. PGD does not stop at the first
        success: it keeps maximising its loss and returns the highest-loss point, which later
        draws misclassify far more often than a point that just crossed the boundary. APGD
        (whose step-size rule compares loss values, which one draw makes noisy) stops a sample
        only once :meth:`confirmed` agrees.
        """
        return self.eot_eval > 1

    def confirmed(
        self,
        xa: torch.Tensor,
        y: torch.Tensor,
        targets: torch.Tensor | None,
        rows: torch.Tensor,
    ) -> torch.Tensor:
        """(B,) bool: where ``rows``, ``xa`` is adversarial by the runner's rule over fresh draws.

        ``eot_eval`` single-draw evaluations of the rows asked for (the others are False);
        success means reaching ``targets`` when given, else any misclassification.
        """
        from robustcv.attacks.adaptive import EOTModel

        one_draw = self.model._model if isinstance(self.model, EOTModel) else self.model
        idx = torch.nonzero(rows).flatten()
        out = torch.zeros_like(rows)
        out[idx] = _votes(
            one_draw,
            xa[idx],
            y[idx],
            None if targets is None else targets[idx],
            self.eot_eval,
            self.eot_rule,
        )
        return out

    @property
    def targeted(self) -> bool:
        """Whether the attack aims at ``targets``."""
        return self.targets is not None

    def is_adversarial(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Success per sample: misclassified (untargeted) or classified as the target."""
        pred = logits.argmax(1)
        if self.targets is not None:
            return pred == self.targets
        return pred != y


AttackFn = Callable[..., torch.Tensor]


@dataclass(frozen=True)
class AttackSpec:
    """A registered attack.

    Attributes:
        name: registry name.
        fn: ``fn(ctx, x, y, **params) -> x_adv``.
        kind: gradient, score (logits only), decision (labels only) or noise.
        minimum_norm: finds per-sample minimal perturbations (``eps=None`` allowed).
        norms: threat models it supports.
        targeted: supports targeted mode.
        params: default hyperparameters (what ``**params`` may override).
        summary: one line for ``robustcv list attacks``.
    """

    name: str
    fn: AttackFn
    kind: AttackKind
    minimum_norm: bool
    norms: tuple[str, ...]
    targeted: bool
    params: dict[str, Any]
    summary: str


ATTACKS: Registry[AttackSpec] = Registry("attack")


@dataclass
class AttackResult(Result):
    """The outcome of one attack on one batch (identical for every attack).

    Attributes:
        name: the attack.
        norm: the threat model (linf, l2, l1).
        eps: the budget, or None for an unbounded minimum-norm run.
        targeted: whether targets were given.
        success: (B,) bool: the runner's own re-evaluation found the sample adversarial.
        norms: (B,) perturbation norms of ``x_adv`` (inf where a minimum-norm attack failed).
        clean_correct: (B,) bool: the clean prediction was right (or not the target).
        forward_passes: forward passes spent, in images.
        backward_passes: input-gradient computations spent, in images.
        seconds: wall time.
        config: the full configuration (attack params after defaults, seed, norm, eps).
        failures: sample index -> reason for samples the attack could not process (NaN logits).
        x_adv: (B,C,H,W) adversarial images, inside the budget and [0, 1] (not in JSON).
    """

    name: str
    norm: str
    eps: float | None
    targeted: bool
    success: torch.Tensor
    norms: torch.Tensor
    clean_correct: torch.Tensor
    forward_passes: int
    backward_passes: int
    seconds: float
    config: dict[str, Any]
    failures: dict[int, str] = field(default_factory=dict)
    x_adv: torch.Tensor = field(default_factory=lambda: torch.empty(0), metadata={"json": False})

    @property
    def robust_accuracy(self) -> float:
        """Share of samples that are correctly classified and not broken."""
        return float((self.clean_correct & ~self.success).float().mean())

    @property
    def success_rate(self) -> float:
        """Share of samples the attack made adversarial."""
        return float(self.success.float().mean())


def per_sample_generators(
    ctx: AttackContext, rows: torch.Tensor, *key: object
) -> Iterator[tuple[int, torch.Generator]]:
    """Yield ``(position, generator)`` for each entry of ``rows`` (batch row indices).

    The generator is seeded from (seed, key, content key of that sample) and lives on the
    model's device, so per-sample randomness depends neither on batch size nor on order.
    """
    gen = torch.Generator(device=ctx.model.device)
    for pos, k in enumerate(ctx.keys[rows.cpu()].tolist()):
        gen.manual_seed(derive_seed(ctx.seed, *key, int(k)))
        yield pos, gen


def check_attack_name(name: object) -> str:
    """``name`` must be a string (a registry name); returns it."""
    if not isinstance(name, str):
        raise InputError(
            f"name must be an attack name (str), got {type(name).__name__} {name!r}; see "
            "'robustcv list attacks'"
        )
    return name


def check_eps_value(eps: object, *, name: str = "eps") -> float:
    """One budget: a finite number >= 0 (for ``l0`` the ball of radius 2.5 is that of 2)."""
    if isinstance(eps, bool) or not isinstance(eps, Real) or not float(eps) >= 0:
        raise InputError(f"{name} must be a number >= 0, got {eps!r}; e.g. {name}=0.1")
    value = float(eps)
    if not math.isfinite(value):
        raise InputError(
            f"{name} must be finite, got {eps!r}; pass a budget such as {name}=0.1 (or "
            f"{name}=None with a minimum-norm attack for the smallest perturbation)"
        )
    return value


def _check_value(spec: AttackSpec, key: str, value: Any) -> Any:
    """Check one hyperparameter against the type of its default; returns the value to use."""
    default = spec.params[key]
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise InputError(f"{key} must be True or False, got {value!r} (attack '{spec.name}')")
    elif isinstance(default, int):
        low = 0 if default == 0 else 1  # a count whose default is 0 may be 0
        if isinstance(value, bool) or not isinstance(value, Integral) or value < low:
            what = "an int >= 0" if low == 0 else "a positive int"
            raise InputError(
                f"{key} must be {what}, got {value!r} (attack '{spec.name}'); e.g. {key}={default}"
            )
        return int(value)
    elif isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
            raise InputError(
                f"{key} must be a finite number, got {value!r} (attack '{spec.name}'); e.g. "
                f"{key}={default}"
            )
        return float(value)
    elif isinstance(default, str) and not isinstance(value, str):
        raise InputError(
            f"{key} must be a string, got {value!r} (attack '{spec.name}'); e.g. {key}={default!r}"
        )
    return value


def check_params(
    spec: AttackSpec, params: dict[str, Any], *, num_classes: int | None = None
) -> dict[str, Any]:
    """Validate ``params`` for ``spec`` and merge them over its defaults.

    Unknown names get "did you mean" hints (``targeted=`` is pointed at ``targets=``); counts
    (``steps``, ``queries``...) must be positive ints, switches bools, numbers finite; an
    explicit ``n_targets`` may not exceed the model's other classes (``num_classes - 1``).
    """
    unknown = sorted(set(params) - set(spec.params))
    if unknown:
        if "targeted" in unknown:
            raise InputError(
                f"attack '{spec.name}' takes no targeted= switch: to run a targeted attack, "
                "pass targets= (one target label per image, different from y), e.g. "
                "targets=(y + 1) % num_classes"
            )
        hints = []
        for name in unknown:
            close = difflib.get_close_matches(name, list(spec.params), n=1)
            hints.append(f"'{name}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
        raise InputError(
            f"attack '{spec.name}' has no parameter {', '.join(hints)}; its parameters are "
            f"{', '.join(sorted(spec.params)) or 'none'}"
        )
    checked = {k: _check_value(spec, k, v) for k, v in params.items()}
    k = checked.get("n_targets")
    if num_classes is not None and k is not None and k > num_classes - 1:
        raise InputError(
            f"n_targets={k} but the model has {num_classes} classes, so only "
            f"{num_classes - 1} other classes to target; pass n_targets <= {num_classes - 1}"
        )
    return {**spec.params, **checked}


def _gradient_free_names() -> list[str]:
    return [e.name for e in ATTACKS if e.obj.kind != "gradient"]


def attack(
    model: Model,
    x: torch.Tensor,
    y: torch.Tensor,
    name: str,
    *,
    eps: float | None = None,
    norm: str = "linf",
    targets: torch.Tensor | None = None,
    seed: int = 0,
    eot: int = 1,
    eot_eval: int = 1,
    eot_rule: str = "majority",
    bpda: Mapping[str, Any] | None = None,
    **params: Any,
) -> AttackResult:
    """Run a registered attack and return a checked :class:`AttackResult`.

    The runner copies the inputs, calls the attack, then re-projects its output into the eps-ball
    and [0, 1], re-evaluates the model itself (an attack's own success claim is never used),
    measures norms, forward/backward passes and time. NaN or infinite logits raise, unless the
    model was wrapped with ``Model(..., nonfinite="warn")``: then the samples whose logits turn
    NaN are marked failed with a reason and the rest of the batch continues.

    Before anything runs, the inputs are checked: the image contract, that the model takes
    these images (:func:`robustcv.core.check_model_fits`, one image), labels and targets
    against the model's classes, the budget and every hyperparameter. Any memory layout
    (channels-last, sliced views) gives the same result as ``x.contiguous()``.

    Args:
        model: a :class:`robustcv.Model`.
        x: images under the image contract.
        y: true labels.
        name: a registry name (``robustcv list attacks``).
        eps: the budget; None for a minimum-norm attack (then ``.norms`` are the minimal
            perturbations found).
        norm: ``"linf"``, ``"l2"``, ``"l1"`` or ``"l0"`` (eps then counts changed coordinates).
        targets: target labels for a targeted attack (must differ from ``y``).
        seed: the attack's seed (same seed, same result).
        eot: expectation over transformation for randomised models: every logits call of the
            attack averages K passes (:mod:`robustcv.attacks.adaptive`); 1 is the plain attack.
        eot_eval: the runner decides success (and clean correctness) over this many
            evaluations (for stochastic models).
        eot_rule: ``"majority"`` (more than half of the ``eot_eval`` evaluations) or ``"all"``.
        bpda: ``{module name: "identity" | g}``: those modules of ``model.net`` backpropagate
            through the identity (or ``g``) while the attack runs; forward values unchanged.
        **params: attack hyperparameters (e.g. ``steps=40``).

    Returns:
        The :class:`AttackResult`.

    Raises:
        InputError: an unknown attack, norm or parameter (``targeted=`` points at
            ``targets=``), a budget that is negative, NaN or infinite, counts
            that are not positive ints, images or labels outside the contract (NaN/inf,
            ``meta`` tensors), or a model that cannot take the images.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> m = Model(nn.Sequential(nn.Flatten(), nn.Linear(4, 3)))
        >>> x, y = torch.rand(5, 1, 2, 2), torch.tensor([0, 1, 2, 0, 1])
        >>> res = attack(m, x, y, "pgd", eps=0.1, steps=5, early_stop=False)
        >>> bool((res.x_adv - x).abs().max() <= 0.1 + 1e-6), res.backward_passes
        (True, 25)
    """
    if not isinstance(model, Model):
        raise InputError(
            f"model is a {type(model).__name__}; wrap it with robustcv.Model or robustcv.load_model"
        )
    spec = ATTACKS.get(check_attack_name(name))
    check_seed(seed)
    x = check_images(x)
    threat = get_threat(norm)
    if threat.name not in spec.norms:
        raise InputError(
            f"attack '{spec.name}' supports norms {', '.join(spec.norms)}, not '{norm}'"
        )
    if eps is None:
        if not spec.minimum_norm:
            raise InputError(f"attack '{spec.name}' needs a budget: pass eps=... (e.g. eps=0.1)")
        eps_t = None
    else:
        eps_t = torch.full((x.shape[0],), check_eps_value(eps), device=model.device)
    if targets is not None and not spec.targeted:
        raise InputError(f"attack '{spec.name}' has no targeted mode; drop targets=")
    if spec.kind == "gradient" and not model.differentiable:
        raise InputError(
            f"attack '{spec.name}' needs input gradients but model '{model.name}' is gradient-free;"
            f" use one of: {', '.join(_gradient_free_names())}"
        )
    check_params(spec, params)  # cheap type checks before the model runs
    from robustcv.attacks.adaptive import EOTModel, bpda_substitution, check_adaptive

    check_adaptive(eot, eot_eval, eot_rule, bpda, model)
    if (eot > 1 or bpda) and spec.kind != "gradient":
        raise InputError(
            f"eot and bpda change gradients; attack '{spec.name}' uses none (score- and "
            "decision-based attacks already see the randomised model as it is)"
        )
    check_model_fits(model, x, what="x")  # also tells the wrapper its number of classes
    y = check_labels(y, batch_size=int(x.shape[0]), num_classes=model._num_classes)
    if targets is not None:
        targets = check_labels(
            targets, batch_size=int(x.shape[0]), num_classes=model._num_classes, name="targets"
        ).to(model.device)
        if bool((targets == y.to(model.device)).any()):
            raise InputError(
                "some targets equal the true label; a target must be a different class"
            )
    merged = check_params(spec, params, num_classes=model._num_classes)

    x_in = x.detach().to(model.device)
    y_in = y.to(model.device)
    attacked = cast(Model, EOTModel(model, eot)) if eot > 1 else model
    ctx = AttackContext(
        attacked,
        threat,
        eps_t,
        targets,
        seed,
        content_keys(x_in),
        eot_eval=eot_eval,
        eot_rule=eot_rule,
    )
    before = model.counts()
    start = time.perf_counter()
    clean_wrong = _votes(model, x_in, y_in, targets, eot_eval, eot_rule)
    with bpda_substitution(model, bpda), _no_gradient_path(spec, bpda):
        x_adv = spec.fn(ctx, x_in.clone(), y_in, **merged).detach()
    if x_adv.shape != x_in.shape:
        raise RuntimeError(f"attack '{spec.name}' returned shape {tuple(x_adv.shape)}")

    # never trust the attack: repair non-finite output, re-project, re-evaluate
    failures: dict[int, str] = {}
    bad = ~torch.isfinite(x_adv).flatten(1).all(1)
    x_adv = torch.where(bad[:, None, None, None], x_in, x_adv).clamp(0.0, 1.0)
    if eps_t is not None:
        x_adv = threat.project(x_in, x_adv, eps_t)
    with torch.no_grad():
        logits = model.logits(x_adv, validate=False)
    nan_rows = ~torch.isfinite(logits).all(1)
    if eot_eval > 1:
        success = _votes(model, x_adv, y_in, targets, eot_eval, eot_rule, first=logits) & ~nan_rows
    else:
        success = ctx.is_adversarial(logits, y_in) & ~nan_rows
    clean_correct = ~clean_wrong
    for i in torch.nonzero(bad | nan_rows).flatten().tolist():
        failures[int(i)] = "non-finite adversarial input" if bool(bad[i]) else "NaN logits"
    norms = threat.norm(x_adv - x_in)
    if eps_t is None:
        norms = torch.where(success, norms, torch.full_like(norms, float("inf")))
        x_adv = torch.where(success[:, None, None, None], x_adv, x_in)
    cost = model.counts() - before
    return AttackResult(
        name=spec.name,
        norm=threat.name,
        eps=None if eps is None else float(eps),
        targeted=targets is not None,
        success=success.cpu(),
        norms=norms.detach().cpu(),
        clean_correct=clean_correct.cpu(),
        forward_passes=cost.forward,
        backward_passes=cost.backward,
        seconds=time.perf_counter() - start,
        config={
            "attack": spec.name,
            "norm": threat.name,
            "eps": eps,
            "seed": seed,
            **{
                k: (f"tensor{tuple(v.shape)}" if isinstance(v, torch.Tensor) else v)
                for k, v in merged.items()
            },
            **({"notes": dict(ctx.notes)} if ctx.notes else {}),
            **({"eot": eot} if eot > 1 else {}),
            **({"eot_eval": eot_eval, "eot_rule": eot_rule} if eot_eval > 1 else {}),
            **(
                {"bpda": {k: v if isinstance(v, str) else repr(v) for k, v in bpda.items()}}
                if bpda
                else {}
            ),
        },
        failures=failures,
        x_adv=x_adv.cpu(),
    )


def _votes(
    model: Model,
    x: torch.Tensor,
    y: torch.Tensor,
    targets: torch.Tensor | None,
    evaluations: int,
    rule: str,
    first: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per sample: adversarial (misclassified / on target) by ``rule`` over the evaluations."""
    votes = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
    with torch.no_grad():
        for i in range(evaluations):
            logits = first if (i == 0 and first is not None) else model.logits(x, validate=False)
            pred = logits.argmax(1)
            votes += (pred != y if targets is None else pred == targets).long()
    return votes * 2 > evaluations if rule == "majority" else votes == evaluations


_NO_PATH = (
    "appears to not have been used in the graph",
    "does not require grad and does not have a grad_fn",
)


@contextlib.contextmanager
def _no_gradient_path(spec: AttackSpec, bpda: Mapping[str, Any] | None) -> Iterator[None]:
    """Turn autograd's "input not used in the graph" into an error that names the fix."""
    try:
        yield
    except RuntimeError as err:
        if spec.kind != "gradient" or not any(s in str(err) for s in _NO_PATH):
            raise
        hint = (
            "the bpda substitution given does not cover every such layer"
            if bpda
            else "name it with bpda={'module name': 'identity'} (a straight-through backward "
            "pass) or a smooth function"
        )
        raise InputError(
            f"attack '{spec.name}' needs input gradients, but the model's output does not "
            "depend on its input through autograd: a layer cuts the graph (a .detach(), numpy "
            f"or Pillow code such as a JPEG or bit-depth defence). {hint[0].upper()}{hint[1:]}, "
            "or wrap the model with differentiable=False to use the gradient-free attacks"
        ) from err


def perturb(
    model: Model,
    x: torch.Tensor,
    y: torch.Tensor,
    name: str,
    *,
    eps: float,
    norm: str = "linf",
    seed: int = 0,
    **params: Any,
) -> torch.Tensor:
    """Adversarial inputs for training: a fixed-budget attack without the runner's evaluation.

    The same registered attack, hyperparameter checks and seeding as :func:`attack`, and the
    output is still repaired, clipped to [0, 1] and re-projected into the eps-ball; what is
    skipped are the runner's two extra forward passes (clean and final evaluation) and its
    bookkeeping, which training does not use. Never use it to *measure* robustness: only
    :func:`attack` decides success. Inputs are trusted to be valid (the training loop's own
    batches); the model is not checked against them.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> m = Model(nn.Sequential(nn.Flatten(), nn.Linear(4, 3)))
        >>> x, y = torch.rand(5, 1, 2, 2), torch.tensor([0, 1, 2, 0, 1])
        >>> xa = perturb(m, x, y, "pgd", eps=0.1, steps=3)
        >>> bool((xa - x).abs().max() <= 0.1 + 1e-6) and torch.equal(
        ...     xa, attack(m, x, y, "pgd", eps=0.1, steps=3).x_adv)
        True
    """
    spec = ATTACKS.get(check_attack_name(name))
    if spec.minimum_norm or spec.kind != "gradient":
        raise InputError(f"perturb runs fixed-budget gradient attacks (pgd, fgsm), not '{name}'")
    check_seed(seed)
    threat = get_threat(norm)
    merged = check_params(spec, params, num_classes=model._num_classes)
    x_in = x.detach().to(model.device)
    eps_t = torch.full((x.shape[0],), check_eps_value(eps), device=model.device)
    ctx = AttackContext(model, threat, eps_t, None, seed, content_keys(x_in))
    x_adv = spec.fn(ctx, x_in.clone(), y.to(model.device), **merged).detach()
    bad = ~torch.isfinite(x_adv).flatten(1).all(1)
    x_adv = torch.where(bad[:, None, None, None], x_in, x_adv).clamp(0.0, 1.0)
    return threat.project(x_in, x_adv, eps_t)


def register_attack(spec: AttackSpec) -> AttackSpec:
    """Add ``spec`` to :data:`ATTACKS` (used by the attack modules at import)."""
    ATTACKS.add(spec.name, spec, summary=spec.summary)
    return spec
