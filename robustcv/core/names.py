"""Names shared by several layers: ImageNet-C's corruption names in their canonical order.

They live in ``core`` so that the data layer (which reads -C datasets), the corruption metrics
and the report use one list without importing each other.
"""

from __future__ import annotations

__all__ = ["BENCHMARK_CORRUPTIONS", "HELD_OUT_CORRUPTIONS", "IMAGENET_C_CORRUPTIONS"]

BENCHMARK_CORRUPTIONS: tuple[str, ...] = (
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "defocus_blur",
    "glass_blur",
    "motion_blur",
    "zoom_blur",
    "snow",
    "frost",
    "fog",
    "brightness",
    "contrast",
    "elastic_transform",
    "pixelate",
    "jpeg_compression",
)
"""ImageNet-C's 15 benchmark corruptions (the ones mCE and mPC average over)."""

HELD_OUT_CORRUPTIONS: tuple[str, ...] = ("speckle_noise", "gaussian_blur", "spatter", "saturate")
"""ImageNet-C's 4 held-out ("validation") corruptions; they have no AlexNet baseline."""

IMAGENET_C_CORRUPTIONS: tuple[str, ...] = BENCHMARK_CORRUPTIONS + HELD_OUT_CORRUPTIONS
"""All 19 ImageNet-C corruptions: the folder/file names of the published ImageNet-C and
CIFAR-10-C."""
