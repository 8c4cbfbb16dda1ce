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


@pytest.mark.parametrize(("version", "compression"), [(0, 1), (3, 1), (3, 0), (7, 1), (11, 1), (12, 0)])
def test_reads_each_layer(tmp_path, pixels, version, compression):
    background, overlay = pixels
    path = write_xcf(tmp_path / "two.xcf", [
        {"name": "overlay", "data": overlay, "offset": (5, 7), "opacity": 128},
        {"name": "background", "data": background, "visible": False},
    ], width=90, height=70, version=version, compression=compression)
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
    with pytest.raises(XcfError, match=r"deep\.xcf \(XCF file version v012\) is not supported: 16-bit integer"):
        read_xcf(str(path))


def test_undecodable_file_is_refused_naming_version(tmp_path, pixels):
    """A property gimpformats does not know (as newer GIMP versions write) gives a clear refusal."""
    path = write_xcf(tmp_path / "new.xcf", [{"name": "bg", "data": pixels[0]}], width=90, height=70, version=14,
                     extra_image_props=[(45, b"\0\0\0\1")])
    with pytest.raises(XcfError, match=r"XCF file version v014\) is not supported: gimpformats could not decode"):
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
    with pytest.raises(XcfError, match=r"version v012\) is not supported: 16-bit integer precision.*8 bit integer"):
        read_xcf(str(GIMP_FILES / "gimp210_16bit.xcf"))
