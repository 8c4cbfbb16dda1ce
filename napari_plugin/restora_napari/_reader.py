"""Open layered GIMP ``.xcf`` files: each GIMP layer becomes a napari Image layer.

Decoding is gimpformats'. It reads 8-bit-per-channel XCF files (GIMP's default precision);
files it cannot read (high bit depth, or a newer file version than it knows) are refused with
a message naming the file's version and precision and what to do instead.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Any, Callable

import numpy as np

LayerData = tuple[Any, dict, str]
_MAGIC = b"gimp xcf "


class XcfError(ValueError):
    """An .xcf file that cannot be opened, with the reason and what to do."""


def get_reader(path: str | list[str]) -> Callable[[str | list[str]], list[LayerData]] | None:
    """napari's reader hook: `read_xcf` for ``.xcf`` paths, else None (another reader may take it)."""
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    if not paths or not all(str(p).lower().endswith(".xcf") for p in paths):
        return None
    return read_xcf


# GIMP's precision codes (devel-docs/xcf.txt): version 4 numbers them 0-4; versions 5 on use
# 100 * kind + 50 for non-linear ("gamma") values. Only 8-bit integer can be read.
_PRECISION_V4 = {0: "8-bit integer", 1: "16-bit integer", 2: "32-bit integer", 3: "16-bit float", 4: "32-bit float"}
_PRECISION_KIND = {1: "8-bit integer", 2: "16-bit integer", 3: "32-bit integer", 5: "16-bit float",
                   6: "32-bit float", 7: "64-bit float"}


def _header(path: Path) -> tuple[str, int, str]:
    """The file version text ("v011"), its number and the precision, from the first bytes.

    Read here rather than from gimpformats, which decodes the precision code of version 5+
    files one step off (it reads GIMP's 8-bit code 150 as 16-bit).
    """
    with open(path, "rb") as f:
        head = f.read(40)
    if not head.startswith(_MAGIC):
        raise XcfError(f"{path.name} is not a GIMP .xcf file (it does not start with 'gimp xcf')")
    text, _, rest = head[len(_MAGIC):].partition(b"\0")
    text = text.decode("ascii", "replace")
    if text == "file":
        number = 0
    else:
        try:
            number = int(text.lstrip("v"))
        except ValueError:
            raise XcfError(f"{path.name} has an unreadable XCF version {text!r}; the file may be damaged") from None
    if number < 4:
        return text, number, "8-bit integer"
    if len(rest) < 16:
        raise XcfError(f"{path.name} is truncated (XCF version {text}); the file may be damaged")
    code = struct.unpack(">I", rest[12:16])[0]
    if number == 4:
        precision = _PRECISION_V4.get(code, f"unknown precision code {code}")
    else:
        precision = _PRECISION_KIND.get(code // 100, f"unknown precision code {code}")
        if code // 100 in _PRECISION_KIND:
            precision += " (linear)" if code % 100 == 0 else ""
    return text, number, precision


def _unsupported(path: Path, version: str, why: str) -> XcfError:
    return XcfError(
        f"{path.name} (XCF file version {version}) is not supported: {why}. gimpformats reads 8-bit XCF files "
        "(GIMP's 8-bit integer precision); in GIMP, use Image > Precision > 8 bit integer and save again, "
        "or export the layers as TIFF"
    )


def read_xcf(path: str | list[str]) -> list[LayerData]:
    """Read one or more ``.xcf`` files; each visible or hidden GIMP layer becomes an Image layer.

    Layer offsets become ``translate``, GIMP's opacity and visibility are kept, and the stack
    order is GIMP's (the top GIMP layer is added last, so it is on top in napari too).
    Group layers are flattened: their member layers are read, the group itself is not.

    Raises
    ------
    XcfError
        A file that is not XCF, or whose version or precision gimpformats cannot read.
    """
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    out: list[LayerData] = []
    for p in paths:
        out.extend(_read_one(Path(p)))
    return out


def _read_one(path: Path) -> list[LayerData]:
    from gimpformats.gimpXcfDocument import GimpDocument

    version, number, precision = _header(path)
    if not precision.startswith("8-bit integer"):
        raise _unsupported(path, version, f"{precision} precision")
    try:
        doc = GimpDocument(str(path))
    except Exception as e:  # gimpformats raises plain RuntimeError/IndexError/struct.error on what it cannot read
        raise _unsupported(path, version, f"gimpformats could not decode it: {e}") from None
    out: list[LayerData] = []
    for layer in doc.raw_layers:  # GIMP stores the top layer first
        if layer.isGroup:
            continue
        try:
            image = layer.image
            if image is not None and image.mode not in ("L", "LA", "RGB", "RGBA"):
                image = image.convert("RGBA")  # indexed colour
            data = np.asarray(image) if image is not None else None
        except Exception as e:
            raise _unsupported(path, version, f"layer {layer.name!r} could not be decoded: {e}") from None
        if data is None or data.size == 0:
            continue
        rgb = data.ndim == 3
        if data.ndim == 3 and data.shape[2] == 2:  # grey + alpha: napari has no grey-alpha mode
            data = np.concatenate([np.repeat(data[..., :1], 3, axis=2), data[..., 1:]], axis=2)
        # PROP_OPACITY is an integer 0..255, the newer PROP_FLOAT_OPACITY a float 0..1
        opacity = layer.opacity / 255.0 if isinstance(layer.opacity, int) else float(layer.opacity)
        kwargs = {
            "name": layer.name or path.stem,
            "rgb": rgb,
            "translate": (float(layer.yOffset or 0), float(layer.xOffset or 0)),
            "opacity": max(0.0, min(1.0, opacity)),
            "visible": bool(layer.visible),
            "blending": "translucent" if rgb and data.shape[2] == 4 else "translucent_no_depth",
            "metadata": {"xcf": {"file": str(path), "version": version, "version_number": number,
                                 "precision": precision, "layer": layer.name}},
        }
        out.append((data, kwargs, "image"))
    if not out:
        raise XcfError(f"{path.name} has no pixel layers to open")
    return out[::-1]  # napari puts the last added layer on top
