"""The quality fusion: the quality score that ``assess`` reports, from what every part of the
model says about an image.

The quality head reads the latent's mean and std, which do not see blur or noise-free
under-exposure (it rated blurred and darkened images as nearly clean); the blur model and the
exposure model do. The fusion is a small MLP that corrects the head's score (in logit space,
starting as the identity) from the head's degradation logits, the blur model's probability
and the spread of its kernel, and the exposure model's probability and gain.
"""

from __future__ import annotations

import torch
from torch import nn

from .._names import DEGRADATIONS
from .blur import WINDOW, bank_spreads
from .exposure import MIN_SIZE

FEATURES = 2 + len(DEGRADATIONS) + 4
"""The head's score (as a logit), its degradation logits, the blur model's probability and
kernel spread, the exposure model's probability and log gain, and a constant."""


def fusion_features(quality: torch.Tensor, degradation_probs: torch.Tensor, blur_p: torch.Tensor,
                    blur_spread: torch.Tensor, exposure_p: torch.Tensor, log_gain: torch.Tensor) -> torch.Tensor:
    """The fusion's input (B, `FEATURES`): ``quality`` (B,) and ``degradation_probs`` (B, D)
    from the quality head, ``blur_p`` (B,) and ``blur_spread`` (B,; the root mean square
    radius of the blur model's kernel, in pixels, 0 without blur), ``exposure_p`` (B,) and
    ``log_gain`` (B,; 0 where not under-exposed)."""
    logit = lambda p: torch.logit(p.float().clamp(1e-4, 1 - 1e-4))
    return torch.cat([logit(quality)[:, None], logit(degradation_probs),
                      torch.stack([logit(blur_p), blur_spread.float(), logit(exposure_p), log_gain.float()], 1),
                      torch.ones_like(quality.float())[:, None]], 1)


def fusion_inputs(model: nn.Module, x: torch.Tensor, quality: torch.Tensor,
                  degradation_probs: torch.Tensor) -> torch.Tensor:
    """`fusion_features` of images ``x`` (B, 3, H, W) from the quality head's ``quality`` (B,)
    and ``degradation_probs`` (B, D), and ``model``'s blur and exposure models (where it has
    them and the image is large enough for them; else as if they found nothing)."""
    b = x.shape[0]
    zero = x.new_zeros(b)
    blur_p = spread = exposure_p = log_gain = zero
    if getattr(model, "blur_model", None) is not None and min(x.shape[-2:]) >= WINDOW:
        probs = torch.softmax(model.blur_model(x).float(), 1)
        blur_p, spread = 1 - probs[:, 0], probs @ bank_spreads().to(probs)
    if getattr(model, "exposure_model", None) is not None and min(x.shape[-2:]) >= MIN_SIZE:
        logit, log_gain = model.exposure_model(x)
        exposure_p = torch.sigmoid(logit.float())
    return fusion_features(quality, degradation_probs, blur_p, spread, exposure_p, log_gain)


class QualityFusion(nn.Module):
    """An MLP from `fusion_features` to a correction of the head's quality logit."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(FEATURES, hidden), nn.SiLU(), nn.Linear(hidden, 1))
        nn.init.zeros_(self.mlp[-1].weight)  # starts as the quality head's score
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """The fused quality (B,) in [0, 1]."""
        return torch.sigmoid(features[:, 0] + self.mlp(features)[:, 0])
