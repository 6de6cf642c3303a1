"""Run an ONNX classifier through onnxruntime as a gradient-free network."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from robustcv.core.errors import InputError

__all__ = ["OnnxNet"]


class OnnxNet:
    """A callable that runs an ONNX model on torch tensors (no gradients).

    Models exported with a fixed batch size are run in chunks of that size (the last chunk is
    padded and the padding dropped).

    Args:
        path: the ``.onnx`` file.
        device: ``cpu`` or ``cuda`` (uses the CUDA provider when onnxruntime has it).
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
            raise InputError(f"ONNX file {self.path} does not exist")
        providers = ["CPUExecutionProvider"]
        if torch.device(device).type == "cuda" and "CUDAExecutionProvider" in (
            ort.get_available_providers()
        ):
            providers.insert(0, "CUDAExecutionProvider")
        try:
            self.session = ort.InferenceSession(str(self.path), providers=providers)
        except Exception as err:  # onnxruntime raises its own exception types
            raise InputError(f"cannot load ONNX model {self.path}: {err}") from err
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise InputError(
                f"{self.path} has {len(inputs)} inputs; robustcv needs a single image input"
            )
        self.input_name = inputs[0].name
        first = inputs[0].shape[0] if inputs[0].shape else None
        self.fixed_batch = first if isinstance(first, int) and first > 0 else None

    def _run(self, arr: np.ndarray) -> np.ndarray:
        out = self.session.run(None, {self.input_name: arr})[0]
        return np.asarray(out, dtype=np.float32)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for a preprocessed batch (a torch tensor on the caller's device)."""
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
