"""The .xcf reader: each GIMP layer an Image layer; clear refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from napari_support import require_packages
from xcf_writer import write_xcf

require_packages("gimpformats")

from restora_napari._reader import XcfError, get_reader, read_xcf  # noqa: E402


@pytest.fixture
def pixels():
    rng = np.random.default_rng(0)
    background = (rng.random((70, 90, 3)) * 255).astype(np.uint8)
    background[:10] = 7  # a long run, so RLE uses its run codes too
    overlay = np.zeros((20, 30, 4), np.uint8)
    overlay[..., 0], overlay[..., 3] = 200, 128
    return background, overlay


@pytest.mark.parametrize(("version", "compression"), [(0, 1), (3, 1), (3, 0), (4, 1), (7, 1), (11, 1), (12, 0)])
def test_reads_each_layer(tmp_path, pixels, version, compression):
    background, overlay = pixels
    path = write_xcf(tmp_path / "two.xcf", [
        {"name": "overlay", "data": overlay, "offset": (5, 7), "opacity": 128},
        {"name": "background", "data": background, "visible": False},
    ], width=90, height=70, version=version, compression=compression,
       precision=0 if version == 4 else None)  # version 4 numbers 8-bit gamma integer 0, later ones 150
    assert get_reader(str(path)) is read_xcf
    layers = read_xcf(str(path))
    assert [kw["name"] for _, kw, _ in layers] == ["background", "overlay"]  # GIMP's top layer last
    assert all(kind == "image" for _, _, kind in layers)
    (bg, bg_kw, _), (ov, ov_kw, _) = layers
    np.testing.assert_array_equal(bg, background)
    np.testing.assert_array_equal(ov, overlay)
    assert bg_kw["rgb"] and ov_kw["rgb"]
    assert ov_kw["translate"] == (7.0, 5.0)  # (y, x) from GIMP's (x, y) offsets
    assert ov_kw["opacity"] == pytest.approx(128 / 255)
    assert bg_kw["visible"] is False and ov_kw["visible"] is True
    assert ov_kw["metadata"]["xcf"]["version"] == ("file" if version == 0 else f"v{version:03d}")
    assert ov_kw["metadata"]["xcf"]["precision"] == "8-bit integer"


def test_integer_opacity_is_out_of_255(tmp_path, pixels):
    """PROP_OPACITY is 0..255 (GIMP 2.10 also writes a float one): 1 is nearly transparent, not opaque."""
    path = write_xcf(tmp_path / "faint.xcf", [{"name": "faint", "data": pixels[1], "opacity": 1},
                                              {"name": "none", "data": pixels[1], "opacity": 0}],
                     width=30, height=20, version=11)
    assert [kw["opacity"] for _, kw, _ in read_xcf(str(path))] == [0.0, pytest.approx(1 / 255)]


def test_reads_grey(tmp_path):
    grey = (np.random.default_rng(1).random((40, 50)) * 255).astype(np.uint8)
    path = write_xcf(tmp_path / "grey.xcf", [{"name": "grey", "data": grey}], width=50, height=40, grey=True)
    [(data, kwargs, _)] = read_xcf(str(path))
    np.testing.assert_array_equal(data, grey)
    assert kwargs["rgb"] is False


def test_other_files_are_not_claimed(tmp_path):
    assert get_reader(str(tmp_path / "image.tif")) is None
    assert get_reader([str(tmp_path / "a.xcf"), str(tmp_path / "b.png")]) is None


def test_high_bit_depth_is_refused_naming_version(tmp_path, pixels):
    path = write_xcf(tmp_path / "deep.xcf", [{"name": "bg", "data": pixels[0]}], width=90, height=70,
                     version=12, precision=250, bytes_per_channel=2)
    with pytest.raises(XcfError, match=r"deep\.xcf \(XCF file version v012, 16-bit integer precision\) is a "
                       r"high-bit-depth XCF.*Image > Precision > 8 bit integer"):
        read_xcf(str(path))


def test_unknown_properties_are_skipped(tmp_path, pixels):
    """Properties newer than gimpformats' table (as GIMP 3 writes) carry their length: skipped, not fatal."""
    path = write_xcf(tmp_path / "new.xcf", [{"name": "bg", "data": pixels[0]}], width=90, height=70, version=14,
                     extra_image_props=[(45, b"\0\0\0\1")])
    [(data, kwargs, _)] = read_xcf(str(path))
    np.testing.assert_array_equal(data, pixels[0])
    assert kwargs["metadata"]["xcf"]["version"] == "v014"


def test_undecodable_file_is_refused_naming_version(tmp_path, pixels):
    path = write_xcf(tmp_path / "cut.xcf", [{"name": "bg", "data": pixels[0]}], width=90, height=70, version=14)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(XcfError, match=r"cut\.xcf \(XCF file version v014, 8-bit integer precision\) cannot be "
                       r"read by gimpformats.*export its layers"):
        read_xcf(str(path))


