"""Attribution maps for any classifier: ``explain(model, x, target, method=...)``.

``robustcv.explanations.explain`` runs any registered method (:data:`METHODS`; ``robustcv list
methods``) on a batch and returns an :class:`Explanation`: float32 maps shaped like the images
(layer methods: (B,1,H,W), upsampled and said so), the targets used, the parameters, cost and
notes. Gradient methods need a differentiable model; occlusion, lime and kernel-shap need only
forward passes. How far to trust the maps: :func:`sanity_check`,
:func:`label_randomization_check`, :func:`deletion_insertion`, :func:`infidelity`,
:func:`sensitivity_max`, :func:`average_fragility`, :func:`fragility_attack`,
:func:`misleading_attack`, :func:`sufficient_subsets`, :func:`keep_top_pixels`. See
docs/explanations.md.
"""

from robustcv.explanations import cam as _cam  # noqa: F401  (registers grad-cam, grad-cam++)
from robustcv.explanations import gradients as _gradients  # noqa: F401  (saliency ... IG)
from robustcv.explanations import guided as _guided  # noqa: F401  (guided-backprop, deconvolution)
from robustcv.explanations import perturbation as _perturbation  # noqa: F401  (occlusion, lime, kernel-shap)
from robustcv.explanations.base import (
    METHODS,
    ExplainContext,
    Explanation,
    MethodOutput,
    MethodSpec,
    explain,
    method_rows,
    normalize_maps,
)
from robustcv.explanations.faithfulness import (
    FaithfulnessConfig,
    FaithfulnessResult,
    deletion_insertion,
    infidelity,
    sensitivity_max,
)
from robustcv.explanations.fragility import (
    AverageFragilityResult,
    FragilityConfig,
    FragilityResult,
    MisleadingConfig,
    MisleadingResult,
    average_fragility,
    fragility_attack,
    misleading_attack,
)
from robustcv.explanations.guided import ReluRule
from robustcv.explanations.overinterpretation import (
    KeepTopResult,
    SubsetConfig,
    SubsetResult,
    keep_top_pixels,
    sufficient_subsets,
)
from robustcv.explanations.sanity import (
    LabelRandomizationConfig,
    LabelRandomizationResult,
    SanityConfig,
    SanityResult,
    label_randomization_check,
    sanity_check,
)
from robustcv.explanations.superpixels import grid_segments, slic_segments

__all__ = [
    "METHODS",
    "AverageFragilityResult",
    "ExplainContext",
    "Explanation",
    "FaithfulnessConfig",
    "FaithfulnessResult",
    "FragilityConfig",
    "FragilityResult",
    "KeepTopResult",
    "LabelRandomizationConfig",
    "LabelRandomizationResult",
    "MethodOutput",
    "MethodSpec",
    "MisleadingConfig",
    "MisleadingResult",
    "ReluRule",
    "SanityConfig",
    "SanityResult",
    "SubsetConfig",
    "SubsetResult",
    "average_fragility",
    "deletion_insertion",
    "explain",
    "fragility_attack",
    "grid_segments",
    "infidelity",
    "keep_top_pixels",
    "label_randomization_check",
    "method_rows",
    "misleading_attack",
    "normalize_maps",
    "sanity_check",
    "sensitivity_max",
    "slic_segments",
    "sufficient_subsets",
]
