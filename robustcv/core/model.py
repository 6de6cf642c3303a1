"""The model wrapper: one object every attack, corruption suite and diagnostic talks to.

:class:`Model` takes images under the image contract (float32, (B,C,H,W), [0, 1]) and maps them
to what the wrapped network expects (an input range such as 0-255, then mean/std). It runs the
network in eval mode and restores every submodule's previous mode afterwards, counts forward and
backward passes in images, exposes penultimate features, and warns when the outputs look like
probabilities instead of logits.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from robustcv.core.contract import (
    check_count,
    check_images,
    describe_images,
    is_shape_error,
    mismatch_error,
    model_input_spec,
)
from robustcv.core.devices import resolve_device
from robustcv.core.errors import GradientUnavailableError, InputError, ModelDataMismatchError

__all__ = ["Model", "NonFiniteLogitsWarning", "PassCounts", "ProbabilityOutputWarning"]

FeatureSpec = str | Callable[[nn.Module, torch.Tensor], torch.Tensor] | None


class ProbabilityOutputWarning(UserWarning):
    """The network's outputs look like probabilities; robustcv expects logits."""


class NonFiniteLogitsWarning(UserWarning):
    """The network returned NaN or infinite logits (only with ``Model(..., nonfinite="warn")``)."""


@dataclass(frozen=True)
class PassCounts:
    """Forward and backward passes, counted in images (a batch of 64 counts 64).

    Backward passes count gradients that reach the model's *input* (what attacks pay for).
    """

    forward: int = 0
    backward: int = 0

    def __sub__(self, other: PassCounts) -> PassCounts:
        return PassCounts(self.forward - other.forward, self.backward - other.backward)


def _as_channel_tensor(value: float | Sequence[float] | torch.Tensor, name: str) -> torch.Tensor:
    try:
        t = torch.as_tensor(value, dtype=torch.float32).flatten()
    except (TypeError, ValueError, RuntimeError) as err:
        raise InputError(
            f"{name} must be a number or one number per channel, got {value!r}"
        ) from err
    if t.numel() == 0:
        raise InputError(f"{name} is empty; give one value or one value per channel")
    if not bool(torch.isfinite(t).all()):
        raise InputError(f"{name} contains NaN or infinite values: {t.tolist()}")
    return t.view(1, -1, 1, 1)


