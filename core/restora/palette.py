"""Colours of the degradation map, shared by the CLI and every frontend."""

from __future__ import annotations

import numpy as np

from ._names import SEGMENT_CLASSES

SEGMENT_COLOURS: dict[str, tuple[int, int, int]] = {
    "clean": (40, 40, 40),
    "noise": (230, 25, 75),
    "blur": (60, 180, 75),
    "rain": (0, 130, 200),
    "haze": (200, 200, 200),
    "low_light": (145, 30, 180),
    "jpeg": (245, 130, 48),
}


def colourize(labels: np.ndarray) -> np.ndarray:
    """uint8 RGB image (labels' shape + (3,)) of a label map indexing ``SEGMENT_CLASSES``."""
    lut = np.array([SEGMENT_COLOURS[c] for c in SEGMENT_CLASSES], dtype=np.uint8)
    if labels.size and int(labels.max()) >= len(lut):
        raise ValueError(f"label {int(labels.max())} is not a class; there are {len(lut)} classes")
    return lut[labels]


def with_legend(rgb: np.ndarray, present: list[int] | None = None) -> np.ndarray:
    """The colour map with a legend strip (one swatch and name per class) on its right."""
    from PIL import Image, ImageDraw

    h, w = rgb.shape[:2]
    classes = list(range(len(SEGMENT_CLASSES))) if present is None else present
    row = 18
    strip = Image.new("RGB", (110, max(h, row * len(classes) + 8)), (255, 255, 255))
    draw = ImageDraw.Draw(strip)
    for i, c in enumerate(classes):
        y = 4 + i * row
        draw.rectangle([6, y, 20, y + 12], fill=SEGMENT_COLOURS[SEGMENT_CLASSES[c]], outline=(0, 0, 0))
        draw.text((26, y), SEGMENT_CLASSES[c], fill=(0, 0, 0))
    canvas = Image.new("RGB", (w + strip.width, max(h, strip.height)), (255, 255, 255))
    canvas.paste(Image.fromarray(rgb), (0, 0))
    canvas.paste(strip, (w, 0))
    return np.asarray(canvas)
