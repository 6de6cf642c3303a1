"""Common corruptions (ImageNet-C's 19) and model-vs-human degradations, batched and seeded.

Every corruption works on float32 (B, C, H, W) batches in [0, 1] on CPU or CUDA. Parameters
come from named tables (``imagenet-c``, ``cifar-10-c``, interpolated by ``auto``); see
:mod:`robustcv.corruptions.base`. Importing this package registers every corruption.

:func:`select_corruptions` resolves names and groups (``benchmark``, ``held-out``, ``imagenet-c``,
``all``, ``mvh``) for every entry point; :func:`write_corrupted` writes -C datasets (read back
with ``robustcv.load_dataset("imagenet-c:DIR#fog/3")``).
"""

from robustcv.corruptions import blur as _blur  # noqa: F401  (registers the blur corruptions)
from robustcv.corruptions import digital as _digital  # noqa: F401  (registers digital ones)
from robustcv.corruptions import mvh as _mvh  # noqa: F401  (registers the mvh- degradations)
from robustcv.corruptions import noise as _noise  # noqa: F401  (registers the noise corruptions)
from robustcv.corruptions import weather as _weather  # noqa: F401  (registers weather ones)
from robustcv.corruptions.api import corrupt, corrupt_with_draws
from robustcv.corruptions.base import CORRUPTIONS, SPECS, CorruptionDef, resolve_params
from robustcv.corruptions.dataset import CorruptedWriteResult, write_corrupted
from robustcv.corruptions.evaluate import CorruptionAccuracyResult, corruption_accuracy
from robustcv.corruptions.metrics import (
    ALEXNET_ERRORS,
    BENCHMARK_CORRUPTIONS,
    HELD_OUT_CORRUPTIONS,
    ce,
    corruption_errors,
    mce,
    mean_accuracy,
    mpc,
    relative_mce,
    rpc,
)
from robustcv.corruptions.selection import CORRUPTION_GROUPS, select_corruptions

__all__ = [
    "ALEXNET_ERRORS",
    "BENCHMARK_CORRUPTIONS",
    "CORRUPTIONS",
    "CORRUPTION_GROUPS",
    "HELD_OUT_CORRUPTIONS",
    "SPECS",
    "CorruptedWriteResult",
    "CorruptionAccuracyResult",
    "CorruptionDef",
    "ce",
    "corrupt",
    "corrupt_with_draws",
    "corruption_accuracy",
    "corruption_errors",
    "mce",
    "mean_accuracy",
    "mpc",
    "relative_mce",
    "resolve_params",
    "rpc",
    "select_corruptions",
    "write_corrupted",
]
