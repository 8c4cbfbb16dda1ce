"""Local degradation cues: classical statistics of an image, pixel by pixel, that the
segmentation reads beside the network's features (config ``segment_cues``).

The network's features tell noise, haze and low light apart at the pixel level, but called
rain, blur and JPEG regions clean (recall 0.00 / 0.02 / 0.17 on CutMix composites): those
leave marks a few statistics see directly. JPEG's 8x8 blocks make the luminance's differences
across one column (row) in eight larger than across the others; blur takes the finest scale's
energy away before the next scale's; rain adds thin bright lines near vertical.

Tensor functions on (B, 3, H, W) floats in [0, 1]; each cue at a pixel reads the image within
`REACH` pixels of it, so cues of overlapping tiles agree with the whole image's (the engine's
tile context is wider). They run in float32 whatever autocast the caller is under.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..metrics import float32

__all__ = ["CUES", "REACH", "cue_maps"]

CUES = ("blockiness_columns", "blockiness_rows", "sharpness", "contrast", "noise", "streaks", "streak_direction")
"""The cue channels, in order."""

REACH = 32
"""How far (pixels, full resolution) from a pixel its cues read, at most."""

# Each cue's mean and standard deviation over 12 train/bsds crops, clean and under each
# degradation of the synthesis: the maps come out standardised, so no cue's scale swamps
# the others' in the first steps of training.
_CENTRE = (0.19, 0.21, -0.13, -4.28, -4.53, -3.99, 0.22)
_SCALE = (0.16, 0.16, 0.41, 0.98, 1.19, 1.12, 0.78)

_EPS = 1e-3
_WINDOW = 7  # the local means' box, at half resolution (15 pixels at full)


def _shifted(t: torch.Tensor, offsets, dim: int) -> torch.Tensor:
    """Sum of ``t`` shifted by each of ``offsets`` along ``dim`` (2 or 3), zero beyond the edges:
    slices of one padded copy, faster than a sparse convolution of one channel."""
    r = max(abs(o) for o in offsets)
    padded = F.pad(t, (r, r, 0, 0) if dim == 3 else (0, 0, r, r))
    n = t.shape[dim]
    return sum(padded.narrow(dim, r + o, n) for o in offsets)


def _box(t: torch.Tensor, k: int = _WINDOW) -> torch.Tensor:
    """Separable k x k local mean (zero-padded edges: sums of fewer pixels near the border)."""
    t = F.avg_pool2d(t, (1, k), stride=1, padding=(0, k // 2), count_include_pad=True)
    return F.avg_pool2d(t, (k, 1), stride=1, padding=(k // 2, 0), count_include_pad=True)


def _binomial(t: torch.Tensor) -> torch.Tensor:
    """The 3x3 binomial blur (1 2 1)/4 in each direction, edges replicated."""
    t = F.pad(t, (1, 1, 1, 1), mode="replicate")
    t = (t[..., :-2] + 2 * t[..., 1:-1] + t[..., 2:]) / 4
    return (t[..., :-2, :] + 2 * t[..., 1:-1, :] + t[..., 2:, :]) / 4


def _blockiness(lum: torch.Tensor, dim: int) -> torch.Tensor:
    """log(largest / mean) of the eight phases' summed absolute differences across ``dim`` (3:
    between columns, 2: between rows) around each pixel, at half resolution: about 0 for a
    natural image, larger where 8x8 blocks were coded apart. Which phase is largest is not
    asked, so a tile's offset does not matter."""
    d = F.pad(lum.diff(dim=dim).abs(), (0, 1, 0, 0) if dim == 3 else (0, 0, 0, 1))
    # along the boundaries: mean over 16, halving that axis; across them: full resolution
    d = F.avg_pool2d(d, (16, 2) if dim == 3 else (2, 16), stride=(2, 1) if dim == 3 else (1, 2),
                     padding=(8, 0) if dim == 3 else (0, 8), count_include_pad=True)
    d = d[..., : lum.shape[2] // 2, :] if dim == 3 else d[..., : lum.shape[3] // 2]
    d = F.pad(d, (0, 1, 0, 0) if dim == 3 else (0, 0, 0, 1))  # the pool's width 2 across took one
    s = _shifted(d, (-16, -8, 0, 8, 16), dim)  # one phase: the differences 8 apart
    s = F.pad(s, (4, 3, 0, 0) if dim == 3 else (0, 0, 4, 3))  # the eight phases around the pixel
    window = (1, 8) if dim == 3 else (8, 1)
    ratio = torch.log((F.max_pool2d(s, window, stride=1) + _EPS) / (F.avg_pool2d(s, window, stride=1) + _EPS))
    return F.avg_pool2d(ratio, (1, 2) if dim == 3 else (2, 1))


def _ridges(lum: torch.Tensor, dim: int) -> torch.Tensor:
    """Positive part of the luminance above the mean of its neighbours 2 pixels away across
    ``dim`` (3: left and right): thin bright lines along the other axis."""
    return (lum - 0.5 * _shifted(lum, (-2, 2), dim)).clamp(min=0)


def _line(t: torch.Tensor, angle: float, length: int = 5) -> torch.Tensor:
    """Mean of ``t`` along a line of ``length`` pixels at ``angle`` degrees (90: vertical)."""
    r = length // 2
    steps = [(round(-i * math.sin(math.radians(angle))), round(i * math.cos(math.radians(angle))))
             for i in range(-r, r + 1)]
    padded = F.pad(t, (r, r, r, r))
    h, w = t.shape[-2:]
    return sum(padded[..., r + y : r + y + h, r + x : r + x + w] for y, x in steps) / length


@float32
def cue_maps(x: torch.Tensor) -> torch.Tensor:
    """The `CUES` of images ``x`` (B, 3, H, W), H and W even, at half resolution, (B,
    len(CUES), H/2, W/2).

    ``blockiness_*``: `_blockiness` between columns and between rows; ``sharpness``: log of the
    local energy of the finest scale (the image minus its binomial blur) over that of the next
    (the same at half resolution), low where blurred, high where noisy; ``contrast``: log of
    the latter (flat regions say nothing of blur); ``noise``: log of the local mean absolute
    finest diagonal difference; ``streaks``: log of the local mean of bright vertical-ish
    ridges averaged along their direction (the largest of 60, 90 and 120 degrees); and
    ``streak_direction``: their log ratio to the same across (horizontal ridges), near 0 for
    texture without a direction. Each is standardised (`_CENTRE`, `_SCALE`)."""
    if x.ndim != 4 or x.shape[1] != 3 or x.shape[2] % 2 or x.shape[3] % 2:
        raise ValueError(f"expected (B, 3, H, W) images of even size, got shape {tuple(x.shape)}")
    lum = x.mean(1, keepdim=True)
    half = lambda t: F.avg_pool2d(t, 2)
    fine = half((lum - _binomial(lum)).abs())
    lum2 = half(lum)
    coarse = (lum2 - _binomial(lum2)).abs()
    diag = (lum[..., :-1, :-1] - lum[..., 1:, :-1] - lum[..., :-1, 1:] + lum[..., 1:, 1:]).abs() / 2
    diag = half(F.pad(diag, (0, 1, 0, 1)))
    vertical, horizontal = half(_ridges(lum, 3)), half(_ridges(lum, 2))
    along = torch.stack([_line(vertical, a) for a in (60.0, 90.0, 120.0)]).amax(0)
    streaks, flat = _box(along), _box(_line(horizontal, 0.0))
    fine, coarse = _box(fine), _box(coarse)
    maps = torch.cat([
        _blockiness(lum, 3), _blockiness(lum, 2),
        torch.log((fine + _EPS) / (coarse + _EPS)), torch.log(coarse + _EPS),
        torch.log(_box(diag) + _EPS),
        torch.log(streaks + _EPS), torch.log((streaks + _EPS) / (flat + _EPS)),
    ], 1)
    return (maps - maps.new_tensor(_CENTRE)[:, None, None]) / maps.new_tensor(_SCALE)[:, None, None]