def test_indexed_file_is_refused(tmp_path, pixels):
    """gimpformats would give palette indices as grey: refused, naming the fix."""
    path = write_xcf(tmp_path / "pal.xcf", [{"name": "bg", "data": pixels[0][..., 0]}], width=90, height=70,
                     version=11, grey=True)
    raw = bytearray(path.read_bytes())
    raw[22:26] = (2).to_bytes(4, "big")  # base type: indexed
    path.write_bytes(bytes(raw))
    with pytest.raises(XcfError, match=r"pal\.xcf \(XCF file version v011, .*indexed colour mode.*Image > Mode > RGB"):
        read_xcf(str(path))


def test_not_an_xcf(tmp_path):
    path = tmp_path / "fake.xcf"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(40))
    with pytest.raises(XcfError, match="not a GIMP .xcf file"):
        read_xcf(str(path))


# -- files written by GIMP itself (2.10.34; see data/README.md) -------------------------------
GIMP_FILES = Path(__file__).resolve().parent / "data"


def test_reads_a_real_gimp_file():
    from PIL import Image

    layers = read_xcf(str(GIMP_FILES / "gimp210_rgb.xcf"))
    assert [kw["name"] for _, kw, _ in layers] == ["background", "overlay"]
    (bg, bg_kw, _), (ov, ov_kw, _) = layers
    np.testing.assert_array_equal(bg, np.asarray(Image.open(GIMP_FILES / "bg.png").convert("RGB")))
    assert bg.std() > 10  # the plasma texture, pixel for pixel
    assert bg_kw["visible"] is False and ov_kw["visible"] is True
    assert ov.shape == (16, 24, 4) and ov_kw["translate"] == (7.0, 5.0)
    assert ov_kw["opacity"] == pytest.approx(0.5)
    painted = ov[..., 3] > 0
    np.testing.assert_array_equal(np.argwhere(painted).min(0), [0, 0])
    np.testing.assert_array_equal(np.argwhere(painted).max(0), [7, 11])
    np.testing.assert_array_equal(ov[painted][0], [10, 200, 40, 255])
    assert ov_kw["metadata"]["xcf"]["version"] == "v011"


def test_reads_a_real_gimp_grey_file():
    from PIL import Image

    [(data, kwargs, _)] = read_xcf(str(GIMP_FILES / "gimp210_grey.xcf"))
    np.testing.assert_array_equal(data, np.asarray(Image.open(GIMP_FILES / "grey.png")))
    assert kwargs["rgb"] is False


def test_refuses_a_real_16_bit_gimp_file():
    with pytest.raises(XcfError, match=r"version v012, 16-bit integer precision\) is a high-bit-depth.*8 bit integer"):
        read_xcf(str(GIMP_FILES / "gimp210_16bit.xcf"))


# -- a file written by GIMP 3 (tests/data; see tests/gimp_scripts/make_xcf.py) --------------------
GIMP3_FILE = Path(__file__).resolve().parents[1] / "data" / "gimp3_layers.xcf"


def test_reads_a_real_gimp3_file():
    """GIMP 3 writes properties gimpformats does not know (42): the core's reader skips them."""
    from restora.io._layers import read_xcf as core_read_xcf

    layers = read_xcf(str(GIMP3_FILE))
    assert [kw["name"] for _, kw, _ in layers] == ["noisy", "hidden", "small"]  # GIMP's top layer last
    (noisy, noisy_kw, _), (hidden, hidden_kw, _), (small, small_kw, _) = layers
    assert (noisy.shape, hidden.shape, small.shape) == ((40, 48, 3), (40, 48, 3), (20, 24, 4))
    assert small_kw["translate"] == (6.0, 8.0) and noisy_kw["translate"] == hidden_kw["translate"] == (0.0, 0.0)
    assert hidden_kw["visible"] is False and noisy_kw["visible"] is True and small_kw["visible"] is True
    assert hidden_kw["opacity"] == pytest.approx(0.5, abs=0.01)
    assert noisy_kw["opacity"] == small_kw["opacity"] == pytest.approx(1.0)
    assert all(kw["rgb"] for _, kw, _ in layers)
    assert small_kw["metadata"]["xcf"]["version"] == "v011"
    assert small_kw["metadata"]["xcf"]["precision"].startswith("8-bit integer")
    _, core_layers = core_read_xcf(GIMP3_FILE)  # top first
    for (data, _, _), core in zip(layers[::-1], core_layers):
        np.testing.assert_array_equal(data, core.image)
    assert noisy.std() > 10  # real pixels, not an empty layer
