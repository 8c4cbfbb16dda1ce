"""The segmentation fusion: the degradation map that ``segment`` reports, from what every part
of the model says about each region of an image.

The segmentation head reads each pixel's decoder features (1x1 convs: no reach beyond the
tiles' context), and the engine moves its probabilities where the rain, JPEG and blur models
find their degradation (`restora.engine.Engine.segment`). What neither sees is the region:
haze and clean, low light and noise differ in a region's contrast and brightness against
the rest of the image, which one pixel's features do not hold (the head called a third of
hazy pixels clean, aio-v9, 16 train/bsds images x 4 composites). The fusion is a small
network on an eighth-resolution grid (`SCALE`) with dilated convolutions (a reach of 120
pixels each way) and an image-level mean, that corrects the moved probabilities (in log space,
starting as the identity) from them, the head's own, the physical models' maps, the image's
local statistics and the quality head's degradation probabilities (`fusion_maps`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .._names import DEGRADATIONS, SEGMENT_CLASSES

SCALE = 8
"""The fusion's grid: one cell per ``SCALE`` x ``SCALE`` pixels."""

MAPS = 4
"""The physical models' maps: rain region, JPEG coding, blur region, haze transmission."""

INPUTS = 2 * len(SEGMENT_CLASSES) + MAPS + 3 + 3 + len(DEGRADATIONS) + 1
"""Per cell: the moved and the head's log probabilities, the four maps, the mean colour, the
brightness's mean, log std and log gradient, the degradation probabilities and the JPEG
quality read (both image-level, the same in every cell)."""

DILATIONS = (1, 2, 4, 8)

_FLOOR = 1e-4  # probabilities below this read as it (their log stays finite)


def _pool(t: torch.Tensor) -> torch.Tensor:
    # ceil_mode: the border's partial cells are kept, so the grid covers every pixel
    return F.avg_pool2d(t, SCALE, ceil_mode=True)


def fusion_maps(image: torch.Tensor, probs: torch.Tensor, head_probs: torch.Tensor, maps: torch.Tensor,
                degradation_probs: torch.Tensor, jpeg_quality: torch.Tensor) -> torch.Tensor:
    """The fusion's input (B, `INPUTS`, ceil(H / SCALE), ceil(W / SCALE)).

    Parameters
    ----------
    image : (B, 3, H, W) tensor in [0, 1]
    probs, head_probs : (B, len(SEGMENT_CLASSES), H, W) tensors
        The engine's class probabilities (the head's, moved by the physical models) and the
        head's own.
    maps : (B, `MAPS`, H, W) tensor in [0, 1]
        The rain region, the JPEG coding weight (0 where the coding is not read), the blur
        region and the haze transmission (1 without haze).
    degradation_probs : (B, len(DEGRADATIONS)) tensor
        The quality head's image-level probabilities.
    jpeg_quality : (B,) tensor
        The IJG quality read from the image's coefficients, 100 where no coding shows.
    """
    image, probs, head_probs, maps = (t.float() for t in (image, probs, head_probs, maps))
    lum = image.mean(1, keepdim=True)
    mean = _pool(lum)
    std = (_pool(lum * lum) - mean * mean).clamp(min=0).sqrt()
    grad = _pool(F.pad((lum[..., 1:] - lum[..., :-1]).abs(), (0, 1)))
    cells = mean.shape[-2:]
    flat = lambda v: v.float()[:, :, None, None].expand(-1, -1, *cells)
    return torch.cat([torch.log(_pool(probs).clamp(min=_FLOOR)), torch.log(_pool(head_probs).clamp(min=_FLOOR)),
                      _pool(maps), _pool(image), mean, torch.log(std + 1e-3), torch.log(grad + 1e-3),
                      flat(degradation_probs), flat(jpeg_quality[:, None] / 100)], 1)


class SegmentFusion(nn.Module):
    """Dilated convolutions on `fusion_maps` to a correction of the class log probabilities."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.inp = nn.Conv2d(INPUTS, hidden, 1)
        self.blocks = nn.ModuleList([nn.Conv2d(hidden, hidden, 3, padding=d, dilation=d) for d in DILATIONS])
        self.image = nn.Linear(hidden, hidden)  # the image-level mean, after the second block
        self.out = nn.Conv2d(hidden, len(SEGMENT_CLASSES), 1)
        nn.init.zeros_(self.out.weight)  # starts as the moved probabilities
        nn.init.zeros_(self.out.bias)

    def correction(self, features: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """The log-probability correction (B, K, H, W) at full size ``size`` from
        ``features`` (`fusion_maps`)."""
        h = F.silu(self.inp(features))
        for i, block in enumerate(self.blocks):
            h = h + F.silu(block(h))
            if i == 1:
                h = h + self.image(h.mean((2, 3)))[:, :, None, None]
        return F.interpolate(self.out(h), size=size, mode="bilinear", align_corners=False)

    def forward(self, features: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
        """The fused class logits (B, K, H, W) from ``features`` and the moved ``probs``."""
        return torch.log(probs.float().clamp(min=_FLOOR)) + self.correction(features, probs.shape[-2:])
