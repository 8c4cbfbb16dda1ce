"""Haze through the atmospheric scattering model, and rain streaks."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._blur import blur, motion_kernel


def smooth_field(
    shape: tuple[int, int], scale: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """A smooth random field in [0, 1] of (H, W) ``shape``: coarse noise upsampled bicubically."""
    h, w = shape
    coarse = torch.rand((1, 1, max(2, h // scale), max(2, w // scale)), generator=generator)
    f = F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False)[0, 0]
    return (f - f.min()) / (f.max() - f.min() + 1e-6)


def transmission(shape: tuple[int, int], beta: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """The haze's transmission ``t = exp(-beta d)`` (H, W) on a plausible depth field ``d`` in
    [0, 1]: depth grows towards the top of the frame (the sky and the far field) plus smooth
    variation."""
    h, w = shape
    ramp = torch.linspace(1, 0, h)[:, None].expand(h, w)
    depth = 0.6 * ramp + 0.4 * smooth_field((h, w), 16, generator)
    return torch.exp(-beta * depth)


def haze(
    x: torch.Tensor, beta: float, airlight: float, generator: torch.Generator | None = None,
    t: torch.Tensor | None = None,
) -> torch.Tensor:
    """``I = J t + A (1 - t)``, the atmospheric scattering model, with ``t`` from `transmission`
    (drawn from ``generator`` unless given)."""
    if t is None:
        t = transmission(x.shape[-2:], beta, generator)
    t = t.to(x)
    return x * t + airlight * (1 - t)


def rain_layer(
    shape: tuple[int, int, int],
    density: float,
    length: float,
    angle: float,
    intensity: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """One layer of rain streaks ``R`` (B, 1, H, W) in [0, 1] for a (B, H, W) ``shape``: sparse
    drops smeared along ``angle`` by ``length`` pixels, scaled by ``intensity``."""
    b, h, w = shape
    drops = (torch.rand((b, 1, h, w), generator=generator) < density).float()
    drops = drops * (0.5 + 0.5 * torch.rand((b, 1, h, w), generator=generator))
    streaks = blur(drops, motion_kernel(length, angle)) * length
    return (streaks * intensity).clamp(0, 1)


def screen(x: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """``1 - (1 - J)(1 - R)``: streaks ``r`` screen-blended onto ``x``, as real rain brightens."""
    return 1 - (1 - x) * (1 - r.to(x))


def unscreen(y: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """The inverse of `screen`: ``J = 1 - (1 - I) / (1 - R)`` (``1 - R`` at least 1/255: a
    layer of 1 leaves nothing of the scene to recover)."""
    return 1 - (1 - y) / (1 - r.to(y)).clamp(min=1 / 255)


def rain(
    x: torch.Tensor,
    density: float,
    length: float,
    angle: float,
    intensity: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Add one layer of rain streaks (`rain_layer`), screen-blended (`screen`)."""
    b, _, h, w = x.shape
    return screen(x, rain_layer((b, h, w), density, length, angle, intensity, generator))
