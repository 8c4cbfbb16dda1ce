"""The exposure model: whether a whole image is under-exposed, and the gain that undoes it,
from its brightness quantiles.

Low light (`restora.degradations.low_light`) scales an image, in display space, by
``exposure ** (1 / gamma)`` before its shot and read noise, so under-exposure shifts every log
brightness quantile by the same amount and leaves the top of the histogram empty (no
highlight reaches white). The model reads the log quantiles of the luminance (at full
resolution and, less noisy, averaged over 4x4 pixels) and of the brightest channel, with
the share of nearly white pixels, and predicts a logit (under-exposed or not) and the log
gain. Unlike the network's low-light model, which learned low light as darkness with shot
noise (the quality head's probability stayed below 0.5 on noise-free under-exposure), it
does not depend on the noise.

The quantiles are image-level statistics, the same for a whole image however it is tiled;
low light in part of an image (a CutMix region) is the network's low-light model's.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

LEVELS = (0.01, 0.03, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.93, 0.95,
          0.97, 0.98, 0.99, 0.995, 0.998, 0.999)
"""The quantile levels read of each brightness signal."""
MAX_PIXELS = 1 << 18  # quantiles are read of at most this many pixels, evenly strided
WHITE = 250 / 255  # "nearly white": an exposed highlight
FEATURES = 3 * len(LEVELS) + 1
MIN_SIZE = 4  # the smallest image edge the 4x4 average leaves a pixel of


def _quantiles(v: torch.Tensor) -> torch.Tensor:
    """Quantiles at `LEVELS` (B, len(LEVELS)) of (B, H, W) values, read of at most
    `MAX_PIXELS` evenly strided pixels."""
    stride = max(1, math.ceil(math.sqrt(v.shape[-2] * v.shape[-1] / MAX_PIXELS)))
    flat = v[:, ::stride, ::stride].flatten(1)
    levels = torch.tensor(LEVELS, dtype=flat.dtype, device=flat.device)
    return torch.quantile(flat, levels, dim=1).T


def exposure_features(x: torch.Tensor) -> torch.Tensor:
    """The exposure model's input (B, `FEATURES`) for images ``x`` (B, C, H, W) in [0, 1],
    H and W at least `MIN_SIZE`: the log quantiles of the luminance, of the luminance averaged over
    4x4 pixels and of the brightest channel averaged likewise, then the share of nearly white
    pixels. Scaling an image (noise-free, unclipped) by ``g`` adds ``log g`` to every log
    quantile."""
    if x.ndim != 4 or min(x.shape[-2:]) < MIN_SIZE:
        raise ValueError(f"the exposure model needs (B, C, H, W) images of at least {MIN_SIZE}x{MIN_SIZE}, "
                         f"got {tuple(x.shape)}")
    x = x.float().clamp(0, 1)
    luma = x.mean(1)
    pooled = F.avg_pool2d(luma[:, None], 4)[:, 0]
    brightest = F.avg_pool2d(x.amax(1, keepdim=True), 4)[:, 0]
    logs = [torch.log(_quantiles(v) + 1e-3) for v in (luma, pooled, brightest)]
    white = (x.amax(1) >= WHITE).float().flatten(1).mean(1, keepdim=True)
    return torch.cat([*logs, white.sqrt()], 1)


class ExposureModel(nn.Module):
    """An MLP from `exposure_features` to a logit (the whole image is under-exposed) and the
    log gain that undoes it (at least 0)."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(FEATURES, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                                 nn.Linear(hidden, 2))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The logit (B,) and the log gain (B,) for images ``x`` (B, 3, H, W)."""
        logit, raw = self.mlp(exposure_features(x)).unbind(1)
        return logit, F.softplus(raw)
