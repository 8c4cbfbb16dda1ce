"""Low light: under-exposure, a camera's tone curve, then shot and read noise at few photons."""

from __future__ import annotations

import torch

from ._noise import poisson_gaussian_noise


def low_light(
    x: torch.Tensor,
    exposure: float,
    gamma: float,
    gain: float,
    read_sigma: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Scale linear light by ``exposure``, apply noise, then the tone curve ``v ** (1 / gamma)``.

    ``x`` is display-referred (sRGB-like); it is linearised with ``gamma`` first.
    """
    linear = x.clamp(0, 1) ** gamma * exposure
    noisy = poisson_gaussian_noise(linear, gain, read_sigma, generator).clamp(0, 1)
    return noisy ** (1 / gamma)
