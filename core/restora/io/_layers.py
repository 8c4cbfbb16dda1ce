"""Layered files: GIMP ``.xcf`` read through gimpformats, OpenRaster ``.ora`` written with the
standard library and Pillow.

gimpformats is an optional dependency (``pip install "restora[gimp]"``); importing this module
does not need it. Layer groups are flattened into the list of their pixel layers.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import tempfile
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import quoteattr

import numpy as np
from PIL import Image

from .._checks import ImageFileError

XCF_MAGIC = b"gimp xcf "
_PATCH_LOCK = threading.Lock()


@dataclass
class Layer:
    """One pixel layer: uint8 (H, W, C) with C = 1 (grey), 2 (grey + alpha), 3 or 4; its name,
    offset in the canvas, visibility and opacity in [0, 1]."""

    name: str
    image: np.ndarray
    x: int = 0
    y: int = 0
    visible: bool = True
    opacity: float = 1.0


def is_xcf(path: str | os.PathLike) -> bool:
    """Whether the file starts like a GIMP XCF file (whatever its suffix)."""
    try:
        with open(path, "rb") as f:
            return f.read(len(XCF_MAGIC)) == XCF_MAGIC
    except OSError:
        return False


@contextlib.contextmanager
def _tolerant_properties():
    """Let gimpformats skip XCF properties it does not know.

    GIMP 3.0 writes properties newer than gimpformats' table (e.g. 42, the layer's
    visibility lock), and gimpformats raises on them instead of skipping them. Every XCF
    property carries its own length, so skipping one is what the format intends; it only
    drops editing state, never pixels.
    """
    from gimpformats import GimpIOBase as base

    known = len(list(base.ImageProperties))
    original = base.GimpIOBase._propertyDecode

    def decode(self, prop, data):
        if prop >= known:
            return 0
        return original(self, prop, data)

    with _PATCH_LOCK:
        base.GimpIOBase._propertyDecode = decode
        try:
            yield
        finally:
            base.GimpIOBase._propertyDecode = original


class XcfError(ImageFileError):
    """A GIMP ``.xcf`` file that cannot be read; the message names the file, its XCF version and
    precision when known, and what to do instead."""


# GIMP's precision codes (devel-docs/xcf.txt): 100 * kind + 0 (linear), 50 (non-linear) or 75
# (perceptual, GIMP 3). Development versions differ: version 4 numbers them 0-4, and versions
# 5-6 number the floats 400-550 (16- and 32-bit) instead of 500-650.
_PRECISION_V4 = {0: 150, 1: 250, 2: 300, 3: 500, 4: 600}
_PRECISION_V5_FLOAT = {400: 500, 450: 550, 500: 600, 550: 650}
_PRECISION_KIND = {1: "8-bit integer", 2: "16-bit integer", 3: "32-bit integer", 5: "16-bit float",
                   6: "32-bit float", 7: "64-bit float"}
_PRECISION_TRC = {0: " (linear)", 50: "", 75: " (perceptual)"}


@dataclass(frozen=True)
class XcfHeader:
    """What the first bytes of an XCF file say.

    Attributes
    ----------
    version : str
        The version as written: ``"file"`` (version 0) or ``"v011"``.
    version_number : int
        The version as a number (0 for ``"file"``).
    base_type : int
        0 RGB, 1 grey, 2 indexed.
    code : int
        The precision code as stored (numbered differently in versions 4-6); 150 (8-bit) for
        files older than version 4, which have none.
    """

    version: str
    version_number: int
    base_type: int
    code: int

    @property
    def precision_code(self) -> int | None:
        """The precision in GIMP's current numbering (100/150/175: 8-bit, 250: 16-bit
        non-linear, ...), or None if the code is not one GIMP writes."""
        code = self.code
        if self.version_number == 4:
            code = _PRECISION_V4.get(code)
        elif self.version_number in (5, 6) and code >= 400:
            code = _PRECISION_V5_FLOAT.get(code)
        if code is None or code // 100 not in _PRECISION_KIND or code % 100 not in _PRECISION_TRC:
            return None
        return code

    @property
    def precision(self) -> str:
        """The precision in words, e.g. ``"8-bit integer"`` or ``"16-bit float (linear)"``."""
        code = self.precision_code
        if code is None:
            return f"unknown precision code {self.code}"
        return _PRECISION_KIND[code // 100] + _PRECISION_TRC[code % 100]

    def describe(self) -> str:
        """``"XCF file version v011, 8-bit integer precision"``, for messages."""
        if self.precision_code is None:
            return f"XCF file version {self.version}, {self.precision}"
        return f"XCF file version {self.version}, {self.precision} precision"


def xcf_header(path: str | os.PathLike) -> XcfHeader:
    """Read the header of a GIMP ``.xcf`` file.

    Read here rather than taken from gimpformats, which decodes the precision code of
    version 5+ files one step off (it reads GIMP's 8-bit code 150 as 16-bit).

    Raises
    ------
    XcfError
        If the file is not an XCF, or its version or header is unreadable.
    """
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(64)
    if not head.startswith(XCF_MAGIC):
        raise XcfError(f"{path} is not a GIMP .xcf file (it does not start with {XCF_MAGIC!r})")
    # "gimp xcf file\0" or "gimp xcf vNNN\0", then width, height, base type and (version 4+) precision
    text, _, rest = head[len(XCF_MAGIC):].partition(b"\0")
    version = text.decode("ascii", "replace")
    if version == "file":
        number = 0
    elif version[:1] == "v" and version[1:].isdigit():
        number = int(version[1:])
    else:
        raise XcfError(f"{path} has an unreadable XCF version {version!r}; the file may be damaged")
    if len(rest) < (16 if number >= 4 else 12):
        raise XcfError(f"{path} is truncated (XCF file version {version}); the file may be damaged")
    base_type = int.from_bytes(rest[8:12], "big")
    code = int.from_bytes(rest[12:16], "big") if number >= 4 else 150
    return XcfHeader(version, number, base_type, code)


def _opacity(value) -> float:
    # PROP_OPACITY is an integer 0..255, the newer PROP_FLOAT_OPACITY a float 0..1
    if value is None:
        return 1.0
    value = value / 255 if isinstance(value, int) else float(value)
    return min(max(value, 0.0), 1.0)


def read_xcf(path: str | os.PathLike) -> tuple[tuple[int, int], list[Layer]]:
    """The canvas (height, width) and pixel layers of a GIMP ``.xcf`` file, top layer first.

    Reads 8-bit RGB and grey files of any XCF version, GIMP 3's included. Groups are
    flattened into their pixel layers.

    Raises
    ------
    XcfError
        If gimpformats is missing, the file is not an XCF, its precision or colour mode is one
        gimpformats cannot decode, or gimpformats fails on it. The message names the file, its
        XCF version and precision, and what to do instead (convert in GIMP, or export).
    """
    path = Path(path)
    if not path.is_file():
        raise XcfError(f"{path} does not exist; check the path")
    header = xcf_header(path)
    about = f"{path} ({header.describe()})"
    code = header.precision_code
    if code is None:
        raise XcfError(f"{about} is not a valid XCF file; re-save it in GIMP")
    if code // 100 != 1:
        raise XcfError(f"{about} is a high-bit-depth XCF, which gimpformats cannot decode; in GIMP, use "
                       "Image > Precision > 8 bit integer and save again, or export the layers as 16-bit TIFF")
    if header.base_type == 2:
        raise XcfError(f"{about} is in indexed colour mode, which gimpformats cannot decode (it gives palette "
                       "indices, not colours); in GIMP, use Image > Mode > RGB and save again")
    if header.base_type not in (0, 1):
        raise XcfError(f"{about} has an unknown colour mode ({header.base_type}); re-save it in GIMP")
    try:
        from gimpformats.gimpXcfDocument import GimpDocument
    except ImportError:
        raise XcfError(f"reading {path} needs gimpformats; pip install 'restora[gimp]'") from None
    layers = []
    try:
        with _tolerant_properties():
            doc = GimpDocument(str(path))
            canvas = (int(doc.height), int(doc.width))
            for raw in doc.raw_layers:
                if raw.isGroup:
                    continue
                pil = raw.image
                if pil is None or 0 in pil.size:
                    continue
                if pil.mode not in ("L", "LA", "RGB", "RGBA"):
                    raise XcfError(f"{about}: layer {raw.name!r} has mode {pil.mode}; "
                                   "convert the image to RGB or grey in GIMP")
                a = np.asarray(pil)
                layers.append(Layer(str(raw.name), a if a.ndim == 3 else a[..., None], int(raw.xOffset or 0),
                                    int(raw.yOffset or 0), bool(raw.visible), _opacity(raw.opacity)))
    except XcfError:
        raise
    except Exception as e:  # gimpformats raises RuntimeError, IndexError, struct.error, ...
        reason = (str(e).splitlines() or [type(e).__name__])[0]
        raise XcfError(f"{about} cannot be read by gimpformats ({type(e).__name__}: {reason}); export its "
                       "layers from GIMP as PNG, TIFF or OpenRaster (.ora) instead") from None
    if not layers:
        raise XcfError(f"{path} has no pixel layers")
    return canvas, layers


def safe_name(name: str) -> str:
    """A layer name usable in a file name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "layer"


def _rgba(layer: Layer) -> np.ndarray:
    a = layer.image
    if a.shape[2] in (1, 2):
        grey = np.repeat(a[..., :1], 3, axis=2)
        a = np.concatenate([grey, a[..., 1:]], axis=2) if a.shape[2] == 2 else grey
    if a.shape[2] == 3:
        a = np.dstack([a, np.full(a.shape[:2], 255, np.uint8)])
    return a


def composite(canvas: tuple[int, int], layers: list[Layer]) -> np.ndarray:
    """The visible layers (normal mode, with opacity) over a transparent canvas: uint8 RGBA."""
    h, w = canvas
    out = np.zeros((h, w, 4), np.float32)
    for layer in reversed(layers):  # bottom first
        if not layer.visible:
            continue
        src = _rgba(layer).astype(np.float32) / 255
        y0, x0 = max(layer.y, 0), max(layer.x, 0)
        y1, x1 = min(layer.y + src.shape[0], h), min(layer.x + src.shape[1], w)
        if y1 <= y0 or x1 <= x0:
            continue
        s = src[y0 - layer.y:y1 - layer.y, x0 - layer.x:x1 - layer.x]
        d = out[y0:y1, x0:x1]
        sa = s[..., 3:] * layer.opacity
        da = d[..., 3:]
        oa = sa + da * (1 - sa)
        rgb = np.where(oa > 0, (s[..., :3] * sa + d[..., :3] * da * (1 - sa)) / np.maximum(oa, 1e-8), 0)
        out[y0:y1, x0:x1] = np.concatenate([rgb, oa], axis=2)
    return np.clip(np.rint(out * 255), 0, 255).astype(np.uint8)


def _png_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(a)).save(buf, format="PNG")
    return buf.getvalue()


