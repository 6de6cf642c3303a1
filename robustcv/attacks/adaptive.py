"""Adaptive attacks: EOT for randomised models and BPDA for non-differentiable layers.

* **EOT** (expectation over transformation, Athalye et al. 2018): with ``eot=K`` every logits
  call an attack makes runs the model K times (K separate calls, so randomness drawn per call
  or per image - torch's global generator or the model's own - differs between them) and the
  attack sees ``log mean_k softmax(f_k(x))``, the log of the expected prediction. Its gradient
  is the average of the K passes' gradients of the probabilities; on a deterministic model it
  gives the same softmax, the same cross-entropy and the same logit differences as one pass, so
  ``eot=1`` is the plain attack.
* **EOT evaluation**: ``eot_eval=R`` makes the runner decide success (and clean correctness)
  over R evaluations: the majority of them (``eot_rule="majority"``, ties count as not
  adversarial) or all of them (``"all"``).
* **BPDA** (backward pass differentiable approximation, Athalye et al. 2018): ``bpda={"jpeg":
  "identity"}`` keeps the named module's forward pass exactly as it is and replaces its
  backward pass by that of the identity (straight-through), or of a smooth callable ``g`` with
  ``g(input)`` shaped like the module's output. Only while the attack computes gradients.
"""

from __future__ import annotations

import contextlib
import difflib
import math
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch
from torch import nn

from robustcv.core.errors import InputError
from robustcv.core.model import Model

__all__ = [
    "AUTO_EOT",
    "EOT_RULES",
    "STOCHASTIC_TOL",
    "EOTModel",
    "auto_eot",
    "bpda_substitution",
    "check_adaptive",
    "stochastic_spread",
]

EOT_RULES = ("majority", "all")
#: (eot, eot_eval) the default ensembles switch to on a stochastic model.
AUTO_EOT = (10, 5)
#: logits of two forward passes differing by more than this mark a stochastic model.
STOCHASTIC_TOL = 1e-4


def stochastic_spread(model: Model, x: torch.Tensor, *, n: int = 16) -> float:
    """How far two forward passes on the same images differ (0 for a deterministic model).

    Args:
        model: a :class:`Model`.
        x: images under the image contract; the first ``n`` are used.
        n: images probed.

    Returns:
        The largest absolute difference between the logits of two passes on ``x[:n]``.

    Example:
        >>> m = Model(nn.Sequential(nn.Flatten(), nn.Linear(4, 3)))
        >>> stochastic_spread(m, torch.rand(2, 1, 2, 2))
        0.0
    """
    with torch.no_grad():
        probe = x[: max(1, min(n, len(x)))]
        return float((model.logits(probe) - model.logits(probe)).abs().max())


def auto_eot(model: Model, x: torch.Tensor) -> tuple[int, int, str] | None:
    """The EOT settings a default ensemble switches to on a stochastic model, or None.

    Args:
        model: a :class:`Model`.
        x: images under the image contract (a few are probed twice).

    Returns:
        ``(eot, eot_eval, note)`` with :data:`AUTO_EOT` and a sentence for the report when two
        forward passes differ by more than 1e-4, else None.

    Example:
        >>> m = Model(nn.Sequential(nn.Flatten(), nn.Linear(4, 3)))
        >>> auto_eot(m, torch.rand(2, 1, 2, 2)) is None
        True
    """
    diff = stochastic_spread(model, x)
    if diff <= STOCHASTIC_TOL:
        return None
    eot, eot_eval = AUTO_EOT
    note = (
        f"stochastic model (two forward passes differ by up to {diff:.3g}): the ensemble "
        f"ran with EOT ({eot} passes per gradient) and decided success by the majority of "
        f"{eot_eval} evaluations"
    )
    return eot, eot_eval, note


class EOTModel:
    """A view of a :class:`Model` whose ``logits`` are ``log mean_k softmax(f_k(x))``.

    Everything else (counts, device, preprocessing, ...) is the wrapped model's.

    Example:
        >>> m = Model(nn.Sequential(nn.Flatten(), nn.Linear(4, 3)))
        >>> x = torch.rand(2, 1, 2, 2)
        >>> torch.allclose(EOTModel(m, 3).logits(x), torch.log_softmax(m(x), 1), atol=1e-6)
        True
    """

    def __init__(self, model: Model, samples: int) -> None:
        self._model = model
        self.samples = samples

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def logits(self, x: torch.Tensor, *, validate: bool = True) -> torch.Tensor:
        """The log of the mean predicted probabilities over ``samples`` passes."""
        logps = [
            torch.log_softmax(self._model.logits(x, validate=validate), dim=1)
            for _ in range(self.samples)
        ]
        return torch.logsumexp(torch.stack(logps), dim=0) - math.log(self.samples)

    __call__ = logits


