"""Read and write PNG, JPEG and TIFF images as numpy arrays with named axes."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image, ImageOps

from .._checks import ImageFileError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
_WRITE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF"}
_AXES = "TZYXC"
# tifffile's axis letters -> ours; 'Q' (unknown) and 'I' (generic pages) are taken as a stack
_TIFF_AXES = {"S": "C", "C": "C", "Y": "Y", "X": "X", "Z": "Z", "T": "T", "Q": "Z", "I": "Z"}
_MAGIC = {
    b"\x89PNG\r\n\x1a\n": "PNG", b"\xff\xd8\xff": "JPEG", b"BM": "BMP",
    b"II*\x00": "TIFF", b"MM\x00*": "TIFF", b"II+\x00": "TIFF", b"MM\x00+": "TIFF",
}
# mkstemp creates files as 0600; give outputs the permissions a plain open() would
_UMASK = os.umask(0)
os.umask(_UMASK)


def _sniff(path: Path) -> str:
    """Return the format named by the file's first bytes; the suffix may lie."""
    if not path.exists():
        raise ImageFileError(f"{path} does not exist; check the path and the current folder")
    if not path.is_file():
        raise ImageFileError(f"{path} is not a file; pass the path of an image file")
    try:
        with open(path, "rb") as f:
            head = f.read(26)
    except OSError as e:
        raise ImageFileError(f"{path} cannot be read ({e.strerror}); check its permissions") from e
    fmt = next((f for magic, f in _MAGIC.items() if head.startswith(magic)), None)
    if fmt is None and head.startswith(b"gimp xcf "):
        raise ImageFileError(f"{path} is a layered GIMP .xcf file; `restora restore` and `restora assess` read it "
                             "layer by layer (--layer NAME picks one), or export it from GIMP as PNG or TIFF")
    if fmt is None:
        raise ImageFileError(f"{path} is not a PNG, JPEG or TIFF image; convert it to one of these formats")
    # Pillow decodes 16-bit RGB(A) PNG to 8 bits; refuse rather than silently lose precision
    if fmt == "PNG" and head[12:16] == b"IHDR" and head[24] == 16 and head[25] in (2, 6):
        raise ImageFileError(
            f"{path} is a 16-bit colour PNG, which is not supported; save it as 16-bit TIFF instead"
        )
    return fmt


def _corrupt(path: Path, e: Exception) -> ImageFileError:
    reason = (str(e).splitlines() or [type(e).__name__])[0]
    if "imagecodecs" in reason:  # a valid file in a compression tifffile cannot decode alone
        return ImageFileError(f"{path} needs the imagecodecs package ({reason}); pip install imagecodecs")
    return ImageFileError(f"{path} is truncated or corrupt ({reason}); re-export or re-download it")


