"""The JPEG model: where an image was JPEG-coded, its quantisation, and the inverse.

JPEG codes each 8x8 block of the luminance (``Y = 0.299 R + 0.587 G + 0.114 B``, shifted by
-128) by its orthonormal DCT, each coefficient rounded to a multiple of its frequency's
quantisation step. A decoded JPEG therefore keeps its coefficients on those multiples, to
within the decoder's rounding (about 0.5 of 255): an exact physical trace of the operator.

- `grid_offset` finds where the 8x8 grid lies (a cropped JPEG's is not at the origin), from the
  luminance's steps across every 8th pixel boundary;
- `estimate_steps` reads each frequency's quantisation step from how its coefficients cluster;
- `quality_factor` fits the IJG (libjpeg, Pillow) quality whose scaled standard table matches
  them, the scalar the restoration network is conditioned on (`JpegModel`);
- `block_consistency` says per block whether its coefficients sit on the steps (so a JPEG
  region of a composite is told from the rest);
- `project` is the quantisation constraint: the restored image's coefficients are clamped into
  the interval that rounds to the observed ones, so the result stays an image that JPEG would
  have coded as the input was.

Tensor functions on (B, 3, H, W) floats in [0, 1], values scaled to 0-255 inside.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import ResBlock

BLOCK = 8
# IJG's standard luminance table (JPEG standard, Annex K), in natural (row-major) order.
LUMA_TABLE = (
    16, 11, 10, 16, 24, 40, 51, 61,
    12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77,
    24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101,
    72, 92, 95, 98, 112, 100, 103, 99,
)
# Steps below this are not told from the decoder's rounding (a periodicity of 0.7 at step 4
# for a rounding error of 0.5): quality above about 85 is not detected, and needs no help.
MIN_STEP = 4
MAX_STEP = 255
# Mean cos(2 pi c / q) over a frequency's non-zero coefficients to accept q: over the coded
# blocks, and, first, over all blocks, of which a composite's coded region may be a fifth.
PERIODIC, PERIODIC_ANY = 0.75, 0.3
CODED = 0.6  # a block's consistency (`block_consistency`) to count as coded
MIN_BLOCKS = 16  # coded blocks the steps are read from
MIN_COUNT = 24  # non-zero coefficients a frequency needs for its step to be read
NONZERO = MIN_STEP / 2  # a coefficient above this is coded as non-zero (not rounding)
MAX_BLOCKS = 4096  # blocks read for the estimate, evenly spread over a large image
MIN_FOUND = 6  # frequencies whose step is read, for an image to count as JPEG-coded


def luminance(x: torch.Tensor) -> torch.Tensor:
    """JPEG's luminance (B, 1, H, W), 0-255, of (B, 3, H, W) ``x`` in [0, 1], shifted by -128."""
    w = x.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True) * 255 - 128


@lru_cache(maxsize=4)
def _dct_matrix(device: str = "cpu") -> torch.Tensor:
    n = torch.arange(BLOCK, dtype=torch.float64)
    d = torch.cos((2 * n[None] + 1) * n[:, None] * math.pi / (2 * BLOCK)) * math.sqrt(2 / BLOCK)
    d[0] /= math.sqrt(2)
    return d.float().to(device)


def blocks(y: torch.Tensor, offset: tuple[int, int]) -> tuple[torch.Tensor, tuple[int, int, int, int]]:
    """The whole 8x8 blocks of (B, 1, H, W) ``y`` on the grid at ``offset`` (oy, ox), as
    (B, nby, nbx, 8, 8), and the region they cover (top, left, height, width)."""
    oy, ox = offset
    nby, nbx = (y.shape[-2] - oy) // BLOCK, (y.shape[-1] - ox) // BLOCK
    region = (oy, ox, nby * BLOCK, nbx * BLOCK)
    v = y[:, 0, oy : oy + nby * BLOCK, ox : ox + nbx * BLOCK]
    return v.reshape(y.shape[0], nby, BLOCK, nbx, BLOCK).transpose(2, 3), region


def dct(b: torch.Tensor) -> torch.Tensor:
    """The orthonormal 2-D DCT of (..., 8, 8) blocks (JPEG's forward transform)."""
    d = _dct_matrix(str(b.device)).to(b.dtype)
    return d @ b @ d.T


def idct(c: torch.Tensor) -> torch.Tensor:
    """The inverse of `dct`."""
    d = _dct_matrix(str(c.device)).to(c.dtype)
    return d.T @ c @ d


