"""Run an ONNX classifier through onnxruntime as a gradient-free network."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from robustcv.core.contract import mismatch_error
from robustcv.core.errors import InputError, UserCodeError

__all__ = ["OnnxNet"]


class OnnxNet:
    """A callable that runs an ONNX model on torch tensors (no gradients).

    Models exported with a fixed batch size are run in chunks of that size (the last chunk is
    padded and the padding dropped).

    Args:
        path: the ``.onnx`` file.
        device: ``cpu`` or ``cuda`` (uses the CUDA provider when onnxruntime has it).

    Attributes:
        input_shape: the model's input signature ``(N, C, H, W)``; a dimension the file leaves
            open (a name such as ``"batch"``) is None. :func:`robustcv.core.check_model_fits`
            reads it.

    Raises:
        InputError: onnxruntime is missing, the file does not exist or has several inputs.
        UserCodeError: the file cannot be loaded (truncated, not ONNX, unsupported operators);
            the message carries onnxruntime's error.
    """

    def __init__(self, path: str | Path, device: torch.device | str = "cpu") -> None:
        try:
            import onnxruntime as ort
        except ImportError as err:
            raise InputError(
                "loading an ONNX model needs onnxruntime: pip install 'robustcv[onnx]'"
            ) from err
        self.path = Path(path)
        if not self.path.is_file():
            raise InputError(
                f"ONNX file {self.path} does not exist"
                + (" (it is a folder)" if self.path.is_dir() else "")
            )
        providers = ["CPUExecutionProvider"]
        if str(device).startswith("cuda") and "CUDAExecutionProvider" in (
            ort.get_available_providers()
        ):
            providers.insert(0, "CUDAExecutionProvider")
        try:
            self.session = ort.InferenceSession(str(self.path), providers=providers)
        except Exception as err:  # onnxruntime raises its own exception types
            text = str(err).strip()
            first = text.splitlines()[0] if text else ""
            hint = (
                "the file is truncated or not an ONNX model - export it again"
                if "protobuf" in text.lower() or "parsing" in text.lower()
                else "export it again with an opset onnxruntime supports"
            )
            raise UserCodeError(
                f"cannot load ONNX model {self.path}: {hint} (onnxruntime raised "
                f"{type(err).__name__}: {first})"
            ) from err
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise InputError(
                f"{self.path} has {len(inputs)} inputs; robustcv needs a single image input"
            )
        self.input_name = inputs[0].name
        raw = list(inputs[0].shape or [])
        self.input_shape: tuple[int | None, ...] = tuple(
            d if isinstance(d, int) and d > 0 else None for d in raw
        )
        lead = raw[0] if raw else None
        self.fixed_batch = lead if isinstance(lead, int) and lead > 0 else None
        if len(raw) != 4:
            raise InputError(
                f"{self.path} takes input of rank {len(raw)} (shape {raw}); robustcv runs "
                "image classifiers with a (N, C, H, W) input"
            )

    def _run(self, arr: np.ndarray) -> np.ndarray:
        try:
            out = self.session.run(None, {self.input_name: arr})[0]
        except Exception as err:  # onnxruntime raises its own exception types
            text = str(err).strip()
            first = text.splitlines()[0] if text else type(err).__name__
            raise UserCodeError(
                f"the ONNX model {self.path.name} failed on input of shape {list(arr.shape)}: "
                f"{first}"
            ) from err
        return np.asarray(out, dtype=np.float32)

    def _check_shape(self, shape: tuple[int, ...]) -> None:
        want = self.input_shape
        if len(shape) != len(want) or any(
            w is not None and w != s for w, s in zip(want[1:], shape[1:], strict=False)
        ):
            c, h, w = want[1:4] if len(want) == 4 else (None, None, None)
            size = (h, w) if h is not None and w is not None else None
            parts = [f"{c}-channel" if c is not None else "", f"{h}x{w}" if size else ""]
            takes = " ".join(p for p in [*parts, "images"] if p)
            raise mismatch_error(
                f"{takes} (its input signature is {['N' if d is None else d for d in want]})",
                shape,
                exact=True,
            )

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for a preprocessed batch (a torch tensor on the caller's device)."""
        self._check_shape(tuple(x.shape))
        arr = x.detach().cpu().numpy().astype(np.float32, copy=False)
        if self.fixed_batch is None or arr.shape[0] == self.fixed_batch:
            out = self._run(arr)
        else:
            b = self.fixed_batch
            chunks = []
            for i in range(0, arr.shape[0], b):
                part = arr[i : i + b]
                n = part.shape[0]
                if n < b:
                    part = np.concatenate([part, np.repeat(part[-1:], b - n, axis=0)])
                chunks.append(self._run(part)[:n])
            out = np.concatenate(chunks)
        return torch.from_numpy(out).to(x.device)

    def __repr__(self) -> str:
        return f"OnnxNet({str(self.path)!r})"
