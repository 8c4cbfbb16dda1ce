"""Sample data shipped in the packages (no network): try Restora in one click.

- `noisy_microscopy`: real widefield fluorescence, W2S field 040 (3 channels, 256 x 256),
  one noisy frame as uint16, with the 400-frame average beside it (hidden) to compare;
- `noisy_photo`: the core's bundled photograph with Gaussian noise (sigma 25/255), RGB uint8.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any

import numpy as np

LayerData = tuple[Any, dict, str]
_W2S = "w2s_fov040_crop.tif"
_W2S_NOTE = ("W2S widefield fluorescence (Zhou et al., 2020), field 040, channels 0-2, central 256 x 256 crop; "
             "8-bit release widened to uint16 (x 257)")


def noisy_microscopy() -> list[LayerData]:
    """A noisy 3-channel fluorescence stack (C, Y, X) in uint16, and its 400-frame average."""
    import tifffile

    with files("restora_napari").joinpath("data", _W2S).open("rb") as f:
        stack = tifffile.imread(f)  # (2, 3, 256, 256) uint8: noisy, clean
    noisy, clean = (s.astype(np.uint16) * np.uint16(257) for s in stack)
    common = {"axis_labels": ("c", "y", "x"), "colormap": "gray"}
    return [
        (clean, dict(common, name="w2s clean (400-frame average)", visible=False,
                     metadata={"sample": _W2S_NOTE + "; the average of 400 frames, for comparison"}), "image"),
        (noisy, dict(common, name="w2s noisy", metadata={"sample": _W2S_NOTE + "; a single noisy frame"}), "image"),
    ]


def noisy_photo() -> list[LayerData]:
    """The core's sample photograph with Gaussian noise, RGB uint8 (384 x 384)."""
    from PIL import Image

    with files("restora").joinpath("data", "sample_degraded.png").open("rb") as f:
        image = np.asarray(Image.open(f).convert("RGB"))
    return [(image, {"name": "noisy photo", "rgb": True,
                     "metadata": {"sample": "NASA portrait of Eileen Collins (public domain, via scikit-image), "
                                            "Gaussian noise sigma 25/255"}}, "image")]
