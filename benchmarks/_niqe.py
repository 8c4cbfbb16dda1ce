"""NIQE (Mittal, Soundararajan and Bovik, "Making a completely blind image quality analyzer",
IEEE SPL 2013), written from the paper for the ``iqa`` benchmark.

The pristine model (mean and covariance of 36 natural-scene features and the 7x7 Gaussian
window) is the one estimated by the authors' MATLAB release; it ships inside the PyPI source
distribution of ``basicsr`` (``basicsr/metrics/niqe_pris_params.npz``). :func:`pristine_params`
reads it from that sdist, which ``--fetch-niqe`` downloads once into the benchmark cache
(checked against its SHA-256), so that nothing is downloaded behind the user's back.
As in the MATLAB release: the Y channel (BT.601, rounded), 96x96 blocks without overlap, two
scales (the second by MATLAB's antialiased bicubic ``imresize``). Lower is better.
"""

from __future__ import annotations

import hashlib
import io
import math
import tarfile
import urllib.request
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy.ndimage import convolve
from scipy.special import gamma

SDIST_URL = ("https://files.pythonhosted.org/packages/86/41/00a6b000f222f0fa4c6d9e1d6dcc9811a374cabb8abb9d408b77de39648c/"
             "basicsr-1.4.2.tar.gz")
SDIST_SHA256 = "b89b595a87ef964cda9913b4d99380ddb6554c965577c0c10cb7b78e31301e87"
PARAMS_MEMBER = "basicsr-1.4.2/basicsr/metrics/niqe_pris_params.npz"
PARAMS_SHA256 = "2a7c182a68c9e7f1b2e2e5ec723279d6f65d912b6fcaf37eb2bf03d7367c4296"
BLOCK = 96


def fetch_sdist(cache: Path) -> Path:
    """Download basicsr's sdist into ``cache`` (once) and check its SHA-256."""
    path = cache / SDIST_URL.rsplit("/", 1)[1]
    if not path.exists():
        cache.mkdir(parents=True, exist_ok=True)
        data = urllib.request.urlopen(SDIST_URL, timeout=120).read()
        if hashlib.sha256(data).hexdigest() != SDIST_SHA256:
            raise RuntimeError(f"{SDIST_URL}: SHA-256 mismatch, not saved")
        tmp = path.with_suffix(".part")
        tmp.write_bytes(data)
        tmp.replace(path)
    return path


@lru_cache(maxsize=2)
def pristine_params(sdist: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mu (36,), cov (36, 36), window (7, 7)) of the pristine model, read from basicsr's sdist."""
    with tarfile.open(sdist) as tar:
        raw = tar.extractfile(PARAMS_MEMBER).read()
    if hashlib.sha256(raw).hexdigest() != PARAMS_SHA256:
        raise RuntimeError(f"{sdist}: {PARAMS_MEMBER} has an unexpected SHA-256")
    d = np.load(io.BytesIO(raw), allow_pickle=False)
    return d["mu_pris_param"].ravel(), d["cov_pris_param"], d["gaussian_window"]


# -- MATLAB-compatible helpers -------------------------------------------------------------------
def luma(rgb: np.ndarray) -> np.ndarray:
    """BT.601 Y in [16, 235] of uint8-range RGB (H, W, 3), as MATLAB's rgb2ycbcr, rounded."""
    y = rgb.astype(np.float64) @ np.array([65.481, 128.553, 24.966]) / 255 + 16
    return np.round(y)


def _cubic(x: np.ndarray) -> np.ndarray:
    a = np.abs(x)
    return ((1.5 * a**3 - 2.5 * a**2 + 1) * (a <= 1)
            + (-0.5 * a**3 + 2.5 * a**2 - 4 * a + 2) * ((a > 1) & (a <= 2)))


