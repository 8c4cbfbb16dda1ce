"""The JPEG model's inverse: the coding undone where an image's own coefficients show it.

`restora.models.jpeg.find_jpeg` reads the grid and the quantisation steps from the decoded
image; the JPEG model restores it in overlapping tiles (its pixels' grid positions follow each
tile's place in the image, so tiles give the whole image's result); the restoration is then
projected onto the quantisation constraint (`restora.models.jpeg.project`) and kept, block by
block, where the blocks' coefficients sit on the steps (`restora.models.jpeg.block_consistency`),
so a composite's uncoded regions are left as they were.

Tensor functions on (1, 3, H, W) floats in [0, 1].
"""

from __future__ import annotations

from contextlib import nullcontext

import torch
import torch.nn.functional as F

from ..models.jpeg import BLOCK, JpegGrid, consistency_parts, grid_position, project
from .tiling import run_tiled

__all__ = ["coded_weight", "dejpeg"]

# A block's consistency (mean cos(2 pi c / q) over its non-zero coefficients) is about 0.9-1
# on a coded block and 0-0.3 on an uncoded one: the weight ramps from LOW to HIGH.
LOW, HIGH = 0.4, 0.7


def coded_weight(x: torch.Tensor, grid: JpegGrid) -> torch.Tensor:
    """Per pixel (1, 1, H, W), how surely the block holding it was JPEG-coded on ``grid``: the
    consistency of the 3 x 3 blocks around it, pooled (one block holds a few coefficients to
    read, and an uncoded block's mean of them ranged from -0.9 to 0.6), ramped from LOW to
    HIGH; where none of them has a coefficient to read (flat), the whole image's. Pixels
    outside the whole blocks take their nearest block's."""
    score, count = consistency_parts(x, grid.offset, grid.steps)
    pool = lambda t: F.avg_pool2d(t[:, None], 3, stride=1, padding=1, count_include_pad=False)
    s, n = pool(score), pool(count)
    whole = score.sum() / count.sum().clamp(min=1)
    c = torch.where(n > 0, s / n.clamp(min=1e-8), whole)
    w = ((c - LOW) / (HIGH - LOW)).clamp(0, 1)
    w = w.repeat_interleave(BLOCK, 2).repeat_interleave(BLOCK, 3)
    oy, ox = grid.offset
    h, wd = x.shape[-2:]
    # the partial blocks at the borders: replicate the nearest whole block's weight
    pad = (ox, wd - ox - w.shape[-1], oy, h - oy - w.shape[-2])
    return F.pad(w, pad, mode="replicate")


def dejpeg(model, x: torch.Tensor, grid: JpegGrid, tile_size: int = 512, autocast=nullcontext,
           constrain: bool = True, blend: bool = True, weight: torch.Tensor | None = None) -> torch.Tensor:
    """``x`` (1, 3, H, W) with its JPEG coding undone by ``model`` (a `JpegModel`), in tiles
    of at most ``tile_size`` with its receptive radius of context; with ``constrain``, projected
    onto the quantisation constraint; with ``blend``, kept only where the blocks were coded
    (``weight``: `coded_weight` of ``x`` on ``grid``, computed here unless given)."""
    quality = torch.tensor([grid.quality], device=x.device)

    def restore(tile: torch.Tensor, t) -> torch.Tensor:
        pos = grid_position(tile.shape[-2:], grid.offset, (t.ys.start, t.xs.start), device=x.device)
        return model(tile, pos, quality)

    m = model.multiple_of
    y = run_tiled(restore, x, tile_size, model.receptive_radius + m, m, autocast=autocast).clamp(0, 1)
    if constrain:
        y = project(y, x, grid)
    if not blend:
        return y
    w = coded_weight(x, grid) if weight is None else weight.to(x)
    return (x + w * (y - x)).clamp(0, 1)
