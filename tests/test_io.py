"""Tests of restora.io: round trips, format detection, safe writing and clear errors."""

import struct
import zlib

import numpy as np
import pytest
import tifffile
from PIL import Image

from restora._checks import ImageFileError
from restora.io import IMAGE_SUFFIXES, list_images, read_image, write_image

rng = np.random.default_rng(0)


def rand(shape, dtype=np.uint8):
    if np.dtype(dtype).kind == "f":
        return rng.random(shape).astype(dtype)
    return rng.integers(0, np.iinfo(dtype).max, shape, endpoint=True).astype(dtype)


def raises(match):
    """An ImageFileError, which is also a ValueError, whose message matches."""
    return pytest.raises(ImageFileError, match=match)


def png_bytes(width, height, bit_depth, colour_type, raw_rows):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    raw = b"".join(b"\x00" + row for row in raw_rows)  # filter type 0 per row
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def test_error_is_value_error():
    assert issubclass(ImageFileError, ValueError)
    assert ".png" in IMAGE_SUFFIXES and ".tif" in IMAGE_SUFFIXES


@pytest.mark.parametrize(
    "shape, dtype, axes",
    [
        ((6, 5), np.uint16, "YX"),
        ((3, 6, 5), np.uint16, "ZYX"),
        ((2, 6, 5, 3), np.uint8, "TYXC"),
        ((6, 5, 3), np.uint8, "YXC"),
        ((6, 5, 4), np.uint8, "YXC"),
        ((3, 6, 5), np.float32, "ZYX"),
        ((6, 5), np.float64, "YX"),
        ((2, 3, 6, 5, 3), np.uint8, "TZYXC"),
    ],
)
@pytest.mark.parametrize("suffix", [".tif", ".tiff"])
def test_tiff_round_trip(tmp_path, shape, dtype, axes, suffix):
    a = rand(shape, dtype)
    p = write_image(tmp_path / f"a{suffix}", a, axes)
    b, axes_read = read_image(p)
    assert axes_read == axes and b.dtype == a.dtype
    np.testing.assert_array_equal(b, a)


@pytest.mark.parametrize(
    "shape, dtype", [((6, 5), np.uint8), ((6, 5, 3), np.uint8), ((6, 5, 4), np.uint8), ((6, 5), np.uint16)]
)
def test_png_round_trip(tmp_path, shape, dtype):
    a = rand(shape, dtype)
    b, axes = read_image(write_image(tmp_path / "a.png", a))
    assert axes == ("YX" if a.ndim == 2 else "YXC") and b.dtype == a.dtype
    np.testing.assert_array_equal(b, a)


def test_png_single_channel_becomes_grey(tmp_path):
    a = rand((6, 5, 1))
    b, axes = read_image(write_image(tmp_path / "a.png", a))
    assert axes == "YX"
    np.testing.assert_array_equal(b, a[..., 0])


@pytest.mark.parametrize("shape", [(16, 24), (16, 24, 3)])
@pytest.mark.parametrize("suffix", [".jpg", ".jpeg"])
def test_jpeg_round_trip(tmp_path, shape, suffix):
    ramp = np.linspace(40, 200, shape[1]).astype(np.uint8)  # smooth, so JPEG stays close
    a = np.broadcast_to(ramp[:, None] if len(shape) == 3 else ramp, shape).copy()
    b, axes = read_image(write_image(tmp_path / f"a{suffix}", a, quality=95))
    assert b.shape == a.shape and b.dtype == np.uint8 and axes == ("YX" if len(shape) == 2 else "YXC")
    assert np.abs(b.astype(int) - a).mean() < 3


def test_sixteen_bit_rgb_png_is_refused(tmp_path):
    rows = [struct.pack(">6H", *range(i, i + 6)) for i in range(2)]  # 2 x 2 RGB, 16 bits
    p = tmp_path / "rgb16.png"
    p.write_bytes(png_bytes(2, 2, 16, 2, rows))
    with raises("16-bit colour PNG.*TIFF"):
        read_image(p)


def test_refuses_to_overwrite(tmp_path):
    p = write_image(tmp_path / "a.png", rand((6, 5)))
    before = p.read_bytes()
    with raises("exists; pass overwrite=True"):
        write_image(p, rand((6, 5)))
    assert p.read_bytes() == before
    c = rand((6, 5))
    write_image(p, c, overwrite=True)
    np.testing.assert_array_equal(read_image(p)[0], c)


def test_no_temp_files_left(tmp_path):
    write_image(tmp_path / "ok.tif", rand((6, 5)))
    with raises("JPEG has no alpha channel; write .png"):
        write_image(tmp_path / "bad.jpg", rand((6, 5, 4)))
    with raises("16-bit colour PNG"):
        write_image(tmp_path / "bad.png", rand((6, 5, 3), np.uint16))
    assert sorted(f.name for f in tmp_path.iterdir()) == ["ok.tif"]


def test_failing_save_leaves_nothing(tmp_path, monkeypatch):
    p = write_image(tmp_path / "a.tif", rand((6, 5)))
    before = p.read_bytes()

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tifffile, "imwrite", broken)
    with raises("cannot write .*No space left"):
        write_image(p, rand((6, 5)), overwrite=True)
    assert p.read_bytes() == before and [f.name for f in tmp_path.iterdir()] == ["a.tif"]


