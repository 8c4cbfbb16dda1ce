"""Test helpers shared by several test modules."""

from __future__ import annotations

import numpy as np


def smooth_image(rng: np.random.Generator, shape: tuple[int, ...], dtype=np.uint8) -> np.ndarray:
    """A smooth, natural-ish test image (noise alone would be a degraded image)."""
    h, w = shape[:2]
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    base = 0.5 + 0.3 * np.sin(6 * xx + rng.uniform(0, 6)) * np.cos(4 * yy)
    img = np.repeat(base[..., None], shape[2] if len(shape) == 3 else 1, axis=2)
    img = img + 0.1 * rng.random((1, 1, img.shape[2]))
    img = np.clip(img, 0, 1)
    img = img if len(shape) == 3 else img[..., 0]
    if np.dtype(dtype).kind == "f":
        return img.astype(dtype)
    return np.rint(img * np.iinfo(dtype).max).astype(dtype)
