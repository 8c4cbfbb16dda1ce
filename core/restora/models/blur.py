"""The blur model: which blur kernel an image holds, from its power spectrum.

Blur multiplies an image's spectrum by the kernel's (``|F(k * x)|^2 = |K|^2 |F(x)|^2``), so the
averaged power spectrum of a blurred photograph carries the kernel's magnitude: a Gaussian's
fall-off, a defocus disk's rings, a motion line's stripes across its direction. The model
reads the log of that spectrum (Welch's average over windows of the luminance) and classifies
it over a bank of kernels of the synthesis's three kinds, the first entry being "no blur";
the engine deconvolves with the chosen kernel (`restora.engine.deblur`).

The spectrum is an image-level statistic, the same for a whole image however it is tiled.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn

from ..degradations import blur_kernel

WINDOW = 64  # spectrum window: a 15 px motion's stripes are 4 bins apart
MAX_WINDOWS = 1024  # windows read of a large image, evenly spread
KERNEL_CANVAS = 21  # every bank kernel fits, centred


def _bank_params() -> list[dict | None]:
    """The bank's blur parameters, ``None`` (no blur) first; it covers the synthesis's ranges
    (`restora.degradations.sample_params`)."""
    bank: list[dict | None] = [None]
    bank += [{"kind": "gaussian", "sigma": s} for s in (0.8, 1.0, 1.25, 1.5, 1.75, 2.0, 2.3, 2.6, 3.0)]
    bank += [{"kind": "defocus", "radius": r} for r in (1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0)]
    bank += [{"kind": "motion", "length": n, "angle": float(a)}
             for n in (4.0, 5.5, 7.0, 9.0, 11.0, 13.0, 15.0) for a in range(0, 180, 10)]
    return bank


BANK: tuple[dict | None, ...] = tuple(_bank_params())
"""The kernels the blur model chooses among: ``None`` (no blur), then blur parameters."""


def centred(kernel: torch.Tensor, size: int = KERNEL_CANVAS) -> torch.Tensor:
    """An odd-sized (k, k) kernel at the centre of a (size, size) canvas of zeros."""
    k = kernel.shape[-1]
    if k > size:
        raise ValueError(f"a {k}x{k} kernel does not fit a {size}x{size} canvas")
    p = (size - k) // 2
    return F.pad(kernel, (p, p, p, p))


@lru_cache(maxsize=1)
def bank_kernels() -> torch.Tensor:
    """The bank as (len(BANK), KERNEL_CANVAS, KERNEL_CANVAS) kernels; "no blur" is a delta."""
    delta = torch.zeros(1, 1)
    delta[0, 0] = 1.0
    return torch.stack([centred(delta if p is None else blur_kernel(p)) for p in BANK])


def nearest_in_bank(params: dict | None) -> int:
    """The index of the bank kernel closest (least squares, centred) to blur ``params``'s;
    0 for no blur."""
    if params is None:
        return 0
    d = (bank_kernels() - centred(blur_kernel(params))[None]).flatten(1).pow(2).sum(1)
    return int(d.argmin())


@lru_cache(maxsize=1)
def bank_distances() -> torch.Tensor:
    """Squared distances (len(BANK), len(BANK)) between the bank's centred kernels."""
    k = bank_kernels().flatten(1)
    return torch.cdist(k, k).pow(2)


@lru_cache(maxsize=1)
def bank_spreads() -> torch.Tensor:
    """Each bank kernel's root mean square radius (len(BANK),) in pixels: 0 for no blur."""
    k = bank_kernels()
    r = torch.arange(KERNEL_CANVAS, dtype=k.dtype) - KERNEL_CANVAS // 2
    r2 = r[:, None] ** 2 + r[None] ** 2
    return (k * r2).sum((1, 2)).div(k.sum((1, 2))).sqrt()


def least_risk_choice(probs: torch.Tensor) -> torch.Tensor:
    """The bank index (B,) whose kernel is closest on average, under the model's probabilities
    ``probs`` (B, len(BANK)), to the true one: the most likely kernel when the model is sure,
    a more cautious one (smaller, rounder, or none) when it hesitates between directions or
    sizes, where deconvolving by a wrong kernel does harm."""
    return (probs.double() @ bank_distances().double().to(probs.device)).argmin(1)


def _window_starts(size: int, count: int) -> torch.Tensor:
    return torch.linspace(0, size - WINDOW, count).round().long()


def log_spectrum(x: torch.Tensor) -> torch.Tensor:
    """The log power spectrum (B, WINDOW * (WINDOW // 2 + 1)) of images ``x`` (B, C, H, W) in
    [0, 1], H and W at least ``WINDOW``: Welch's average over windows (half-overlapping, at
    most ``MAX_WINDOWS`` evenly spread) of the luminance, each window's mean removed and a
    Hann taper applied. Differentiable."""
    if x.ndim != 4 or min(x.shape[-2:]) < WINDOW:
        raise ValueError(f"the blur model needs (B, C, H, W) images of at least {WINDOW}x{WINDOW}, "
                         f"got {tuple(x.shape)}")
    y = x.float().mean(1)
    h, w = y.shape[-2:]
    per_side = max(1, int(math.sqrt(MAX_WINDOWS)))
    rows = _window_starts(h, min(per_side, max(1, 2 * h // WINDOW - 1)))
    cols = _window_starts(w, min(per_side, max(1, 2 * w // WINDOW - 1)))
    r = rows[:, None] + torch.arange(WINDOW)[None]  # (nr, WINDOW)
    c = cols[:, None] + torch.arange(WINDOW)[None]
    win = y[:, r[:, None, :, None], c[None, :, None, :]]  # (B, nr, nc, WINDOW, WINDOW)
    win = win - win.mean((-2, -1), keepdim=True)
    hann = torch.hann_window(WINDOW, periodic=False, dtype=y.dtype, device=y.device)
    power = torch.fft.rfft2(win * (hann[:, None] * hann[None])).abs().pow(2).mean((1, 2))
    return torch.log(power.flatten(1) + 1e-8)


class BlurModel(nn.Module):
    """An MLP from `log_spectrum` to logits over `BANK` (class 0: no blur)."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        inputs = WINDOW * (WINDOW // 2 + 1) + 1
        self.mlp = nn.Sequential(nn.Linear(inputs, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                                 nn.Linear(hidden, len(BANK)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, len(BANK)) for images ``x`` (B, 3, H, W)."""
        s = log_spectrum(x)
        # the spectrum's shape, and its level apart (which varies with the image's contrast)
        level = s.mean(1, keepdim=True)
        return self.mlp(torch.cat([s - level, level / 5], 1))