@pytest.mark.parametrize(
    "name, image, axes, match",
    [
        ("a.gif", rand((6, 5)), None, "unknown suffix; use one of .png"),
        ("a.png", rand((6, 5)).astype(np.float32), None, "convert to uint8/uint16 or write .tif"),
        ("a.png", rand((3, 6, 5)), "ZYX", "write .tif"),
        ("a.jpg", rand((6, 5), np.uint16), None, "JPEG cannot hold uint16; write .png"),
        ("a.tif", rand((6, 5)).astype(np.int32), None, "dtype int32"),
        ("a.tif", rand((3, 6, 5)), None, "pass axes="),
        ("a.tif", rand((6, 5)), "YXC", "do not fit shape"),
        ("a.tif", rand((6, 5)), "YY", "do not fit shape"),
    ],
)
def test_write_errors(tmp_path, name, image, axes, match):
    with raises(match):
        write_image(tmp_path / name, image, axes)
    assert list(tmp_path.iterdir()) == []


def test_missing_parent_folder(tmp_path):
    with raises("does not exist; create it first"):
        write_image(tmp_path / "nope" / "a.png", rand((6, 5)))
    assert list(tmp_path.iterdir()) == []


def test_missing_file(tmp_path):
    with raises("does not exist"):
        read_image(tmp_path / "missing.png")


def test_text_file_is_not_an_image(tmp_path):
    p = tmp_path / "x.png"
    p.write_text("hello, not an image\n")
    with raises(r"x\.png is not a PNG, JPEG or TIFF image"):
        read_image(p)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_truncated_file(tmp_path, suffix):
    p = write_image(tmp_path / f"a{suffix}", rand((32, 32, 3)))
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with raises("truncated or corrupt"):
        read_image(p)


def test_content_not_suffix_decides(tmp_path):
    a = rand((6, 5, 3))
    p = write_image(tmp_path / "a.png", a)
    q = p.rename(tmp_path / "a.tif")
    b, axes = read_image(q)
    assert axes == "YXC"
    np.testing.assert_array_equal(b, a)


def test_palette_png(tmp_path):
    im = Image.fromarray(rand((6, 5, 3))).convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    im.save(tmp_path / "p.png")
    b, axes = read_image(tmp_path / "p.png")
    assert b.shape == (6, 5, 3) and b.dtype == np.uint8 and axes == "YXC"
    np.testing.assert_array_equal(b, np.asarray(im.convert("RGB")))
    im.save(tmp_path / "pt.png", transparency=0)
    b, axes = read_image(tmp_path / "pt.png")
    assert b.shape == (6, 5, 4) and axes == "YXC"


def test_la_png_becomes_rgba(tmp_path):
    la = rand((6, 5, 2))
    Image.fromarray(la, mode="LA").save(tmp_path / "la.png")
    b, axes = read_image(tmp_path / "la.png")
    assert b.shape == (6, 5, 4) and axes == "YXC"
    for c in range(3):
        np.testing.assert_array_equal(b[..., c], la[..., 0])
    np.testing.assert_array_equal(b[..., 3], la[..., 1])


def test_one_bit_png(tmp_path):
    a = rand((6, 5)) > 127
    Image.fromarray(a).save(tmp_path / "b.png")
    b, axes = read_image(tmp_path / "b.png")
    assert b.dtype == np.uint8 and axes == "YX"
    np.testing.assert_array_equal(b, a.astype(np.uint8) * 255)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # tifffile's note on its (3, H, W) default
def test_plain_multipage_tiff(tmp_path):
    a = rand((3, 6, 5), np.uint16)
    tifffile.imwrite(tmp_path / "stack.tif", a)  # tifffile stores this as planar RGB ("CYX") today
    b, axes = read_image(tmp_path / "stack.tif")
    assert b.shape == (3, 6, 5) and axes.endswith("YX") and len(axes) == 3
    np.testing.assert_array_equal(b, a)
    tifffile.imwrite(tmp_path / "grey.tif", a, photometric="minisblack")
    b, axes = read_image(tmp_path / "grey.tif")
    assert axes == "ZYX"
    np.testing.assert_array_equal(b, a)


def test_jpeg_exif_orientation(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to view"
    Image.fromarray(np.full((8, 16, 3), 128, np.uint8)).save(tmp_path / "r.jpg", exif=exif)
    b, axes = read_image(tmp_path / "r.jpg")
    assert b.shape == (16, 8, 3) and axes == "YXC"


def test_length_one_axes_are_dropped(tmp_path):
    a = rand((1, 6, 5), np.uint16)
    b, axes = read_image(write_image(tmp_path / "a.tif", a, "ZYX"))
    assert axes == "YX" and b.shape == (6, 5)


def test_list_images(tmp_path):
    for name in ("b.png", "a.JPG", "c.txt", "d.tif"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "sub.png").mkdir()
    assert [p.name for p in list_images(tmp_path)] == ["a.JPG", "b.png", "d.tif"]  # no text file, no folder
    with pytest.raises(ImageFileError, match="not a folder"):
        list_images(tmp_path / "b.png")