def boundary_steps(lum: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean absolute luminance step across pixel boundaries at each of the 8 phases,
    between rows and between columns: two (B, 8) tensors, entry p for the boundaries after
    rows (columns) ``p, p + 8, ...``. JPEG's block edges are the largest phase. (B, H, W)
    ``lum``; an axis shorter than 17 pixels gives ones."""

    def axis(steps: torch.Tensor) -> torch.Tensor:
        n = steps.shape[1] // BLOCK * BLOCK
        if n < 2 * BLOCK:
            return steps.new_ones(steps.shape[0], BLOCK)
        return steps[:, :n].reshape(steps.shape[0], -1, BLOCK).mean(1)

    rows = (lum[:, 1:] - lum[:, :-1]).abs().mean(2)
    cols = (lum[:, :, 1:] - lum[:, :, :-1]).abs().mean(1)
    return axis(rows), axis(cols)


def grid_offset(x: torch.Tensor) -> tuple[int, int]:
    """Where the 8x8 grid of (1, 3, H, W) ``x`` starts, (oy, ox) in 0-7: one past the phase
    of the largest boundary steps (`boundary_steps`)."""
    rows, cols = boundary_steps(x.float().mean(1))
    return (int(rows[0].argmax()) + 1) % BLOCK, (int(cols[0].argmax()) + 1) % BLOCK


def _spread(n: int, at_most: int) -> torch.Tensor:
    return torch.linspace(0, n - 1, min(n, at_most)).round().long()


def estimate_steps(x: torch.Tensor, offset: tuple[int, int], periodic_at_least: float = PERIODIC,
                   select: torch.Tensor | None = None) -> torch.Tensor:
    """Each frequency's quantisation step (8, 8) read from the luminance of (1, 3, H, W) ``x``
    on the grid at ``offset``. Over the frequency's coefficients above the rounding (``|c| >
    NONZERO``), the periodicity ``P(q) = mean cos(2 pi c / q)`` is about 1 at the true step and
    at its divisors, and lower at its multiples (where odd multiples of the step land half
    way); the step is the ``q`` of highest periodicity between two thirds of, and, the
    largest ``q`` (MIN_STEP to MAX_STEP) of periodicity at least ``periodic_at_least``, read
    over the blocks ``select`` (nby, nbx) bool, or all. 0 where none is
    read: too few coefficients above the rounding (a frequency coded to zeros), or no
    periodicity (not JPEG-coded). A step counts only where at least MIN_COUNT coefficients
    reach half of it."""
    b, _ = blocks(luminance(x.float()), offset)
    c = dct(b[0] if select is None else b[0][select])
    c = c.reshape(-1, BLOCK, BLOCK)
    c = c[_spread(c.shape[0], MAX_BLOCKS)].reshape(-1, BLOCK * BLOCK).T  # (64, N)
    q = torch.arange(MIN_STEP, MAX_STEP + 1, dtype=c.dtype)
    steps = torch.zeros(BLOCK * BLOCK)
    for k in range(BLOCK * BLOCK):
        ck = c[k][c[k].abs() > NONZERO]
        if ck.numel() < MIN_COUNT:
            continue
        periodic = torch.cos(2 * math.pi * ck[:, None] / q[None]).mean(0)
        # a step is tested only by coefficients that reach half of it (all of them far
        # below it look periodic at any step), and those must be periodic too (a
        # heavy-tailed frequency's few large coefficients are not)
        big = ck.abs()[:, None] > q[None] / 2
        count = big.sum(0)
        periodic_big = (torch.cos(2 * math.pi * ck[:, None] / q[None]) * big).sum(0) / count.clamp(min=1)
        ok = (periodic >= periodic_at_least) & (periodic_big >= periodic_at_least) & (count >= MIN_COUNT)
        if ok.any():
            top = int(q[ok][-1])
            near = (q >= 2 * top / 3) & (q <= top)
            steps[k] = q[near][periodic[near].argmax()]
    return steps.reshape(BLOCK, BLOCK)


def ijg_table(quality: int) -> torch.Tensor:
    """IJG's luminance table (8, 8) at ``quality`` (1-100), as libjpeg's ``jpeg_set_quality``
    scales it (integer arithmetic; baseline: steps 1-255)."""
    quality = min(max(int(round(quality)), 1), 100)
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    base = torch.tensor(LUMA_TABLE, dtype=torch.int64)
    return ((base * scale + 50) // 100).clamp(1, 255).reshape(BLOCK, BLOCK).float()


def quality_factor(steps: torch.Tensor) -> tuple[float, float]:
    """The IJG quality (1-100) whose table best matches the read ``steps`` (8, 8; 0 unread):
    the most read steps matched (within 1 + 3%), then the least absolute difference (tables of
    neighbouring qualities differ by a step or two); and the share it matches. (0, 0) where
    none is read."""
    read = steps > 0
    if not bool(read.any()):
        return 0.0, 0.0
    best, key = (0.0, 0.0), None
    for quality in range(1, 101):
        t = ijg_table(quality)
        diff = (t - steps).abs()[read]
        match = float((diff <= 1 + 0.03 * t[read]).float().mean())
        k = (match, -float(diff.sum()))
        if key is None or k > key:
            best, key = (float(quality), match), k
    return best


@dataclass(frozen=True)
class JpegGrid:
    """What `find_jpeg` read of an image's JPEG coding."""

    offset: tuple[int, int]  # (oy, ox) of the 8x8 grid
    steps: torch.Tensor  # (8, 8) quantisation steps read (0: unread)
    quality: float  # the IJG quality fitted to them
    match: float  # the share of read steps the fitted table matches
    found: int  # frequencies whose step was read

    @property
    def table(self) -> torch.Tensor:
        """The steps to project on: those read, else the fitted IJG table's where it matches
        most read steps, else 0 (no constraint)."""
        fill = ijg_table(self.quality) if self.match >= 0.8 else torch.zeros(BLOCK, BLOCK)
        return torch.where(self.steps > 0, self.steps, fill)


