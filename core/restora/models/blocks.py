"""The convolutional building block the networks share."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ResBlock"]


class ResBlock(nn.Module):
    """``x + conv2(silu(conv1(x)))``, 3x3 convs of ``c`` channels; ``conv1`` dilated by
    ``dilation`` (the reach grows by ``dilation + 1`` pixels per block)."""

    def __init__(self, c: int, dilation: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=dilation, dilation=dilation)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1)
        self.reach = dilation + 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.silu(self.conv1(x)))
