"""Sensor noise: Gaussian and signal-dependent Poisson-Gaussian (as in microscopy and low light)."""

from __future__ import annotations

import torch


def gaussian_noise(x: torch.Tensor, sigma: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Add white Gaussian noise of standard deviation ``sigma`` (in [0, 1] units); no clipping."""
    return x + sigma * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def poisson_gaussian_noise(
    x: torch.Tensor, gain: float, read_sigma: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Photon shot noise plus read noise: ``gain * Poisson(x / gain) + N(0, read_sigma^2)``.

    ``gain`` is the signal per photon (small gain, many photons, little noise), so the variance
    at intensity ``x`` is ``gain * x + read_sigma**2``.
    """
    photons = torch.poisson(x.clamp(min=0) / gain, generator=generator)
    return gaussian_noise(photons * gain, read_sigma, generator)