class _LayerFeatures:
    """Logits and the flattened output of the submodule ``name`` (picklable, unlike a closure)."""

    def __init__(self, net: nn.Module, name: str) -> None:
        self.net = net
        self.name = name

    def __call__(self, x_pre: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
        captured: list[torch.Tensor] = []
        layer = self.net.get_submodule(self.name)
        handle = layer.register_forward_hook(lambda _m, _i, out: captured.append(out))
        try:
            out = self.net(x_pre)
        finally:
            handle.remove()
        if not captured:
            raise InputError(f"layer '{self.name}' was not called during the forward pass")
        return out, captured[-1].flatten(1)


class _CallableFeatures:
    """Features from a user callable ``fn(net, x)`` (picklable when ``fn`` is)."""

    def __init__(self, net: Any, fn: Callable[[Any, torch.Tensor], torch.Tensor]) -> None:
        self.net = net
        self.fn = fn

    def __call__(self, x_pre: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
        return None, self.fn(self.net, x_pre).flatten(1)


class Model:
    """Wrap a network (an ``nn.Module`` or a callable returning logits) for robustcv.

    Args:
        net: the network. It receives preprocessed inputs and must return logits of shape
            ``(B, num_classes)``.
        mean: per-channel mean subtracted after the input-range mapping (None: no shift).
        std: per-channel standard deviation divided after subtracting ``mean`` (None: 1).
        input_range: the range the network expects before mean/std, e.g. ``(0, 255)``;
            images in [0, 1] are mapped linearly onto it.
        num_classes: number of classes; inferred from the first output when None.
        features: penultimate features for feature-based diagnostics: the name of a submodule
            whose output is taken (flattened to (B, D)), or a callable ``f(net, x_pre)``
            returning (B, D) features from the preprocessed input.
        device: where the network runs; ``None`` uses the device of its first parameter (CPU
            for parameter-free callables). An ``nn.Module`` is moved to this device. A device
            this machine does not have raises :class:`InputError` naming those it has.
        differentiable: whether input gradients are available (False for ONNX models).
        name: a human-readable name used in reports.
        nonfinite: what to do when the network returns NaN or infinite logits: ``"raise"``
            (default) raises :class:`InputError` naming how many rows are affected; ``"warn"``
            warns (:class:`NonFiniteLogitsWarning`) and returns them (``accuracy`` then counts
            those images as wrong).
        channels_last: run the network (an ``nn.Module``; ONNX models and plain callables are
            refused) in the channels-last memory layout: its 4-D weights are converted once
            (in place, like the move to ``device``) and every preprocessed batch is handed
            over channels-last. On the CPU this makes convolutional networks faster
            (zoo:fmnist-cnn-at forward+backward: 1.21-1.35x at batch 32-500); values agree
            with the default layout to float rounding (about 1e-9 on the zoo CNN's input
            gradients), not to the bit. Off by default, so that stored results stay
            reproducible bit for bit.

    Raises:
        InputError: bad arguments; a shape mismatch between the images and the network is
            reported as :class:`robustcv.core.errors.ModelDataMismatchError`.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
        >>> model = Model(net, mean=0.5, std=0.25)
        >>> logits = model(torch.rand(2, 1, 2, 2))
        >>> logits.shape, model.num_classes, model.counts().forward
        (torch.Size([2, 3]), 3, 2)
    """

    def __init__(
        self,
        net: nn.Module | Callable[[torch.Tensor], torch.Tensor],
        *,
        mean: float | Sequence[float] | torch.Tensor | None = None,
        std: float | Sequence[float] | torch.Tensor | None = None,
        input_range: tuple[float, float] = (0.0, 1.0),
        num_classes: int | None = None,
        features: FeatureSpec = None,
        device: torch.device | str | None = None,
        differentiable: bool = True,
        name: str | None = None,
        nonfinite: str = "raise",
        channels_last: bool = False,
    ) -> None:
        if not callable(net):
            raise InputError(
                f"net must be an nn.Module or a callable returning logits, got {type(net).__name__}"
            )
        self.net = net
        self.name = name or type(net).__name__
        self.differentiable = differentiable
        if nonfinite not in ("raise", "warn"):
            raise InputError(f"nonfinite must be 'raise' or 'warn', got {nonfinite!r}")
        self.nonfinite = nonfinite
        self.device = self._resolve_device(net, device)
        if not isinstance(channels_last, bool):
            raise InputError(f"channels_last must be True or False, got {channels_last!r}")
        if channels_last and not isinstance(net, nn.Module):
            raise InputError(
                f"channels_last=True needs an nn.Module (its weights are converted); "
                f"{type(net).__name__} is not one: drop channels_last"
            )
        self.channels_last = channels_last
        if isinstance(net, nn.Module):
            net.to(self.device)
            if channels_last:
                net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]

        try:
            ok = len(input_range) == 2 and float(input_range[1]) > float(input_range[0])
            ok = ok and all(abs(float(v)) < float("inf") for v in input_range)
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise InputError(
                f"input_range must be (low, high) with high > low, got {input_range!r}"
            )
        self.input_range = (float(input_range[0]), float(input_range[1]))
        self._mean = None if mean is None else _as_channel_tensor(mean, "mean").to(self.device)
        self._std = None if std is None else _as_channel_tensor(std, "std").to(self.device)
        if self._std is not None and bool((self._std <= 0).any()):
            raise InputError(f"std must be positive, got {self._std.flatten().tolist()}")
        if (
            self._mean is not None
            and self._std is not None
            and 1 < self._mean.numel() != self._std.numel() > 1
        ):
            raise InputError(
                f"mean has {self._mean.numel()} values but std has {self._std.numel()}; give "
                "one value per channel for both (or a single value)"
            )

        if num_classes is not None and (
            isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2
        ):
            raise InputError(f"num_classes must be an int >= 2, got {num_classes!r}")
        self._num_classes = num_classes
        self._feature_fn = self._resolve_features(net, features)
        self._forward = 0
        self._backward = 0
        self._checked_outputs = False

    # ------------------------------------------------------------------ setup helpers
    @staticmethod
    def _resolve_device(net: Any, device: torch.device | str | None) -> torch.device:
        if device is not None:
            return resolve_device(device)
        if isinstance(net, nn.Module):
            for p in net.parameters():
                return p.device
            for b in net.buffers():
                return b.device
        return torch.device("cpu")

    @staticmethod
    def _resolve_features(
        net: Any, features: FeatureSpec
    ) -> Callable[[torch.Tensor], tuple[torch.Tensor | None, torch.Tensor]] | None:
        """Return ``f(x_pre) -> (logits or None, features)`` for the feature spec."""
        if features is None:
            return None
        if isinstance(features, str):
            if not isinstance(net, nn.Module):
                raise InputError(
                    "features given as a layer name needs an nn.Module; pass a callable "
                    "features=f(net, x) instead"
                )
            try:
                layer = net.get_submodule(features)
            except AttributeError as err:
                names = [n for n, _ in net.named_modules() if n][:20]
                raise InputError(
                    f"the network has no submodule '{features}'; known names include {names}"
                ) from err

            del layer  # looked up again on each call: the object stays picklable
            return _LayerFeatures(net, features)
        if callable(features):
            return _CallableFeatures(net, features)
        raise InputError(f"features must be a layer name, a callable or None, got {features!r}")

    # ------------------------------------------------------------------ properties
    @property
    def num_classes(self) -> int:
        """Number of classes (given to the constructor or inferred from the first output)."""
        if self._num_classes is None:
            raise InputError(
                "num_classes is not known yet; pass num_classes= to Model or call the model once"
            )
        return self._num_classes

    @property
    def has_features(self) -> bool:
        """Whether penultimate features are available."""
        return self._feature_fn is not None

    # ------------------------------------------------------------------ counting
    def counts(self) -> PassCounts:
        """Passes so far, in images. Subtract two snapshots to get the cost of some work."""
        return PassCounts(self._forward, self._backward)

    def reset_counts(self) -> None:
        """Set the forward and backward counters to zero."""
        self._forward = 0
        self._backward = 0

    def _count_backward(self, n: int) -> Callable[[torch.Tensor], None]:
        def hook(_grad: torch.Tensor) -> None:
            self._backward += n

        return hook

    # ------------------------------------------------------------------ mode handling
    @contextmanager
    def eval_mode(self) -> Iterator[None]:
        """Run the block with the network in eval mode; restore every submodule's mode after."""
        if not isinstance(self.net, nn.Module):
            yield
            return
        modes = [(m, m.training) for m in self.net.modules()]
        try:
            if any(flag for _, flag in modes):
                self.net.eval()
            yield
        finally:
            for module, flag in modes:
                module.training = flag

    def require_gradients(self, purpose: str) -> None:
        """Raise :class:`GradientUnavailableError` if this model has no input gradients.

        Args:
            purpose: what needs them, used in the message ("the PGD attack").
        """
        if not self.differentiable:
            raise GradientUnavailableError(
                f"{purpose} needs input gradients, but model '{self.name}' is gradient-free "
                "(e.g. ONNX through onnxruntime); use a score- or decision-based method, or load "
                "the PyTorch version of the model"
            )

    # ------------------------------------------------------------------ forward
    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """Map [0, 1] images to the network's input space (input range, then mean/std).

        Raises:
            ModelDataMismatchError: ``mean``/``std`` have one value per channel, but not as
                many as ``x`` has channels.
        """
        for label, stat in (("mean", self._mean), ("std", self._std)):
            if stat is not None and x.dim() == 4 and 1 < stat.shape[1] != x.shape[1]:
                n = stat.shape[1]
                raise mismatch_error(
                    f"{n}-channel images (its {label} has {n} values: give one value per "
                    "channel of the data)",
                    tuple(x.shape),
                    exact=True,
                )
        lo, hi = self.input_range
        if (lo, hi) != (0.0, 1.0):
            x = x * (hi - lo) + lo
        if self._mean is not None:
            x = x - self._mean
        if self._std is not None:
            x = x / self._std
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def _check_outputs(self, out: Any, batch: int) -> torch.Tensor:
        if not isinstance(out, torch.Tensor):
            raise InputError(
                f"the network returned a {type(out).__name__}; it must return a logits tensor "
                "(wrap it so that it returns only the logits)"
            )
        if not out.is_floating_point():
            raise InputError(
                f"the network returned logits of dtype {out.dtype}; it must return float "
                "logits (B, num_classes)"
            )
        if out.dim() != 2 or out.shape[0] != batch:
            raise InputError(
                f"the network returned shape {tuple(out.shape)} for a batch of {batch}; it must "
                "return (B, num_classes) logits"
            )
        if self._num_classes is None:
            if out.shape[1] < 2:
                raise InputError("the network returns fewer than 2 outputs; robustcv needs logits")
            self._num_classes = int(out.shape[1])
        elif out.shape[1] != self._num_classes:
            raise InputError(
                f"the network returned {out.shape[1]} logits but num_classes={self._num_classes}"
            )
        self._check_finite(out)
        if not self._checked_outputs:
            self._checked_outputs = True
            with torch.no_grad():
                o = out.detach().float()
                looks_prob = bool((o >= 0).all()) and bool((o <= 1).all())
                sums_one = bool(torch.allclose(o.sum(1), torch.ones_like(o[:, 0]), atol=1e-3))
            if looks_prob and sums_one:
                warnings.warn(
                    f"model '{self.name}' outputs rows that sum to 1 (probabilities?); robustcv "
                    "expects logits - remove the final softmax, or attacks and calibration "
                    "numbers will be wrong",
                    ProbabilityOutputWarning,
                    stacklevel=4,
                )
        return out

    def _check_finite(self, out: torch.Tensor) -> None:
        """Raise (or warn, with ``nonfinite="warn"``) when some logits are NaN or infinite."""
        if out.device.type == "meta":
            return
        with torch.no_grad():
            finite = torch.isfinite(out.detach())
            if bool(finite.all()):
                return
            rows = int((~finite.all(1)).sum())
        text = (
            f"model '{self.name}' returned NaN or infinite logits for {rows} of {out.shape[0]} "
            "images; check the network (exploding weights, a log of 0, a division by 0) or its "
            "preprocessing (std of 0)"
        )
        if self.nonfinite == "warn":
            warnings.warn(
                text + "; they count as wrong predictions", NonFiniteLogitsWarning, stacklevel=4
            )
            return
        raise InputError(
            text + "; pass nonfinite='warn' to robustcv.Model to count them as wrong instead"
        )

    def _mismatch(self, err: BaseException, x: torch.Tensor) -> ModelDataMismatchError:
        """The model/data mismatch error for a shape failure ``err`` on input ``x``."""
        channels, size, _ = model_input_spec(self)
        if channels is None and size is None:
            takes = "other images"
        elif size is None and channels == x.shape[1]:
            takes = f"{channels}-channel images of another size"
        else:
            takes = describe_images(channels, size)
        text = str(err).strip()
        first = text.splitlines()[0] if text else type(err).__name__
        return mismatch_error(takes, tuple(x.shape), detail=first)

    def _run_net(self, x: torch.Tensor) -> Any:
        """Preprocess ``x`` and run the network; a shape failure becomes a mismatch error."""
        try:
            return self.net(self.preprocess(x))
        except InputError:
            raise
        except Exception as err:
            if is_shape_error(err):
                raise self._mismatch(err, x) from err
            raise

    def _prepare(self, x: torch.Tensor, validate: bool) -> torch.Tensor:
        if validate:
            check_images(x)
        if x.device != self.device:
            x = x.to(self.device)
        if torch.is_grad_enabled() and x.requires_grad:
            if not self.differentiable:
                self.require_gradients("computing input gradients")
            view = x.view_as(x)
            view.register_hook(self._count_backward(int(x.shape[0])))
            x = view
        return x

    def logits(self, x: torch.Tensor, *, validate: bool = True) -> torch.Tensor:
        """Logits for a batch of [0, 1] images (differentiable when gradients are enabled).

        Args:
            x: images under the image contract.
            validate: check the image contract (attacks skip it in their inner loop).
        """
        x = self._prepare(x, validate)
        with self.eval_mode():
            out = self._run_net(x)
        self._forward += int(x.shape[0])
        return self._check_outputs(out, int(x.shape[0]))

    __call__ = logits

    def logits_and_features(
        self, x: torch.Tensor, *, validate: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and penultimate features (B, D) from one forward pass.

        Raises:
            InputError: the model was built without ``features``.
        """
        if self._feature_fn is None:
            raise InputError(
                f"model '{self.name}' exposes no features; pass features='layer_name' (or a "
                "callable) to robustcv.Model / load_model"
            )
        x = self._prepare(x, validate)
        with self.eval_mode():
            try:
                x_pre = self.preprocess(x)
                out, feats = self._feature_fn(x_pre)
                if out is None:  # a feature callable: the logits need their own pass
                    out = self.net(x_pre)
                    self._forward += int(x.shape[0])
            except InputError:
                raise
            except Exception as err:
                if is_shape_error(err):
                    raise self._mismatch(err, x) from err
                raise
        self._forward += int(x.shape[0])
        return self._check_outputs(out, int(x.shape[0])), feats

    def features(self, x: torch.Tensor, *, validate: bool = True) -> torch.Tensor:
        """Penultimate features (B, D); see :meth:`logits_and_features`."""
        return self.logits_and_features(x, validate=validate)[1]

    @torch.no_grad()
    def predict_logits(
        self, x: torch.Tensor, *, batch_size: int = 256, validate: bool = True
    ) -> torch.Tensor:
        """Logits for any number of images, computed in batches without gradients (on CPU)."""
        batch_size = check_count(batch_size, "batch_size")
        if validate:
            check_images(x)
        outs = [
            self.logits(x[i : i + batch_size], validate=False).cpu()
            for i in range(0, x.shape[0], batch_size)
        ]
        return torch.cat(outs)

    def predict(self, x: torch.Tensor, *, batch_size: int = 256) -> torch.Tensor:
        """Predicted labels (int64, on CPU) for any number of images."""
        return self.predict_logits(x, batch_size=batch_size).argmax(1)

    def __repr__(self) -> str:
        parts = [f"name={self.name!r}", f"device={self.device}"]
        if self._num_classes is not None:
            parts.append(f"num_classes={self._num_classes}")
        if self.input_range != (0.0, 1.0):
            parts.append(f"input_range={self.input_range}")
        if self._mean is not None:
            parts.append(f"mean={self._mean.flatten().tolist()}")
        if self._std is not None:
            parts.append(f"std={self._std.flatten().tolist()}")
        if not self.differentiable:
            parts.append("differentiable=False")
        return f"Model({', '.join(parts)})"
