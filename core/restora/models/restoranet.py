"""RestoraNet v0: a small U-Net whose shared encoder feeds three heads.

- restoration: a residual image plus a per-pixel log-scale of the expected absolute error
  (the uncertainty map);
- quality: a no-reference score in [0, 1] and image-level degradation logits, read from
  statistics (mean, std) of the shared latent;
- segmentation: per-pixel logits over ``SEGMENT_CLASSES``: a linear read of the decoder's
  half-resolution features, plus (``segment_context``) a small per-pixel network on the same
  features conditioned on image-level context (the latent's statistics and the degradation
  probabilities), which tells it what the image holds somewhere;
- physics (``haze_model``): the atmospheric scattering model's parameters, a per-pixel
  transmission and the image's airlight, read from the same features and context, which the
  engine inverts (``J = (I - A) / t + A``); likewise low light's gain (``light_model``);
- blur (``blur_model``): the image's blur kernel, chosen from a bank by its power spectrum
  (`restora.models.blur`), which the engine deconvolves.
- exposure (``exposure_model``): whether the whole image is under-exposed and the gain that
  undoes it, from its brightness quantiles (`restora.models.exposure`).
- JPEG (``jpeg_model``): the restoration of a decoded JPEG, conditioned on the quality and grid
  read from its coefficients (`restora.models.jpeg`).
- rain (``rain_model``): the rain layer of the screen blend, which the engine inverts
  (`restora.models.rain`).

The restoration path is purely local (no global pooling feeds it), so overlapping tiles with
enough context give the same result as the whole image.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .._names import DEGRADATIONS, SEGMENT_CLASSES
from .adapters import LowRankAdapters
from .blocks import ResBlock
from .blur import BlurModel
from .cues import CUES, REACH as CUES_REACH, cue_maps
from .exposure import ExposureModel
from .jpeg import JpegModel
from .quality_fusion import QualityFusion
from .rain import RainModel
from .segment_fusion import SegmentFusion


@dataclass(frozen=True)
class RestoraNetConfig:
    channels: tuple[int, int, int] = (32, 64, 96)
    encoder_blocks: tuple[int, int] = (2, 3)  # residual blocks at 1/2 and 1/4 resolution
    decoder_blocks: int = 1  # at 1/2 resolution
    full_blocks: int = 0  # residual blocks at full resolution, before the output conv
    num_classes: int = len(SEGMENT_CLASSES)
    num_degradations: int = len(DEGRADATIONS)
    # Per-degradation low-rank adapters on the decoder, blended per pixel by a light estimator
    # that reads the (unadapted) encoder features; none: the plain v0 network.
    adapters: tuple[str, ...] = ()
    adapter_rank: int = 8
    # How adapters are blended at inference: "image", by the quality head's image-level
    # degradation probabilities (ramped, see `image_adapter_weights`); "region", by the
    # segmentation head's per-pixel probabilities, read from a decoder pass blended per image
    # (`region_adapter_weights`); "pixel", by the per-pixel estimator. Haze and low light are
    # whole-image changes that the estimator's 1x1 view at half resolution cannot recognise: on
    # 4 val/bsds crops, one pass, it recovered none of the haze adapter's +5.3 dB and 1.3 of low
    # light's +6.7 dB; the image-level blend 4.4 and 6.7.
    adapter_blend: str = "image"
    # Adapters that act on grey images only (the three channels equal). The noise adapter,
    # trained on real microscopy pairs (W2S) and grey noise, gains over 5 dB on held-out W2S
    # fields but cost 0.3-0.9 dB on colour photographs' noise, which the base network handles.
    grey_adapters: tuple[str, ...] = ()
    # Hidden width of the segmentation head's context network (0: the linear head alone, as
    # v0). 1x1 convs only, so the reach (and the tiles' context) is unchanged; the image-level
    # context comes from the whole image's latent statistics, as the quality head's does.
    segment_context: int = 0
    # Whether the segmentation's context network also reads the local degradation cues
    # (`restora.models.cues`: JPEG blockiness, blur's missing fine scale, rain's bright
    # streaks, ...), where the network's features called rain, blur and JPEG regions clean.
    # Their reach (`cues.REACH`) is within the tiles' context. Needs ``segment_context``.
    segment_cues: bool = False
    # Hidden width of the haze model's head (0: none): the airlight from the image-level context,
    # and the transmission per pixel as a learned correction (1x1 convs on the decoder's
    # half-resolution features and the prior, conditioned on the context) of the dark channel
    # prior's transmission under that airlight. Without the prior, on frozen features, the
    # head's transmission ran 0.08 too high (mean absolute error 0.11; haze 16.8 dB on 8
    # val/bsds images, where the true transmission would give 25.7).
    haze_model: int = 0
    # Hidden width of the low-light model's head (0: none): low light is, in display space, a
    # scaling by ``exposure ** (1 / gamma)`` (then shot and read noise), so its inverse is a
    # gain. The head predicts the log gain per pixel as an image-level exposure from the
    # context, shaped by a per-pixel map of where low light is and a small correction (1x1
    # convs on the decoder's half-resolution features, conditioned on the context).
    light_model: int = 0
    # Hidden width of the blur model (0: none): an MLP from the image's log power spectrum to
    # logits over a bank of blur kernels, class 0 "no blur" (`restora.models.blur`), whose
    # kernel the engine deconvolves. The quality head, reading the latent's mean and std,
    # called 2-26% of blurred images blurred (6 train/bsds images per kind).
    blur_model: int = 0
    # Hidden width of the exposure model (0: none): an MLP from the image's brightness
    # quantiles to whether the whole image is under-exposed and the gain that undoes it
    # (`restora.models.exposure`), which the engine applies first. The network's three heads
    # learned low light as darkness with shot noise: none found noise-free under-exposure.
    exposure_model: int = 0
    # Hidden width of the quality fusion (0: none): the score that assess reports, the quality
    # head's corrected from the blur and exposure models (`restora.models.quality_fusion`).
    quality_fusion: int = 0
    # Whether the fusion also reads the rain share, the JPEG-coded share and quality and the
    # noise levels the engine measures (`restora.models.quality_fusion.reading_features`).
    quality_fusion_readings: bool = False
    # Whether the fusion also reads plain statistics of the image: its detail at three scales,
    # brightness, contrast, dark channel and saturation (`quality_fusion.image_statistics`).
    quality_fusion_statistics: bool = False
    # Whether the fusion also reads how those statistics vary over the image's regions
    # (`quality_fusion.region_statistics`): a composite's degradations sit in regions, which
    # the whole image's means average away.
    quality_fusion_regions: bool = False
    # Hidden width of the JPEG model (0: none): a small residual network, conditioned on the
    # IJG quality and the 8x8 grid read from the image's own coefficients, that undoes JPEG's
    # coding (`restora.models.jpeg`), which the engine applies first where the coding shows.
    # The restoration network, trained on every degradation, returned JPEG-20 images 0.01 dB
    # from their input.
    jpeg_model: int = 0
    # Width of the rain model (0: none): a small residual network that predicts the rain
    # layer of the screen blend ``I = 1 - (1 - J)(1 - R)`` (`restora.models.rain`), whose
    # exact inverse the engine applies where streaks are found. The restoration network
    # left rain in: aio-v7's rain row measured 34.88 dB against its input's 35.13 (8 val/bsds).
    rain_model: int = 0
    # Hidden width of the segmentation fusion (0: none): a small network on an eighth-resolution
    # grid that corrects the segmentation (after the engine's physical moves) from what the
    # head, the physical models and the image's local statistics say about each region
    # (`restora.models.segment_fusion`). The head reads one pixel's features: it called a third
    # of hazy pixels clean.
    segment_fusion: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "RestoraNetConfig":
        d = dict(d)  # missing keys take the defaults; lists from JSON become tuples
        for k in ("channels", "encoder_blocks", "adapters", "grey_adapters"):
            if k in d:
                d[k] = tuple(d[k])
        return cls(**d)


class Down(nn.Sequential):
    """Space-to-depth then a 1x1 mix: halves resolution without a costly strided 3x3 conv."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(nn.PixelUnshuffle(2), nn.Conv2d(4 * cin, cout, 1))


