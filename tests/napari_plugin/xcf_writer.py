"""A small XCF writer for the reader's tests, written from GIMP's spec (devel-docs/xcf.txt).

It writes what GIMP writes for simple files: an image header with the precision code, the
compression property, and layers (name, opacity, visibility, offsets) whose pixels sit in
64 x 64 tiles, uncompressed or RLE-compressed per channel. Pointers are 32-bit before
version 11 and 64-bit from it.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

PROP_END, PROP_OPACITY, PROP_VISIBLE, PROP_OFFSETS, PROP_COMPRESSION = 0, 6, 8, 15, 17


class _Buf:
    def __init__(self, version: int) -> None:
        self.b = bytearray()
        self.ptr = ">Q" if version >= 11 else ">I"

    def u32(self, v: int) -> None:
        self.b += struct.pack(">I", v)

    def i32(self, v: int) -> None:
        self.b += struct.pack(">i", v)

    def pointer(self, v: int) -> int:
        """Write a pointer; return where it sits so it can be patched."""
        at = len(self.b)
        self.b += struct.pack(self.ptr, v)
        return at

    def patch(self, at: int, v: int) -> None:
        struct.pack_into(self.ptr, self.b, at, v)

    def string(self, s: str) -> None:
        raw = s.encode() + b"\0"
        self.u32(len(raw))
        self.b += raw

    def prop(self, kind: int, payload: bytes) -> None:
        self.u32(kind)
        self.u32(len(payload))
        self.b += payload


def _rle(channel: bytes) -> bytes:
    """GIMP's RLE: runs of identical bytes, else literal chunks (short and long forms)."""
    out, i, n = bytearray(), 0, len(channel)
    while i < n:
        j = i
        while j < n and channel[j] == channel[i] and j - i < 0xFFFF:
            j += 1
        run = j - i
        if run >= 3:
            if run <= 127:
                out += bytes([run - 1, channel[i]])
            else:
                out += bytes([127, run >> 8, run & 0xFF, channel[i]])
            i = j
            continue
        j = i
        while j < n and j - i < 0xFFFF and not (j + 2 < n and channel[j] == channel[j + 1] == channel[j + 2]):
            j += 1
        lit = channel[i:j]
        if len(lit) <= 127:
            out += bytes([256 - len(lit)]) + lit
        else:
            out += bytes([128, len(lit) >> 8, len(lit) & 0xFF]) + lit
        i = j
    return bytes(out)


def write_xcf(path: Path, layers: list[dict], *, width: int, height: int, version: int = 3,
              precision: int | None = None, compression: int = 1, grey: bool = False,
              bytes_per_channel: int = 1, extra_image_props: list[tuple[int, bytes]] = ()) -> Path:
    """Write ``layers`` (top first), each a dict with ``name`` and ``data`` ((H, W) or (H, W, C)
    uint8, C in 1..4) and optional ``offset`` (x, y), ``opacity`` (0..255), ``visible``.

    ``bytes_per_channel`` > 1 writes high-bit-depth tiles and ``extra_image_props`` adds
    image properties (both for the "unsupported" tests).
    """
    buf = _Buf(version)
    buf.b += b"gimp xcf " + (b"file" if version == 0 else f"v{version:03d}".encode()) + b"\0"
    buf.u32(width)
    buf.u32(height)
    buf.u32(1 if grey else 0)
    if version >= 4:
        buf.u32(150 if precision is None else precision)  # 150: 8-bit non-linear integer
    buf.prop(PROP_COMPRESSION, bytes([compression]))
    for kind, payload in extra_image_props:
        buf.prop(kind, payload)
    buf.prop(PROP_END, b"")
    layer_ptrs = [buf.pointer(0) for _ in layers]
    buf.pointer(0)
    buf.pointer(0)  # no channels
    for at, layer in zip(layer_ptrs, layers):
        data = np.asarray(layer["data"])
        data = data[..., None] if data.ndim == 2 else data
        h, w, c = data.shape
        buf.patch(at, len(buf.b))
        buf.u32(w)
        buf.u32(h)
        buf.u32({3: 0, 4: 1, 1: 2, 2: 3}[c])  # RGB, RGBA, grey, grey + alpha
        buf.string(layer["name"])
        x, y = layer.get("offset", (0, 0))
        buf.prop(PROP_OPACITY, struct.pack(">I", layer.get("opacity", 255)))
        buf.prop(PROP_VISIBLE, struct.pack(">I", 1 if layer.get("visible", True) else 0))
        buf.prop(PROP_OFFSETS, struct.pack(">ii", x, y))
        buf.prop(PROP_END, b"")
        hier_at = buf.pointer(0)
        buf.pointer(0)  # no mask
        buf.patch(hier_at, len(buf.b))
        bpp = c * bytes_per_channel
        buf.u32(w)
        buf.u32(h)
        buf.u32(bpp)
        level_at = buf.pointer(0)
        buf.pointer(0)  # no smaller levels
        buf.patch(level_at, len(buf.b))
        buf.u32(w)
        buf.u32(h)
        tiles = [(ty, tx) for ty in range(0, h, 64) for tx in range(0, w, 64)]
        tile_ptrs = [buf.pointer(0) for _ in tiles]
        buf.pointer(0)
        raw = data.astype(np.uint8)
        if bytes_per_channel > 1:  # widen to big-endian multi-byte channels
            raw = np.repeat(raw, bytes_per_channel, axis=2)
        for ptr_at, (ty, tx) in zip(tile_ptrs, tiles):
            buf.patch(ptr_at, len(buf.b))
            tile = np.ascontiguousarray(raw[ty:ty + 64, tx:tx + 64])
            if compression == 0:
                buf.b += tile.tobytes()
            else:
                flat = tile.reshape(-1, bpp)
                for ch in range(bpp):
                    buf.b += _rle(flat[:, ch].tobytes())
    path = Path(path)
    path.write_bytes(bytes(buf.b))
    return path
