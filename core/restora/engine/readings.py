"""What the quality fusion reads of an image besides the network's heads: the rain model's
share of streaks, the JPEG coding its coefficients show, and its noise level
(`restora.models.quality_fusion.reading_features`).

One function for the engine, which reads whole images (its rain model tiled, each image's
JPEG grid read once and shared with the JPEG step), and for training, which reads crops.
"""

from __future__ import annotations

import torch

from ..models.jpeg import JpegGrid
from ..models.quality_fusion import reading_features
from .dejpeg import coded_weight
from .refine import noise_sigma

__all__ = ["fusion_readings"]


def fusion_readings(x: torch.Tensor, rain_shares: torch.Tensor, grids: list[JpegGrid | None],
                    coded_shares: torch.Tensor | None = None) -> torch.Tensor:
    """The fusion's readings (B, READINGS) of images ``x`` (B, 3, H, W) in [0, 1], given the
    share of each one's pixels surely on streaks (``rain_shares`` (B,), 0 without a rain
    model) and the JPEG coding read from each (``grids``, `restora.models.jpeg.find_jpeg`;
    None where none shows). ``coded_shares`` (B,), each image's mean `coded_weight` (0 where
    its grid is None), is computed here unless the caller has it already."""
    if len(grids) != x.shape[0] or rain_shares.shape != (x.shape[0],):
        raise ValueError(f"{x.shape[0]} images need as many rain shares and grids, "
                         f"got {tuple(rain_shares.shape)} and {len(grids)}")
    coded = coded_shares.float().cpu() if coded_shares is not None else torch.tensor(
        [0.0 if g is None else float(coded_weight(x[i : i + 1].cpu().float(), g).mean()) for i, g in enumerate(grids)])
    quality = torch.tensor([0.0 if g is None else float(g.quality) for g in grids])
    return reading_features(rain_shares.float().cpu(), coded, quality, noise_sigma(x.float()).cpu())