MIN_SIZE = 4 * BLOCK  # smaller images are not read


def find_jpeg(x: torch.Tensor) -> JpegGrid | None:
    """The JPEG coding of one image (1, 3, H, W) in [0, 1], or None where it shows none: the
    grid (`grid_offset`); steps read loosely over all blocks (`estimate_steps` at
    PERIODIC_ANY: a composite's coded region may be a fifth of it); the blocks they fit
    (`block_consistency` at least CODED); the steps read again, strictly, from those blocks.
    None where fewer than MIN_FOUND frequencies' steps are read, fewer than MIN_BLOCKS blocks
    fit, or the image is under 32 pixels."""
    if min(x.shape[-2:]) < MIN_SIZE:
        return None
    offset = grid_offset(x)
    loose = estimate_steps(x, offset, PERIODIC_ANY)
    if int((loose > 0).sum()) < MIN_FOUND:
        return None
    coded = _consistency(x, offset, loose)[0] >= CODED  # NaN (flat blocks) compare False
    if int(coded.sum()) < MIN_BLOCKS:
        return None
    steps = estimate_steps(x, offset, PERIODIC, coded)
    found = int((steps > 0).sum())
    if found < MIN_FOUND:
        return None
    quality, match = quality_factor(steps)
    return JpegGrid(offset, steps, quality, match, found)


