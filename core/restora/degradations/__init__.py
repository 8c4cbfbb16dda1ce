"""Physically grounded, seeded degradation synthesis, used for training and for benchmarks.

Every function works on float tensors in [0, 1] laid out (B, C, H, W) unless it says otherwise,
and takes an explicit ``torch.Generator`` so that a seed reproduces a sample exactly.
"""

from ._atmosphere import haze, rain, rain_layer, screen, smooth_field, transmission, unscreen
from ._blur import blur, blur_kernel, defocus_kernel, gaussian_kernel, motion_kernel
from ._jpeg import jpeg
from ._light import low_light
from ._noise import gaussian_noise, poisson_gaussian_noise
from ._synthesis import (
    DegradedSample,
    apply_degradation,
    cutmix_regions,
    degradation_cutmix,
    degrade,
    random_box,
    sample_params,
)

__all__ = [
    "DegradedSample",
    "apply_degradation",
    "blur",
    "blur_kernel",
    "cutmix_regions",
    "defocus_kernel",
    "degradation_cutmix",
    "degrade",
    "gaussian_kernel",
    "gaussian_noise",
    "haze",
    "jpeg",
    "low_light",
    "motion_kernel",
    "poisson_gaussian_noise",
    "rain",
    "rain_layer",
    "random_box",
    "sample_params",
    "screen",
    "smooth_field",
    "transmission",
    "unscreen",
]
