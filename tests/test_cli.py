"""Tests of the ``restora`` command: exit codes, outputs, refusals and one-line errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from restora import DEGRADATIONS
from restora.cli import main
from restora.io import read_image, write_image

CORE = str(Path(__file__).resolve().parents[1] / "core")
rng = np.random.default_rng(0)


def rand(shape, dtype=np.uint8):
    return rng.integers(0, np.iinfo(dtype).max, shape, endpoint=True).astype(dtype)


def cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def restore(capsys, *argv):
    return cli(capsys, "restore", *argv, "--device", "cpu", "-q")


def one_error(err, *names):
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("restora: error: "), err
    for name in names:
        assert str(name) in lines[0]
    return lines[0]


@pytest.fixture
def png(tmp_path):
    path = tmp_path / "in" / "photo.png"
    path.parent.mkdir()
    write_image(path, rand((40, 56, 3)))
    return path


def test_restore_png(capsys, png, tmp_path):
    code, out, err = restore(capsys, png, "-o", tmp_path / "out")
    assert code == 0, err
    result, axes = read_image(tmp_path / "out" / "photo.png")
    assert result.shape == (40, 56, 3) and result.dtype == np.uint8 and axes == "YXC"
    assert "quality" in out and str(png) in out


def test_restore_json_and_creates_outdir(capsys, png, tmp_path):
    outdir = tmp_path / "a" / "b"
    code, out, err = restore(capsys, png, "-o", outdir, "--json")
    assert code == 0, err
    report = json.loads(out)[str(png)]
    assert {"output", "degradations", "quality_before", "quality_after", "iterations"} <= set(report)
    assert Path(report["output"]) == outdir / "photo.png" and (outdir / "photo.png").is_file()
    assert set(report["degradations"]) == set(DEGRADATIONS)


@pytest.mark.parametrize("extra", [[], ["--overwrite"]])
def test_never_overwrites_input(capsys, png, extra):
    before = png.read_bytes()
    code, _, err = restore(capsys, png, "-o", png.parent, *extra)
    assert code == 1
    assert "input" in one_error(err, png)
    assert png.read_bytes() == before and os.listdir(png.parent) == ["photo.png"]


def test_existing_output_needs_overwrite(capsys, png, tmp_path):
    outdir = tmp_path / "out"
    outdir.mkdir()
    (outdir / "photo.png").write_bytes(b"keep me")
    code, _, err = restore(capsys, png, "-o", outdir)
    assert code == 1 and "--overwrite" in one_error(err, outdir / "photo.png")
    assert (outdir / "photo.png").read_bytes() == b"keep me"
    code, _, err = restore(capsys, png, "-o", outdir, "--overwrite")
    assert code == 0, err
    assert read_image(outdir / "photo.png")[0].shape == (40, 56, 3)


def test_bad_inputs_leave_nothing(capsys, tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("not an image\n")
    buf = tmp_path / "full.png"
    write_image(buf, rand((64, 64, 3)))
    cut = tmp_path / "cut.png"
    cut.write_bytes(buf.read_bytes()[: buf.stat().st_size // 2])
    outdir = tmp_path / "out"
    for bad in (text, cut, tmp_path / "missing.png"):
        code, _, err = restore(capsys, bad, "-o", outdir)
        assert code == 1
        one_error(err, bad)
        assert os.listdir(outdir) == []  # no output, no temp files


def test_subprocess_exit_codes(tmp_path):
    env = dict(os.environ, PYTHONPATH=CORE)
    cmd = [sys.executable, "-m", "restora.cli"]
    p = subprocess.run(cmd + ["--version"], capture_output=True, text=True, env=env)
    assert p.returncode == 0 and p.stdout.startswith("restora ")
    text = tmp_path / "notes.png"
    text.write_text("hello")
    p = subprocess.run(cmd + ["restore", str(text), "-o", str(tmp_path / "out"), "--device", "cpu"],
                       capture_output=True, text=True, env=env)
    assert p.returncode == 1
    one_error(p.stderr, text)
    assert os.listdir(tmp_path / "out") == []


def test_several_inputs_one_bad(capsys, png, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_text("nope")
    code, out, err = restore(capsys, bad, png, "-o", tmp_path / "out")
    assert code == 1
    one_error(err, bad)
    assert os.listdir(tmp_path / "out") == ["photo.png"] and str(png) in out


def test_uint16_grey_png_and_tiff_stack(capsys, tmp_path):
    grey, stack = tmp_path / "grey.png", tmp_path / "stack.tif"
    write_image(grey, rand((48, 32), np.uint16))
    write_image(stack, rand((3, 32, 40), np.uint16), "ZYX")
    code, _, err = restore(capsys, grey, stack, "-o", tmp_path / "out")
    assert code == 0, err
    a, axes = read_image(tmp_path / "out" / "grey.png")
    assert a.dtype == np.uint16 and a.shape == (48, 32) and axes == "YX"
    a, axes = read_image(tmp_path / "out" / "stack.tif")
    assert a.dtype == np.uint16 and a.shape == (3, 32, 40) and axes == "ZYX"


def test_rgba_alpha_kept(capsys, tmp_path):
    rgba = rand((36, 44, 4))
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    code, _, err = restore(capsys, tmp_path / "rgba.png", "-o", tmp_path / "out")
    assert code == 0, err
    a, _ = read_image(tmp_path / "out" / "rgba.png")
    assert a.shape == rgba.shape
    np.testing.assert_array_equal(a[..., 3], rgba[..., 3])


def test_degradations_option(capsys, png, tmp_path):
    code, _, err = restore(capsys, png, "-o", tmp_path / "out", "--degradations", "bogus")
    assert code == 1
    line = one_error(err, "bogus")
    assert all(d in line for d in DEGRADATIONS)
    assert not (tmp_path / "out" / "photo.png").exists()
    code, _, err = restore(capsys, png, "-o", tmp_path / "out", "--degradations", "noise")
    assert code == 0, err
    assert (tmp_path / "out" / "photo.png").is_file()


def test_assess(capsys, png, tmp_path):
    other = tmp_path / "other.png"
    write_image(other, rand((32, 48)))
    code, out, err = cli(capsys, "assess", png, other, "--device", "cpu", "-q")
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith(f"{png}: quality") and lines[1].startswith(f"{other}:")
    code, out, err = cli(capsys, "assess", png, "--json", "--device", "cpu")
    assert code == 0, err
    r = json.loads(out)[str(png)]
    assert 0 <= r["score"] <= 1
    assert set(r["degradations"]) == {"noise", "blur", "rain", "haze", "low_light", "jpeg"}


def test_segment_png(capsys, png, tmp_path):
    out = tmp_path / "map.png"
    code, stdout, err = cli(capsys, "segment", png, "-o", out, "--device", "cpu", "-q")
    assert code == 0, err
    colour, axes = read_image(out)
    assert axes == "YXC" and colour.shape[2] == 3 and colour.shape[1] > 56 and colour.shape[0] >= 40
    labels, axes = read_image(tmp_path / "map_labels.png")
    assert labels.dtype == np.uint8 and labels.shape == (40, 56) and labels.max() < 7
    before = out.read_bytes()
    code, _, err = cli(capsys, "segment", png, "-o", out, "--device", "cpu", "-q")
    assert code == 1 and "--overwrite" in one_error(err, out)
    assert out.read_bytes() == before


def test_segment_stack(capsys, tmp_path):
    stack = tmp_path / "stack.tif"
    write_image(stack, rand((2, 32, 48)), "ZYX")
    code, _, err = cli(capsys, "segment", stack, "-o", tmp_path / "map.png", "--device", "cpu", "-q")
    assert code == 1 and ".tif" in one_error(err, stack)
    assert sorted(os.listdir(tmp_path)) == ["stack.tif"]
    code, _, err = cli(capsys, "segment", stack, "-o", tmp_path / "map.tif", "--device", "cpu", "-q")
    assert code == 0, err
    colour, axes = read_image(tmp_path / "map.tif")
    assert colour.shape == (2, 32, 48, 3) and axes == "ZYXC"
    labels, axes = read_image(tmp_path / "map_labels.tif")
    assert labels.shape == (2, 32, 48) and axes == "ZYX" and labels.max() < 7


def test_info(capsys):
    code, out, _ = cli(capsys, "info")
    assert code == 0
    assert any(line.startswith("weights ") and "(default)" in line and "[sha256 ok]" in line
               for line in out.splitlines()), out
    assert any(line.startswith("precision: auto -> ") for line in out.splitlines()), out


def test_precision_flag_reaches_the_engine(capsys, tmp_path, monkeypatch):
    from restora.engine import engine as engine_module

    made = []
    real = engine_module.resolve_precision
    monkeypatch.setattr(engine_module, "resolve_precision", lambda p, d: made.append(p) or real(p, d))
    image = tmp_path / "in.png"
    write_image(image, np.full((48, 48, 3), 128, np.uint8), "YXC")
    code, _, err = cli(capsys, "assess", image, "--device", "cpu", "--precision", "float32")
    assert code == 0, err
    assert made == ["float32"]
    with pytest.raises(SystemExit):
        cli(capsys, "assess", image, "--device", "cpu", "--precision", "half")
    assert "half" in capsys.readouterr().err


def test_demo(capsys, tmp_path):
    outdir = tmp_path / "demo"
    code, out, err = cli(capsys, "demo", "-o", outdir, "--device", "cpu")
    assert code == 0, err
    assert "PSNR" in out
    names = ["before_after.png", "degradations.png", "restored.png"]
    assert sorted(os.listdir(outdir)) == names
    (outdir / "restored.png").unlink()  # one output missing: still refused, nothing half-written
    code, out, err = cli(capsys, "demo", "-o", outdir, "--device", "cpu")
    assert code == 1 and "--overwrite" in one_error(err, outdir)
    assert sorted(os.listdir(outdir)) == names[:2]
    code, _, err = cli(capsys, "demo", "-o", tmp_path / "demo" / "degradations.png")
    assert code == 1 and "not a folder" in one_error(err)


def test_no_arguments_is_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        main([])
    assert e.value.code == 2