def _read_pillow(path: Path, fmt: str) -> tuple[np.ndarray, str]:
    try:
        with Image.open(path) as im:
            im.load()  # decode now, so truncation is caught here and not later
            if fmt == "JPEG":
                im = ImageOps.exif_transpose(im)  # photos appear upright
            mode = im.mode
            if mode == "1":
                im = im.convert("L")  # 0/255, not booleans
            elif mode in ("LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in im.info):
                im = im.convert("RGBA")  # channels are always 1, 3 or 4
            elif mode in ("P", "CMYK", "YCbCr", "RGBX", "LAB", "HSV"):
                im = im.convert("RGB")
            a = np.array(im)
    except Image.DecompressionBombError as e:
        raise ImageFileError(f"{path} is larger than Pillow's safety limit; save it as TIFF instead") from e
    except Exception as e:  # Pillow raises many types (OSError, SyntaxError, ValueError, ...)
        raise _corrupt(path, e) from e
    if mode == "I":  # 16-bit grey PNG may arrive as int32; values must fit in uint16
        if a.size and (a.min() < 0 or a.max() > 65535):
            raise ImageFileError(f"{path} has 32-bit integer values outside 0..65535; save it as 16-bit TIFF")
    if a.dtype.kind in "iu" and a.dtype.itemsize > 1:
        a = a.astype(np.uint16)  # also makes big-endian I;16B native
    if a.dtype not in (np.uint8, np.uint16, np.float32):
        raise ImageFileError(f"{path} has Pillow mode {mode!r}, which is not supported; save it as TIFF")
    return a, "YX" if a.ndim == 2 else "YXC"


def _read_tiff(path: Path) -> tuple[np.ndarray, str]:
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            a, taxes = series.asarray(), series.axes
    except Exception as e:  # tifffile raises TiffFileError, ValueError, OSError, struct.error, ...
        raise _corrupt(path, e) from e
    if a.dtype == bool:
        a = a.astype(np.uint8) * 255  # 1-bit TIFF, as 1-bit PNG
    if a.dtype not in (np.uint8, np.uint16, np.float32, np.float64):
        raise ImageFileError(
            f"{path} has dtype {a.dtype}, which is not supported; save it as uint8, uint16 or float32"
        )
    keep = [i for i, t in enumerate(taxes) if t in "YX" or a.shape[i] != 1]
    a = a.reshape([a.shape[i] for i in keep])
    taxes = "".join(taxes[i] for i in keep)
    unknown = [t for t in taxes if t not in _TIFF_AXES]
    axes = "".join(_TIFF_AXES.get(t, "?") for t in taxes)
    if unknown or len(set(axes)) != len(axes) or "Y" not in axes or "X" not in axes:
        raise ImageFileError(
            f"{path} has TIFF axes {taxes!r} (shape {a.shape}) that map to no unique TZYXC axes; "
            "save it with axes from T, Z, Y, X, C"
        )
    return a, axes


def read_image(path: str | os.PathLike) -> tuple[np.ndarray, str]:
    """Read a PNG, JPEG, BMP or TIFF image, keeping its dtype.

    Parameters
    ----------
    path : str or os.PathLike
        The image file. The format is taken from the file's content, not its suffix.

    Returns
    -------
    image : np.ndarray
        uint8 or uint16 (PNG, JPEG, BMP); uint8, uint16, float32 or float64 (TIFF).
        Channels, where present, number 1, 3 or 4: grey+alpha and palette images become
        RGB or RGBA, 1-bit images become 0/255 uint8, CMYK JPEGs become RGB.
    axes : str
        One letter from "TZYXC" per axis of `image`, e.g. "YX", "YXC", "ZYX", "TYXC".
        Length-1 axes other than Y and X are dropped.

    Raises
    ------
    ImageFileError
        If the file is missing, not an image, truncated or corrupt, a 16-bit colour PNG,
        or of an unsupported dtype or axis layout.
    """
    path = Path(path)
    fmt = _sniff(path)
    return _read_tiff(path) if fmt == "TIFF" else _read_pillow(path, fmt)


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files (by suffix, see `IMAGE_SUFFIXES`) directly in ``folder``, sorted by name.

    Raises
    ------
    ImageFileError
        If ``folder`` is not a folder.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageFileError(f"{folder} is not a folder; pass a folder of images")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def _check_axes(path: Path, image: np.ndarray, axes: str | None) -> str:
    if axes is None:
        if image.ndim == 2:
            return "YX"
        if image.ndim == 3 and image.shape[2] in (1, 3, 4):
            return "YXC"
        raise ImageFileError(
            f"cannot write {path}: image of shape {image.shape} is ambiguous; pass axes=, e.g. 'ZYX'"
        )
    if (not isinstance(axes, str) or len(axes) != image.ndim or len(set(axes)) != len(axes)
            or set(axes) - set(_AXES) or "Y" not in axes or "X" not in axes):
        raise ImageFileError(
            f"cannot write {path}: axes {axes!r} do not fit shape {image.shape}; pass one distinct "
            f"letter from {_AXES} per axis, including Y and X"
        )
    return axes


def _check_plane(path: Path, a: np.ndarray, axes: str, fmt: str) -> np.ndarray:
    """Check an array for PNG/JPEG and return it as (H, W) or (H, W, 3|4)."""
    if axes not in ("YX", "YXC"):
        raise ImageFileError(f"cannot write {path}: {fmt} holds one (H, W[, C]) image, not axes {axes!r}; write .tif")
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    c = a.shape[2] if a.ndim == 3 else 1
    if a.dtype.kind == "f":
        raise ImageFileError(f"cannot write {path}: {fmt} cannot hold {a.dtype}; convert to uint8/uint16 or write .tif")
    if c not in (1, 3, 4):
        raise ImageFileError(f"cannot write {path}: {c} channels; {fmt} takes 1, 3 or 4; write .tif")
    if fmt == "JPEG" and c == 4:
        raise ImageFileError(f"cannot write {path}: JPEG has no alpha channel; write .png")
    if a.dtype == np.uint16 and fmt == "JPEG":
        raise ImageFileError(f"cannot write {path}: JPEG cannot hold uint16; write .png (grey) or .tif")
    if a.dtype == np.uint16 and c != 1:
        raise ImageFileError(f"cannot write {path}: 16-bit colour PNG is not supported; write .tif")
    if a.dtype not in (np.uint8, np.uint16):
        raise ImageFileError(f"cannot write {path}: {fmt} cannot hold {a.dtype}; convert to uint8 or write .tif")
    return a


def write_image(
    path: str | os.PathLike,
    image: np.ndarray,
    axes: str | None = None,
    *,
    overwrite: bool = False,
    quality: int = 95,
) -> Path:
    """Write an image atomically as PNG, JPEG or TIFF (chosen by the suffix).

    Parameters
    ----------
    path : str or os.PathLike
        Output file ending in .png, .jpg, .jpeg, .tif or .tiff. Its folder must exist.
    image : np.ndarray
        PNG: uint8 grey/RGB/RGBA or uint16 grey. JPEG: uint8 grey or RGB.
        TIFF: uint8, uint16, float32 or float64, of any axes.
    axes : str, optional
        One letter from "TZYXC" per axis. Default "YX" for 2-D, "YXC" for (H, W, 1|3|4).
        Written into TIFF metadata so that `read_image` returns the same axes.
    overwrite : bool, optional
        Replace an existing file. Without it an existing file is an error.
    quality : int, optional
        JPEG quality, 1 to 100.

    Returns
    -------
    path : pathlib.Path
        The written file.

    Raises
    ------
    ImageFileError
        If the suffix, dtype, shape or axes do not suit the format, the file exists
        and `overwrite` is False, or the folder is missing or not writable. No partial
        file is left behind and an existing file is unchanged.
    """
    path = Path(path)
    fmt = _WRITE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ImageFileError(f"cannot write {path}: unknown suffix; use one of {', '.join(_WRITE_FORMATS)}")
    a = np.asarray(image)
    axes = _check_axes(path, a, axes)
    if path.exists() and not overwrite:
        raise ImageFileError(f"{path} exists; pass overwrite=True (--overwrite) to replace it")
    if not path.parent.is_dir():
        raise ImageFileError(f"cannot write {path}: folder {path.parent} does not exist; create it first")
    if not 1 <= int(quality) <= 100:
        raise ImageFileError(f"cannot write {path}: quality {quality} is outside 1..100")

    if fmt == "TIFF":
        if a.dtype not in (np.uint8, np.uint16, np.float32, np.float64):
            raise ImageFileError(
                f"cannot write {path}: dtype {a.dtype} is not supported; use uint8, uint16, float32 or float64"
            )
        rgb = axes.endswith("C") and a.shape[-1] in (3, 4)
        taxes = axes[:-1] + "S" if rgb else axes

        def save(tmp: str) -> None:
            tifffile.imwrite(tmp, a, photometric="rgb" if rgb else "minisblack", metadata={"axes": taxes})
    else:
        plane = _check_plane(path, a, axes, fmt)
        options = {"quality": int(quality)} if fmt == "JPEG" else {}

        def save(tmp: str) -> None:
            Image.fromarray(np.ascontiguousarray(plane)).save(tmp, format=fmt, **options)

    tmp = None
    try:
        # same folder, so os.replace is an atomic rename and never crosses file systems
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
        os.close(fd)
        save(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except OSError as e:
        raise ImageFileError(
            f"cannot write {path} ({e.strerror or e}); check that the folder is writable and has space"
        ) from e
    finally:
        if tmp is not None and os.path.exists(tmp):
            with contextlib.suppress(OSError):
                os.remove(tmp)
    return path
