"""Open layered GIMP ``.xcf`` files: each GIMP layer becomes a napari Image layer.

The core reads the file (`restora.io._layers.read_xcf`: 8-bit XCF of any version, GIMP 3's
included; clear refusals naming the file's XCF version and precision and what to do). This
module only turns its layers into napari's layer data.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import numpy as np
from restora.io._layers import XcfError, xcf_header
from restora.io._layers import read_xcf as read_layers

LayerData = tuple[Any, dict, str]

__all__ = ["XcfError", "get_reader", "read_xcf"]


def get_reader(path: str | list[str]) -> Callable[[str | list[str]], list[LayerData]] | None:
    """napari's reader hook: `read_xcf` for ``.xcf`` paths, else None (another reader may take it)."""
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    if not paths or not all(str(p).lower().endswith(".xcf") for p in paths):
        return None
    return read_xcf


def read_xcf(path: str | list[str]) -> list[LayerData]:
    """Read one or more ``.xcf`` files; each visible or hidden GIMP layer becomes an Image layer.

    Layer offsets become ``translate``, GIMP's opacity and visibility are kept, and the stack
    order is GIMP's (the top GIMP layer is added last, so it is on top in napari too).
    Group layers are flattened: their member layers are read, the group itself is not.

    Raises
    ------
    XcfError
        A file that is not XCF, or whose version, precision or colour mode cannot be read
        (a ValueError; napari shows its message).
    """
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    out: list[LayerData] = []
    for p in paths:
        out.extend(_read_one(Path(p)))
    return out


def _read_one(path: Path) -> list[LayerData]:
    _, layers = read_layers(path)
    header = xcf_header(path)
    out: list[LayerData] = []
    for layer in layers:  # top first
        data = layer.image
        if data.shape[2] == 1:
            data = data[..., 0]
        elif data.shape[2] == 2:  # grey + alpha: napari has no grey-alpha mode
            data = np.concatenate([np.repeat(data[..., :1], 3, axis=2), data[..., 1:]], axis=2)
        rgb = data.ndim == 3
        kwargs = {
            "name": layer.name or path.stem,
            "rgb": rgb,
            "translate": (float(layer.y), float(layer.x)),
            "opacity": layer.opacity,
            "visible": layer.visible,
            "blending": "translucent" if rgb and data.shape[2] == 4 else "translucent_no_depth",
            "metadata": {"xcf": {"file": str(path), "version": header.version,
                                 "version_number": header.version_number, "precision": header.precision,
                                 "layer": layer.name}},
        }
        out.append((data, kwargs, "image"))
    return out[::-1]  # napari puts the last added layer on top
