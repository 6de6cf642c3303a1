"""Attribution maps for any classifier: ``explain(model, x, target, method=...)``.

``robustcv.explanations.explain`` runs any registered method (:data:`METHODS`; ``robustcv list
methods``) on a batch and returns an :class:`Explanation`: float32 maps shaped like the images
(layer methods: (B,1,H,W), upsampled and said so), the targets used, the parameters, cost and
notes. Gradient methods need a differentiable model; occlusion, lime and kernel-shap need only
forward passes. See docs/explanations.md.
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
from robustcv.explanations.guided import ReluRule
from robustcv.explanations.superpixels import grid_segments, slic_segments

__all__ = [
    "METHODS",
    "ExplainContext",
    "Explanation",
    "MethodOutput",
    "MethodSpec",
    "ReluRule",
    "explain",
    "grid_segments",
    "method_rows",
    "normalize_maps",
    "slic_segments",
]