def consistency_parts(x: torch.Tensor, offset: tuple[int, int], steps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per block of (B, 3, H, W) ``x`` on the grid at ``offset``, the sum of ``cos(2 pi c /
    q)`` over its coefficients above ``q / 2`` where ``steps`` has a step, and their count:
    two (B, nby, nbx) tensors, to pool over neighbouring blocks."""
    b, _ = blocks(luminance(x.float()), offset)
    c = dct(b)
    q = steps.to(c)
    big = (c.abs() > q / 2) & (q > 0)
    return (torch.cos(2 * math.pi * c / q.clamp(min=1)) * big).sum((-2, -1)), big.sum((-2, -1)).to(c)


def _consistency(x: torch.Tensor, offset: tuple[int, int], steps: torch.Tensor) -> torch.Tensor:
    score, count = consistency_parts(x, offset, steps)
    return torch.where(count > 0, score / count.clamp(min=1), torch.full_like(score, float("nan")))


def block_consistency(x: torch.Tensor, grid: JpegGrid) -> torch.Tensor:
    """Per block of (B, 3, H, W) ``x`` on ``grid``, how well its coefficients sit on the read
    steps: the mean ``cos(2 pi c / q)`` over its coefficients above ``q / 2`` (1 on a coded
    block, about 0 on an uncoded one), NaN where it has none (a flat block: either). Shape
    (B, nby, nbx)."""
    return _consistency(x, grid.offset, grid.steps)


def project(y: torch.Tensor, x: torch.Tensor, grid: JpegGrid) -> torch.Tensor:
    """The quantisation constraint: ``y`` (B, 3, H, W), a restoration of the decoded JPEG
    ``x``, with its luminance's coefficients clamped into the interval that JPEG rounds to
    ``x``'s (``[(n - 1/2) q, (n + 1/2) q]``, ``n`` the observed multiple), frequency by
    frequency where the step is known (`JpegGrid.table`). The luminance change is added to
    the three channels equally, which leaves the chroma as it was. Blocks the grid does not
    wholly cover (at the borders) are left as they are."""
    q = grid.table.to(y)
    if not bool((q > 0).any()):
        return y
    bx, region = blocks(luminance(x.float()), grid.offset)
    by, _ = blocks(luminance(y.float()), grid.offset)
    cx, cy = dct(bx), dct(by)
    qs = q.clamp(min=1)
    n = torch.round(cx / qs)
    # just inside the interval, so that the result rounds to the same multiples again
    lo, hi = (n - 0.49) * qs, (n + 0.49) * qs
    known = q > 0
    clamped = torch.where(known, torch.minimum(torch.maximum(cy, lo), hi), cy)
    delta = idct(clamped - cy)  # (B, nby, nbx, 8, 8) luminance change, 0-255
    top, left, h, w = region
    d = delta.transpose(2, 3).reshape(y.shape[0], 1, h, w) / 255
    out = y.clone()
    out[:, :, top : top + h, left : left + w] += d.to(y.dtype)
    return out.clamp(0, 1)


def grid_position(shape: tuple[int, int], offset: tuple[int, int], origin: tuple[int, int] = (0, 0),
                  device=None) -> torch.Tensor:
    """Where each pixel lies in its 8x8 block, as (1, 4, H, W) cos and sin of ``2 pi p / 8``
    down and across (p the position from the grid at ``offset``): the restoration network's
    knowledge of the grid, which convolutions alone do not have. ``origin`` is the (y, x) of
    this array's first pixel in the image (a tile's)."""
    h, w = shape
    ys = (torch.arange(h, device=device) + origin[0] - offset[0]) % BLOCK
    xs = (torch.arange(w, device=device) + origin[1] - offset[1]) % BLOCK
    ay, ax = 2 * math.pi * ys.float() / BLOCK, 2 * math.pi * xs.float() / BLOCK
    return torch.stack([torch.cos(ay)[:, None].expand(h, w), torch.sin(ay)[:, None].expand(h, w),
                        torch.cos(ax)[None].expand(h, w), torch.sin(ax)[None].expand(h, w)])[None]


def quality_code(quality: torch.Tensor) -> torch.Tensor:
    """The conditioning (B, 1) of the network for IJG qualities (B,): the log of the table's
    scale (about 1.6 at quality 10, 0 at 50, -1.6 at 90)."""
    q = quality.float().clamp(1, 99)
    scale = torch.where(q < 50, 5000 / q, 200 - 2 * q) / 100
    return torch.log(scale)[:, None]


class JpegModel(nn.Module):
    """The restoration of a decoded JPEG: a residual network at half resolution (space to
    depth, ``blocks`` residual blocks of ``width``, depth to space) reading the image and its
    pixels' positions in the 8x8 grid (`grid_position`), its features modulated by the IJG
    quality (`quality_code`). It undoes the coding only (its target is the image before JPEG),
    so what came before stays for the rounds that follow. Inputs with H and W even."""

    multiple_of = 2

    def __init__(self, width: int = 48, num_blocks: int = 6) -> None:
        super().__init__()
        self.inp = nn.Conv2d(4 * 7, width, 3, padding=1)
        self.film = nn.Sequential(nn.Linear(1, 32), nn.SiLU(), nn.Linear(32, 2 * width))
        self.body = nn.Sequential(*[ResBlock(width) for _ in range(num_blocks)])
        self.out = nn.Conv2d(width, 4 * 3, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        # pixels of context each output pixel reads: (2 blocks x 2 + 2) 3x3 convs at half
        # resolution, plus the space-to-depth's pixel
        self.receptive_radius = 2 * (2 * num_blocks + 2) + 2

    def forward(self, x: torch.Tensor, position: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
        """The restored (B, 3, H, W) ``x``; ``position`` (B or 1, 4, H, W), ``quality`` (B,)."""
        z = torch.cat([x * 2 - 1, position.expand(x.shape[0], -1, -1, -1).to(x)], 1)
        h = self.inp(F.pixel_unshuffle(z, 2))
        scale, shift = self.film(quality_code(quality).to(h)).chunk(2, 1)
        h = F.silu(h * (1 + scale[:, :, None, None]) + shift[:, :, None, None])
        return x + F.pixel_shuffle(self.out(self.body(h)), 2)
