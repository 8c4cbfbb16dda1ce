"""The tensor-level engine: batched (B, C, H, W) float tensors in [0, 1] on a device.

The numpy functions (`restora.restore`, ...) and the frontends (ComfyUI nodes) share it.
C is 1 (grey: the network sees it replicated to RGB, the result is averaged back) or 3.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Optional

import torch
import torch.nn.functional as F

from .._checks import ImageError
from .._names import DEGRADATIONS, SEGMENT_CLASSES
from ..degradations import blur_kernel
from ..models.blur import BANK, WINDOW, least_risk_choice
from ..models.exposure import MIN_SIZE as EXPOSURE_MIN_SIZE
from ..models.jpeg import JpegGrid, find_jpeg
from ..models.quality_fusion import READINGS, fusion_inputs
from ..models.rain import rain_share
from ..models.restoranet import is_grey
from ..models.segment_fusion import fusion_maps
from .deblur import balance_for, blur_region, deconvolve
from .dejpeg import coded_weight, dejpeg
from .dehaze import dehaze as invert_haze
from .derain import derain as invert_rain, rain_maps, rain_region
from .lowlight import brighten as invert_low_light
from .readings import fusion_readings
from .refine import refine_noise
from .tiling import plan_tiles
from .weights import load_model

Progress = Optional[Callable[[int, int], None]]
"""Called as ``progress(done, total)`` between tiles. It may raise to cancel the work."""

DEFAULT_TILE = 512
PRECISIONS = ("auto", "float32", "bfloat16")
# Encoder features kept between the two sweeps of a tiled pass with per-image adapters
# (57 MB per 512-pixel tile in float32).
FEATURE_CACHE_BYTES = 1 << 30


@dataclass
class TensorRestoreResult:
    image: torch.Tensor  # (B, C, H, W) like the input
    uncertainty: torch.Tensor  # (B, 1, H, W): the expected absolute error of the result
    quality_before: torch.Tensor  # (B,)
    quality_after: torch.Tensor  # (B,)
    degradation_probs: torch.Tensor  # (B, number of degradations) of the input
    iterations: list[int] = field(default_factory=list)  # accepted rounds per image
    history: list[list[float]] = field(default_factory=list)  # reported quality before and after each round, per image
    refined: list[bool] = field(default_factory=list)  # whether the second stage was kept, per image
    dehazed: list[bool] = field(default_factory=list)  # whether the haze model's inverse was kept, per image
    brightened: list[bool] = field(default_factory=list)  # whether a low-light gain was applied (exposure or low-light model), per image
    deblurred: list[bool] = field(default_factory=list)  # whether the blur model's deconvolution was applied, per image
    dejpegged: list[bool] = field(default_factory=list)  # whether the JPEG model undid the coding, per image
    derained: list[bool] = field(default_factory=list)  # whether the rain model's layer was taken out, per image


CODED_BLUR = 0.8  # the blur model's probability to deconvolve a JPEG-coded image (see _restore_one)
# The share of an image surely on the rain model's streaks (`restora.models.rain.rain_share`)
# for it to count as rainy: on 8 train/bsds images, the 15 quality rows without rain and the
# clean images reached at most 0.002 (noisy, hazy and dark textured images), the rain row at
# least 0.018, rain in a fifth to a half of the image 0.005 (the faintest rain 0.001-0.004).
# A false alarm costs little: the layer taken out of those images, found or not, changed them
# by -0.19 to +0.03 dB (`restora.engine.derain.rain_region` keeps it to streaky regions).
RAINY = 0.003
# The finest JPEG coding the segmentation calls a degradation: a camera's (BSDS's own, 92) is
# not. Where a coarser coded box lies on a photograph's own grid, both codings' coefficients
# sit on the finer one's steps, which `find_jpeg` then reads, coding the whole image: on 16
# train/bsds images x 4 composites, moving clean to JPEG gave pixel accuracy 0.755 with every
# coding, 0.759 without those above 80 (the head alone 0.745; JPEG precision 0.68 -> 0.73).
SEGMENT_JPEG_QUALITY = 80
_UNREAD = object()  # an argument not given (None is a reading: nothing found)


def _raised(probs: torch.Tensor, name: str, p: float | None) -> torch.Tensor:
    """``probs`` (1, D) with degradation ``name``'s entry raised to ``p`` (a copy), where
    ``p`` is not None."""
    if p is None:
        return probs
    probs = probs.clone()
    i = DEGRADATIONS.index(name)
    probs[0, i] = max(float(probs[0, i]), p)
    return probs


def native_bfloat16(device: torch.device) -> bool:
    """Whether ``device`` is a CPU with native bfloat16 arithmetic (AVX512-BF16 or AMX tiles).
    Elsewhere bfloat16 convolutions are emulated and slower than float32."""
    if torch.device(device).type != "cpu":
        return False
    checks = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(bool(check()) for check in checks if check is not None)


def resolve_precision(precision: str | None, device: torch.device) -> str:
    """"float32" or "bfloat16" for the network on ``device`` (see `Engine`)."""
    choice = os.environ.get("RESTORA_PRECISION", "auto") if precision is None else precision
    if choice not in PRECISIONS:
        source = "RESTORA_PRECISION" if precision is None else "precision"
        raise ImageError(f"{source} must be one of {', '.join(PRECISIONS)}, got {choice!r}")
    if choice == "auto":
        return "bfloat16" if native_bfloat16(device) else "float32"
    return choice


def _half(tile) -> tuple[slice, slice]:
    """The tile's rows and columns at half resolution (tiles start on multiples of 4)."""
    return slice(tile.ys.start // 2, tile.ys.stop // 2), slice(tile.xs.start // 2, tile.xs.stop // 2)


class _Ticker:
    """Counts tiles against a total that grows as work is planned."""

    def __init__(self, progress: Progress, total: int) -> None:
        self.progress, self.done, self.total = progress, 0, total

    def tick(self) -> None:
        self.done += 1
        if self.progress is not None:
            self.progress(min(self.done, self.total), self.total)


class Engine:
    """A loaded model on a device, with tiled inference and the restore-assess-repeat loop.

    Parameters
    ----------
    weights : str or path
        A weights name from the manifest ("default") or a ``.safetensors`` path.
    device : str or torch.device
        "auto" (CUDA, then MPS, then CPU), "cpu", "cuda", "cuda:N" or "mps".
    tile_size : int
        Largest tile edge in pixels (a multiple of 4 is used); smaller saves memory.
    precision : str, optional
        The encoder's and decoder's arithmetic, "float32" or "bfloat16" (autocast: float32
        accumulation). The quality head, the image-level context and adapter weights, the
        tile statistics and blending, and every step outside the network stay float32.
        "auto" takes bfloat16 on a CPU with native bfloat16 arithmetic (AVX512-BF16 or AMX;
        a pass about twice as fast there) and float32 elsewhere. None reads the
        ``RESTORA_PRECISION`` environment variable, "auto" when unset. The resolved choice
        is ``self.precision``.
    """

    def __init__(self, weights: str | os.PathLike = "default", device: str | torch.device = "auto",
                 tile_size: int = DEFAULT_TILE, precision: str | None = None) -> None:
        self.model, self.weights = load_model(weights, device)
        self.device = next(self.model.parameters()).device
        self.precision = resolve_precision(precision, self.device)
        self.multiple = int(getattr(self.model, "multiple_of", 1))
        self.context = -(-int(getattr(self.model, "receptive_radius", 0)) // self.multiple) * self.multiple
        self.tile_size = self._check_tile(tile_size)

    def _check_tile(self, tile_size: int) -> int:
        tile = -(-int(tile_size) // self.multiple) * self.multiple
        if tile < 2 * self.context + 16 + self.multiple:
            raise ImageError(f"tile_size {tile_size} is too small; use at least {2 * self.context + 32}")
        return tile

    def tiles_per_pass(self, height: int, width: int) -> int:
        hp, wp = (-(-s // self.multiple) * self.multiple for s in (height, width))
        return len(plan_tiles(hp, wp, self.tile_size, self.context, 16, self.multiple))

    def _network(self) -> torch.autocast:
        """The context the network's tile passes run in (autocast to bfloat16, or off)."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bfloat16")

    def _has(self, part: str) -> bool:
        """Whether the model's config switches ``part`` on (a width above 0)."""
        return bool(getattr(getattr(self.model, "config", None), part, 0))

    @property
    def has_haze_model(self) -> bool:
        """Whether the model predicts the haze's transmission and airlight (its physics head)."""
        return self._has("haze_model")

    @property
    def has_light_model(self) -> bool:
        """Whether the model predicts the gain that undoes low light (its low-light head)."""
        return self._has("light_model")

    @property
    def has_blur_model(self) -> bool:
        """Whether the model estimates the blur kernel (its blur model)."""
        return self._has("blur_model")

    @property
    def has_quality_fusion(self) -> bool:
        """Whether the reported quality is the quality fusion's (the head's, corrected by the
        blur and exposure models)."""
        return self._has("quality_fusion")

    @property
    def has_exposure_model(self) -> bool:
        """Whether the model estimates a whole image's under-exposure (its exposure model)."""
        return self._has("exposure_model")

    @property
    def has_jpeg_model(self) -> bool:
        """Whether the model undoes JPEG's coding (its JPEG model)."""
        return self._has("jpeg_model")

    def jpeg_estimate(self, x: torch.Tensor) -> JpegGrid | None:
        """The JPEG coding read from one image's (1, 3, H, W) coefficients (`find_jpeg`: its
        grid, quantisation steps and IJG quality), None where it shows none or the model has
        no JPEG model."""
        if not self.has_jpeg_model:
            return None
        return find_jpeg(x.cpu())

    def _dejpeg(self, x: torch.Tensor, grid: JpegGrid, weight: torch.Tensor) -> torch.Tensor:
        """``x`` with its coding undone (`restora.engine.dejpeg`), where ``weight`` (its
        `coded_weight` on ``grid``) says it was coded."""
        return dejpeg(self.model.jpeg_model, x.to(self.device), grid, self.tile_size, self._network, weight=weight)

    @property
    def has_rain_model(self) -> bool:
        """Whether the model predicts the rain layer (its rain model)."""
        return self._has("rain_model")

    def rain_estimate(self, x: torch.Tensor) -> tuple[torch.Tensor | None, float | None, torch.Tensor | None]:
        """The rain model's reading of one image (1, 3, H, W): its rain layer (1, 1, H, W)
        where at least ``RAINY`` of the image lies on its streaks (else None), that share, and
        the streak probability (1, 1, H, W); Nones without a rain model."""
        if not self.has_rain_model:
            return None, None, None
        layer, streaks = rain_maps(self.model.rain_model, x.to(self.device), self.tile_size, self._network)
        share = float(rain_share(streaks)[0])
        return (layer if share >= RAINY else None), share, streaks

    @staticmethod
    def _report_rain(probs: torch.Tensor, share: float | None) -> torch.Tensor:
        """``probs`` (1, D) with the rain entry raised where the rain model finds the image
        rainy (``share`` at least ``RAINY``): from 0.5 there to 1 at twice that."""
        if share is None or share < RAINY:
            return probs
        return _raised(probs, "rain", min(1.0, 0.5 * share / RAINY))

    @staticmethod
    def _report_jpeg(probs: torch.Tensor, coded: float | None) -> torch.Tensor:
        """``probs`` (1, D) with the JPEG entry raised to the share of the image whose
        coefficients show JPEG's coding, where they show it."""
        return _raised(probs, "jpeg", coded)

    @torch.no_grad()
    def exposure_estimate(self, x: torch.Tensor) -> tuple[float | None, float | None]:
        """The exposure model's gain for one image (1, 3, H, W) (None: not under-exposed, as a
        whole) and its probability that the whole image is under-exposed (None: no exposure
        model, or an image too small)."""
        if not self.has_exposure_model or min(x.shape[-2:]) < EXPOSURE_MIN_SIZE:
            return None, None
        logit, log_gain = self.model.exposure_model(x.to(self.device))
        p = float(torch.sigmoid(logit.float())[0])
        return (float(torch.exp(log_gain.float())[0]) if p >= 0.5 else None), p

    @torch.no_grad()
    def blur_estimate(self, x: torch.Tensor) -> tuple[dict | None, float | None]:
        """The blur model's kernel for one image (1, 3, H, W), as blur parameters (None: no
        blur found), and its probability that the image is blurred (None: no blur model, or
        an image smaller than the spectrum's window). The kernel is the bank's least-risk
        choice under the model's probabilities (`least_risk_choice`), where that probability
        is at least 0.5."""
        if not self.has_blur_model or min(x.shape[-2:]) < WINDOW:
            return None, None
        p = torch.softmax(self.model.blur_model(x.to(self.device)).float(), 1).cpu()
        blurred = 1.0 - float(p[0, 0])
        choice = int(least_risk_choice(p)[0])
        return (BANK[choice] if choice > 0 and blurred >= 0.5 else None), blurred

    def _report_blur(self, probs: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, dict | None]:
        """``probs`` (1, D) with the blur entry replaced by the blur model's probability where
        it has one (the quality head, reading the latent's mean and std, called 2-26% of
        blurred train/bsds images blurred), and the blur model's kernel."""
        kernel, blurred = self.blur_estimate(x)
        if blurred is not None:
            probs = probs.clone()
            probs[0, DEGRADATIONS.index("blur")] = blurred
        return probs, kernel

    @property
    def has_fusion_readings(self) -> bool:
        """Whether the quality fusion reads the image's readings (`restora.engine.readings`)."""
        return self.has_quality_fusion and self._has("quality_fusion_readings")

    def _readings(self, x: torch.Tensor, share: float | None | object = _UNREAD,
                  grid: JpegGrid | None | object = _UNREAD, coded: float | None = None) -> torch.Tensor | None:
        """The fusion's readings (1, READINGS) of one image (1, 3, H, W), None where the fusion
        reads none. ``share`` (the rain model's, `rain_estimate`) and ``grid``
        (`jpeg_estimate`) are read here unless given; ``coded``, the share of it coded on
        ``grid``, where the caller has it."""
        if not self.has_fusion_readings:
            return None
        if share is _UNREAD:
            share = self.rain_estimate(x)[1]
        if grid is _UNREAD:
            grid = self.jpeg_estimate(x)
        return fusion_readings(x, torch.tensor([share or 0.0]), [grid],
                               None if coded is None else torch.tensor([coded]))

    @staticmethod
    def _renoised(readings: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor | None:
        """``readings`` with the noise levels read again from ``x``: within the rounds, whose
        results keep their input's rain and coding (or lack of them) but not its noise."""
        if readings is None:
            return None
        fresh = fusion_readings(x, torch.zeros(1), [None])
        return torch.cat([readings[:, : READINGS - 3], fresh[:, READINGS - 3 :]], 1)

    @torch.no_grad()
    def _fused(self, out: dict, x: torch.Tensor, readings: torch.Tensor | None = None) -> float:
        """The quality to report of image ``x`` (1, 3, H, W) from its pass ``out``: the quality
        fusion's (`restora.models.quality_fusion`) where the model has one, else the quality
        head's. A fusion that reads the image takes its ``readings`` (`_readings`). The
        restore loop compares the head's own scores."""
        q = out["quality"]
        if not self.has_quality_fusion:
            return float(q[0])
        dev = self.device
        features = fusion_inputs(self.model, x.to(dev), q.to(dev), out["degradation_probs"].to(dev),
                                 None if readings is None else readings.to(dev))
        return float(self.model.quality_fusion(features)[0])

    @staticmethod
    def _report_exposure(probs: torch.Tensor, exposed: float | None) -> torch.Tensor:
        """``probs`` (1, D) with the low-light entry raised to the exposure model's probability
        that the whole image is under-exposed, where it has one: the quality head finds low
        light by its noise, the exposure model by its darkness."""
        return _raised(probs, "low_light", exposed)

    # -- one pass of the network over a whole image, tile by tile ---------------------------
    def _pass(self, x: torch.Tensor, decode: bool, ticker: _Ticker) -> dict[str, torch.Tensor]:
        """Run the network over (1, 3, H, W) ``x``. On out-of-memory, halve the tile size (it
        stays smaller for later calls) and try again, down to the smallest tile."""
        while True:
            try:
                return self._pass_tiles(x, decode, ticker)
            except (torch.OutOfMemoryError, RuntimeError) as e:
                if not isinstance(e, torch.OutOfMemoryError) and "out of memory" not in str(e):
                    raise
                smallest = self._check_tile(2 * self.context + 16 + self.multiple)
                if self.tile_size <= smallest:
                    raise ImageError(
                        f"out of memory on {self.device} even with {self.tile_size}-pixel tiles; "
                        "use device='cpu' or free memory"
                    ) from None
                half = -(-(self.tile_size // 2) // self.multiple) * self.multiple
                self.tile_size = max(smallest, half)
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()

    @torch.no_grad()
    def _pass_tiles(self, x: torch.Tensor, decode: bool, ticker: _Ticker) -> dict[str, torch.Tensor]:
        """Per-pixel outputs are blended across tiles and the latent statistics summed, so
        quality equals that of the whole image."""
        _, _, h, w = x.shape
        m = self.multiple
        ph, pw = (-h) % m, (-w) % m
        xp = F.pad(x, (0, pw, 0, ph), mode="reflect") if ph or pw else x
        hp, wp = xp.shape[-2:]
        model = self.model
        acc = {}
        if decode:
            acc = {"restored": xp.new_zeros(1, 3, hp, wp), "log_error": xp.new_zeros(1, 1, hp, wp),
                   "segment_logits": xp.new_zeros(1, len(SEGMENT_CLASSES), hp, wp)}
            if self.has_haze_model:
                acc["transmission"] = xp.new_zeros(1, 1, hp, wp)
            if self.has_light_model:
                acc["log_gain"] = xp.new_zeros(1, 1, hp, wp)
        tiles = plan_tiles(hp, wp, self.tile_size, self.context, 16, m)
        # The last tile of a row overlaps more: normalise the weights to sum to one everywhere,
        # for the blended pixels and the latent statistics alike.
        weight_sum = torch.zeros(hp, wp)
        for tile in tiles:
            weight_sum[tile.ys, tile.xs] += tile.weight
        # Adapters blended per image need the whole image's latent statistics before any tile
        # is decoded: one tile has them at once; several take an encoder-only sweep first.
        # Blended per region, they also need the whole image's segmentation by a decoder pass
        # blended per image: a second sweep, on the first one's features.
        # The heads that read image-level context (segmentation, haze model) need them too.
        pending = decode and getattr(model, "needs_context", False)
        region = decode and getattr(model, "blends_per_region", False)
        weights, context, features = None, None, {}
        grey = model.is_grey(xp) if pending else None
        if pending and (len(tiles) > 1 or region):
            stats, features = self._latent_stats(xp, tiles, weight_sum)
            weights, context = self._image_level(stats, grey)
            pending = False
            if region:
                weights = self._region_weights(xp, tiles, weight_sum, features, weights, grey, context)
        s1 = s2 = n = 0.0
        for i, tile in enumerate(tiles):
            xt = self._tile_input(xp, tile)
            wt = self._tile_weight(tile, weight_sum)
            with self._network():
                e1, e2, latent = features.pop(i) if i in features else model.encode(xt)
            a, b, c = self._tile_stats(latent, wt)
            s1, s2, n = s1 + a, s2 + b, n + c
            if decode:
                if pending:  # one tile: its statistics are the image's
                    weights, context = self._image_level((s1, s2, n), grey)
                    pending = False
                wtile = weights
                if weights is not None and weights.ndim == 4:  # per region, at half resolution
                    wtile = weights[(..., *_half(tile))]
                with self._network():
                    out = model.decode(xt, e1, e2, latent, wtile, context)
                for k in acc:
                    acc[k][:, :, tile.ys, tile.xs] += (out[k] * wt).to(acc[k].device)
            ticker.tick()
        quality, deg_logits = model.quality_from_stats(s1.float(), s2.float(), n)
        result = {"quality": quality.cpu(), "degradation_probs": torch.sigmoid(deg_logits).cpu()}
        if decode and self.has_haze_model:
            result["airlight"] = model.airlight(context).cpu()
        for k, v in acc.items():
            result[k] = v[:, :, :h, :w].cpu()
        return result

    def _tile_stats(self, latent: torch.Tensor, wt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float]:
        """One tile's weighted latent sums, in float64: the variance E[f^2] - E[f]^2 cancels,
        and tiles must add up exactly."""
        m = self.multiple
        wl = (F.avg_pool2d(wt, m) if m > 1 else wt).double()
        lat = latent.double()
        return (lat * wl).sum((2, 3)), (lat * lat * wl).sum((2, 3)), float(wl.sum())

    def _tile_input(self, xp: torch.Tensor, tile) -> torch.Tensor:
        return xp[:, :, tile.ys, tile.xs].to(self.device).contiguous(memory_format=torch.channels_last)

    def _tile_weight(self, tile, weight_sum: torch.Tensor) -> torch.Tensor:
        """The tile's blending weight (1, 1, h, w), normalised so that the tiles sum to one."""
        return (tile.weight / weight_sum[tile.ys, tile.xs]).to(self.device)[None, None]

    def _latent_stats(self, xp: torch.Tensor, tiles, weight_sum: torch.Tensor):
        """The whole image's latent sums by an encoder-only sweep over ``tiles``, and the
        encoder features of the first tiles, up to ``FEATURE_CACHE_BYTES``, for the decoding
        sweep to reuse rather than recompute (a 1-megapixel image fits)."""
        s1 = s2 = n = 0.0
        features, kept = {}, 0
        for i, tile in enumerate(tiles):
            with self._network():
                feats = self.model.encode(self._tile_input(xp, tile))
            a, b, c = self._tile_stats(feats[2], self._tile_weight(tile, weight_sum))
            s1, s2, n = s1 + a, s2 + b, n + c
            size = sum(f.numel() * f.element_size() for f in feats)
            if kept + size <= FEATURE_CACHE_BYTES:
                features[i], kept = feats, kept + size
        return (s1, s2, n), features

    def _region_weights(self, xp: torch.Tensor, tiles, weight_sum: torch.Tensor, features: dict,
                        image_weights: torch.Tensor, grey: torch.Tensor,
                        context: torch.Tensor | None = None) -> torch.Tensor:
        """Per-region adapter weights (1, A, H/2, W/2) for the whole padded image ``xp``: the
        half-resolution segmentation of a decoder pass blended by ``image_weights``, tiles
        blended as the outputs are, so every tile decodes with the whole image's map."""
        hp, wp = xp.shape[-2:]
        seg = None
        for i, tile in enumerate(tiles):
            wt = F.avg_pool2d(self._tile_weight(tile, weight_sum), 2)
            with self._network():
                xt = self._tile_input(xp, tile)
                _, e2, latent = features[i] if i in features else self.model.encode(xt)
                logits = self.model.segment_half(e2, latent, image_weights, context, xt)
            if seg is None:  # float32 whatever the network's precision: tiles add up here
                seg = logits.new_zeros(1, logits.shape[1], hp // 2, wp // 2, dtype=torch.float32)
            seg[(..., *_half(tile))] += logits * wt
        return self.model.region_adapter_weights(seg, grey)

    def _image_level(self, stats, grey: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """What decoding needs of the whole image, from its latent sums: the model's per-image
        adapter weights (None unless it blends per image; ``grey`` (1,) says whether the image
        is grey) and the image-level context (None unless the model reads one)."""
        model, (s1, s2, n) = self.model, (stats[0].float(), stats[1].float(), stats[2])
        weights = context = None
        if getattr(model, "blends_per_image", False):
            weights = model.image_adapter_weights(model.quality_from_stats(s1, s2, n)[1], grey)
        if getattr(model, "reads_context", False):
            context = model.context_from_stats(s1, s2, n)
        return weights, context

    @staticmethod
    def _to_rgb(x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] not in (1, 3):
            raise ImageError(f"expected a (B, C, H, W) tensor with C in (1, 3), got shape {tuple(x.shape)}")
        if not torch.isfinite(x).all():
            raise ImageError("tensor contains NaN or infinite values")
        x = x.float().clamp(0, 1)
        return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x

    @staticmethod
    def _from_rgb(y: torch.Tensor, channels: int) -> torch.Tensor:
        return y.mean(1, keepdim=True) if channels == 1 else y

    # -- the three operations ---------------------------------------------------------------
    def assess(self, x: torch.Tensor, progress: Progress = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Quality (B,) in [0, 1] and degradation probabilities (B, len(DEGRADATIONS))."""
        rgb = self._to_rgb(x)
        ticker = _Ticker(progress, rgb.shape[0] * self.tiles_per_pass(*rgb.shape[-2:]))
        outs = [self._pass(rgb[i : i + 1], False, ticker) for i in range(rgb.shape[0])]
        quality, probs = [], []
        for i, o in enumerate(outs):
            one = rgb[i : i + 1]
            colour = not bool(is_grey(one)[0])
            share, coded, readings = self.assess_reads(one, colour)
            quality.append(self._fused(o, one, readings))
            p = self._report_blur(o["degradation_probs"], one)[0]
            p = self._report_jpeg(self._report_exposure(p, self.exposure_estimate(one)[1]), coded)
            probs.append(self._report_rain(p, share if colour else None))
        return torch.tensor(quality), torch.cat(probs)

    def assess_reads(self, x: torch.Tensor, colour: bool) -> tuple[float | None, float | None, torch.Tensor | None]:
        """What ``assess`` reads of one RGB image ``x`` (1, 3, H, W) besides its network pass:
        the rain model's share of streaks (None on a grey image, whose rain is not reported,
        unless the fusion reads it), the share coded by JPEG (None where no coding shows) and
        the fusion's readings (`_readings`, sharing both reads; None where it reads none)."""
        grid = self.jpeg_estimate(x)
        coded = None if grid is None else float(coded_weight(x.cpu(), grid).mean())
        share = self.rain_estimate(x)[1] if colour or self.has_fusion_readings else None
        return share, coded, self._readings(x, share, grid, coded)

    def segment(self, x: torch.Tensor, progress: Progress = None) -> torch.Tensor:
        """Per-pixel class probabilities (B, len(SEGMENT_CLASSES), H, W).

        The segmentation head's, moved where the physical models find their degradation
        (`segment_maps`, `moved_segment`), then, where the model has a segmentation fusion
        (colour images only, as it was trained), corrected by it from what each region's
        maps, statistics and the image-level degradation probabilities say
        (`restora.models.segment_fusion`)."""
        rgb = self._to_rgb(x)
        ticker = _Ticker(progress, rgb.shape[0] * self.tiles_per_pass(*rgb.shape[-2:]))
        probs = []
        for i in range(rgb.shape[0]):
            one = rgb[i : i + 1]
            parts = self.segment_parts(one, ticker)
            p = parts["moved"]
            if self.has_segment_fusion and parts["colour"]:
                p = self._fused_segment(one, parts)
            probs.append(p)
        return torch.cat(probs)

    def segment_parts(self, x: torch.Tensor, ticker: _Ticker | None = None) -> dict:
        """What the segmentation of one RGB image ``x`` (1, 3, H, W) is made of: the head's
        probabilities ``head`` (1, K, H, W), the physical models' ``maps`` and the JPEG
        ``quality`` read (`segment_maps`), the head's probabilities moved by them (``moved``),
        the quality head's ``degradation_probs`` (1, D) and whether the image is ``colour``.
        The segmentation fusion reads them all (and learns from them, `restora.training.segment_fusion`)."""
        out = self._pass(x, True, ticker or _Ticker(None, 1))
        head = torch.softmax(out["segment_logits"], 1)
        colour = not bool(is_grey(x)[0])
        maps, quality = self.segment_maps(x, out, colour)
        return {"head": head, "maps": maps, "quality": quality, "moved": self.moved_segment(head, maps),
                "degradation_probs": out["degradation_probs"], "colour": colour}

    @property
    def has_segment_fusion(self) -> bool:
        """Whether ``segment`` corrects its map by the segmentation fusion."""
        return self._has("segment_fusion")

    def segment_maps(self, x: torch.Tensor, out: dict, colour: bool) -> tuple[torch.Tensor, float]:
        """The physical models' maps (1, `segment_fusion.MAPS`, H, W) of one image ``x``
        (1, 3, H, W), whose network pass gave ``out``, and the JPEG quality read (100 where no
        coding shows).

        - rain: where the rain model finds the image rainy, the region its streaks make
          (`restora.engine.derain.rain_region`; colour images only): the head found 8% of the
          rain (aio-v6), calling most of it clean;
        - JPEG: where the blocks' coefficients show the coding (`coded_weight`), unless the
          coding read is finer than SEGMENT_JPEG_QUALITY (the head called 19% of JPEG pixels
          clean, aio-v8);
        - blur: where the blur model, read patch by patch, finds blur
          (`restora.engine.deblur.blur_region`; colour images only; the head called 27% of
          blurred pixels clean and 25% hazy, aio-v8);
        - the haze model's transmission (1 without one).
        Each is 0 where its model is missing or finds nothing."""
        zero = torch.zeros_like(x[:, :1]).cpu()
        rain = coded = blur = zero
        quality = 100.0
        if self.has_rain_model and colour:
            layer, _, streaks = self.rain_estimate(x)
            if layer is not None:
                rain = rain_region(streaks).cpu()
        if self.has_jpeg_model:
            grid = self.jpeg_estimate(x)
            if grid is not None:
                quality = float(grid.quality)
                if grid.quality <= SEGMENT_JPEG_QUALITY:
                    coded = coded_weight(x.cpu(), grid)
        if self.has_blur_model and colour:
            region = blur_region(self.model.blur_model, x)
            if region is not None:
                blur = region.cpu()
        transmission = out.get("transmission", zero + 1)
        return torch.cat([rain, coded.to(zero), blur, transmission.to(zero)], 1), quality

    @staticmethod
    def moved_segment(probs: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
        """``probs`` (1, K, H, W) with shares moved by ``maps`` (`segment_maps`), in this
        order: the clean class's to rain on the rain map; the clean and blur classes' to JPEG
        on the JPEG map; the clean and haze classes' to blur on the blur map.

        JPEG takes the blur share too: the head called 15% of JPEG pixels blurred (coding
        removes the high frequencies blur does); pixel accuracy 0.793 -> 0.802 and JPEG
        recall 0.69 -> 0.79, the blur step after (16 train/bsds images x 4 composites,
        `benchmarks/segment.py`); moving every class's lost rain (recall 0.73 -> 0.68). Blur
        takes the haze share too: moving the clean share alone gave pixel accuracy 0.759 ->
        0.773, the haze share too 0.793 (moving clean to haze where the transmission is under
        0.5-0.7 gained 0.4% more and is left out)."""
        probs = Engine._from_clean(probs, maps[:, 0:1], "rain")
        probs = Engine._from_clean(probs, maps[:, 1:2], "jpeg", ("blur",))
        return Engine._from_clean(probs, maps[:, 2:3], "blur", ("haze",))

    @torch.no_grad()
    def _fused_segment(self, x: torch.Tensor, parts: dict) -> torch.Tensor:
        """The moved probabilities of ``parts`` (`segment_parts` of ``x``) corrected by the
        segmentation fusion (1, K, H, W)."""
        dev = lambda t: t.to(self.device)
        features = fusion_maps(dev(x), dev(parts["moved"]), dev(parts["head"]), dev(parts["maps"]),
                               dev(parts["degradation_probs"]), torch.tensor([parts["quality"]], device=self.device))
        return torch.softmax(self.model.segment_fusion(features, dev(parts["moved"])), 1).cpu()

    @staticmethod
    def _from_clean(probs: torch.Tensor, weight: torch.Tensor, to: str, also: tuple[str, ...] = ()) -> torch.Tensor:
        """``probs`` (1, K, H, W) with ``weight`` (1, 1, H, W) of the clean class's share
        (and of the classes ``also`` names) moved to class ``to``."""
        k = SEGMENT_CLASSES.index(to)
        probs = probs.clone()
        for name in ("clean",) + also:
            c = SEGMENT_CLASSES.index(name)
            moved = probs[:, c : c + 1] * weight.to(probs)
            probs[:, c : c + 1] -= moved
            probs[:, k : k + 1] += moved
        return probs

    def restore(
        self,
        x: torch.Tensor,
        degradations: tuple[str, ...] | None = None,
        max_iterations: int = 3,
        strength: float = 1.0,
        target_quality: float | None = None,
        margin: float = 0.002,
        progress: Progress = None,
        refine: bool = True,
        dehaze: bool = True,
        brighten: bool = True,
        deblur: bool = True,
        dejpeg: bool = True,
        derain: bool = True,
    ) -> TensorRestoreResult:
        """Restore, assess, repeat: each round is kept only while the assessed quality improves
        (the first by any amount, later ones by ``margin``), for at most ``max_iterations``.

        ``degradations`` (names from DEGRADATIONS) limits the change to the pixels that the
        segmentation head attributes to them; ``strength`` in [0, 1] blends with the input.

        With ``refine``, a second stage follows when rounds were kept and noise was found: the
        input is Wiener-filtered with the rounds' result as its pilot (`restora.engine.refine`)
        where the rounds removed no more than noise, and the result is assessed again.

        With ``dehaze``, where the model has a haze model and finds haze, the round after the
        first accepted one proposes the inverse of the atmospheric scattering model from the
        predicted transmission and airlight (`restora.engine.dehaze`), judged like any round.
        With ``brighten``, likewise where it finds low light: the gain that undoes the
        exposure (`restora.engine.lowlight`), in the same round as the haze's inverse. A
        declined inverse is followed by a round proposing the network's restoration of it.
        Where the model has an exposure model that finds the whole image under-exposed and
        the quality head does not find low light (noise-free under-exposure, which the heads
        miss), its gain comes first instead, on its word, and the rounds restore the
        brightened image (grey images only when "low_light" is named).

        With ``deblur``, where the model has a blur model and it finds blur in the input, the
        result is last deconvolved by the estimated kernel (`restora.engine.deblur`), on the
        blur model's word: the quality head does not see blur. Grey images (microscopy, most
        often, whose optical blur is part of the picture) are deconvolved only when "blur" is
        among the named ``degradations``.

        With ``dejpeg``, where the model has a JPEG model and the input's own coefficients
        show JPEG's coding (`restora.models.jpeg.find_jpeg`: the 8x8 grid and the quantisation
        steps, an exact trace), the coding is undone first, on that trace's word, in the blocks
        that show it (`restora.engine.dejpeg`), and the rounds restore the result. Grey images
        too: the trace is the same.

        With ``derain``, where the model has a rain model and it finds streaks on at least
        ``RAINY`` of the image, its rain layer is taken out next, by the screen blend's exact
        inverse (`restora.engine.derain`), on its word, before the rounds; where the quality
        head then finds nothing else, there are no rounds. Grey images only when "rain" is
        named (a microscope's filaments are bright thin lines too).
        """
        if int(max_iterations) < 1:
            raise ImageError(f"max_iterations must be at least 1, got {max_iterations}")
        if not 0 <= strength <= 1:
            raise ImageError(f"strength must lie in [0, 1], got {strength}")
        channels = x.shape[1] if x.ndim == 4 else 0
        rgb = self._to_rgb(x)
        per_pass = self.tiles_per_pass(*rgb.shape[-2:])
        passes = self.restore_passes(max_iterations, refine, deblur, brighten and self.has_exposure_model,
                                     dejpeg and self.has_jpeg_model, derain and self.has_rain_model)
        ticker = _Ticker(progress, rgb.shape[0] * per_pass * passes)
        results = []
        for i in range(rgb.shape[0]):
            start = ticker.done
            results.append(self._restore_one(rgb[i : i + 1], degradations, int(max_iterations), strength,
                                             target_quality, margin, ticker, refine, dehaze, brighten, deblur,
                                             dejpeg, derain))
            ticker.done = start + per_pass * passes  # rounds not run count as done
            if progress is not None:
                progress(ticker.done, ticker.total)
        (images, uncs, q0s, q1s, degs, iters, hists, refined, dehazed, brightened, deblurred, dejpegged,
         derained) = zip(*results)
        return TensorRestoreResult(
            image=self._from_rgb(torch.cat(images), channels), uncertainty=torch.cat(uncs),
            quality_before=torch.tensor(q0s), quality_after=torch.tensor(q1s),
            degradation_probs=torch.cat(degs), iterations=list(iters), history=list(hists),
            refined=list(refined), dehazed=list(dehazed), brightened=list(brightened), deblurred=list(deblurred),
            dejpegged=list(dejpegged), derained=list(derained),
        )

    @staticmethod
    def restore_passes(max_iterations: int, refine: bool = True, deblur: bool = True, brighten: bool = False,
                       dejpeg: bool = False, derain: bool = False) -> int:
        """Network passes a restore may run per image: one per round, one to assess the
        input, one to assess the refinement, one the deconvolution, with ``brighten`` one on
        the input brightened by the exposure model's gain, with ``dejpeg`` one on the input
        with its JPEG coding undone and with ``derain`` one on the input with its rain taken
        out."""
        return (int(max_iterations) + 1 + int(bool(refine)) + int(bool(deblur)) + int(bool(brighten))
                + int(bool(dejpeg)) + int(bool(derain)))

    def _propose(self, cur: torch.Tensor, out: dict, degradations, strength: float) -> torch.Tensor:
        step = out["restored"].clamp(0, 1) - cur
        if degradations is not None:
            probs = torch.softmax(out["segment_logits"], 1)
            idx = [SEGMENT_CLASSES.index(d) for d in degradations]
            step = step * probs[:, idx].sum(1, keepdim=True)
        return (cur + strength * step).clamp(0, 1)

    def _refine(self, x, best, out, degradations, strength, grey: bool = False) -> torch.Tensor | None:
        """The second stage, or None where it has nothing to do (it removes noise only, so it
        needs noise among the named degradations; all, for auto). Its change is limited to the
        pixels the segmentation head calls noisy where the rounds removed no more than noise.
        Grey images get the signal-dependent (Poisson-Gaussian) noise model, as microscopy needs."""
        if degradations is not None and "noise" not in degradations:
            return None
        noisy = torch.softmax(out["segment_logits"], 1)[:, SEGMENT_CLASSES.index("noise")][:, None]
        step = refine_noise(x, best, noisy, signal_dependent=grey) - best
        return (best + strength * step).clamp(0, 1)

    def _inverses(self, out: dict, degradations, dehaze: bool, brighten: bool) -> tuple[bool, bool] | None:
        """Which physical models' inverses a round may propose, as (haze, low light), or None:
        those the model has, allowed (``dehaze``, ``brighten``; named, or ``auto``) and whose
        degradation the quality head finds in pass ``out``."""
        def finds(name: str) -> bool:
            allowed = degradations is None or name in degradations
            return allowed and float(out["degradation_probs"][0, DEGRADATIONS.index(name)]) >= 0.5

        flags = (dehaze and self.has_haze_model and finds("haze"),
                 brighten and self.has_light_model and finds("low_light"))
        return flags if any(flags) else None

    def _invert(self, x: torch.Tensor, out: dict, strength: float, haze: bool, light: bool) -> torch.Tensor:
        """The physical models' inverse of ``x`` from pass ``out``'s predictions: the scattering
        model's (`restora.engine.dehaze`), then the gain (`restora.engine.lowlight`). Each is
        the identity where its degradation is absent (transmission 1, gain 1), so the change
        stays where the haze and the low light are."""
        j = x
        if haze:
            j = invert_haze(j, out["transmission"], out["airlight"])
        if light:
            # The gain only where the segmentation finds low light (its probability ramped from
            # 0 at 0.25 to 1 at 0.75): the low-light model's own map of where low light is did
            # not learn to tell a CutMix composite's dark region from its normally exposed box
            # (log gain 0.76 against 0.77), which lost 1.0 dB there; masked, the composite
            # gains 0.8 dB (8 val/bsds crops of 256, against brighten=False).
            dim = torch.softmax(out["segment_logits"], 1)[:, SEGMENT_CLASSES.index("low_light")][:, None]
            j = invert_low_light(j, out["log_gain"] * ((dim - 0.25) / 0.5).clamp(0, 1))
        return (x + strength * (j - x)).clamp(0, 1)

    def _restore_one(self, x, degradations, max_iterations, strength, target_quality, margin, ticker, refine,
                     dehaze=True, brighten=True, deblur=True, dejpeg=True, derain=True):
        # A grey image stays grey through the rounds (channels averaged), so that it is seen,
        # and its adapters chosen, as grey in every round.
        grey = bool(is_grey(x)[0])
        keep_grey = (lambda t: t.mean(1, keepdim=True).expand_as(t).contiguous()) if grey else (lambda t: t)
        x0, assessed = x, self._pass(x, True, ticker)
        out = first = assessed
        reads = self.has_fusion_readings
        grid0 = self.jpeg_estimate(x) if reads or dejpeg else None
        grid = grid0 if dejpeg and (degradations is None or "jpeg" in degradations) else None
        # where the input is coded, read once for the JPEG step and the readings
        weight0 = coded_weight(x.cpu(), grid0) if grid0 is not None and (reads or grid is not None) else None
        coded0 = None if weight0 is None else float(weight0.mean())
        rain0 = self.rain_estimate(x) if reads else None  # (layer, share, streaks) of the input
        readings0 = self._readings(x, rain0[1], grid0, coded0) if reads else None
        coded = None
        if grid is not None:
            # First, on the coefficients' word: JPEG is the last thing done to an image, and
            # its trace (the coefficients on the quantisation steps) is exact where it shows
            # (found in no image without JPEG, `benchmarks/jpeg.py`); the rounds then restore
            # what came before the coding.
            j, coded = self._dejpeg(x, grid, weight0), coded0
            x = keep_grey((x + strength * (j - x)).clamp(0, 1))
            out = first = self._pass(x, True, ticker)
        rainy, derained = None, False  # the share of the image surely on streaks, where it looked
        looked = None  # the image that share was read from
        if derain and ("rain" in degradations if degradations is not None else not grey):
            # the input's reading, where the JPEG step left it as it was
            layer, rainy, streaks = rain0 if rain0 is not None and x is x0 else self.rain_estimate(x)
            looked = x
            if layer is not None:
                derained = True
                # Next, on the rain model's word: the rounds left rain in (the rain row 35.13
                # -> 34.88 dB with aio-v7), and the layer's inverse is exact where the layer is
                # right. Only in the regions its streaks make: on 8 train/bsds images rain in a
                # box gained 0.3 dB more so, whole-image rain 0.03 less. Grey images only when
                # rain is named.
                x = keep_grey((x + strength * (invert_rain(x, layer * rain_region(streaks)) - x)).clamp(0, 1))
                out = first = self._pass(x, True, ticker)
        gain, exposed_p = self.exposure_estimate(x)
        wanted = "low_light" in degradations if degradations is not None else not grey
        found = float(out["degradation_probs"][0, DEGRADATIONS.index("low_light")]) >= 0.5
        exposed = brighten and wanted and gain is not None and not found
        if exposed:
            # Brightened first, on the exposure model's word, where the network's heads do not
            # find low light: they learned it as darkness with shot noise, so they miss
            # noise-free under-exposure (the underexposed row: 11.29 -> 28.85 dB on 8 val/bsds
            # images), while where they find it the network's low-light model's per-pixel gain
            # did better (the noisy low_light row: 26.56 dB, against 24.87 with this gain
            # first; on the JPEG/low-light composite a global gain brightened the normally
            # exposed box too: -2.85 dB, and +0.57 on the low-light/noise one). The rounds that
            # follow remove the noise the gain brightens. Grey images (a microscope's dark
            # field, most often) only when low light is named.
            j = invert_low_light(x, torch.full_like(x[:, :1], math.log(gain)))
            x = keep_grey((x + strength * (j - x)).clamp(0, 1))
            brighten = False  # the network's low-light model would brighten it again
            out = first = self._pass(x, True, ticker)
        best, best_q = x, float(out["quality"][0])
        reported_q0 = self._fused(assessed, x0, readings0)
        # what the rounds start from, read (once: the rain model and the coefficients' read
        # cost 0.3 s per megapixel each). Every later result (the rounds', the second stage's,
        # the deconvolution's) is read for its noise alone, keeping this image's rain and
        # coding: the rounds, the stage and the deconvolution add neither, and the reported
        # quality of the result stays the best round's.
        readings = (readings0 if x is x0 else self._readings(x, rainy if looked is x else _UNREAD) if reads
                    else None)
        # Blur is read from the coded input where the coding was undone: the JPEG model's
        # smoother result looked blurred to the blur model's spectrum (3 of 4 JPEG-20 val/bsds
        # images, deconvolved: -1.0 dB), and the deconvolution's balance needs the blocks
        # seen (`balance_for`).
        blur_source = x0 if coded is not None else x
        deg, kernel = self._report_blur(assessed["degradation_probs"], blur_source)
        deg = self._report_rain(self._report_jpeg(self._report_exposure(deg, exposed_p), coded), rainy)
        # what is reported (the fusion's scores, where the model has one; the loop compares the
        # quality head's)
        history = ([reported_q0, self._fused(out, x, readings)] if exposed or coded is not None or derained
                   else [reported_q0])
        best_report = history[-1]  # the reported quality of best, fused once
        uncertainty = torch.exp(out["log_error"])
        accepted = 0
        # Where haze or low light is found, the round after the network's first accepted one
        # proposes the physical models' inverse of the input instead. Only after the network's
        # own proposal was accepted: on 8 val/bsds images the quality head rated the haze
        # inverse of 3 blurred or JPEG images the haze detector mistook for hazy above their
        # input (-5.4 to -6.2 dB), and declined the network's proposal on all three. The inverse
        # is kept if assessed better; declined, the next round proposes the network's
        # restoration of it instead (the brightened image keeps its noise, which the quality
        # head rates below the network's own round: 0.20-0.28 against 0.36-0.45 on 8 val/bsds
        # low-light images), judged against the same best; declined too, the rounds go on from
        # the network's result.
        physical = None  # (haze, low light): the inverses the next round proposes
        trial = None  # (inverse, its pass, which inverses): a declined inverse, restored next
        kept = (False, False)
        base, base_out = x, first  # what the second stage filters (the input, or its accepted
        # physical inverse) and the pass on it, whose noise map the stage reads
        # Where the rain step was taken and the quality head then finds nothing else (every
        # degradation below 0.5), no rounds: it was blind to the rain, and on the derained
        # image it accepted rounds that lost 0.8-1.3 dB (3 of 8 train/bsds rain images; the
        # row 40.72 dB with them, 41.11 without; the val/bsds row 38.08 -> 38.79). Noise,
        # haze, ... found: the rounds run.
        settled = (derained and not exposed
                   and float(out["degradation_probs"].max()) < 0.5)
        for round_ in range(0 if settled else max_iterations):
            if target_quality is not None and best_q >= target_quality:
                break
            proposer = None if physical else trial[1] if trial else out
            if physical:
                candidate = keep_grey(self._invert(x, first, strength, *physical))
            else:
                candidate = keep_grey(self._propose(trial[0] if trial else best, proposer, degradations, strength))
            last = round_ == max_iterations - 1
            nxt = self._pass(candidate, not last, ticker)
            q = float(nxt["quality"][0])
            history.append(self._fused(nxt, candidate, self._renoised(readings, candidate)))
            if q <= best_q + (0.0 if accepted == 0 else margin):
                if physical:
                    trial = None if last else (candidate, nxt, physical)
                    physical = None
                    continue
                if trial:
                    trial = None
                    continue
                break
            if physical:
                base, base_out, kept = candidate, nxt, physical
            elif trial:
                (base, base_out, kept), trial = trial, None
            physical = self._inverses(first, degradations, dehaze, brighten) if accepted == 0 else None
            best, best_q, best_report, accepted = candidate, q, history[-1], accepted + 1
            if proposer is not None:
                uncertainty = torch.exp(proposer["log_error"])
            out = nxt
        refined = False
        # the noise found in the input, or in the physical inverse that the stage filters
        noise = max(float(o["degradation_probs"][0, DEGRADATIONS.index("noise")]) for o in (first, base_out))
        if refine and accepted and (target_quality is None or best_q < target_quality) and noise >= 0.5:
            candidate = self._refine(base, best, base_out, degradations, strength, grey)
            if candidate is not None:
                candidate = keep_grey(candidate)
                # Kept on the noise model's word (the gates in _refine), not the quality head's:
                # the head, trained on the network's own outputs, rates refined images 0.13-0.33
                # lower although their true quality is 0.02-0.08 higher (4 val/bsds images,
                # sigma 25). The score reported is still the returned image's own.
                best, refined = candidate, True
                best_out = self._pass(candidate, False, ticker)
                best_q, best_report = (float(best_out["quality"][0]),
                                        self._fused(best_out, candidate, self._renoised(readings, candidate)))
        deblurred = False
        # Blur last: deconvolution amplifies the noise the rounds and the second stage removed
        # first. Kept on the blur model's word: the quality head rated oracle-kernel Wiener
        # deconvolutions (+2 to +4 dB) below their blurred inputs on 4 of 6 train/bsds images.
        # Grey images only when blur is named: a grey image is most often a microscope's,
        # whose optical blur its clean reference shares (the blur model calls 25 of the 30
        # held-out W2S fields blurred, rightly, and their 400-frame averages too; deconvolved,
        # those 30 measure 23.94 dB against 24.14).
        wanted = "blur" in degradations if degradations is not None else not grey
        # Where JPEG's coding was found, only a surer blur: the coding's lost high frequencies
        # look like blur to the spectrum (24 train/bsds images: JPEG-20 alone 0.00-0.34,
        # blurred then JPEG-coded 0.90-1.00; a JPEG-20 val/bsds image at 0.67 lost 1 dB).
        sure = coded is None or float(deg[0, DEGRADATIONS.index("blur")]) >= CODED_BLUR
        if (deblur and kernel is not None and wanted and sure
                and (target_quality is None or best_q < target_quality)):
            # the balance from the input's noise: the rounds remove most of it, but their
            # residual error grows with it, and deconvolution amplifies that too
            j = deconvolve(best, blur_kernel(kernel), balance_for(kernel["kind"], blur_source))
            best, deblurred = keep_grey((best + strength * (j - best)).clamp(0, 1)), True
            best_out = self._pass(best, False, ticker)
            best_q, best_report = float(best_out["quality"][0]), self._fused(best_out, best, self._renoised(readings, best))
        return (best, uncertainty, reported_q0, best_report, deg, accepted, history, refined, kept[0],
                kept[1] or exposed, deblurred, coded is not None, derained)