def _resize_matrix(n: int, scale: float) -> np.ndarray:
    """(ceil(n*scale), n) matrix of MATLAB's antialiased bicubic resampling, symmetric borders."""
    m = math.ceil(n * scale)
    width = 4 / scale if scale < 1 else 4
    out = np.zeros((m, n))
    for i in range(m):
        u = (i + 1) / scale + 0.5 * (1 - 1 / scale)  # 1-based input coordinate, as MATLAB
        left = math.floor(u - width / 2)
        idx = np.arange(left, left + math.ceil(width) + 2)
        w = _cubic((u - idx) * scale) * scale if scale < 1 else _cubic(u - idx)
        w = w / w.sum()
        j = idx - 1  # 0-based, mirrored at the borders
        j = np.where(j < 0, -j - 1, j)
        j = np.where(j >= n, 2 * n - j - 1, j)
        np.add.at(out[i], j, w)
    return out


def imresize_half(img: np.ndarray) -> np.ndarray:
    """MATLAB ``imresize(img, 0.5)`` (bicubic, antialiased) of a 2-D float image."""
    return _resize_matrix(img.shape[0], 0.5) @ img @ _resize_matrix(img.shape[1], 0.5).T


# -- features ------------------------------------------------------------------------------------
_GAMMAS = np.arange(0.2, 10.001, 0.001)
_R_GAM = gamma(2 / _GAMMAS) ** 2 / (gamma(1 / _GAMMAS) * gamma(3 / _GAMMAS))


def _aggd(block: np.ndarray) -> tuple[float, float, float]:
    """Asymmetric generalised Gaussian fit (moment matching): (alpha, beta_left, beta_right)."""
    b = block.ravel()
    left = np.sqrt(np.mean(b[b < 0] ** 2))
    right = np.sqrt(np.mean(b[b > 0] ** 2))
    g = left / right
    r = np.mean(np.abs(b)) ** 2 / np.mean(b**2)
    r_norm = r * (g**3 + 1) * (g + 1) / (g**2 + 1) ** 2
    alpha = _GAMMAS[np.argmin((_R_GAM - r_norm) ** 2)]
    k = np.sqrt(gamma(1 / alpha) / gamma(3 / alpha))
    return alpha, left * k, right * k


def _block_features(block: np.ndarray) -> list[float]:
    alpha, bl, br = _aggd(block)
    feats = [alpha, (bl + br) / 2]
    for shift in ((0, 1), (1, 0), (1, 1), (1, -1)):
        alpha, bl, br = _aggd(block * np.roll(block, shift, axis=(0, 1)))
        mean = (br - bl) * gamma(2 / alpha) / gamma(1 / alpha)
        feats += [alpha, mean, bl, br]
    return feats


def niqe(rgb: np.ndarray, params: tuple[np.ndarray, np.ndarray, np.ndarray]) -> float:
    """NIQE of a uint8-range RGB (H, W, 3) image (at least 192x192); lower is better."""
    mu_p, cov_p, window = params
    img = luma(rgb)
    nh, nw = img.shape[0] // BLOCK, img.shape[1] // BLOCK
    if nh * nw < 2:
        raise ValueError(f"NIQE needs at least two {BLOCK}x{BLOCK} blocks, got an image of {rgb.shape[:2]}")
    img = img[: nh * BLOCK, : nw * BLOCK]
    per_scale = []
    for scale in (1, 2):
        mu = convolve(img, window, mode="nearest")
        sigma = np.sqrt(np.abs(convolve(img**2, window, mode="nearest") - mu**2))
        mscn = (img - mu) / (sigma + 1)
        b = BLOCK // scale
        per_scale.append(np.array([_block_features(mscn[i * b:(i + 1) * b, j * b:(j + 1) * b])
                                   for j in range(nw) for i in range(nh)]))
        if scale == 1:
            img = imresize_half(img / 255) * 255
    feats = np.concatenate(per_scale, axis=1)
    mu_d = np.nanmean(feats, axis=0)
    cov_d = np.cov(feats[~np.isnan(feats).any(axis=1)], rowvar=False)
    d = mu_p - mu_d
    return float(np.sqrt(d @ np.linalg.pinv((cov_p + cov_d) / 2) @ d))
