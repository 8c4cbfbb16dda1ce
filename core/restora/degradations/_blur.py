"""Blur kernels (Gaussian, defocus disk, linear motion) and their application."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _grid(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    r = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    return torch.meshgrid(r, r, indexing="ij")


def gaussian_kernel(sigma: float, size: int | None = None) -> torch.Tensor:
    """Isotropic Gaussian kernel, (size, size), summing to one."""
    size = size or 2 * math.ceil(3 * sigma) + 1
    yy, xx = _grid(size)
    k = torch.exp(-(xx**2 + yy**2) / (2 * sigma**2))
    return k / k.sum()


def defocus_kernel(radius: float) -> torch.Tensor:
    """Out-of-focus disk of ``radius`` pixels, anti-aliased at the rim."""
    size = 2 * math.ceil(radius) + 3
    yy, xx = _grid(size)
    k = (radius + 0.5 - torch.sqrt(xx**2 + yy**2)).clamp(0, 1)
    return k / k.sum()


def motion_kernel(length: float, angle: float) -> torch.Tensor:
    """Linear camera motion of ``length`` pixels at ``angle`` degrees."""
    size = 2 * math.ceil(length / 2) + 3
    yy, xx = _grid(size)
    t = math.radians(angle)
    along = xx * math.cos(t) + yy * math.sin(t)
    across = -xx * math.sin(t) + yy * math.cos(t)
    k = (1 - across.abs()).clamp(0, 1) * (length / 2 + 0.5 - along.abs()).clamp(0, 1)
    return k / k.sum()


def blur_kernel(params: dict) -> torch.Tensor:
    """The kernel of blur ``params`` (as `restora.degradations.sample_params` draws them:
    ``kind`` "gaussian" with ``sigma``, "defocus" with ``radius``, "motion" with ``length``
    and ``angle``)."""
    kind = params.get("kind")
    if kind == "gaussian":
        return gaussian_kernel(params["sigma"])
    if kind == "defocus":
        return defocus_kernel(params["radius"])
    if kind == "motion":
        return motion_kernel(params["length"], params["angle"])
    raise ValueError(f"unknown blur kind {kind!r}; choose from gaussian, defocus, motion")


def blur(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Convolve each channel of (B, C, H, W) ``x`` with a (k, k) kernel, reflecting at the borders."""
    c = x.shape[1]
    k = kernel.to(x)[None, None].expand(c, 1, -1, -1)
    p = kernel.shape[-1] // 2
    mode = "reflect" if min(x.shape[-2:]) > p else "replicate"
    return F.conv2d(F.pad(x, (p, p, p, p), mode=mode), k, groups=c)