class _Straight(torch.autograd.Function):
    """Forward: the module's output, unchanged. Backward: the vector-Jacobian product of g."""

    @staticmethod
    def forward(ctx: Any, x_in: torch.Tensor, out: torch.Tensor, g: Any) -> torch.Tensor:
        ctx.save_for_backward(x_in)
        ctx.g = g
        return out.clone()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
        (x_in,) = ctx.saved_tensors
        if ctx.g is None:  # identity
            return grad, None, None
        with torch.enable_grad():
            xi = x_in.detach().requires_grad_(True)
            (gx,) = torch.autograd.grad(ctx.g(xi), xi, grad)
        return gx, None, None


def check_adaptive(
    eot: Any, eot_eval: Any, eot_rule: Any, bpda: Any, model: Model | None = None
) -> None:
    """Validate the adaptive-attack arguments of :func:`robustcv.attacks.attack`.

    Raises:
        InputError: eot or eot_eval not an int >= 1, an unknown rule, or a BPDA mapping that
            names no module of the model (with close matches) or an unknown substitute.

    Example:
        >>> check_adaptive(0, 1, "majority", None)
        Traceback (most recent call last):
        ...
        robustcv.core.errors.InputError: eot must be an int >= 1 (forward/backward passes averaged per gradient), got 0
    """  # noqa: E501
    for name, value, what in (
        ("eot", eot, "forward/backward passes averaged per gradient"),
        ("eot_eval", eot_eval, "evaluations that decide success on a stochastic model"),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InputError(f"{name} must be an int >= 1 ({what}), got {value!r}")
    if eot_rule not in EOT_RULES:
        raise InputError(f"eot_rule must be one of {', '.join(EOT_RULES)}, got {eot_rule!r}")
    if bpda is None:
        return
    if not isinstance(bpda, Mapping) or not bpda:
        raise InputError(
            f"bpda must map module names to 'identity' or a function, got {bpda!r}; e.g. "
            "bpda={'jpeg': 'identity'}"
        )
    modules = _modules(model) if model is not None else None
    for key, sub in bpda.items():
        if modules is not None and key not in modules:
            names = [n for n in modules if n]
            close = difflib.get_close_matches(str(key), names, n=3)
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise InputError(
                f"bpda names module {key!r}, which the model does not have{hint} (its modules: "
                f"{', '.join(names[:12])}{' ...' if len(names) > 12 else ''})"
            )
        if not (sub == "identity" or callable(sub)):
            raise InputError(
                f"bpda[{key!r}] must be 'identity' or a function of the module's input, got {sub!r}"
            )


def _modules(model: Model) -> dict[str, nn.Module]:
    net = model.net
    if not isinstance(net, nn.Module):
        raise InputError(
            f"bpda substitutes modules of a PyTorch network; model '{model.name}' has none "
            "(an ONNX or function model)"
        )
    return dict(net.named_modules())


@contextlib.contextmanager
def bpda_substitution(
    model: Model, bpda: Mapping[str, str | Callable[[torch.Tensor], torch.Tensor]] | None
) -> Iterator[None]:
    """Within the block, the named modules backpropagate through their substitutes.

    Forward values are unchanged (bit for bit); hooks are removed on exit.

    Example:
        >>> net = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
        >>> m = Model(net)
        >>> x = torch.rand(1, 1, 2, 2, requires_grad=True)
        >>> with bpda_substitution(m, {"1": "identity"}):
        ...     pass
    """
    if not bpda:
        yield
        return
    modules = _modules(model)
    handles = []

    def make_hook(name: str, sub: Any) -> Callable[..., Any]:
        g = None if sub == "identity" else sub

        def hook(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> Any:
            if not torch.is_grad_enabled() or not inputs or not torch.is_tensor(output):
                return None
            x_in = inputs[0]
            if g is None and x_in.shape != output.shape:
                raise InputError(
                    f"bpda: module {name!r} maps {tuple(x_in.shape)} to {tuple(output.shape)}; "
                    "'identity' needs the same shape: pass a function g with g(input) shaped "
                    "like the output"
                )
            return _Straight.apply(x_in, output, g)

        return hook

    try:
        for name, sub in bpda.items():
            handles.append(modules[name].register_forward_hook(make_hook(name, sub)))
        yield
    finally:
        for h in handles:
            h.remove()
