"""The rain model: the rain layer of an image, which the screen blend's inverse removes.

Rain streaks brighten what lies behind them: the synthesis (`restora.degradations.rain`) and
real rain alike are well described by the screen blend ``I = 1 - (1 - J)(1 - R)`` of the scene
``J`` with a streak layer ``R``, the same in every channel (streaks are grey). So the inverse
is exact once ``R`` is known: ``J = 1 - (1 - I) / (1 - R)`` (`restora.degradations.unscreen`),
and the model predicts ``R``, a physical parameter map rather than an image, with the
probability that each pixel lies on a streak.

``R`` lies between 0 and the darkest channel of ``I`` (``J >= 0``); where the model is sure of no
rain it returns 0, so the inverse leaves those pixels as they were, and where it hesitates a
little more (the engine takes the layer out only in the regions the streaks make). How much
of the image lies surely on streaks (`rain_share`) says whether an image is rainy at all.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import ResBlock

__all__ = ["MAX_LAYER", "RainModel", "STREAK", "SURE", "rain_share"]

# A pixel whose layer reaches this is on a streak (the synthesis's streaks are 0.05-0.15 x
# the drops' 0.5-1, so at least 0.025 at their faintest).
STREAK = 0.02
# The most the layer may take: beyond it the inverse would amplify the noise more than tenfold.
MAX_LAYER = 0.9
# A streak probability at least this counts a pixel as surely on a streak (see rain_share).
SURE = 0.9


def rain_share(streaks: torch.Tensor, sure: float = SURE) -> torch.Tensor:
    """The share (B,) of each image's pixels surely on a streak: of (B, 1, H, W)
    ``streaks`` probabilities, those at least ``sure``. Noise and fine texture raise some
    pixels' probability above 0.5, few above ``sure``."""
    return (streaks >= sure).float().mean((1, 2, 3))


class RainModel(nn.Module):
    """The rain layer ``R`` and the probability of a streak, (B, 2, H, W), of (B, 3, H, W)
    ``x`` in [0, 1]: a residual network at half resolution (space to depth, so the
    one-pixel-wide streaks are all seen), its blocks dilated so that a pixel reads 46 pixels
    around, longer than the streaks (8-25 pixels) it must tell from edges and texture. Inputs
    with H and W even.

    The layer is the expected one (trained by squared error, so it is the most accurate in
    PSNR, and where the model is unsure it is a little above 0); the streak probability is a
    classifier's (trained by cross-entropy against the true layer reaching `STREAK`), which
    says where there is rain at all. `forward` clamps the layer to ``[0, min_c x]`` (and
    `MAX_LAYER`); `raw` returns it unclamped with the streaks' logit, which training fits (a
    clamp passes no gradient to a pixel pushed below 0)."""

    multiple_of = 2

    def __init__(self, width: int = 48, dilations: tuple[int, ...] = (1, 2, 4, 1, 2, 4)) -> None:
        super().__init__()
        self.inp = nn.Conv2d(4 * 3, width, 3, padding=1)
        self.body = nn.Sequential(*[ResBlock(width, d) for d in dilations])
        self.out = nn.Conv2d(width, 4 * 2, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        with torch.no_grad():  # no streak anywhere to start with
            self.out.bias[4:].fill_(-4.0)
        # full-resolution pixels each output pixel reads: the 3x3 convs' reach at half
        # resolution, doubled, plus the space-to-depth's pixel
        self.receptive_radius = 2 * (2 + sum(b.reach for b in self.body)) + 2

    def raw(self, x: torch.Tensor) -> torch.Tensor:
        """The unclamped layer and the streaks' logit (B, 2, H, W)."""
        h = F.silu(self.inp(F.pixel_unshuffle(x * 2 - 1, 2)))
        return F.pixel_shuffle(self.out(self.body(h)), 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raw = self.raw(x).float()
        layer = torch.minimum(raw[:, :1].clamp(0, MAX_LAYER), x.float().amin(1, keepdim=True))
        return torch.cat([layer, torch.sigmoid(raw[:, 1:])], 1)
