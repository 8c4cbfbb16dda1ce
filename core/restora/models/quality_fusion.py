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

With statistics (config ``quality_fusion_statistics``) it also reads `STATISTICS` plain
statistics of the image (`image_statistics`): how much fine detail it holds at three scales,
its brightness and contrast, its dark channel and saturation. A score read from the latent's
mean and std, or from a detector's probability, does not say how much a given degradation
costs a given image (a textured photograph loses more to the same blur or JPEG coding than a
smooth one); these say how textured, bright and hazy the image is.

With regions (config ``quality_fusion_regions``) it also reads `REGIONS` statistics of how
the image's local statistics vary over a 4x4 grid of its regions (`region_statistics`). A
degradation CutMix composite's degradations sit in regions, which whole-image means average
away: aio-v12, reading only those, rated composites of rain and haze 0.13 over their quality
target and of low light and noise 0.09 over (`benchmarks/iqa.py`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .._names import DEGRADATIONS
from .blur import WINDOW, bank_spreads
from .exposure import MIN_SIZE

FEATURES = 2 + len(DEGRADATIONS) + 4
"""The head's score (as a logit), its degradation logits, the blur model's probability and
kernel spread, the exposure model's probability and log gain, and a constant."""

READINGS = 6
"""The rain share, the JPEG-coded share and quality, and three opponent noise levels."""

STATISTICS = 8
"""The log mean gradient of the luminance at full, half and quarter resolution, the log std
of its Laplacian, its mean and std, the mean dark channel and the mean saturation."""

REGIONS = 14
"""Over the regions of `region_statistics`' grid: the std and the range of six local
statistics (the log mean gradient, the mean dark channel, the mean and std of the luminance,
the mean saturation and the log median absolute Laplacian), then the least log median
absolute Laplacian and the least log mean gradient."""

GRID = 4  # regions per side

_FLOOR = 1e-3  # below this a share or a noise level (of 1) reads as none
_DARK_WINDOW = 15  # the dark channel prior's window (He et al.)


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


def _maps(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``x`` as float and the maps both statistics read of it, each (B, 1, ., .): the
    luminance Y (Rec. 601), the dark channel on 15x15 blocks and the saturation."""
    x = x.float()
    y = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2])[:, None]
    # the prior's minimum over each window, on disjoint 15x15 blocks: a sliding window cost
    # 0.6 s per megapixel, the blocks 0.01
    dark = -F.max_pool2d(-x.amin(1, keepdim=True), _DARK_WINDOW, ceil_mode=True)
    hi, lo = x.amax(1, keepdim=True), x.amin(1, keepdim=True)
    return x, y, dark, (hi - lo) / (hi + 1e-3)


def image_statistics(x: torch.Tensor) -> torch.Tensor:
    """The fusion's statistics (B, `STATISTICS`) of images ``x`` (B, 3, H, W) in [0, 1]: of
    the luminance Y (Rec. 601), the natural log of the mean absolute gradient (the sum of the
    vertical and horizontal differences) at full, half and quarter resolution (2x2 and 4x4
    means) and of the std of its Laplacian, then its mean and std; the mean dark channel
    (the channels' minimum, then its minimum over each 15x15 block: high where haze lifts
    every channel); and the mean saturation ``(max - min) / (max + 0.001)`` of the channels."""
    x, y, dark, saturation = _maps(x)

    def log_gradient(t: torch.Tensor) -> torch.Tensor:
        dy = (t[..., 1:, :-1] - t[..., :-1, :-1]).abs()
        dx = (t[..., :-1, 1:] - t[..., :-1, :-1]).abs()
        return torch.log((dy + dx).mean((1, 2, 3)) + 1e-4)

    c = y[..., 1:-1, 1:-1]  # the 4-neighbour Laplacian by slices (a conv2d took 0.07 s per megapixel)
    laplacian = y[..., :-2, 1:-1] + y[..., 2:, 1:-1] + y[..., 1:-1, :-2] + y[..., 1:-1, 2:] - 4 * c
    return torch.stack([log_gradient(y), log_gradient(F.avg_pool2d(y, 2)), log_gradient(F.avg_pool2d(y, 4)),
                        torch.log(laplacian.flatten(1).std(1) + 1e-4), y.mean((1, 2, 3)), y.flatten(1).std(1),
                        dark.mean((1, 2, 3)), saturation.mean((1, 2, 3))], 1)


def _regions(t: torch.Tensor) -> torch.Tensor:
    """The `GRID` x `GRID` regions of maps ``t`` (B, 1, H, W): (B, GRID**2, h * w), the
    bottom and right rows that do not divide evenly left out (replicated, for an image under
    `GRID` pixels a side)."""
    h, w = t.shape[-2:]
    th, tw = max(h // GRID, 1), max(w // GRID, 1)
    t = F.pad(t, (0, max(GRID * tw - w, 0), 0, max(GRID * th - h, 0)), mode="replicate")[..., : GRID * th, : GRID * tw]
    return t.reshape(t.shape[0], GRID, th, GRID, tw).permute(0, 1, 3, 2, 4).reshape(t.shape[0], GRID * GRID, th * tw)


def region_statistics(x: torch.Tensor) -> torch.Tensor:
    """The fusion's region statistics (B, `REGIONS`) of images ``x`` (B, 3, H, W) in [0, 1]:
    in each region of a `GRID` x `GRID` grid, of the luminance Y (Rec. 601), the log mean
    absolute gradient, its mean and std, and the log median absolute 4-neighbour Laplacian
    (a level of noise that edges barely move); the mean dark channel (`image_statistics`'
    15x15 blocks) and the mean saturation. Returned: the std and the range over the regions
    of each of the six, then the least region's Laplacian and gradient (a region left clean,
    or flattened by blur or haze). The gradient and the Laplacian of the border pixels read
    the image's edge replicated."""
    x, y, dark, saturation = _maps(x)
    yp = F.pad(y, (1, 1, 1, 1), mode="replicate")
    c = yp[..., 1:-1, 1:-1]
    gradient = (yp[..., 2:, 1:-1] - c).abs() + (yp[..., 1:-1, 2:] - c).abs()
    laplacian = (yp[..., :-2, 1:-1] + yp[..., 2:, 1:-1] + yp[..., 1:-1, :-2] + yp[..., 1:-1, 2:] - 4 * c).abs()
    lum = _regions(y)
    grad = torch.log(_regions(gradient).mean(2) + 1e-4)
    noise = torch.log(_regions(laplacian).median(2).values + 1e-4)
    local = [grad, F.adaptive_avg_pool2d(dark, GRID).flatten(1), lum.mean(2), lum.std(2, correction=0),
             F.adaptive_avg_pool2d(saturation, GRID).flatten(1), noise]
    spread = [s for t in local for s in (t.std(1), t.amax(1) - t.amin(1))]
    return torch.stack(spread + [noise.amin(1), grad.amin(1)], 1)


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
    ``readings`` (B, `READINGS`; `reading_features`) where ``model``'s fusion reads them,
    then the `image_statistics` of ``x`` where it reads those, then its `region_statistics`
    where it reads those."""
    fusion = getattr(model, "quality_fusion", None)
    reads = getattr(fusion, "reads", False)
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
    parts = [fusion_features(quality, degradation_probs, blur_p, spread, exposure_p, log_gain)]
    if reads:
        parts.append(readings.to(parts[0]))
    if getattr(fusion, "measures", False):
        parts.append(image_statistics(x).to(parts[0]))
    if getattr(fusion, "regional", False):
        parts.append(region_statistics(x).to(parts[0]))
    return torch.cat(parts, 1)


class QualityFusion(nn.Module):
    """An MLP from `fusion_features` (and, with ``readings``, `reading_features`; with
    ``statistics``, `image_statistics`; with ``regions``, `region_statistics`) to a
    correction of the head's quality logit."""

    def __init__(self, hidden: int, readings: bool = False, statistics: bool = False, regions: bool = False) -> None:
        super().__init__()
        self.reads, self.measures, self.regional = bool(readings), bool(statistics), bool(regions)
        width = FEATURES + READINGS * self.reads + STATISTICS * self.measures + REGIONS * self.regional
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.SiLU(), nn.Linear(hidden, 1))
        nn.init.zeros_(self.mlp[-1].weight)  # starts as the quality head's score
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """The fused quality (B,) in [0, 1]."""
        return torch.sigmoid(features[:, 0] + self.mlp(features)[:, 0])
