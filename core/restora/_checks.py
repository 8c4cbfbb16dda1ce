"""Errors and input checks. Every error says what arrived and what to do."""

from __future__ import annotations

import numpy as np

from ._names import DEGRADATIONS


class RestoraError(ValueError):
    """Base class of Restora's errors (a ValueError, so plain ``except ValueError`` catches it)."""


class ImageError(RestoraError):
    """An image that Restora cannot process: wrong shape, dtype or values."""


class WeightsError(RestoraError):
    """Weights that are missing, corrupt or of an unknown architecture."""


class ImageFileError(RestoraError):
    """A file that cannot be read or written as an image."""


SUPPORTED_DTYPES = (np.uint8, np.uint16, np.float32, np.float64)
MIN_SIZE = 4  # the network downsamples twice; smaller planes carry no usable structure


def check_image_values(image: np.ndarray, floats_in_unit_range: bool = True) -> None:
    """Check type, dtype, emptiness and values of an image or stack; raise `ImageError`.

    ``floats_in_unit_range=False`` accepts floats of any finite range (the caller maps them
    with ``in_range="image"`` or ``(lo, hi)``).
    """
    if not isinstance(image, np.ndarray):
        raise ImageError(f"expected a numpy array, got {type(image).__name__}")
    if image.dtype == object or image.dtype.type not in SUPPORTED_DTYPES:
        raise ImageError(
            f"unsupported dtype {image.dtype}; use uint8, uint16, float32 or float64 (floats in [0, 1])"
        )
    if image.size == 0:
        raise ImageError(f"image is empty (shape {image.shape})")
    if image.dtype.kind == "f":
        if not np.isfinite(image).all():
            raise ImageError("image contains NaN or infinite values")
        lo, hi = float(image.min()), float(image.max())
        if floats_in_unit_range and (lo < -1e-3 or hi > 1 + 1e-3):
            raise ImageError(
                f"float image has values in [{lo:.4g}, {hi:.4g}]; float images must lie in [0, 1], "
                "or pass in_range='image' (or (lo, hi)) to map their own range"
            )


def check_plane_shape(shape: tuple[int, ...]) -> None:
    """Check an (H, W) or (H, W, C) plane shape; raise `ImageError` naming the problem."""
    if len(shape) not in (2, 3):
        raise ImageError(
            f"expected (H, W) or (H, W, C), got shape {shape}; name stack axes with axes=, e.g. axes='ZYX'"
        )
    if len(shape) == 3 and shape[2] not in (1, 3, 4):
        raise ImageError(
            f"last axis has {shape[2]} channels; expected 1, 3 or 4 (grey, RGB, RGBA). "
            "For a stack, pass axes=, e.g. axes='ZYX'"
        )
    h, w = shape[:2]
    if h < MIN_SIZE or w < MIN_SIZE:
        raise ImageError(f"image is {h}x{w} pixels; at least {MIN_SIZE}x{MIN_SIZE} is needed")


def check_degradations(degradations: str | list[str] | tuple[str, ...]) -> tuple[str, ...] | None:
    """Normalise the ``degradations`` argument: None means "auto", else a tuple of known names."""
    if isinstance(degradations, str):
        if degradations == "auto":
            return None
        degradations = [d.strip() for d in degradations.split(",") if d.strip()]
    names = tuple(degradations)
    unknown = [d for d in names if d not in DEGRADATIONS]
    if unknown or not names:
        raise RestoraError(
            f"unknown degradation(s) {unknown or names!r}; choose 'auto' or from {', '.join(DEGRADATIONS)}"
        )
    return names
