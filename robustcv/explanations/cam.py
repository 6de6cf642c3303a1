"""Grad-CAM and Grad-CAM++: class activation maps from an inner convolutional layer.

The layer is given by its module name (``net.named_modules()``); the default is the output of
the last convolutional block: the last ``nn.Conv2d`` in registration order, or the activation
module registered right after it (normalisation layers in between skipped) when there is one and
it runs once per forward pass (a shared activation module, called in several places, is not
used; the conv output is). Grad-CAM on a conv output taken before its ReLU is often 0 everywhere.
Its output ``A`` (B,K,h,w), as the layer returned it (a
copy is taken, so a following in-place ReLU cannot change it), and the gradient ``G`` of the
target logit with respect to ``A`` give:

* Grad-CAM (Selvaraju et al. 2017): ``relu(sum_k mean_hw(G_k) * A_k)``;
* Grad-CAM++ (Chattopadhay et al. 2018), in its usual closed form for an exponentiated score:
  ``a = G^2 / (2 G^2 + sum_hw(A) G^3)`` (0 where the denominator is 0), channel weights
  ``sum_hw(a * relu(G))``, map ``relu(sum_k w_k A_k)``.

Maps are (B,1,h,w); the runner upsamples them to the image size (bilinear by default) and
states it in the notes.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from robustcv.core.errors import InputError
from robustcv.explanations.base import (
    ExplainContext,
    MethodOutput,
    MethodSpec,
    check_choice,
    check_int,
    register_method,
)

__all__ = ["CamConfig", "find_layer"]

UPSAMPLE = ("bilinear", "nearest")


@dataclass(frozen=True)
class CamConfig:
    """Parameters of ``grad-cam`` and ``grad-cam++``.

    Attributes:
        layer: module name of the layer (``"features.3"``); None: the last convolutional
            block's output (the last ``nn.Conv2d``, or the activation module right after it).
        relu: apply the final ReLU (keep only evidence for the class), as both papers do.
        upsample: ``"bilinear"`` (default), ``"nearest"``, or None for the layer's own
            resolution (B,1,h,w).
        internal_batch_size: images per forward/backward pass (None: the default rule).
    """

    layer: str | None = None
    relu: bool = True
    upsample: str | None = "bilinear"
    internal_batch_size: int | None = None

    def __post_init__(self) -> None:
        if self.layer is not None and not isinstance(self.layer, str):
            raise InputError(
                f"layer must be a module name (str) such as 'features.3', got {self.layer!r}"
            )
        if not isinstance(self.relu, bool):
            raise InputError(f"relu must be True or False, got {self.relu!r} (method 'grad-cam')")
        if self.upsample is not None:
            check_choice(self.upsample, "upsample", "grad-cam", UPSAMPLE)
        if self.internal_batch_size is not None:
            check_int(self.internal_batch_size, "internal_batch_size", "grad-cam")


def find_layer(net: Any, name: str | None, method: str) -> tuple[str, nn.Module]:
    """The named submodule (or the last ``nn.Conv2d``) of ``net``.

    Raises:
        InputError: ``net`` is not an ``nn.Module``, has no such submodule (the message lists the
            convolutional layers and a close name), or has no ``nn.Conv2d`` for the default.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Conv2d(2, 2, 3))
        >>> find_layer(net, None, "grad-cam")[0]
        '2'
    """
    if not isinstance(net, nn.Module):
        raise InputError(
            f"method '{method}' needs the network's layers, but the model wraps a "
            f"{type(net).__name__}; wrap an nn.Module with robustcv.Model"
        )
    modules = dict(net.named_modules())
    convs = [n for n, m in modules.items() if isinstance(m, nn.Conv2d)]
    if name is None:
        if not convs:
            raise InputError(
                f"method '{method}' found no nn.Conv2d layer in the network; pass layer='NAME' "
                f"naming a layer with a (B,K,h,w) output (modules: {_listing(list(modules))})"
            )
        return convs[-1], modules[convs[-1]]
    if name not in modules or name == "":
        close = difflib.get_close_matches(name, [n for n in modules if n], n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise InputError(
            f"layer '{name}' not found in the network{hint} (conv layers: "
            f"{_listing(convs) or 'none'}; all modules: {_listing([n for n in modules if n])})"
        )
    return name, modules[name]


def _listing(names: list[str], limit: int = 12) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def _activation_after(net: Any, name: str) -> str | None:
    """The activation module registered right after ``name`` (normalisation layers skipped)."""
    mods = list(net.named_modules())
    at = [n for n, _ in mods].index(name) + 1
    while at < len(mods) and isinstance(mods[at][1], _NORMS):
        at += 1
    if at < len(mods) and isinstance(mods[at][1], _ACTIVATIONS):
        return mods[at][0]
    return None


def _layer_owner(net: Any) -> nn.Module:
    """``net`` as an ``nn.Module`` (``find_layer`` has already refused anything else)."""
    if not isinstance(net, nn.Module):  # pragma: no cover - find_layer raises first
        raise InputError(f"grad-cam needs an nn.Module network, got {type(net).__name__}")
    return net


def _record(layer: nn.Module, seen: list[Any]) -> Any:
    """A forward hook on ``layer`` that keeps a copy of each output in ``seen``."""

    def keep(_m: nn.Module, _i: Any, out: Any) -> Any:
        if isinstance(out, torch.Tensor):
            out = out.clone()  # what later in-place ops leave untouched
        seen.append(out)
        return out

    return layer.register_forward_hook(keep)


def _cam(
    ctx: ExplainContext, x: torch.Tensor, targets: torch.Tensor, cfg: CamConfig, plus: bool
) -> MethodOutput:
    method = "grad-cam++" if plus else "grad-cam"
    name, layer = find_layer(ctx.model.net, cfg.layer, method)
    # default layer: prefer the activation right after the last conv, if it runs exactly once
    after = _activation_after(ctx.model.net, name) if cfg.layer is None else None
    block: tuple[str, nn.Module] | None = (
        (after, dict(_layer_owner(ctx.model.net).named_modules())[after]) if after else None
    )
    rows = ctx.rows(cfg.internal_batch_size, x)
    parts = []
    blank = 0
    for start in range(0, x.shape[0], rows):
        xb = x[start : start + rows].detach().requires_grad_(True)
        tb = targets[start : start + rows]
        seen: list[Any] = []
        seen_block: list[Any] = []
        handles = [_record(layer, seen)]
        if block is not None:
            handles.append(_record(block[1], seen_block))
        try:
            with torch.enable_grad():
                logits = ctx.model.logits(xb, validate=False)
        finally:
            for handle in handles:
                handle.remove()
        if block is not None:
            if len(seen) == 1 and len(seen_block) == 1:
                name, layer = block  # the block's output from now on
                seen = seen_block
            block = None  # decided on the first chunk: a shared activation keeps the conv
        if not seen:
            raise InputError(
                f"layer '{name}' was not called during the forward pass; pass layer= naming a "
                "layer the network uses"
            )
        acts = seen[-1]
        if not isinstance(acts, torch.Tensor) or acts.dim() != 4:
            what = tuple(acts.shape) if isinstance(acts, torch.Tensor) else type(acts).__name__
            raise InputError(
                f"layer '{name}' returns {what}; {method} needs a (B,K,h,w) feature map: pass "
                "layer= naming a convolutional layer"
            )
        if not acts.requires_grad:
            raise InputError(
                f"layer '{name}' output does not depend on the input through autograd; pass "
                "layer= naming a layer after the input"
            )
        with torch.enable_grad():
            score = logits.gather(1, tb[:, None]).sum()
            (grad,) = torch.autograd.grad(score, acts)
        acts = acts.detach()
        if plus:
            g2 = grad * grad
            denom = 2.0 * g2 + acts.sum((2, 3), keepdim=True) * g2 * grad
            alpha = torch.where(denom != 0, g2 / torch.where(denom != 0, denom, 1.0), 0.0)
            weights = (alpha * grad.clamp_min(0.0)).sum((2, 3), keepdim=True)
        else:
            weights = grad.mean((2, 3), keepdim=True)
        cam = (weights * acts).sum(1, keepdim=True)
        blank += int((cam.flatten(1).amax(1) <= 0).sum())
        parts.append(cam.clamp_min(0.0) if cfg.relu else cam)
    notes = {"layer": f"{name} ({type(layer).__name__})"}
    if blank and cfg.relu:
        if isinstance(layer, _ACTIVATIONS):
            hint = "; try an earlier layer with layer=..."
        else:
            nxt = _activation_after(ctx.model.net, name)
            hint = (
                f"; try layer='{nxt}' (the activation after it)"
                if nxt
                else "; name the activation after it with layer=..."
            )
        notes["warning"] = (
            f"{blank} of {x.shape[0]} maps are 0 everywhere: the weighted sum of layer '{name}' "
            "is positive nowhere (typical of a conv output taken before its ReLU, or of "
            "activations that are 0)" + hint + " or pass relu=False"
        )
    return MethodOutput(torch.cat(parts), layer=name, notes=notes)


_NORMS = (nn.BatchNorm2d, nn.GroupNorm, nn.InstanceNorm2d, nn.LayerNorm)
_ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Hardswish, nn.Mish)


def _grad_cam(
    ctx: ExplainContext, x: torch.Tensor, targets: torch.Tensor, cfg: CamConfig
) -> MethodOutput:
    return _cam(ctx, x, targets, cfg, plus=False)


def _grad_cam_pp(
    ctx: ExplainContext, x: torch.Tensor, targets: torch.Tensor, cfg: CamConfig
) -> MethodOutput:
    return _cam(ctx, x, targets, cfg, plus=True)


register_method(
    MethodSpec(
        "grad-cam",
        _grad_cam,
        CamConfig,
        "layer",
        random=False,
        summary="layer activations weighted by their mean gradient (Selvaraju et al. 2017)",
        answers="which regions of the layer's feature map support the class (coarse, "
        "class-discriminative)",
    )
)
register_method(
    MethodSpec(
        "grad-cam++",
        _grad_cam_pp,
        CamConfig,
        "layer",
        random=False,
        summary="Grad-CAM with pixel-wise weights from higher-order terms (Chattopadhay 2018)",
        answers="like grad-cam, with better coverage when the class appears in several places",
    )
)
