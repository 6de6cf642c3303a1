"""The explanation contract: a registry of methods, one result type and the runner.

A method is a frozen config dataclass (its parameters, checked in ``__post_init__``) plus a pure
function ``fn(ctx, x, targets, config) -> MethodOutput`` over a batch. The runner
(:func:`robustcv.explanations.explain`) validates the model, images, targets and parameters,
calls the function on a contiguous copy of the images, then upsamples layer maps, applies the
requested normalisation and records targets, parameters, cost and notes in an
:class:`Explanation`. Methods register a :class:`MethodSpec` in :data:`METHODS`.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from numbers import Integral, Real
from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from robustcv.core.contract import check_images, check_model_fits
from robustcv.core.errors import GradientUnavailableError, InputError
from robustcv.core.model import Model
from robustcv.core.names import check_param_names
from robustcv.core.registry import Registry
from robustcv.core.results import Result
from robustcv.core.seeding import check_seed, content_keys, derive_seed

__all__ = [
    "DEFAULT_ROWS",
    "METHODS",
    "ExplainContext",
    "Explanation",
    "MethodKind",
    "MethodOutput",
    "MethodSpec",
    "blocks",
    "check_choice",
    "check_int",
    "check_number",
    "check_pair",
    "explain",
    "method_rows",
    "normalize_maps",
    "register_method",
    "row_chunks",
]

MethodKind = Literal["gradient", "layer", "perturbation"]
"""``gradient``: needs input gradients; ``layer``: needs gradients at an inner layer of an
``nn.Module``; ``perturbation``: forward passes only (works on gradient-free models)."""

DEFAULT_ROWS = 1 << 18
"""Default bound on the input values (rows x C x H x W) of one internal forward/backward pass:
``internal_batch_size=None`` means ``max(1, DEFAULT_ROWS // (C*H*W))`` rows (334 rows of 28x28
grey images, 1 row of a 224x224 RGB image). Small passes keep the activations in the CPU's
caches: on the Fashion-MNIST CNN with 2 threads, integrated gradients took 0.48x the time of
Captum's best internal batch size on an idle machine, 0.86x with one core taken by another
process (benchmarks/explanations_vs_captum.py). Pass ``internal_batch_size`` for large models
on a GPU."""

NORMALIZE_RULES = ("max-abs", "percentile")


@dataclass(frozen=True)
class MethodOutput:
    """What a method function returns.

    Attributes:
        maps: (B,C,H,W) input-space maps, or (B,1,h,w) layer maps when ``layer`` is set.
        layer: for layer maps, the name of the layer they come from (else None).
        delta: (B,) per-image completeness error, for methods that have one.
        extras: other per-image tensors (e.g. LIME's weighted R^2).
        notes: facts the result should state (what was computed, and how).
    """

    maps: torch.Tensor
    layer: str | None = None
    delta: torch.Tensor | None = None
    extras: dict[str, torch.Tensor] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)


MethodFn = Callable[["ExplainContext", torch.Tensor, torch.Tensor, Any], MethodOutput]


@dataclass(frozen=True)
class MethodSpec:
    """A registered explanation method.

    Attributes:
        name: registry name.
        fn: ``fn(ctx, x, targets, config) -> MethodOutput``.
        config: the frozen dataclass of its parameters (defaults are the method's defaults).
        kind: ``gradient``, ``layer`` or ``perturbation`` (see :data:`MethodKind`).
        random: whether the maps depend on ``seed``.
        summary: one line for ``robustcv list methods``.
        answers: the question the map answers, in one sentence.
    """

    name: str
    fn: MethodFn
    config: type
    kind: MethodKind
    random: bool
    summary: str
    answers: str

    @property
    def params(self) -> dict[str, Any]:
        """The default parameters."""
        return {f.name: f.default for f in dataclasses.fields(self.config)}


METHODS: Registry[MethodSpec] = Registry("explanation method")


def method_rows() -> list[dict[str, Any]]:
    """One row per registered method, for ``robustcv list methods`` and the docs.

    Example:
        >>> import robustcv.explanations
        >>> row = method_rows()[0]
        >>> sorted(row)
        ['answers', 'kind', 'name', 'params', 'random', 'summary']
    """
    return [
        {
            "name": e.name,
            "summary": f"[{e.obj.kind}{', seeded' if e.obj.random else ''}] {e.summary}",
            "kind": e.obj.kind,
            "random": e.obj.random,
            "answers": e.obj.answers,
            "params": e.obj.params,
        }
        for e in METHODS
    ]


def register_method(spec: MethodSpec) -> MethodSpec:
    """Add ``spec`` to :data:`METHODS` (used by the method modules at import)."""
    METHODS.add(spec.name, spec, summary=spec.summary)
    return spec


@dataclass
class Explanation(Result):
    """Attribution maps for one batch, with everything needed to read them.

    Attributes:
        method: the method's registry name.
        targets: (B,) int64 class whose score was explained, per image.
        scores: (B,) that class's logit at the image.
        params: the method's parameters after defaults (tensors as ``tensor(shape)``), plus
            ``seed`` and ``normalize``.
        delta: (B,) per-image completeness error where the method has one
            (integrated gradients: sum of attributions - (f(x) - f(baseline))); else None.
        extras: other per-image values (e.g. LIME's weighted R^2 of its linear fit).
        notes: how the maps were made: layer and upsampling, normalisation rule, relu routing.
        forward_passes: forward passes spent, in images.
        backward_passes: input-gradient computations spent, in images.
        seconds: wall time.
        maps: float32 maps on the CPU: shaped like ``x`` for input-space methods, (B,1,H,W) for
            layer methods (or (B,1,h,w) with ``upsample=None``). Not in JSON.
    """

    method: str
    targets: torch.Tensor
    scores: torch.Tensor
    params: dict[str, Any]
    delta: torch.Tensor | None
    extras: dict[str, torch.Tensor]
    notes: dict[str, str]
    forward_passes: int
    backward_passes: int
    seconds: float
    maps: torch.Tensor = field(default_factory=lambda: torch.empty(0), metadata={"json": False})


# ---------------------------------------------------------------------- parameter checks


def check_int(value: Any, name: str, method: str, *, minimum: int = 1) -> int:
    """An int >= ``minimum`` (bools and floats refused)."""
    if isinstance(value, bool) or not isinstance(value, Integral) or int(value) < minimum:
        raise InputError(
            f"{name} must be an int >= {minimum}, got {value!r} (method '{method}'); e.g. "
            f"{name}={max(minimum, 1) * 4}"
        )
    return int(value)


def check_number(
    value: Any, name: str, method: str, *, minimum: float | None = None, strict: bool = False
) -> float:
    """A finite real number, optionally ``>= minimum`` (``> minimum`` with ``strict``)."""
    ok = not isinstance(value, bool) and isinstance(value, Real) and math.isfinite(float(value))
    if ok and minimum is not None:
        ok = float(value) > minimum if strict else float(value) >= minimum
    if not ok:
        bound = "" if minimum is None else f" {'>' if strict else '>='} {minimum:g}"
        raise InputError(
            f"{name} must be a finite number{bound}, got {value!r} (method '{method}')"
        )
    return float(value)


def check_choice(value: Any, name: str, method: str, choices: tuple[str, ...]) -> str:
    """One of ``choices`` (with a "did you mean" hint)."""
    if isinstance(value, str) and value in choices:
        return value
    close = difflib.get_close_matches(str(value), choices, n=1) if isinstance(value, str) else []
    hint = f"; did you mean '{close[0]}'?" if close else ""
    raise InputError(
        f"{name}={value!r} is not known (method '{method}'){hint} (choose from "
        f"{', '.join(choices)})"
    )


def check_pair(value: Any, name: str, method: str) -> tuple[int, int]:
    """An int >= 1 or a pair of them (height, width)."""
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return (check_int(value[0], name, method), check_int(value[1], name, method))
    if isinstance(value, bool) or not isinstance(value, Integral) or int(value) < 1:
        raise InputError(
            f"{name} must be an int >= 1 or a pair (height, width) of them, got {value!r} "
            f"(method '{method}'); e.g. {name}=4 or {name}=(4, 2)"
        )
    return (int(value), int(value))


def _build_config(spec: MethodSpec, params: dict[str, Any]) -> Any:
    """The method's config from ``params``: unknown names get "did you mean" hints."""
    known = [f.name for f in dataclasses.fields(spec.config)]
    check_param_names(f"method '{spec.name}'", params, known)
    return spec.config(**params)


def _describe_params(config: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        out[f.name] = f"tensor{tuple(value.shape)}" if isinstance(value, torch.Tensor) else value
    return out


# ---------------------------------------------------------------------- the context


def blocks(n_images: int, n_steps: int, rows: int) -> Iterator[tuple[int, int, int, int]]:
    """Blocks of (image, step) pairs for batched sampling over steps or samples, image-major.

    A block is ``(i0, i1, s0, s1)``: images ``i0..i1-1`` times steps ``s0..s1-1``, at most
    ``max(rows, 1)`` pairs. When ``rows >= n_steps`` a block holds whole images (all their
    steps), else one image's steps are split over several blocks. An image's steps always come
    in order, so results do not depend on ``rows`` beyond float rounding.

    Example:
        >>> list(blocks(3, 2, 4)), list(blocks(1, 3, 2))
        ([(0, 2, 0, 2), (2, 3, 0, 2)], [(0, 1, 0, 2), (0, 1, 2, 3)])
    """
    rows = max(int(rows), 1)
    if rows >= n_steps:
        per = rows // n_steps
        for start in range(0, n_images, per):
            yield start, min(start + per, n_images), 0, n_steps
    else:
        for i in range(n_images):
            for s0 in range(0, n_steps, rows):
                yield i, i + 1, s0, min(s0 + rows, n_steps)


def row_chunks(
    n_images: int, n_steps: int, rows: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The pairs of :func:`blocks` as index tensors ``(image_index, step_index)``.

    Example:
        >>> [(i.tolist(), s.tolist()) for i, s in row_chunks(2, 3, 4)]
        [([0, 0, 0], [0, 1, 2]), ([1, 1, 1], [0, 1, 2])]
    """
    for i0, i1, s0, s1 in blocks(n_images, n_steps, rows):
        imgs, steps = torch.arange(i0, i1), torch.arange(s0, s1)
        yield imgs.repeat_interleave(s1 - s0), steps.repeat(i1 - i0)


@dataclass(frozen=True)
class ExplainContext:
    """What a method function receives besides the images and targets.

    Attributes:
        model: the wrapped model.
        method: the method's registry name (for messages).
        seed: the seed; per-image randomness comes from :meth:`generator`.
        keys: (B,) a hash of each image's content, so per-image randomness depends neither on
            the batch size nor on the order of the images.
        logits: (B, num_classes) logits of the clean images (no gradient).
    """

    model: Model
    method: str
    seed: int
    keys: torch.Tensor
    logits: torch.Tensor

    @property
    def device(self) -> torch.device:
        """Where the model runs."""
        return self.model.device

    def rows(self, internal_batch_size: int | None, x: torch.Tensor) -> int:
        """Rows per internal pass: the given bound, or the :data:`DEFAULT_ROWS` rule."""
        if internal_batch_size is not None:
            return internal_batch_size
        return max(1, DEFAULT_ROWS // max(1, int(x[0].numel())))

    def generator(self, image: int, *key: object) -> torch.Generator:
        """A generator on the model's device for image ``image``, from (seed, key, content)."""
        gen = torch.Generator(device=self.device)
        gen.manual_seed(derive_seed(self.seed, self.method, *key, int(self.keys[image])))
        return gen

    def scores(self, x: torch.Tensor, targets: torch.Tensor, rows: int) -> torch.Tensor:
        """(N,) target logits for any number of images, batched, without gradients."""
        out = []
        with torch.no_grad():
            for start in range(0, x.shape[0], rows):
                logits = self.model.logits(x[start : start + rows], validate=False)
                out.append(logits.gather(1, targets[start : start + rows, None]).squeeze(1))
        return torch.cat(out)

    def gradients(
        self, x: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Input gradients of each row's target logit (times ``weights``) in one pass.

        Rows are independent (the networks robustcv takes do not mix images of a batch), so the
        gradient of the weighted sum gives every row's weighted gradient at once.
        """
        x = x.detach().requires_grad_(True)
        with torch.enable_grad():
            logits = self.model.logits(x, validate=False)
            picked = logits.gather(1, targets[:, None]).squeeze(1)
            if weights is not None:
                picked = picked * weights
            (grad,) = torch.autograd.grad(picked.sum(), x)
        return grad


# ---------------------------------------------------------------------- targets, maps


def _check_targets(target: Any, logits: torch.Tensor) -> torch.Tensor:
    """(B,) int64 targets on the logits' device: an int, a (B,) tensor, or None (predicted)."""
    batch, classes = int(logits.shape[0]), int(logits.shape[1])
    valid = f"[0, {classes - 1}] (the model has {classes} classes)"
    if target is None:
        return logits.argmax(1)
    if isinstance(target, bool):
        raise InputError(f"target must be a class index, got {target!r}; e.g. target=0")
    if isinstance(target, (Integral, np.integer)):
        if not 0 <= int(target) < classes:
            raise InputError(f"target={int(target)} is out of range: pass a class in {valid}")
        return torch.full((batch,), int(target), dtype=torch.int64, device=logits.device)
    if isinstance(target, torch.Tensor):
        if target.dtype == torch.bool or target.is_floating_point() or target.is_complex():
            raise InputError(
                f"target has dtype {target.dtype}; pass int64 class indices (target.long())"
            )
        if target.dim() == 0:
            return _check_targets(int(target), logits)
        if target.dim() != 1 or target.shape[0] != batch:
            raise InputError(
                f"target has shape {tuple(target.shape)} but there are {batch} images; pass one "
                f"class per image, shape ({batch},), an int or None (the predicted class)"
            )
        t = target.detach().to(logits.device, torch.int64)
        bad = (t < 0) | (t >= classes)
        if bool(bad.any()):
            rows = torch.nonzero(bad).flatten()[:5].tolist()
            raise InputError(
                f"target holds {int(bad.sum())} classes out of range (e.g. rows {rows}: "
                f"{t[rows].tolist()}); pass classes in {valid}"
            )
        return t
    raise InputError(
        f"target must be an int, a (B,) int64 tensor or None, got {type(target).__name__}"
    )


def normalize_maps(maps: torch.Tensor, rule: str | None) -> torch.Tensor:
    """Per-image normalisation of attribution maps (None leaves them as they are).

    Rules: ``"max-abs"`` divides each image's map by its largest absolute value (maps then lie in
    [-1, 1], keeping sign and zero); ``"percentile"`` divides by the 99th percentile of the
    absolute values and clips to [-1, 1] (a few extreme pixels no longer wash out the rest). An
    all-zero map stays zero. Either rule makes maps incomparable across images in absolute terms.

    Example:
        >>> normalize_maps(torch.tensor([[[[2.0, -4.0]]]]), "max-abs").flatten().tolist()
        [0.5, -1.0]
    """
    if rule is None:
        return maps
    flat = maps.flatten(1).abs()
    if rule == "max-abs":
        scale = flat.amax(1)
    else:
        scale = torch.quantile(flat, 0.99, dim=1)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale)).view(-1, *[1] * (maps.dim() - 1))
    out = maps / scale
    return out.clamp(-1.0, 1.0) if rule == "percentile" else out


def _upsample(maps: torch.Tensor, size: tuple[int, int], mode: str | None) -> torch.Tensor:
    if mode is None or tuple(maps.shape[-2:]) == size:
        return maps
    if mode == "nearest":
        return F.interpolate(maps, size=size, mode="nearest")
    return F.interpolate(maps, size=size, mode="bilinear", align_corners=False)


def _as_model(model: Any) -> Model:
    if isinstance(model, Model):
        return model
    if isinstance(model, nn.Module):
        return Model(model)
    raise InputError(
        f"model is a {type(model).__name__}; pass a robustcv.Model (robustcv.load_model) or a "
        "torch.nn.Module that maps [0, 1] images to logits"
    )


def _names(kind: str) -> str:
    return ", ".join(e.name for e in METHODS if (e.obj.kind == "perturbation") == (kind == "p"))


# ---------------------------------------------------------------------- the runner


def explain(
    model: Model | nn.Module,
    x: torch.Tensor,
    target: int | torch.Tensor | None = None,
    method: str = "integrated-gradients",
    seed: int | None = None,
    *,
    normalize: str | None = None,
    **params: Any,
) -> Explanation:
    """Explain a classifier's decision on a batch with a registered attribution method.

    The runner checks everything before the model runs: the model, the image contract, the
    method and its parameters, the seed, then the targets against the model's classes. The
    images are never modified (a contiguous copy is explained, so channels-last tensors and
    sliced views give the same maps as ``x.contiguous()``). The network's train/eval modes are
    restored after every pass, and the hooks and the relu routing that some methods install
    are removed when the call ends, also when something raises.

    Args:
        model: a :class:`robustcv.Model` or an ``nn.Module`` taking [0, 1] images.
        x: images under the image contract, (B,C,H,W) float32 in [0, 1].
        target: the class to explain: an int for every image, a (B,) int64 tensor, or None for
            each image's predicted class.
        method: a registry name (``robustcv list methods``; see :data:`METHODS`).
        seed: seed of the sampling methods (smoothgrad, vargrad, lime, kernel-shap, IG with a
            uniform baseline): same seed, same maps. None means 0. Other methods ignore it.
        normalize: None (default: raw attributions, comparable across images), ``"max-abs"``
            or ``"percentile"`` (see :func:`normalize_maps`).
        **params: the method's parameters (e.g. ``steps=64``); see its config class.

    Returns:
        The :class:`Explanation`.

    Raises:
        InputError: an unknown method or parameter, a bad value, images outside the contract, a
            target out of range, a layer that does not exist, or a gradient method on a
            gradient-free model (:class:`robustcv.core.errors.GradientUnavailableError`).

    Example:
        >>> import torch
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
        >>> x = torch.rand(2, 1, 2, 2)
        >>> e = explain(net, x, target=1, method="integrated-gradients", steps=16)
        >>> e.maps.shape, e.targets.tolist(), bool(e.delta.abs().max() < 1e-4)
        (torch.Size([2, 1, 2, 2]), [1, 1], True)
    """
    start = time.perf_counter()
    wrapped = _as_model(model)
    if not isinstance(method, str):
        raise InputError(
            f"method must be a method name (str), got {type(method).__name__}; see "
            "'robustcv list methods'"
        )
    spec = METHODS.get(method)
    seed = 0 if seed is None else check_seed(seed)
    if normalize is not None:
        check_choice(normalize, "normalize", spec.name, NORMALIZE_RULES)
    x = check_images(x)
    check_model_fits(wrapped, x, what="x")
    if spec.kind != "perturbation" and not wrapped.differentiable:
        raise GradientUnavailableError(
            f"method '{spec.name}' needs input gradients but model '{wrapped.name}' is "
            f"gradient-free (e.g. ONNX); use one of the perturbation methods: {_names('p')}"
        )
    config = _build_config(spec, params)
    x_in = x.detach().to(wrapped.device, memory_format=torch.contiguous_format)
    if x_in.data_ptr() == x.data_ptr():
        x_in = x_in.clone()  # the method may not even see the caller's storage
    before = wrapped.counts()
    rows = max(256, DEFAULT_ROWS // max(1, int(x_in[0].numel())))
    with torch.no_grad():
        logits = torch.cat(
            [wrapped.logits(x_in[i : i + rows], validate=False) for i in range(0, len(x_in), rows)]
        )
    targets = _check_targets(target, logits)
    keys = content_keys(x_in) if spec.random or _uses_seed(config) else torch.zeros(len(x_in))
    ctx = ExplainContext(wrapped, spec.name, seed, keys.to(torch.int64), logits.detach())
    out = spec.fn(ctx, x_in, targets, config)
    notes = dict(out.notes)
    maps = out.maps.detach()
    if out.layer is not None:
        mode = getattr(config, "upsample", "bilinear")
        h, w = int(maps.shape[-2]), int(maps.shape[-1])
        if mode is None:
            notes["maps"] = f"layer '{out.layer}' resolution {h}x{w}, not upsampled (upsample=None)"
        else:
            maps = _upsample(maps, (int(x.shape[2]), int(x.shape[3])), mode)
            how = "bilinearly (align_corners=False)" if mode == "bilinear" else "nearest-neighbour"
            notes["maps"] = (
                f"layer '{out.layer}' map {h}x{w} upsampled {how} to {x.shape[2]}x{x.shape[3]}"
            )
    maps = normalize_maps(maps.float(), normalize)
    notes["normalize"] = (
        "none: raw attributions, comparable across images"
        if normalize is None
        else (
            "max-abs: each image's map divided by its largest |value| (in [-1, 1])"
            if normalize == "max-abs"
            else "percentile: each image's map divided by its 99th percentile of |value|, "
            "clipped to [-1, 1]"
        )
    )
    cost = wrapped.counts() - before
    return Explanation(
        method=spec.name,
        targets=targets.cpu(),
        scores=logits.gather(1, targets[:, None]).squeeze(1).cpu(),
        params={**_describe_params(config), "seed": seed, "normalize": normalize},
        delta=None if out.delta is None else out.delta.detach().cpu(),
        extras={k: v.detach().cpu() for k, v in out.extras.items()},
        notes=notes,
        forward_passes=cost.forward,
        backward_passes=cost.backward,
        seconds=time.perf_counter() - start,
        maps=maps.cpu(),
    )


def _uses_seed(config: Any) -> bool:
    """IG with a uniform baseline is random although the method is not."""
    return getattr(config, "baseline", None) == "uniform"
