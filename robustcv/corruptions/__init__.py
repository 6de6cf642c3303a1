"""Common corruptions (ImageNet-C's 19) and model-vs-human degradations, batched and seeded.

Every corruption works on float32 (B, C, H, W) batches in [0, 1] on CPU or CUDA. Parameters
come from named tables (``imagenet-c``, ``cifar-10-c``, interpolated by ``auto``); see
:mod:`robustcv.corruptions.base`. Importing this package registers every corruption.
"""

from robustcv.corruptions.api import corrupt, corrupt_with_draws
from robustcv.corruptions.base import CORRUPTIONS, SPECS, CorruptionDef, resolve_params

__all__ = [
    "CORRUPTIONS",
    "SPECS",
    "CorruptionDef",
    "corrupt",
    "corrupt_with_draws",
    "resolve_params",
]