class Up(nn.Sequential):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(nn.Conv2d(cin, 4 * cout, 1), nn.PixelShuffle(2))


ADAPTER_BLENDS = ("image", "region", "pixel")
"""The values of ``RestoraNetConfig.adapter_blend``."""


def is_grey(x: torch.Tensor) -> torch.Tensor:
    """(B,) bool: whether each image of (B, 3, H, W) ``x`` has three equal channels."""
    return (x.amax(1) - x.amin(1)).flatten(1).amax(1) == 0


def dark_channel_transmission(x: torch.Tensor, airlight: torch.Tensor, patch: int = 15,
                              omega: float = 0.95) -> torch.Tensor:
    """The dark channel prior's transmission (He, Sun and Tang, 2009) of (B, 3, H, W) ``x``
    under ``airlight`` (B, 3): ``1 - omega * min over a patch and the channels of x / A``.
    Its reach is half the patch, well inside the tiles' context."""
    dark = (x / airlight[:, :, None, None].clamp(min=1e-3)).amin(1, keepdim=True)
    r = patch // 2  # the square's minimum as a column's then a row's: 3x faster, the same values
    dark = -F.max_pool2d(-dark, (patch, 1), stride=1, padding=(r, 0))
    dark = -F.max_pool2d(-dark, (1, patch), stride=1, padding=(0, r))
    return 1 - omega * dark


