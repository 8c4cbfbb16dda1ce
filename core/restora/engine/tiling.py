"""Overlapping, blended tiles: any image size runs in bounded memory.

Each tile sees ``context`` extra pixels on every inner side. Its weight is zero over that
context (where its output lacks surroundings), then ramps linearly to one over ``blend``
pixels; where neighbours overlap by more than they must, the weights sum to more than one
and the engine normalises them. With ``context`` at least the network's receptive radius,
the tiled result equals the whole-image one.
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
    """Windows covering ``range(length)``; starts are multiples of ``multiple``.

    The fewest windows of at most ``tile`` pixels, then the smallest size (one for all) with
    which that many still cover, so that neighbours overlap little more than the
    ``2 * context + blend`` they must: on a 1024-pixel edge with 512-pixel tiles, three windows
    of 416 pixels instead of three of 512.
    """
    if length <= tile:
        return [Window(0, length, torch.ones(length))]
    overlap = 2 * context + blend
    floor = lambda v: v // multiple * multiple
    if floor(tile - overlap) <= 0:
        raise ValueError(f"tile {tile} too small for context {context} and blend {blend}")
    n = -(-(length - tile) // floor(tile - overlap)) + 1
    size = -(-(length + (n - 1) * overlap) // n)
    size = -(-size // multiple) * multiple
    while (n - 1) * floor(size - overlap) + size < length:  # strides rounded down: grow to cover
        size += multiple
    stride = floor(size - overlap)
    starts = sorted({i * stride for i in range(n - 1)} | {floor(length - size)})
    out = []
    for a in starts:
        b = min(a + size, length)
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


def run_tiled(fn, x: torch.Tensor, tile: int, context: int, multiple: int = 1, channels: int | None = None,
              autocast=None) -> torch.Tensor:
    """``fn(tile_image, tile)`` applied to (1, C, H, W) ``x`` in blended tiles of at most
    ``tile`` pixels with ``context`` pixels around each (at least ``fn``'s receptive radius, so
    the result is the whole image's), padded by replication to a multiple of ``multiple``;
    ``fn`` returns (1, ``channels`` or C, h, w) for its tile. Without gradients, float32 out;
    ``autocast``, a context-manager factory, wraps each call."""
    h, w = x.shape[-2:]
    pad_h, pad_w = (-h) % multiple, (-w) % multiple
    xp = torch.nn.functional.pad(x, (0, pad_w, 0, pad_h), mode="replicate") if pad_h or pad_w else x
    c = x.shape[1] if channels is None else channels
    out = xp.new_zeros((1, c) + xp.shape[-2:], dtype=torch.float32)
    weight_sum = xp.new_zeros((1, 1) + xp.shape[-2:], dtype=torch.float32)
    with torch.no_grad():
        for t in plan_tiles(xp.shape[-2], xp.shape[-1], tile, context, multiple=multiple):
            if autocast is None:
                y = fn(xp[:, :, t.ys, t.xs], t)
            else:
                with autocast():
                    y = fn(xp[:, :, t.ys, t.xs], t)
            wt = t.weight.to(out)[None, None]
            out[:, :, t.ys, t.xs] += y.float() * wt
            weight_sum[:, :, t.ys, t.xs] += wt
    return (out / weight_sum.clamp(min=1e-8))[:, :, :h, :w]
