"""The quality fusion: the quality score that ``assess`` reports, from what every part of the
model says about an image.

The quality head reads the latent's mean and std, which do not see blur or noise-free
under-exposure (it rated blurred and darkened images as nearly clean); the blur model and the
exposure model do. The fusion is a small MLP that corrects the head's score (in logit space,
starting as the identity) from the head's degradation logits, the blur model's probability
and the spread of its kernel, and the exposure model's probability and gain.

With readings (config ``quality_fusion_readings``) it also reads what three measurements of
the image say, `READINGS` more inputs (`reading_features`): the share of it the rain model
finds surely on streaks, the share of it whose coefficients show JPEG's coding and the IJG
quality read from them, and the white noise's level in each opponent colour channel. The
head rated clean images 0.22 under their quality target and noisy ones 0.07-0.13 under, and
composites of rain and haze or low light and noise 0.14-0.17 over (6 train/bsds images,
`benchmarks/iqa.py`); those measurements tell them apart directly.
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

READINGS = 6
"""The rain share, the JPEG-coded share and quality, and three opponent noise levels."""

_FLOOR = 1e-3  # below this a share or a noise level (of 1) reads as none


def reading_features(rain_share: torch.Tensor, coded_share: torch.Tensor, jpeg_quality: torch.Tensor,
                     noise_sigma: torch.Tensor) -> torch.Tensor:
    """The fusion's readings (B, `READINGS`), each about -1 to 1: ``rain_share`` (B,; the
    share of pixels surely on streaks, `restora.models.rain.rain_share`) and ``noise_sigma``
    (B, 3; white noise's level per opponent channel, `restora.engine.refine.noise_sigma`) on
    a log scale, ``coded_share`` (B,; in [0, 1]) and ``jpeg_quality`` (B,; the IJG quality
    0-100, 0 where no coding shows) as they are, over 100."""
    log = lambda t: torch.log10(t.float().clamp(min=0) + _FLOOR) + 2
    return torch.cat([log(rain_share)[:, None], coded_share.float()[:, None],
                      jpeg_quality.float()[:, None] / 100, log(noise_sigma)], 1)


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
                  degradation_probs: torch.Tensor, readings: torch.Tensor | None = None) -> torch.Tensor:
    """`fusion_features` of images ``x`` (B, 3, H, W) from the quality head's ``quality`` (B,)
    and ``degradation_probs`` (B, D), and ``model``'s blur and exposure models (where it has
    them and the image is large enough for them; else as if they found nothing), followed by
    ``readings`` (B, `READINGS`; `reading_features`) where ``model``'s fusion reads them."""
    reads = getattr(getattr(model, "quality_fusion", None), "reads", False)
    if reads and readings is None:
        raise ValueError("this model's quality fusion reads the image's readings: pass readings=")
    b = x.shape[0]
    zero = x.new_zeros(b)
    blur_p = spread = exposure_p = log_gain = zero
    if getattr(model, "blur_model", None) is not None and min(x.shape[-2:]) >= WINDOW:
        probs = torch.softmax(model.blur_model(x).float(), 1)
        blur_p, spread = 1 - probs[:, 0], probs @ bank_spreads().to(probs)
    if getattr(model, "exposure_model", None) is not None and min(x.shape[-2:]) >= MIN_SIZE:
        logit, log_gain = model.exposure_model(x)
        exposure_p = torch.sigmoid(logit.float())
    features = fusion_features(quality, degradation_probs, blur_p, spread, exposure_p, log_gain)
    return torch.cat([features, readings.to(features)], 1) if reads else features


class QualityFusion(nn.Module):
    """An MLP from `fusion_features` (and, with ``readings``, `reading_features`) to a
    correction of the head's quality logit."""

    def __init__(self, hidden: int, readings: bool = False) -> None:
        super().__init__()
        self.reads = bool(readings)
        self.mlp = nn.Sequential(nn.Linear(FEATURES + READINGS * self.reads, hidden), nn.SiLU(), nn.Linear(hidden, 1))
        nn.init.zeros_(self.mlp[-1].weight)  # starts as the quality head's score
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """The fused quality (B,) in [0, 1]."""
        return torch.sigmoid(features[:, 0] + self.mlp(features)[:, 0])