def local_log_brightness(x: torch.Tensor, size: int = 9) -> torch.Tensor:
    """Log of the mean brightness (B, 1, H/2, W/2) of images ``x`` over ``size`` x ``size``
    pixels at half resolution, an input of the low-light model besides the decoder's
    features. Its reach, ``size`` pixels at full resolution, is within the network's, so
    tiles stay exact."""
    half = F.avg_pool2d(x.mean(1, keepdim=True), 2)
    return torch.log(F.avg_pool2d(half, size, stride=1, padding=size // 2, count_include_pad=False) + 1e-3)


def _ramp(p: torch.Tensor) -> torch.Tensor:
    """Adapter weight from a degradation probability: 0 up to 0.5, 1 from 0.8, linear between."""
    return ((p - 0.5) / 0.3).clamp(0, 1)


def scale_gradient(x: torch.Tensor, scale: float) -> torch.Tensor:
    """``x`` unchanged in the forward pass; its gradient multiplied by ``scale`` going back."""
    if scale == 1.0:
        return x
    return x.detach() + scale * (x - x.detach())


class RestoraNet(nn.Module):
    """See the module docstring. Inputs (B, 3, H, W) in [0, 1] with H, W multiples of 4."""

    multiple_of = 4
    # Training sets this below 1 so that the quality head's gradient, which is several times
    # the restoration loss's on the shared encoder, does not steer the encoder (see train.py).
    quality_grad_scale = 1.0

    def __init__(self, config: RestoraNetConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or RestoraNetConfig()
        c1, c2, c3 = cfg.channels
        # Pixels of context each output pixel depends on: 42 for the v0 layout (measured from
        # input gradients, see tests/test_tiling.py), plus each extra 3x3 conv's reach at its
        # resolution, plus a 6 px margin. The tiles' context is this, so tiles stay exact.
        e2, e3 = cfg.encoder_blocks
        self.receptive_radius = 48 + 4 * (e2 - 2) + 8 * (e3 - 3) + 4 * (cfg.decoder_blocks - 1) + 2 * cfg.full_blocks
        if cfg.segment_cues:
            self.receptive_radius = max(self.receptive_radius, CUES_REACH)
        self.stem = nn.Conv2d(3, c1, 3, padding=1)
        self.down1 = Down(c1, c2)
        self.enc2 = nn.Sequential(*[ResBlock(c2) for _ in range(cfg.encoder_blocks[0])])
        self.down2 = Down(c2, c3)
        self.enc3 = nn.Sequential(*[ResBlock(c3) for _ in range(cfg.encoder_blocks[1])])
        self.up2 = Up(c3, c2)
        self.fuse2 = nn.Conv2d(2 * c2, c2, 1)
        self.dec2 = nn.Sequential(*[ResBlock(c2) for _ in range(cfg.decoder_blocks)])
        self.up1 = Up(c2, c1)
        self.dec1 = nn.Conv2d(2 * c1, c1, 3, padding=1)
        self.full = nn.Sequential(*[ResBlock(c1) for _ in range(cfg.full_blocks)])
        self.out = nn.Conv2d(c1, 4, 3, padding=1)  # 3 residual channels + 1 log error scale
        self.segment_head = nn.Conv2d(c2, cfg.num_classes, 1)
        if cfg.segment_cues and not cfg.segment_context:
            raise ValueError("segment_cues needs a segment_context (the cues feed its context network)")
        if cfg.segment_context:
            k = cfg.segment_context
            self.segment_film = nn.Linear(2 * c3 + cfg.num_degradations, 2 * k)  # scale and shift
            self.segment_in = nn.Conv2d(c2, k, 1)
            self.segment_mid = nn.Conv2d(k, k, 1)
            self.segment_out = nn.Conv2d(k, cfg.num_classes, 1)
            nn.init.zeros_(self.segment_out.weight)  # starts as the linear head alone
            nn.init.zeros_(self.segment_out.bias)
            if cfg.segment_cues:
                self.segment_cues_in = nn.Conv2d(len(CUES), k, 1)
                nn.init.zeros_(self.segment_cues_in.weight)  # starts as the head without cues
                nn.init.zeros_(self.segment_cues_in.bias)
        if cfg.haze_model:
            k, ctx = cfg.haze_model, 2 * c3 + cfg.num_degradations
            self.haze_film = nn.Linear(ctx, 2 * k)
            self.haze_in = nn.Conv2d(c2 + 1, k, 1)
            self.haze_mid = nn.Conv2d(k, k, 1)
            self.haze_out = nn.Conv2d(k, 1, 1)
            self.airlight_head = nn.Linear(ctx, 3)
            nn.init.zeros_(self.haze_out.weight)  # starts as the dark channel prior
            nn.init.zeros_(self.haze_out.bias)
            with torch.no_grad():  # and a bright airlight
                self.airlight_head.weight.mul_(0.1)
                self.airlight_head.bias.fill_(2.0)
        if cfg.light_model:
            k, ctx = cfg.light_model, 2 * c3 + cfg.num_degradations
            self.light_film = nn.Linear(ctx, 2 * k)
            self.light_in = nn.Conv2d(c2 + 1, k, 1)  # and the local log brightness
            self.light_mid = nn.Conv2d(k, k, 1)
            self.light_out = nn.Conv2d(k, 2, 1)  # where low light is (logit), log-gain correction
            self.exposure_head = nn.Linear(ctx, 1)
            nn.init.zeros_(self.light_out.weight)  # starts as a uniform gain of e^0.55, about
            nn.init.zeros_(self.light_out.bias)  # the middle of the synthesis's range (e^0.5-e^2)
            with torch.no_grad():
                self.exposure_head.weight.mul_(0.1)
                self.exposure_head.bias.fill_(0.7)
        if cfg.blur_model:
            self.blur_model = BlurModel(cfg.blur_model)
        if cfg.exposure_model:
            self.exposure_model = ExposureModel(cfg.exposure_model)
        if cfg.jpeg_model:
            self.jpeg_model = JpegModel(cfg.jpeg_model)
        if cfg.rain_model:
            self.rain_model = RainModel(cfg.rain_model)
        if cfg.quality_fusion:
            self.quality_fusion = QualityFusion(cfg.quality_fusion, cfg.quality_fusion_readings,
                                                cfg.quality_fusion_statistics, cfg.quality_fusion_regions)
        if cfg.segment_fusion:
            self.segment_fusion = SegmentFusion(cfg.segment_fusion)
        self.quality_head = nn.Sequential(
            nn.Linear(2 * c3, 64), nn.SiLU(), nn.Linear(64, 1 + cfg.num_degradations)
        )
        if cfg.adapters:
            unknown = set(cfg.adapters) - set(DEGRADATIONS)
            if unknown or len(set(cfg.adapters)) != len(cfg.adapters):
                raise ValueError(f"adapters must be distinct names from {DEGRADATIONS}, got {cfg.adapters}")
            # the estimator sees what fuse2 sees, before any adapter: class 0 is "none"
            self.estimator = nn.Sequential(
                nn.Conv2d(2 * c2, c2 // 2, 1), nn.SiLU(), nn.Conv2d(c2 // 2, 1 + len(cfg.adapters), 1)
            )
            if set(cfg.grey_adapters) - set(cfg.adapters):
                raise ValueError(f"grey_adapters {cfg.grey_adapters} must be among the adapters {cfg.adapters}")
            if cfg.adapter_blend not in ADAPTER_BLENDS:
                raise ValueError(f"adapter_blend must be one of {ADAPTER_BLENDS}, got {cfg.adapter_blend!r}")
            self.adapters = nn.ModuleDict(
                {name: LowRankAdapters(conv, cfg.adapters, cfg.adapter_rank) for name, conv in self.adapted_convs()}
            )

    def adapted_convs(self) -> list[tuple[str, nn.Conv2d]]:
        """The decoder convolutions that adapters correct, by a name usable as a module key.

        Only the half-resolution ones: adapting the two full-resolution convs as well cost
        27-44% more time per image (rank 4-8, CPU), these cost about 12% at rank 8.
        """
        convs = [("fuse2", self.fuse2)]
        for i, block in enumerate(self.dec2):
            convs += [(f"dec2_{i}_conv1", block.conv1), (f"dec2_{i}_conv2", block.conv2)]
        return convs

    def image_adapter_weights(self, degradation_logits: torch.Tensor, grey: torch.Tensor | None = None) -> torch.Tensor:
        """Per-image adapter weights (B, len(adapters)) from the degradation logits (B, D): each
        adapter's degradation probability ramped from 0 at 0.5 to 1 at 0.8, so an adapter acts
        only where the quality head is sure (on 4 val/bsds crops a plain probability blend lost
        0.3 dB on JPEG to blur/JPEG confusion, this ramp 0.1). ``grey`` (B,) bool says which
        images are grey; ``grey_adapters`` are off for the others (and for all when None)."""
        idx = [DEGRADATIONS.index(a) for a in self.config.adapters]
        return self.grey_only(_ramp(torch.sigmoid(degradation_logits[:, idx])), grey)

    def region_adapter_weights(self, segment_logits: torch.Tensor, grey: torch.Tensor | None = None) -> torch.Tensor:
        """Per-region adapter weights (B, len(adapters), h, w) from the segmentation logits at
        the decoder's half resolution (`segment_half`): each adapter's class probability,
        ramped as in `image_adapter_weights`, so a CutMix box of haze gets the haze adapter and
        its noisy surround does not."""
        idx = [SEGMENT_CLASSES.index(a) for a in self.config.adapters]
        return self.grey_only(_ramp(torch.softmax(segment_logits, 1)[:, idx]), grey)

    def grey_only(self, w: torch.Tensor, grey: torch.Tensor | None = None) -> torch.Tensor:
        """``w`` (B, A, ...) with the ``grey_adapters`` off for images that are not grey."""
        if not self.config.grey_adapters:
            return w
        mask = torch.tensor([a in self.config.grey_adapters for a in self.config.adapters], device=w.device)
        is_grey = torch.zeros(w.shape[0], dtype=torch.bool, device=w.device) if grey is None else grey.to(w.device)
        off = (mask[None] & ~is_grey[:, None]).view(w.shape[0], -1, *([1] * (w.ndim - 2)))
        return torch.where(off, torch.zeros_like(w), w)

    is_grey = staticmethod(is_grey)

    @property
    def reads_context(self) -> bool:
        """Whether decoding reads image-level context (`context_from_stats`): the segmentation's
        context network, the haze model or the low-light model."""
        return bool(self.config.segment_context or self.config.haze_model or self.config.light_model)

    @property
    def needs_context(self) -> bool:
        """Whether decoding needs the whole image's latent statistics before any tile is
        decoded: for the adapters' per-image weights or for the image-level context."""
        return self.blends_per_image or self.reads_context

    @property
    def blends_per_image(self) -> bool:
        """Whether decoding needs the image-level weights (the whole image's latent) first."""
        return bool(self.config.adapters) and self.config.adapter_blend in ("image", "region")

    @property
    def blends_per_region(self) -> bool:
        """Whether decoding also needs the segmentation of a decoder pass blended per image."""
        return bool(self.config.adapters) and self.config.adapter_blend == "region"

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Shared encoder: full-, half- and quarter-resolution features (the last is the latent)."""
        e1 = F.silu(self.stem(x * 2 - 1))
        e2 = self.enc2(self.down1(e1))
        latent = self.enc3(self.down2(e2))
        return e1, e2, latent

    def decode(self, x, e1, e2, latent, adapter_weights: torch.Tensor | None = None,
               context: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Restoration and segmentation from the shared features.

        With adapters, ``adapter_weights`` (B, len(adapters)[, H/2, W/2]) overrides the
        estimator's per-pixel weights (training uses the true label maps). ``context`` (B, K),
        from `context_from_stats` of the whole image, is what the segmentation reads of the
        image as a whole; None takes it from ``latent`` (right when it is the whole image's).
        """
        d2, extra, w = self._decode_half(e2, latent, adapter_weights)
        d1 = self.full(F.silu(self._conv("dec1", self.dec1, torch.cat([self.up1(d2), e1], 1), w)))
        out = self._conv("out", self.out, d1, w)
        if context is None and self.needs_context:
            context = self.context_from_stats(*self.latent_stats(latent))
        seg = self._segment(d2, latent, context, x)
        seg = F.interpolate(seg, scale_factor=2, mode="bilinear", align_corners=False)
        if self.config.haze_model:
            extra["transmission"] = self.transmission_from_features(x, d2, context)
        if self.config.light_model:
            extra["log_gain"] = self.log_gain_from_features(x, d2, context)
        return {"restored": x + out[:, :3], "log_error": out[:, 3:4], "segment_logits": seg, **extra}

    def transmission_from_features(self, x: torch.Tensor, d2: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """The haze model's transmission (B, 1, H, W) in (0, 1) of images ``x``: the dark
        channel prior's under the predicted airlight, corrected (in logit space) from the
        decoder's half-resolution features ``d2`` and the image-level context."""
        prior = F.avg_pool2d(dark_channel_transmission(x, self.airlight(context)), 2)
        logit = torch.logit(prior.clamp(0.02, 0.98)) + self._film_head("haze", torch.cat([d2, prior * 2 - 1], 1), context)
        return torch.sigmoid(F.interpolate(logit, scale_factor=2, mode="bilinear", align_corners=False))

    def log_gain_from_features(self, x: torch.Tensor, d2: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """The low-light model's log gain (B, 1, H, W) for images ``x``, at least 0: where the
        per-pixel map finds low light, the image-level exposure from ``context`` plus a
        per-pixel correction, both from the decoder's half-resolution features ``d2`` and the
        local brightness; 0 (gain 1) elsewhere. (The map did not learn to localise: on CutMix
        composites it brightens a normally exposed region as much as the dark one, so the
        engine masks the gain by the segmentation's low-light probability.)"""
        where, correction = self._film_head("light", torch.cat([d2, local_log_brightness(x)], 1), context).chunk(2, 1)
        exposure = self.exposure_head(context.to(d2.dtype))[:, :, None, None]
        log_gain = torch.sigmoid(where) * F.softplus(exposure + correction)
        return F.interpolate(log_gain, scale_factor=2, mode="bilinear", align_corners=False)

    def airlight(self, context: torch.Tensor) -> torch.Tensor:
        """The haze model's airlight (B, 3) in (0, 1) from the image-level context."""
        return torch.sigmoid(self.airlight_head(context))

    def segment_half(self, e2: torch.Tensor, latent: torch.Tensor, adapter_weights: torch.Tensor | None = None,
                     context: torch.Tensor | None = None, x: torch.Tensor | None = None) -> torch.Tensor:
        """Segmentation logits at half resolution (B, classes, H/2, W/2): the decoder's half-
        resolution part only, about a sixth of a pass. ``x``, the images, is needed where
        the segmentation reads the local cues (``config.segment_cues``)."""
        return self._segment(self._decode_half(e2, latent, adapter_weights)[0], latent, context, x)

    def context_from_stats(self, s1: torch.Tensor, s2: torch.Tensor, n: int) -> torch.Tensor:
        """Image-level context (B, 2 * latent channels + D) from latent sums (`latent_stats`):
        the latent's mean and std and the degradation probabilities."""
        moments = self._moments(s1, s2, n)
        return torch.cat([moments, torch.sigmoid(self.quality_head(moments)[:, 1:])], 1)

    def _segment(self, d2: torch.Tensor, latent: torch.Tensor, context: torch.Tensor | None,
                 x: torch.Tensor | None = None) -> torch.Tensor:
        """Half-resolution segmentation logits from the decoder's features ``d2`` (and, with
        ``config.segment_cues``, the local cues of the images ``x``)."""
        seg = self.segment_head(d2)
        if not self.config.segment_context:
            return seg
        if context is None:
            context = self.context_from_stats(*self.latent_stats(latent))
        cues = None
        if self.config.segment_cues:
            if x is None:
                raise ValueError("this model's segmentation reads local cues of the image: pass x")
            cues = self.segment_cues_in(cue_maps(x).to(d2.dtype))
        return seg + self._film_head("segment", d2, context, cues)

    def _film_head(self, name: str, features: torch.Tensor, context: torch.Tensor,
                   extra: torch.Tensor | None = None) -> torch.Tensor:
        """One of the per-pixel heads that read the image-level context (segment, haze, light):
        ``{name}_in`` on the half-resolution ``features``, scaled and shifted (FiLM) by
        ``{name}_film`` of ``context``, then ``{name}_mid`` and ``{name}_out``, SiLU between:
        1x1 convs only, so no reach is added. ``extra`` (the cues' term) adds to ``{name}_in``'s
        output."""
        film, first, mid, out = (getattr(self, f"{name}_{part}") for part in ("film", "in", "mid", "out"))
        scale, shift = film(context.to(features.dtype)).chunk(2, 1)
        h = first(features) if extra is None else first(features) + extra
        h = h * (1 + scale[:, :, None, None]) + shift[:, :, None, None]
        return out(F.silu(mid(F.silu(h))))

    def _decode_half(self, e2, latent, adapter_weights):
        """The decoder up to its half-resolution features, the estimator's logits (with
        adapters) and the adapter weights in use."""
        f2 = torch.cat([self.up2(latent), e2], 1)
        extra, w = {}, None
        if self.config.adapters:
            logits = self.estimator(f2)
            extra["estimator_logits"] = logits
            w = torch.softmax(logits, 1)[:, 1:] if adapter_weights is None else adapter_weights
        d2 = self._conv("fuse2", self.fuse2, f2, w)
        for i, block in enumerate(self.dec2):
            d2 = d2 + self._conv(f"dec2_{i}_conv2", block.conv2, F.silu(self._conv(f"dec2_{i}_conv1", block.conv1, d2, w)), w)
        return d2, extra, w

    def _conv(self, name: str, layer: nn.Conv2d, t: torch.Tensor, w: torch.Tensor | None) -> torch.Tensor:
        """``layer(t)`` plus its adapters' corrections blended by ``w`` (none without)."""
        if w is None or name not in self.adapters:
            return layer(t)
        if w.ndim == 2 and w.shape[0] == 1:  # one image, one blend: fold into the kernel
            return F.conv2d(t, self.adapters[name].folded_weight(layer.weight, w[0]), layer.bias, padding=layer.padding)
        return layer(t) + self.adapters[name](t, w)

    @staticmethod
    def latent_stats(latent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Sums of the latent and of its square over space, and the count: tiles add them up."""
        return latent.sum((2, 3)), (latent * latent).sum((2, 3)), latent.shape[2] * latent.shape[3]

    def quality_from_stats(
        self, s1: torch.Tensor, s2: torch.Tensor, n: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Quality score in [0, 1] (B,) and degradation logits (B, D) from latent statistics."""
        q = self.quality_head(self._moments(s1, s2, n))
        return torch.sigmoid(q[:, 0]), q[:, 1:]

    @staticmethod
    def _moments(s1: torch.Tensor, s2: torch.Tensor, n: int) -> torch.Tensor:
        """The latent's mean and std (B, 2 * channels) from its sums, what the quality head reads."""
        mean = s1 / n
        std = (s2 / n - mean * mean).clamp(min=0).add(1e-6).sqrt()
        return torch.cat([mean, std], 1)

    def assess(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Quality and degradation logits of ``x`` without running the decoder."""
        return self._quality(self.encode(x)[2])

    def _quality(self, latent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Quality and degradation logits of a whole image's latent, the gradient into the
        encoder scaled by ``quality_grad_scale`` (training only; values are unchanged)."""
        latent = scale_gradient(latent, self.quality_grad_scale)
        return self.quality_from_stats(*self.latent_stats(latent))

    def _own_weights(self, x, e2, latent, logits) -> torch.Tensor | None:
        """The adapter weights the model gives itself (per image or per region), or None."""
        if not self.blends_per_image:
            return None
        grey = self.is_grey(x)
        w = self.image_adapter_weights(logits.detach(), grey)
        if self.blends_per_region:
            w = self.region_adapter_weights(self.segment_half(e2, latent, w, x=x).detach(), grey)
        return w

    def half_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The decoder's half-resolution features and the latent of ``x``, adapters blended as
        in `forward`: what the segmentation and haze heads read (`segment_from_features`,
        `transmission_from_features`)."""
        _, e2, latent = self.encode(x)
        w = self._own_weights(x, e2, latent, self._quality(latent)[1])
        return self._decode_half(e2, latent, w)[0], latent

    def segment_from_features(self, d2: torch.Tensor, latent: torch.Tensor,
                              x: torch.Tensor | None = None) -> torch.Tensor:
        """Full-resolution segmentation logits from `half_features` of whole images ``x``."""
        return F.interpolate(self._segment(d2, latent, None, x), scale_factor=2, mode="bilinear", align_corners=False)

    def forward(self, x: torch.Tensor, adapter_weights: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """All outputs for a batch; without ``adapter_weights`` adapters are blended as
        ``config.adapter_blend`` says (per image: from this batch's own degradation logits)."""
        e1, e2, latent = self.encode(x)
        quality, logits = self._quality(latent)
        if adapter_weights is None:
            adapter_weights = self._own_weights(x, e2, latent, logits)
        out = self.decode(x, e1, e2, latent, adapter_weights)
        out["quality"], out["degradation_logits"] = quality, logits
        return out
