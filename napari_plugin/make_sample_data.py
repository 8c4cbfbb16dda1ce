"""Build the plug-in's microscopy sample from the W2S training data (run once; the result is committed).

    .venv/bin/python napari_plugin/make_sample_data.py [--data ../shared/data]

Field 040 (a training field; W2S fields 081-120 are the held-out test set and are never used),
channels 0-2, the central 256 x 256 pixels: the single noisy frame and the 400-frame average.
Stored as 8-bit (the W2S release here is 8-bit) in one zlib-compressed TIFF; the sample
loader widens it to uint16 exactly (x 257).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

FIELD, CROP = 40, (slice(128, 384), slice(128, 384))
OUT = Path(__file__).resolve().parent / "restora_napari" / "data" / "w2s_fov040_crop.tif"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    args = parser.parse_args()
    folder = args.data / "train" / "w2s"
    stack = np.stack([
        np.stack([np.asarray(Image.open(folder / kind / f"fov{FIELD:03d}_ch{c}.png"))[CROP] for c in range(3)])
        for kind in ("noisy", "clean")
    ])
    assert stack.dtype == np.uint8 and stack.shape == (2, 3, 256, 256), (stack.dtype, stack.shape)
    tifffile.imwrite(OUT, stack, compression="zlib", metadata={"axes": "QCYX"},
                     description="W2S field 040, channels 0-2, crop [128:384, 128:384]; Q: noisy, clean")
    print(f"wrote {OUT} ({OUT.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
