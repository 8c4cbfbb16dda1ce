"""Overlapping, blended tiles: any image size runs in bounded memory.

Each tile sees ``context`` extra pixels on every inner side. Its weight is zero over that
context (where its output lacks surroundings), then ramps linearly to one over ``blend``
pixels; neighbouring ramps are complementary, so the weights sum to one. With ``context`` at
least the network's receptive radius, the tiled result equals the whole-image one.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Window:
    start: int
    stop: int
    weight: torch.Tensor  # (stop - start,) float32 blending weights


def windows_1d(length: int, tile: int, context: int, blend: int, multiple: int = 1) -> list[Window]:
    """Windows covering ``range(length)``; starts are multiples of ``multiple``."""
    if length <= tile:
        return [Window(0, length, torch.ones(length))]
    stride = (tile - 2 * context - blend) // multiple * multiple
    if stride <= 0:
        raise ValueError(f"tile {tile} too small for context {context} and blend {blend}")
    starts = list(range(0, length - tile, stride)) + [(length - tile) // multiple * multiple]
    out = []
    for a in sorted(set(starts)):
        b = min(a + tile, length)
        centres = torch.arange(a, b, dtype=torch.float32) + 0.5
        w = torch.ones(b - a)
        if a > 0:
            w = torch.minimum(w, ((centres - a - context) / blend).clamp(0, 1))
        if b < length:
            w = torch.minimum(w, ((b - context - centres) / blend).clamp(0, 1))
        out.append(Window(a, b, w))
    return out


@dataclass(frozen=True)
class Tile:
    ys: slice
    xs: slice
    weight: torch.Tensor  # (h, w)


def plan_tiles(
    height: int, width: int, tile: int, context: int, blend: int = 16, multiple: int = 1
) -> list[Tile]:
    """All 2-D tiles (row-major) of an image of ``height`` x ``width``."""
    tiles = []
    for wy in windows_1d(height, tile, context, blend, multiple):
        for wx in windows_1d(width, tile, context, blend, multiple):
            tiles.append(Tile(slice(wy.start, wy.stop), slice(wx.start, wx.stop), wy.weight[:, None] * wx.weight[None, :]))
    return tiles
