"""Per-degradation low-rank adapters, blended per pixel.

A frozen convolution ``conv`` becomes ``conv(x) + sum_d w_d * up_d(down_d(x))``: one rank-``r``
pair per degradation ``d`` (``down_d`` has the conv's kernel, ``up_d`` is 1x1 and starts at zero,
so a new adapter changes nothing until it is trained), weighted by a map ``w`` of shape
(B, D, H, W) or (B, D) that a degradation estimator provides. Because ``up`` is linear, the
sum is one 1x1 convolution over the weighted, stacked low-rank features: the cost is that of
one conv with ``D * r`` outputs, whatever ``D``. With one weight per adapter for the whole
image (B = 1, w of shape (1, D)) the correction folds into the conv's own kernel, and costs
nothing per pixel.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LowRankAdapters(nn.Module):
    """The low-rank corrections of one ``nn.Conv2d``, one per adapter name.

    Parameters
    ----------
    conv : nn.Conv2d
        The layer being adapted (only its shape is read; it stays where it is).
    names : tuple of str
        One adapter per name (degradations, in the estimator's order).
    rank : int
        Rank of each correction.
    """

    def __init__(self, conv: nn.Conv2d, names: tuple[str, ...], rank: int) -> None:
        super().__init__()
        if rank < 1:
            raise ValueError(f"adapter rank must be at least 1, got {rank}")
        self.names, self.rank = tuple(names), rank
        k, pad = conv.kernel_size, conv.padding
        self.down = nn.Conv2d(conv.in_channels, len(names) * rank, k, padding=pad, bias=False)
        self.up = nn.Conv2d(len(names) * rank, conv.out_channels, 1, bias=False)
        nn.init.zeros_(self.up.weight)

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """The correction for ``x`` (B, Cin, H, W) with adapter ``weights`` (B, D[, h, w])."""
        z = self.down(x)
        b, _, h, w = z.shape
        if weights.ndim == 2:
            weights = weights[:, :, None, None]
        elif weights.shape[-2:] != (h, w):
            weights = F.interpolate(weights, size=(h, w), mode="bilinear", align_corners=False)
        z = z.view(b, len(self.names), self.rank, h, w) * weights[:, :, None]
        return self.up(z.view(b, -1, h, w))

    def folded_weight(self, weight: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """The adapted conv's ``weight`` plus the corrections blended by one image's adapter
        ``weights`` (D,): ``conv(x) + up(w * down(x))`` is linear in ``x``, one convolution."""
        up = self.up.weight[:, :, 0, 0] * weights.to(self.up.weight.dtype).repeat_interleave(self.rank)[None]
        return weight + torch.einsum("oj,jikl->oikl", up, self.down.weight)

    def gradient_mask(self, trainable: set[str]) -> dict[str, torch.Tensor]:
        """0/1 gradient masks (per parameter name) that keep every adapter not in ``trainable``
        fixed: the adapters of one layer share two tensors, so adding one adapter trains a slice."""
        keep = torch.tensor([float(n in trainable) for n in self.names]).repeat_interleave(self.rank)
        return {"down.weight": keep[:, None, None, None].expand_as(self.down.weight),
                "up.weight": keep[None, :, None, None].expand_as(self.up.weight)}
