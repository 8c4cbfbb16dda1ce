"""``restora gimp install/uninstall`` and the CLI on layered GIMP files (no GIMP needed).

``data/gimp3_layers.xcf`` and ``data/gimp3_grey16.xcf`` were made by GIMP 3.0.4 with
``gimp_scripts/make_xcf.py`` from ``data/noisy.png`` and ``data/small.png`` (and a 16-bit grey
PNG); the GIMP session in test_gimp.py also makes one at test time and reads it back here.
"""

from __future__ import annotations

import json
import os
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from restora.cli import main
from restora.gimp import install as gimp_install
from restora.gimp import protocol
from restora.io._layers import Layer, composite, read_ora, read_xcf, write_ora

DATA = Path(__file__).parent / "data"
XCF = DATA / "gimp3_layers.xcf"


@pytest.fixture(autouse=True)
def _gimpformats():
    try:
        import gimpformats  # noqa: F401
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail("CI installs the gimp extra (gimpformats); it is missing")
        pytest.skip("gimpformats is not installed (pip install 'restora[gimp]')")


# -- install / uninstall --------------------------------------------------------------------------

def test_install_puts_plugin_protocol_and_engine_record(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GIMP3_DIRECTORY", str(tmp_path / "cfg"))
    assert main(["gimp", "install", "--timeout", "30", "--idle", "5"]) == 0
    dest = tmp_path / "cfg" / "plug-ins" / "restora"
    assert "Filters > Enhance > Restora" in capsys.readouterr().out
    plugin = dest / "restora.py"
    assert plugin.stat().st_mode & 0o111, "GIMP runs the plug-in: it must be executable"
    assert plugin.read_text().startswith("#!/usr/bin/env python3")
    assert (dest / "restora_protocol.py").read_bytes() == Path(protocol.__file__).read_bytes()
    settings = json.loads((dest / "restora-gimp.json").read_text())
    assert settings == {"python": os.path.abspath(sys.executable), "restora": "0.1.0",
                        "protocol": protocol.PROTOCOL_VERSION, "timeout": 30.0, "idle": 5.0}
    (dest / "notes.txt").write_text("the user's own file")
    assert main(["gimp", "uninstall"]) == 0
    assert sorted(p.name for p in dest.iterdir()) == ["notes.txt"]  # only our files are removed
    (dest / "notes.txt").unlink()
    assert main(["gimp", "install"]) == 0 and main(["gimp", "uninstall"]) == 0
    assert not dest.exists()
    assert main(["gimp", "uninstall"]) == 0
    assert "not installed" in capsys.readouterr().out


def test_install_refuses_a_python_without_restora(tmp_path, capsys):
    assert main(["gimp", "install", "--plugin-dir", str(tmp_path), "--python", str(tmp_path / "nope")]) == 1
    assert "does not exist" in capsys.readouterr().err
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho 'ModuleNotFoundError: No module named restora' >&2\nexit 1\n")
    fake.chmod(0o755)
    assert main(["gimp", "install", "--plugin-dir", str(tmp_path), "--python", str(fake)]) == 1
    assert "cannot import restora's engine (ModuleNotFoundError" in capsys.readouterr().err
    assert not (tmp_path / "restora").exists()


def test_default_plugin_folder_follows_gimp(monkeypatch, tmp_path):
    monkeypatch.delenv("GIMP3_DIRECTORY", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    if sys.platform.startswith("linux"):
        assert gimp_install.gimp_plugin_root() == tmp_path / "GIMP" / "3.0" / "plug-ins"


def test_plugin_uses_only_gi_and_the_standard_library():
    import ast

    tree = ast.parse(gimp_install.plugin_source().read_text())
    names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert names - set(sys.stdlib_module_names) == {"gi", "restora_protocol"}


# -- layered files ----------------------------------------------------------------------------

def test_read_gimp3_xcf():
    canvas, layers = read_xcf(XCF)
    assert canvas == (40, 48)
    assert [(lay.name, lay.image.shape, lay.x, lay.y, lay.visible) for lay in layers] == [
        ("small", (20, 24, 4), 8, 6, True), ("hidden", (40, 48, 3), 0, 0, False), ("noisy", (40, 48, 3), 0, 0, True)]
    assert layers[1].opacity == pytest.approx(0.5, abs=0.01)
    assert np.array_equal(layers[2].image, np.asarray(Image.open(DATA / "noisy.png")))
    assert np.array_equal(layers[0].image, np.asarray(Image.open(DATA / "small.png")))


def test_restore_xcf_to_openraster(tmp_path, capsys):
    assert main(["restore", str(XCF), "-o", str(tmp_path), "-q", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) == {f"{XCF}[small]", f"{XCF}[hidden]", f"{XCF}[noisy]"}
    assert "noise" in {k for k, v in report[f"{XCF}[noisy]"]["degradations"].items() if v >= 0.5}
    ora = tmp_path / "gimp3_layers.ora"
    with zipfile.ZipFile(ora) as z:
        assert z.namelist()[0] == "mimetype" and z.read("mimetype") == b"image/openraster"
        assert z.getinfo("mimetype").compress_type == zipfile.ZIP_STORED
        assert {"stack.xml", "mergedimage.png", "Thumbnails/thumbnail.png"} <= set(z.namelist())
    canvas, layers = read_ora(ora)
    _, original = read_xcf(XCF)
    assert canvas == (40, 48)
    assert [(a.name, a.x, a.y, a.visible, round(a.opacity, 2), a.image.shape) for a in layers] == \
        [(b.name, b.x, b.y, b.visible, round(b.opacity, 2), b.image.shape) for b in original]
    noisy_before, noisy_after = original[2].image.astype(int), layers[2].image.astype(int)
    assert np.abs(noisy_after - noisy_before).mean() > 5
    assert np.array_equal(layers[0].image[..., 3], original[0].image[..., 3])  # alpha kept


def test_restore_one_xcf_layer_as_png(tmp_path):
    assert main(["restore", str(XCF), "-o", str(tmp_path), "-q", "--layer", "noisy", "--xcf-format", "png"]) == 0
    assert [p.name for p in tmp_path.iterdir()] == ["gimp3_layers.noisy.png"]
    out = np.asarray(Image.open(tmp_path / "gimp3_layers.noisy.png"))
    assert out.shape == (40, 48, 3) and not np.array_equal(out, np.asarray(Image.open(DATA / "noisy.png")))
    # by index (0 = top), into an .ora in which the other layers are unchanged
    assert main(["restore", str(XCF), "-o", str(tmp_path), "-q", "--layer", "0"]) == 0
    _, layers = read_ora(tmp_path / "gimp3_layers.ora")
    _, original = read_xcf(XCF)
    assert not np.array_equal(layers[0].image, original[0].image)
    assert all(np.array_equal(a.image, b.image) for a, b in zip(layers[1:], original[1:]))


def test_assess_xcf_layers(capsys):
    assert main(["assess", str(XCF), "--layer", "noisy", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert list(report) == [f"{XCF}[noisy]"] and "noise" in report[f"{XCF}[noisy]"]["found"]


@pytest.mark.parametrize("make, message", [
    (lambda p: p.write_bytes(XCF.read_bytes()[:900]), "(XCF file version v011, 8-bit integer precision) cannot be "
                                                       "read by gimpformats"),
    (lambda p: p.write_bytes((DATA / "gimp3_grey16.xcf").read_bytes()),
     "(XCF file version v012, 16-bit integer precision) is a high-bit-depth XCF"),
    (lambda p: p.write_bytes(b"gimp xcf v011\0" + b"\0" * 40), "unknown precision code 0) is not a valid XCF file"),
])
def test_unreadable_xcf_gives_a_clear_error(tmp_path, capsys, make, message):
    src = tmp_path / "in.xcf"
    make(src)
    out = tmp_path / "out"
    assert main(["restore", str(src), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("restora: error:") and len(err.strip().splitlines()) == 1
    assert message in err, err
    assert not any(out.iterdir())


def test_layer_errors(tmp_path, capsys):
    assert main(["restore", str(XCF), "-o", str(tmp_path), "--layer", "nope"]) == 1
    assert "has no layer 'nope'; its layers (top first): 'small', 'hidden', 'noisy'" in capsys.readouterr().err
    assert main(["restore", str(DATA / "noisy.png"), "-o", str(tmp_path), "--layer", "x"]) == 1
    assert "--layer applies to GIMP .xcf inputs only" in capsys.readouterr().err
    assert main(["segment", str(XCF), "-o", str(tmp_path / "m.png")]) == 1
    assert "layered GIMP .xcf" in capsys.readouterr().err


def test_ora_refuses_to_overwrite_and_composites_visible_layers(tmp_path):
    red = Layer("red", np.dstack([np.full((4, 4), 255, np.uint8), np.zeros((4, 4, 2), np.uint8)]), 0, 0, True, 0.5)
    blue = Layer("blue", np.dstack([np.zeros((4, 4, 2), np.uint8), np.full((4, 4), 255, np.uint8)]))
    ghost = Layer("ghost", np.full((4, 4, 1), 255, np.uint8), visible=False)
    merged = composite((4, 4), [ghost, red, blue])
    assert tuple(merged[0, 0]) == (128, 0, 128, 255)
    path = write_ora(tmp_path / "x.ora", (4, 4), [ghost, red, blue])
    with pytest.raises(Exception, match="exists"):
        write_ora(path, (4, 4), [red])
    assert [lay.name for lay in read_ora(path)[1]] == ["ghost", "red", "blue"]
