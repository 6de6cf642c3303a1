"""What did the model learn? Probes of background, shortcut, shape, frequency and locality use.

Also error consistency between two models.

Each probe is a frozen config dataclass plus a pure function over images under the image
contract (float32 ``(B,C,H,W)`` in [0, 1]) returning a JSON-serialisable result; randomness comes
only from an explicit ``seed``. The registry :data:`PROBES` lists them (``PROBES.names()``) and
:data:`CUES` the synthetic cues of the shortcut scan.

Example:
    >>> from robustcv.probes import PROBES
    >>> PROBES.names()
    ['background', 'frequency', 'fourier-heat-map', 'patch-shuffle', 'cue-scan', 'shape-texture']
"""

from robustcv.probes.background import (
    BackgroundConfig,
    BackgroundResult,
    background_reliance,
    reliance_score,
)
from robustcv.probes.base import PROBES, ProbeSpec
from robustcv.probes.consistency import (
    ErrorConsistency,
    ErrorConsistencyResult,
    cohens_kappa,
    error_consistency,
    error_consistency_by_condition,
    model_error_consistency,
)
from robustcv.probes.cues import (
    CUES,
    CueScanConfig,
    CueScanResult,
    apply_variant,
    cue_scan,
    cue_variants,
)
from robustcv.probes.frequency import (
    FourierHeatMapConfig,
    FourierHeatMapResult,
    FrequencyConfig,
    FrequencyResult,
    fourier_heat_map,
    frequency_accuracy,
    high_pass,
    low_pass,
)
from robustcv.probes.locality import (
    PatchShuffleConfig,
    PatchShuffleResult,
    patch_shuffle,
    patch_shuffle_accuracy,
)
from robustcv.probes.masks import (
    MaskConfig,
    check_masks,
    estimate_masks,
    foreground_masks,
    only_background,
    only_foreground,
    uniform_background,
)
from robustcv.probes.shape import (
    ShapeBiasResult,
    ShapeTextureConfig,
    ShapeTextureResult,
    aggregate_probabilities,
    cue_conflict,
    edges,
    load_class_mapping,
    shape_bias,
    shape_texture,
    silhouettes,
)

__all__ = [
    "CUES",
    "PROBES",
    "BackgroundConfig",
    "BackgroundResult",
    "CueScanConfig",
    "CueScanResult",
    "ErrorConsistency",
    "ErrorConsistencyResult",
    "FourierHeatMapConfig",
    "FourierHeatMapResult",
    "FrequencyConfig",
    "FrequencyResult",
    "MaskConfig",
    "PatchShuffleConfig",
    "PatchShuffleResult",
    "ProbeSpec",
    "ShapeBiasResult",
    "ShapeTextureConfig",
    "ShapeTextureResult",
    "aggregate_probabilities",
    "apply_variant",
    "background_reliance",
    "check_masks",
    "cohens_kappa",
    "cue_conflict",
    "cue_scan",
    "cue_variants",
    "edges",
    "error_consistency",
    "error_consistency_by_condition",
    "estimate_masks",
    "foreground_masks",
    "fourier_heat_map",
    "frequency_accuracy",
    "high_pass",
    "load_class_mapping",
    "low_pass",
    "model_error_consistency",
    "only_background",
    "only_foreground",
    "patch_shuffle",
    "patch_shuffle_accuracy",
    "reliance_score",
    "shape_bias",
    "shape_texture",
    "silhouettes",
    "uniform_background",
]
