"""Full-reference metrics (PSNR, SSIM) and the quality target the quality head learns."""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from .degradations import gaussian_kernel


def float32(fn):
    """``fn`` of tensors, run in float32 whatever autocast its caller runs under: a metric or
    a classical filter must not round to bfloat16 when training does (`TrainConfig.precision`)."""
    def full(t):  # half-precision tensors up to float32; float64 stays float64
        return t.float() if torch.is_tensor(t) and t.dtype in (torch.bfloat16, torch.float16) else t

    @functools.wraps(fn)
    def run(x: torch.Tensor, *args, **kwargs):
        with torch.autocast(x.device.type, enabled=False):
            return fn(full(x), *(full(a) for a in args), **kwargs)
    return run


@float32
def psnr(x: torch.Tensor, ref: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """PSNR in dB per image of (B, C, H, W) tensors; inf for identical images."""
    mse = ((x - ref) ** 2).flatten(1).mean(1)
    return 10 * torch.log10(data_range**2 / mse)


@float32
def ssim(x: torch.Tensor, ref: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """SSIM per image of (B, C, H, W) tensors (Gaussian window 11, sigma 1.5; mean over channels)."""
    c = x.shape[1]
    k = gaussian_kernel(1.5, 11).to(x)[None, None].expand(c, 1, -1, -1)

    def filt(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, k, groups=c)

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mx, my = filt(x), filt(ref)
    vx, vy, cov = filt(x * x) - mx**2, filt(ref * ref) - my**2, filt(x * ref) - mx * my
    s = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return s.flatten(1).mean(1)


def quality_target(x: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """Full-reference quality in [0, 1] per image: the mean of SSIM and PSNR mapped from
    15..45 dB to 0..1. The quality head learns to predict it without the reference."""
    p = psnr(x, clean).clamp(15, 45).nan_to_num(45.0)
    return 0.5 * ssim(x, clean).clamp(0, 1) + 0.5 * (p - 15) / 30
