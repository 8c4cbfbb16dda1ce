"""The shipped samples: small, offline, and what the menu promises."""

from __future__ import annotations

from importlib.resources import files

import numpy as np
from napari_support import require_packages

require_packages("napari")

from restora_napari._sample_data import noisy_microscopy, noisy_photo  # noqa: E402


def test_microscopy_sample():
    layers = noisy_microscopy()
    assert [kw["name"] for _, kw, _ in layers] == ["w2s clean (400-frame average)", "w2s noisy"]
    for data, kwargs, kind in layers:
        assert kind == "image" and data.dtype == np.uint16 and data.shape == (3, 256, 256)
        assert kwargs["axis_labels"] == ("c", "y", "x")
        assert np.all(data % 257 == 0)  # widened exactly from the 8-bit release
    noisy, clean = layers[1][0].astype(float), layers[0][0].astype(float)
    assert np.mean(np.abs(np.diff(noisy, axis=-1))) > 1.5 * np.mean(np.abs(np.diff(clean, axis=-1)))  # really noisy


def test_photo_sample():
    [(data, kwargs, kind)] = noisy_photo()
    assert kind == "image" and kwargs["rgb"] and data.dtype == np.uint8 and data.shape == (384, 384, 3)


def test_shipped_files_are_small():
    folder = files("restora_napari").joinpath("data")
    sizes = {p.name: len(p.read_bytes()) for p in folder.iterdir() if p.name.endswith(".tif")}
    assert sizes and all(size < 1_000_000 for size in sizes.values()), sizes
