"""Guided backpropagation and deconvolution, for ``nn.ReLU`` modules *and* functional relu.

Both change only how gradients pass backwards through each ReLU:

* guided backprop (Springenberg et al. 2015): pass a gradient only where the forward input was
  positive *and* the incoming gradient is positive;
* deconvolution (Zeiler & Fergus 2014): pass only the positive part of the incoming gradient,
  whatever the forward input was.

How every relu is reached: hooks on ``nn.ReLU`` modules alone miss ``F.relu(x)``,
``torch.relu(x)`` and ``x.relu()`` inside a ``forward`` (the gap Captum documents). Instead,
during the call a :class:`torch.overrides.TorchFunctionMode` is active; it sees every call of
``torch.nn.functional.relu`` / ``relu_``, ``torch.relu`` / ``relu_`` and ``Tensor.relu`` /
``relu_`` whatever name the model's code bound them to, including the ``F.relu`` call that
``nn.ReLU.forward`` makes, and routes it through a custom autograd Function (an in-place one,
marking its input dirty, for the in-place variants). Nothing global is patched: the mode is
exited when the call ends, also on error. TorchScript-compiled modules run outside Python and
are not reached; the result's notes count the relu calls routed, so a count of 0 shows it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch.nn import functional as F
from torch.overrides import TorchFunctionMode

from robustcv.explanations.base import (
    ExplainContext,
    MethodOutput,
    MethodSpec,
    check_int,
    register_method,
)

__all__ = ["GuidedConfig", "ReluRule"]


class _GuidedRelu(torch.autograd.Function):
    """relu forward; backward passes grad where input > 0 and grad > 0."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        out = x.clamp_min(0.0)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (out,) = ctx.saved_tensors
        return grad.clamp_min(0.0) * (out > 0).to(grad.dtype)


class _GuidedReluInplace(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        x.clamp_min_(0.0)
        ctx.mark_dirty(x)
        ctx.save_for_backward(x)
        return x

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (out,) = ctx.saved_tensors
        return grad.clamp_min(0.0) * (out > 0).to(grad.dtype)


class _DeconvRelu(torch.autograd.Function):
    """relu forward; backward passes the positive part of the incoming gradient."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        return x.clamp_min(0.0)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        return grad.clamp_min(0.0)


class _DeconvReluInplace(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        x.clamp_min_(0.0)
        ctx.mark_dirty(x)
        return x

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        return grad.clamp_min(0.0)


_OUT_OF_PLACE: tuple[Callable[..., Any], ...] = (F.relu, torch.relu, torch.Tensor.relu)
_IN_PLACE: tuple[Callable[..., Any], ...] = (F.relu_, torch.relu_, torch.Tensor.relu_)


class ReluRouting(TorchFunctionMode):
    """Base of the modes that replace every relu call made while gradients are enabled.

    Routed: ``F.relu``, ``torch.relu``, ``Tensor.relu`` and their in-place forms
    (``nn.ReLU`` modules call ``F.relu``, so modules and functional relu are handled alike).
    Subclasses implement :meth:`route`; ``calls`` counts the calls routed.
    """

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def route(self, x: torch.Tensor, inplace: bool) -> torch.Tensor:
        """The replacement of ``relu(x)``; when ``inplace`` it must write into ``x``."""
        raise NotImplementedError

    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        inplace_variant = func in _IN_PLACE
        if (not inplace_variant and func not in _OUT_OF_PLACE) or not torch.is_grad_enabled():
            return func(*args, **kwargs)
        x = args[0] if args else kwargs.get("input", kwargs.get("self"))
        if not isinstance(x, torch.Tensor):
            return func(*args, **kwargs)
        inplace = inplace_variant or (
            func is F.relu and bool(args[1] if len(args) > 1 else kwargs.get("inplace", False))
        )
        self.calls += 1
        return self.route(x, inplace)


class ReluRule(ReluRouting):
    """Route every relu call in the block through the guided or deconvolution rule.

    Args:
        rule: ``"guided"`` or ``"deconvolution"``.

    Attributes:
        calls: relu calls routed so far (only those made while gradients are enabled).

    Example:
        >>> x = torch.tensor([-1.0, 2.0], requires_grad=True)
        >>> with ReluRule("deconvolution") as mode:
        ...     y = torch.relu(x)
        >>> (g,) = torch.autograd.grad(y, x, torch.tensor([3.0, -1.0]))
        >>> g.tolist(), mode.calls
        ([3.0, 0.0], 1)
    """

    def __init__(self, rule: str) -> None:
        super().__init__()
        guided = rule == "guided"
        self._plain = _GuidedRelu if guided else _DeconvRelu
        self._inplace = _GuidedReluInplace if guided else _DeconvReluInplace

    def route(self, x: torch.Tensor, inplace: bool) -> torch.Tensor:
        """The guided/deconvolution relu of ``x`` (written into ``x`` when ``inplace``)."""
        return self._inplace.apply(x) if inplace else self._plain.apply(x)


@dataclass(frozen=True)
class GuidedConfig:
    """Parameters of ``guided-backprop`` and ``deconvolution``.

    Attributes:
        internal_batch_size: images per forward/backward pass (None: the default rule).
    """

    internal_batch_size: int | None = None

    def __post_init__(self) -> None:
        if self.internal_batch_size is not None:
            check_int(self.internal_batch_size, "internal_batch_size", "guided-backprop")


def _run(
    rule: str, ctx: ExplainContext, x: torch.Tensor, targets: torch.Tensor, cfg: GuidedConfig
) -> MethodOutput:
    rows = ctx.rows(cfg.internal_batch_size, x)
    parts = []
    calls_first = 0
    with ReluRule(rule) as mode:
        for i in range(0, x.shape[0], rows):
            parts.append(ctx.gradients(x[i : i + rows], targets[i : i + rows]))
            if i == 0:
                calls_first = mode.calls
    note = (
        f"{calls_first} relu calls per forward pass routed through the {rule} rule "
        "(nn.ReLU modules and functional relu alike)"
        if calls_first
        else "no relu call was seen (TorchScript, or no ReLU): the map is the plain gradient"
    )
    return MethodOutput(torch.cat(parts), notes={"relu": note})


def _guided(
    ctx: ExplainContext, x: torch.Tensor, targets: torch.Tensor, cfg: GuidedConfig
) -> MethodOutput:
    return _run("guided", ctx, x, targets, cfg)


def _deconvolution(
    ctx: ExplainContext, x: torch.Tensor, targets: torch.Tensor, cfg: GuidedConfig
) -> MethodOutput:
    return _run("deconvolution", ctx, x, targets, cfg)


register_method(
    MethodSpec(
        "guided-backprop",
        _guided,
        GuidedConfig,
        "gradient",
        random=False,
        summary="gradient with negative signals stopped at every ReLU (Springenberg et al. 2015)",
        answers="which input patterns excite the neurons that support the class (sharp, but "
        "largely insensitive to the class and the weights: see docs/explanations.md)",
    )
)
register_method(
    MethodSpec(
        "deconvolution",
        _deconvolution,
        GuidedConfig,
        "gradient",
        random=False,
        summary="backward pass that keeps only positive signals at ReLUs (Zeiler & Fergus 2014)",
        answers="which input patterns the network reconstructs from the class score's positive "
        "evidence",
    )
)
