"""The rain model's inverse: the streak layer removed by the screen blend's exact inverse.

`restora.models.rain.RainModel` predicts the layer ``R`` of ``I = 1 - (1 - J)(1 - R)`` and where
the streaks are; here it runs in overlapping tiles (the whole image's result), `derain` inverts
the blend (where the layer is 0 the image is returned as it was) and `rain_region` says where
the streaks make a rain region.

Tensor functions on (1, 3, H, W) floats in [0, 1].
"""

from __future__ import annotations

from contextlib import nullcontext

import torch
import torch.nn.functional as F

from ..degradations import unscreen
from .tiling import run_tiled

__all__ = ["derain", "rain_maps", "rain_region"]

# Where the rain is, from the streaks: the share of pixels on a streak within REGION pixels
# (a window a few streaks wide, even in light rain), ramped to 1 from RAIN_DENSITY / 2. Chosen
# on 24 CutMix composites of 8 train/bsds images (`benchmarks/segment.py`'s): pixel accuracy
# 0.670 without, 0.790 so (windows of 33 and 97 and densities up to 0.04 within 0.03 of it).
REGION = 65
RAIN_DENSITY = 0.005


def rain_maps(model, x: torch.Tensor, tile_size: int = 512, autocast=nullcontext) -> tuple[torch.Tensor, torch.Tensor]:
    """The rain layer and the streak probability, each (1, 1, H, W), of ``x`` (1, 3, H, W) by
    ``model`` (a `RainModel`), in tiles of at most ``tile_size`` with its receptive radius of
    context."""
    m = model.multiple_of
    maps = run_tiled(lambda tile, _: model(tile), x, tile_size, model.receptive_radius + m, m, channels=2,
                     autocast=autocast)
    return maps[:, :1], maps[:, 1:]


def derain(x: torch.Tensor, layer: torch.Tensor) -> torch.Tensor:
    """``x`` with the rain ``layer`` (1, 1, H, W) taken out: the screen blend's inverse."""
    return unscreen(x, layer).clamp(0, 1)


def rain_region(streaks: torch.Tensor, size: int = REGION, density: float = RAIN_DENSITY) -> torch.Tensor:
    """How surely each pixel (1, 1, H, W) lies in rain: the share of the ``size`` x ``size``
    pixels around it on a streak (``streaks`` probability at least 0.5; a rain region holds
    streaks and the scene between them), ramped from 0 at ``density / 2`` to 1 at
    ``density``."""
    on = (streaks >= 0.5).float()
    k = size // 2
    # the box mean, separably (rows, then columns); the border's windows are those inside
    share = F.avg_pool2d(on, (1, size), 1, (0, k), count_include_pad=False)
    share = F.avg_pool2d(share, (size, 1), 1, (k, 0), count_include_pad=False)
    return ((share - density / 2) / (density / 2)).clamp(0, 1)
