"""The blur model's inverse: Wiener (Tikhonov) deconvolution by the estimated kernel.

A blurred image is ``y = k * x + n``. With the kernel ``k`` known (the blur model's choice,
`restora.models.blur`), the regularised least-squares estimate of ``x`` is, per frequency,
``X = conj(K) Y / (|K|^2 + balance |L|)``, ``|L|`` the discrete Laplacian's response (about
``|f|^2``: the Wiener filter for a natural image's ``1 / |f|^2`` power spectrum; its square
regularised the low frequencies too little, and motion deconvolutions rang, 1-2 dB worse on
10 train/bsds images): ``balance`` trades sharpness for the noise and ringing the division
amplifies. Images are processed in
overlapping tiles, each padded by reflection, so that large images fit in memory and the
borders do not ring.

Tensor functions on (B, C, H, W) floats in [0, 1].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .refine import noise_sigma
from .tiling import plan_tiles

__all__ = ["balance_for", "blockiness", "blur_region", "deconvolve"]

# Regularisation per kernel kind on noiseless (uint8) images, the best of 0.0005-0.05 on 10
# train/bsds images with the true kernel (gains: Gaussian sigma 1 and 2, +5.6 and +3.1 dB;
# defocus radius 3, +4.6; motion 6 and 11 px, +3.6 and +3.2): a motion kernel's spectral
# zeros need more than the Gaussian's smooth fall-off.
BALANCE = {"gaussian": 0.001, "defocus": 0.002, "motion": 0.01}
# Added per unit of noise variance, measured in the blurred input: the engine deconvolves the
# rounds' denoised result, whose residual error grows with the input's noise. The best of 4,
# 10, 25 and 60 on 6 train/bsds images under blur and noise (sigma 5-30): +0.8 to +0.9 dB
# over not deblurring, where the denoised result's own (near-zero) noise lost 1 dB.
NOISE_BALANCE = 10.0
# JPEG's 8x8 blocks: deconvolution sharpens their edges as if they were the image's. Where
# the blocks show (`blockiness` at least BLOCKY; blurred, JPEG-compressed train/bsds images
# measured 1.38-4.4, blurred or noisy ones without JPEG 0.97-1.01), the balance is multiplied
# by JPEG_BALANCE, the best of 1, 5, 20, 50 and 200 on 10 train/bsds images under blur then
# JPEG (quality 13-59, the true kernel): +0.87 dB against the input, where the plain balance
# lost 1.14 dB.
BLOCKY = 1.15
JPEG_BALANCE = 20.0

# The blur model read locally (`blur_region`): patches of REGION pixels, half-overlapping,
# each one's probability of blur ramped from REGION_LOW to REGION_HIGH. On 16 train/bsds
# images x 4 CutMix composites (`benchmarks/segment.py`), moving the segmentation's clean share
# to blur by it: pixel accuracy 0.759 -> 0.774 (blur recall 0.47 -> 0.60); patches of 128
# ramped from 0.5 to 0.9, 0.772.
REGION, REGION_LOW, REGION_HIGH = 96, 0.6, 0.95

TILE = 2048
# Pixels of context per side. The inverse's response decays within a few widths of a smooth
# kernel (Gaussian: tiles match the whole image to 2e-3), more slowly for a motion kernel's
# (mean difference 0.01 at balance 0.01), so only images larger than a tile are tiled.
MARGIN = 96


def _transfer(kernel: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """The (h, w // 2 + 1) spectrum of the centred (k, k) ``kernel`` placed at the origin."""
    k = kernel.shape[-1]
    canvas = kernel.new_zeros(h, w)
    canvas[:k, :k] = kernel
    return torch.fft.rfft2(torch.roll(canvas, (-(k // 2), -(k // 2)), (0, 1)))


def _deconvolve_whole(y: torch.Tensor, kernel: torch.Tensor, balance: float) -> torch.Tensor:
    p = 2 * kernel.shape[-1]
    mode = "reflect" if min(y.shape[-2:]) > p else "replicate"
    yp = F.pad(y, (p, p, p, p), mode=mode)
    h, w = yp.shape[-2:]
    kf = _transfer(kernel, h, w)
    lap = kernel.new_zeros(3, 3)
    lap[1, 1], lap[0, 1], lap[1, 0], lap[1, 2], lap[2, 1] = 4.0, -1.0, -1.0, -1.0, -1.0
    lf = _transfer(lap, h, w)
    x = torch.fft.irfft2(torch.fft.rfft2(yp) * kf.conj() / (kf.abs() ** 2 + balance * lf.abs()), s=(h, w))
    return x[..., p : p + y.shape[-2], p : p + y.shape[-1]]


def blockiness(y: torch.Tensor) -> float:
    """How strongly (B, C, H, W) images show JPEG's 8x8 blocks: per axis, the mean absolute
    luminance step across every 8th pixel boundary (the grid's offset that maximises it, so a
    cropped JPEG counts too) over the mean step elsewhere, averaged over the two axes and the
    batch's maximum taken. About 1 without JPEG."""
    lum = y.float().mean(1)

    def axis(steps: torch.Tensor) -> torch.Tensor:  # steps (B, n): mean |step| at each boundary
        n = steps.shape[1] // 8 * 8
        if n < 16:
            return steps.new_ones(steps.shape[0])
        by_offset = steps[:, :n].reshape(steps.shape[0], -1, 8).mean(1)  # (B, 8)
        edge = by_offset.amax(1)
        return edge / ((by_offset.sum(1) - edge) / 7).clamp(min=1e-6)

    rows = (lum[:, 1:] - lum[:, :-1]).abs().mean(2)
    cols = (lum[:, :, 1:] - lum[:, :, :-1]).abs().mean(1)
    return float(((axis(rows) + axis(cols)) / 2).max())


def balance_for(kind: str, y: torch.Tensor) -> float:
    """The regularisation for deconvolving an image blurred by a kernel of ``kind``
    ("gaussian", "defocus", "motion"), ``y`` (B, C, H, W) being the blurred image as it came
    (before any denoising): the kind's own, plus ``NOISE_BALANCE`` times the variance of the
    noise measured in ``y`` (`restora.engine.refine.noise_sigma`, luminance), times
    ``JPEG_BALANCE`` where JPEG's blocks show (`blockiness`)."""
    if kind not in BALANCE:
        raise ValueError(f"unknown blur kind {kind!r}; choose from {', '.join(BALANCE)}")
    sigma = float(noise_sigma(y)[:, 0].max())
    balance = BALANCE[kind] + NOISE_BALANCE * sigma * sigma
    return balance * (JPEG_BALANCE if blockiness(y) >= BLOCKY else 1.0)


def deconvolve(y: torch.Tensor, kernel: torch.Tensor, balance: float = 0.005) -> torch.Tensor:
    """Undo blur by ``kernel`` (Wiener deconvolution with a Laplacian regulariser).

    Parameters
    ----------
    y : torch.Tensor
        Blurred images (B, C, H, W) in [0, 1].
    kernel : torch.Tensor
        The blur kernel (k, k), k odd, summing to one.
    balance : float
        Regularisation weight, positive: larger is smoother and rings less.

    Returns
    -------
    torch.Tensor
        The deconvolved images, like ``y``, clipped to [0, 1].
    """
    if y.ndim != 4:
        raise ValueError(f"expected (B, C, H, W) images, got shape {tuple(y.shape)}")
    if kernel.ndim != 2 or kernel.shape[0] != kernel.shape[1] or kernel.shape[0] % 2 == 0:
        raise ValueError(f"kernel must be (k, k) with k odd, got shape {tuple(kernel.shape)}")
    if not balance > 0:
        raise ValueError(f"balance must be positive, got {balance}")
    k = kernel.to(y.device, torch.float32)
    h, w = y.shape[-2:]
    if max(h, w) <= TILE + 2 * MARGIN:
        return _deconvolve_whole(y.float(), k, balance).to(y.dtype).clamp(0, 1)
    out = torch.zeros_like(y, dtype=torch.float32)
    weight = y.new_zeros(h, w, dtype=torch.float32)
    for tile in plan_tiles(h, w, TILE + 2 * MARGIN, MARGIN, 16):
        part = _deconvolve_whole(y[:, :, tile.ys, tile.xs].float(), k, balance)
        wt = tile.weight.to(y.device)
        out[:, :, tile.ys, tile.xs] += part * wt
        weight[tile.ys, tile.xs] += wt
    return (out / weight).to(y.dtype).clamp(0, 1)


@torch.no_grad()
def blur_region(model, x: torch.Tensor, size: int = REGION, low: float = REGION_LOW,
                high: float = REGION_HIGH) -> torch.Tensor | None:
    """How surely each pixel (1, 1, H, W) of ``x`` (1, 3, H, W) lies in a blurred region: the
    blur ``model``'s (`restora.models.blur.BlurModel`) probability of blur for half-overlapping
    ``size`` x ``size`` patches, interpolated between their centres (held beyond them) and
    ramped from 0 at ``low`` to 1 at ``high``. None where ``x`` is smaller than a patch. The
    blur model reads a spectrum, an image-level statistic, so a patch's reading is noisier
    than a whole image's; the ramp starts above 0.5 for that."""
    h, w = x.shape[-2:]
    if min(h, w) < size:
        return None
    dev = next(model.parameters()).device
    starts = lambda n: torch.linspace(0, n - size, max(1, round((n - size) / (size // 2)) + 1)).round().long()
    tops, lefts = starts(h), starts(w)
    p = torch.empty(len(tops), len(lefts))
    for i, t in enumerate(tops.tolist()):  # a row of patches at a time: memory stays bounded
        row = torch.stack([x[0, :, t : t + size, l : l + size] for l in lefts.tolist()])
        p[i] = 1 - torch.softmax(model(row.to(dev)).float(), 1)[:, 0].cpu()
    half = size // 2
    inner = F.interpolate(p[None, None], size=(h - 2 * half, w - 2 * half), mode="bilinear", align_corners=True)
    full = F.pad(inner, (half, w - inner.shape[-1] - half, half, h - inner.shape[-2] - half), mode="replicate")
    return ((full - low) / (high - low)).clamp(0, 1)
