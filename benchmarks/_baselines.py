"""Classical restoration baselines for `benchmarks/quality.py`.

Every method takes an (H, W, 3) float64 image in [0, 1] (the degraded uint8 file / 255) and a
``kernel`` (the true blur kernel as an (k, k) array for the non-blind deblurring methods, else
None) and returns an (H, W, 3) image; the caller clips and quantises it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import ndimage
from skimage import exposure, restoration

try:  # CBM3D is optional: it is used for the noise rows only where the package is installed
    import bm3d as _bm3d
except ImportError:  # pragma: no cover - depends on the environment
    _bm3d = None

HAVE_BM3D = _bm3d is not None

try:  # skimage's wavelet functions need PyWavelets, an optional dependency of scikit-image
    import pywt  # noqa: F401

    HAVE_PYWT = True
except ImportError:  # pragma: no cover - depends on the environment
    HAVE_PYWT = False

Method = Callable[[np.ndarray, "np.ndarray | None"], np.ndarray]


def estimate_sigma(y: np.ndarray) -> float:
    """Blind noise level: the median absolute finest diagonal wavelet coefficient / 0.6745,
    averaged over the channels (skimage's `estimate_sigma`; without PyWavelets the same
    estimator on orthonormal Haar coefficients)."""
    if HAVE_PYWT:
        return float(restoration.estimate_sigma(y, channel_axis=-1, average_sigmas=True))
    h, w = (s - s % 2 for s in y.shape[:2])
    a, b, c, d = y[0:h:2, 0:w:2], y[0:h:2, 1:w:2], y[1:h:2, 0:w:2], y[1:h:2, 1:w:2]
    hh = (a - b - c + d) / 2
    return float(np.mean(np.median(np.abs(hh.reshape(-1, y.shape[-1])), axis=0) / 0.6745))


def is_grey(y: np.ndarray) -> bool:
    """Whether (H, W, 3) ``y`` is a grey image stored as RGB."""
    return np.array_equal(y[..., 0], y[..., 1]) and np.array_equal(y[..., 0], y[..., 2])


def cbm3d(y: np.ndarray, kernel=None) -> np.ndarray:
    """CBM3D (the `bm3d` package) at the blindly estimated noise level; grey BM3D on a grey
    image stored as RGB (CBM3D would take its noise, the same in every channel, as
    independent and underestimate it in luminance by sqrt(3))."""
    sigma = max(estimate_sigma(y), 1e-3)
    if is_grey(y):
        return np.repeat(np.asarray(_bm3d.bm3d(y[..., 0], sigma_psd=sigma))[..., None], 3, axis=2)
    return _bm3d.bm3d_rgb(y, sigma_psd=sigma)


def bm3d_gat(y: np.ndarray, kernel=None) -> np.ndarray:
    """BM3D for signal-dependent (Poisson-Gaussian) noise, as microscopy has: the noise model
    fitted to the input (`restora.engine.refine.noise_model`), the generalised Anscombe
    transform to unit-variance noise, BM3D (CBM3D on colour) at sigma 1, and the asymptotically
    unbiased inverse (Makitalo and Foi, 2013)."""
    import torch

    from restora.engine.refine import noise_model

    grey = is_grey(y)
    x = y[..., :1] if grey else y
    t = torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None].float()
    sigma, gain = (v[0].mean().item() for v in noise_model(t))
    if gain < 1e-6:  # no signal-dependent part: plain (C)BM3D at the fitted level
        return cbm3d(y) if sigma > 0 else y
    # variance gain * x + sigma^2 -> unit variance after f(x) = 2/gain sqrt(gain x + 3/8 gain^2 + sigma^2)
    f = 2 / gain * np.sqrt(np.maximum(gain * x + 0.375 * gain * gain + sigma * sigma, 0))
    lo, hi = float(f.min()), float(f.max())
    scale = max(hi - lo, 1e-6)
    fn = (f - lo) / scale
    d = (np.asarray(_bm3d.bm3d(fn[..., 0], sigma_psd=1 / scale))[..., None] if grey
         else _bm3d.bm3d_rgb(fn, sigma_psd=1 / scale)) * scale + lo
    out = gain * d * d / 4 - gain / 8 - sigma * sigma / gain
    return np.repeat(out, 3, axis=2) if grey else out


def nlm(y: np.ndarray, kernel=None) -> np.ndarray:
    """Non-local means (fast mode, patch 5, distance 6, h = 0.8 * estimated sigma)."""
    sigma = estimate_sigma(y)
    return restoration.denoise_nl_means(y, h=0.8 * sigma, fast_mode=True, patch_size=5,
                                        patch_distance=6, channel_axis=-1)


def wavelet(y: np.ndarray, kernel=None) -> np.ndarray:
    """Wavelet shrinkage (BayesShrink, soft, in YCbCr)."""
    return restoration.denoise_wavelet(y, method="BayesShrink", mode="soft", rescale_sigma=True,
                                       channel_axis=-1, convert2ycbcr=True)


def _per_channel(y: np.ndarray, fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    return np.stack([fn(y[..., c]) for c in range(y.shape[-1])], axis=-1)


def _padded(fn: Callable[[np.ndarray], np.ndarray], kernel: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """Run a deconvolution on a channel padded by reflection (twice the kernel's size), then
    crop: skimage's RL pads with zeros and Wiener wraps around, both of which ring at borders."""
    p = 2 * max(kernel.shape)
    return lambda c: fn(np.pad(c, p, mode="reflect"))[p:-p, p:-p]


def richardson_lucy(y: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Richardson-Lucy, 30 iterations, per channel, with the true (oracle) kernel."""
    rl = lambda c: restoration.richardson_lucy(c, kernel, num_iter=30, clip=True)
    return _per_channel(y, _padded(rl, kernel))


def wiener(y: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Wiener deconvolution (balance 0.01), per channel, with the true (oracle) kernel."""
    wn = lambda c: restoration.wiener(c, kernel, balance=0.01, clip=True)
    return _per_channel(y, _padded(wn, kernel))


def median3(y: np.ndarray, kernel=None) -> np.ndarray:
    """3x3 median filter per channel."""
    return ndimage.median_filter(y, size=(3, 3, 1), mode="reflect")


def streak_opening(y: np.ndarray, kernel=None) -> np.ndarray:
    """Rain streaks by morphology: a grey opening 3 pixels wide across (a thin, near-vertical
    bright line does not survive it), and of what it removes, only the part common to the
    three channels (streaks brighten every channel alike; coloured fine texture does not)."""
    opened = ndimage.grey_opening(y, size=(1, 3, 1), mode="reflect")
    return y - (y - opened).min(axis=2, keepdims=True)


def _dark_channel(y: np.ndarray, patch: int) -> np.ndarray:
    return ndimage.minimum_filter(y.min(axis=2), size=patch, mode="nearest")


def _guided_filter(guide: np.ndarray, src: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """He et al.'s guided filter with a grey guide (box filters of side 2 * radius + 1)."""
    box = lambda a: ndimage.uniform_filter(a, size=2 * radius + 1, mode="reflect")
    mg, ms = box(guide), box(src)
    a = (box(guide * src) - mg * ms) / (box(guide * guide) - mg * mg + eps)
    b = ms - a * mg
    return box(a) * guide + box(b)


def dark_channel_prior(y: np.ndarray, kernel=None, patch: int = 15, omega: float = 0.95,
                       t0: float = 0.1, refine: bool = False) -> np.ndarray:
    """Dehazing by the dark channel prior (He, Sun and Tang, CVPR 2009).

    The airlight is the brightest input pixel among the 0.1% with the brightest dark channel;
    ``refine`` smooths the transmission with a guided filter (He et al., 2013) instead of
    soft matting.
    """
    dark = _dark_channel(y, patch)
    n = max(1, round(dark.size * 0.001))
    candidates = np.argpartition(dark.ravel(), -n)[-n:]
    flat = y.reshape(-1, 3)
    airlight = flat[candidates[np.argmax(flat[candidates].sum(1))]]
    airlight = np.maximum(airlight, 1e-3)
    t = 1 - omega * _dark_channel(y / airlight, patch)
    if refine:
        t = _guided_filter(y.mean(axis=2), t, radius=max(2 * patch, 8), eps=1e-3)
    t = np.clip(t, t0, 1)[..., None]
    return (y - airlight) / t + airlight


def dark_channel_guided(y: np.ndarray, kernel=None) -> np.ndarray:
    """Dark channel prior with the transmission refined by a guided filter."""
    return dark_channel_prior(y, refine=True)


def gamma_mean(y: np.ndarray, kernel=None, target: float = 0.45) -> np.ndarray:
    """Global gamma correction that maps the image's mean to ``target``."""
    m = float(np.clip(y.mean(), 1e-4, 0.9999))
    return np.clip(y, 0, 1) ** (np.log(target) / np.log(m))


def clahe(y: np.ndarray, kernel=None) -> np.ndarray:
    """Contrast-limited adaptive histogram equalisation (skimage defaults)."""
    return exposure.equalize_adapthist(np.clip(y, 0, 1))


def tv_chambolle(y: np.ndarray, kernel=None) -> np.ndarray:
    """Total-variation denoising (Chambolle, weight 0.05)."""
    return restoration.denoise_tv_chambolle(y, weight=0.05, channel_axis=-1)


def nlm_then_rl(y: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Non-local means, then Richardson-Lucy with the true (oracle) kernel."""
    return richardson_lucy(np.clip(nlm(y), 0, 1), kernel)


METHODS: dict[str, Method] = {
    "CBM3D": cbm3d,
    "BM3D (GAT)": bm3d_gat,
    "NLM": nlm,
    "wavelet": wavelet,
    "RL-30 (oracle kernel)": richardson_lucy,
    "Wiener (oracle kernel)": wiener,
    "median 3x3": median3,
    "streak opening": streak_opening,
    "dark channel": dark_channel_prior,
    "dark channel+GF": dark_channel_guided,
    "gamma mean->0.45": gamma_mean,
    "CLAHE": clahe,
    "TV Chambolle 0.05": tv_chambolle,
    "NLM+RL-30 (oracle kernel)": nlm_then_rl,
}
"""Every baseline by the name printed in the table."""

DENOISERS: tuple[str, ...] = ("CBM3D",) if HAVE_BM3D else ("NLM", "wavelet") if HAVE_PYWT else ("NLM",)
"""The noise rows' baselines: CBM3D where `bm3d` is installed, else NLM and wavelet shrinkage
(wavelet only where PyWavelets is installed)."""


def missing_notes() -> list[str]:
    """One line per optional package whose absence changes the baselines."""
    notes = []
    if not HAVE_BM3D:
        notes.append("bm3d is not installed: noise rows use skimage NLM" + (" and wavelet" if HAVE_PYWT else "")
                     + " instead of CBM3D")
    if not HAVE_PYWT:
        notes.append("PyWavelets is not installed: no wavelet baseline; noise level by a Haar MAD estimate")
    return notes