def write_ora(path: str | os.PathLike, canvas: tuple[int, int], layers: list[Layer], *,
              overwrite: bool = False) -> Path:
    """Write layers (top first) as an OpenRaster file, atomically.

    The file holds ``mimetype`` (stored first, uncompressed, as the format requires),
    ``stack.xml``, one PNG per layer, ``mergedimage.png`` and a thumbnail.
    """
    path = Path(path)
    if path.suffix.lower() != ".ora":
        raise ImageFileError(f"cannot write {path}: an OpenRaster file ends in .ora")
    if path.exists() and not overwrite:
        raise ImageFileError(f"{path} exists; pass --overwrite to replace it")
    if not path.parent.is_dir():
        raise ImageFileError(f"cannot write {path}: folder {path.parent} does not exist; create it first")
    h, w = canvas
    entries = []
    for i, layer in enumerate(layers):
        a = layer.image if layer.image.shape[2] in (3, 4) else _rgba(layer)
        src = f"data/layer{i:03d}.png"
        entries.append((src, _png_bytes(a if a.shape[2] != 1 else a[..., 0])))
    stack = "".join(
        f'  <layer name={quoteattr(layer.name)} src="data/layer{i:03d}.png" x="{layer.x}" y="{layer.y}" '
        f'opacity="{layer.opacity:.4f}" visibility="{"visible" if layer.visible else "hidden"}"/>\n'
        for i, layer in enumerate(layers))
    xml = (f'<?xml version="1.0" encoding="UTF-8"?>\n<image version="0.0.3" w="{w}" h="{h}">\n'
           f"<stack>\n{stack}</stack>\n</image>\n")
    merged = composite(canvas, layers)
    thumb = Image.fromarray(merged)
    thumb.thumbnail((256, 256))
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".ora")
        os.close(fd)
        with zipfile.ZipFile(tmp, "w") as z:
            z.writestr(zipfile.ZipInfo("mimetype"), "image/openraster", compress_type=zipfile.ZIP_STORED)
            z.writestr("stack.xml", xml, compress_type=zipfile.ZIP_DEFLATED)
            for src, data in entries:
                z.writestr(src, data, compress_type=zipfile.ZIP_STORED)  # PNG is compressed already
            z.writestr("mergedimage.png", _png_bytes(merged))
            z.writestr("Thumbnails/thumbnail.png", _png_bytes(np.asarray(thumb)))
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as e:
        raise ImageFileError(f"cannot write {path} ({e.strerror or e}); check that the folder is writable") from e
    finally:
        if tmp is not None and os.path.exists(tmp):
            with contextlib.suppress(OSError):
                os.remove(tmp)
    return path


def read_ora(path: str | os.PathLike) -> tuple[tuple[int, int], list[Layer]]:
    """Read an OpenRaster file written by `write_ora` (or GIMP, Krita, MyPaint): flat stacks only."""
    import xml.etree.ElementTree as ET

    path = Path(path)
    try:
        with zipfile.ZipFile(path) as z:
            root = ET.fromstring(z.read("stack.xml"))
            canvas = (int(root.get("h")), int(root.get("w")))
            layers = []
            for el in root.iter("layer"):
                with Image.open(io.BytesIO(z.read(el.get("src")))) as im:
                    a = np.asarray(im.convert("RGBA") if im.mode not in ("L", "LA", "RGB", "RGBA") else im)
                layers.append(Layer(el.get("name", ""), a if a.ndim == 3 else a[..., None],
                                    int(float(el.get("x", 0))), int(float(el.get("y", 0))),
                                    el.get("visibility", "visible") == "visible", float(el.get("opacity", 1))))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, ET.ParseError) as e:
        raise ImageFileError(f"{path} is not a readable OpenRaster file ({e})") from None
    return canvas, layers
