"""The one place where image values change type: to float32 in [0, 1] and back.

Rules (explicit, never guessed from the data unless asked):
- uint8 maps 0..255 and uint16 maps 0..65535 to 0..1 (``in_range="dtype"``);
- floats are taken as they are and must lie in [0, 1] (with ``in_range="dtype"``);
- ``in_range="image"`` maps the image's own min..max to 0..1 (for 12-bit data in uint16,
  or dim microscopy), ``in_range=(lo, hi)`` maps lo..hi; the way back inverts the same map.
"""

from __future__ import annotations

from typing import Union

import numpy as np

from ._checks import ImageError

InRange = Union[str, tuple[float, float]]


def value_range(image: np.ndarray, in_range: InRange = "dtype") -> tuple[float, float]:
    """The (lo, hi) input values that map to 0 and 1."""
    if isinstance(in_range, str):
        if in_range == "dtype":
            if image.dtype.kind == "f":
                return 0.0, 1.0
            return 0.0, float(np.iinfo(image.dtype).max)
        if in_range == "image":
            lo, hi = float(image.min()), float(image.max())
            return (lo, hi) if hi > lo else (lo, lo + 1.0)
        raise ImageError(f"in_range must be 'dtype', 'image' or (lo, hi), got {in_range!r}")
    lo, hi = (float(v) for v in in_range)
    if not hi > lo:
        raise ImageError(f"in_range=(lo, hi) needs hi > lo, got {in_range!r}")
    return lo, hi


def to_float(image: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Map ``image`` from [lo, hi] to float32 in [0, 1] (clipped)."""
    out = (image.astype(np.float32) - np.float32(lo)) / np.float32(hi - lo)
    return np.clip(out, 0, 1, out=out)


def from_float(image: np.ndarray, dtype: np.dtype, lo: float, hi: float) -> np.ndarray:
    """Map float ``image`` in [0, 1] back to [lo, hi] in ``dtype`` (rounded, clipped to the dtype)."""
    out = np.clip(image, 0, 1).astype(np.float64) * (hi - lo) + lo
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return out.astype(dtype)
    info = np.iinfo(dtype)
    return np.clip(np.rint(out), info.min, info.max).astype(dtype)
