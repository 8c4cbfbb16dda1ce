"""The GIMP plug-in in a real GIMP 3 (Debian trixie chroot, see `gimp_host`).

GIMP runs headless (``gimp-console-3.0 -idf``) with a python-fu batch script
(``gimp_scripts/session.py``) that calls the procedures through the PDB as other plug-ins and
batch scripts would. The pixels are judged here, from outside, on the files GIMP exported.
These tests skip where no chroot can be built (not root, no mmdebstrap or bwrap) and fail
instead under CI (``CI=true``), where the real GIMP is required.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

import gimp_host
from helpers import smooth_image

SCRIPT = Path(__file__).parent / "gimp_scripts" / "session.py"
SELECTION = (16, 12, 32, 28)  # x, y, w, h
SIZE = (64, 72)  # h, w
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def gimp_root():
    t0 = time.perf_counter()
    try:
        root = gimp_host.ensure_chroot(log=lambda m: print(m, file=sys.stderr))
        gimp_host.engine_paths()
        if not (root / "usr" / "bin" / gimp_host.GIMP).exists():
            raise gimp_host.Unavailable(f"{gimp_host.GIMP} is missing from the chroot {root}")
    except gimp_host.Unavailable as e:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs the real GIMP: {e}")
        pytest.skip(f"no real GIMP here: {e}")
    print(f"GIMP chroot ready in {time.perf_counter() - t0:.1f} s: {root}", file=sys.stderr)
    return root


def _noisy(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    clean = smooth_image(rng, shape, np.float32)
    noisy = np.clip(clean + rng.normal(0, 30 / 255, clean.shape), 0, 1)
    return np.rint(noisy * np.iinfo(dtype).max).astype(dtype)


def _write_inputs(folder: Path) -> dict[str, np.ndarray]:
    h, w = SIZE
    rgb = _noisy((h, w, 3), np.uint8)
    alpha = np.tile(np.linspace(40, 255, w).astype(np.uint8), (h, 1))
    rgba = np.dstack([_noisy((h, w, 3), np.uint8, 1), alpha])
    grey16 = _noisy((h, w), np.uint16, 2)
    Image.fromarray(rgb).save(folder / "rgb.png")
    Image.fromarray(rgba).save(folder / "rgba.png")
    Image.fromarray(grey16).save(folder / "grey16.png")
    return {"rgb": rgb, "rgba": rgba, "grey16": grey16}


def _install(cfg: Path, env_extra: dict | None = None) -> Path:
    """The real ``restora gimp install`` into a GIMP3_DIRECTORY; returns the config file."""
    env = dict(os.environ, GIMP3_DIRECTORY=str(cfg), **(env_extra or {}))
    subprocess.run([sys.executable, "-m", "restora.cli", "gimp", "install", "--timeout", "120", "--idle", "60"],
                   env=env, check=True, capture_output=True, text=True)
    config = cfg / "plug-ins" / "restora" / "restora-gimp.json"
    assert json.loads(config.read_text())["python"] == os.path.abspath(sys.executable)
    return config


def _run_session(gimp_root, tmp_path, session, **extra):
    work, cfg = tmp_path / "work", tmp_path / "gimp3"
    work.mkdir(exist_ok=True)
    cfg.mkdir()
    runtime = Path(tempfile.mkdtemp(prefix="rg"))  # short: Unix socket paths are limited
    inputs = _write_inputs(work)
    config = _install(cfg)
    args = {"out": str(work), "session": session, "selection": list(SELECTION), "config": str(config),
            "python": os.path.abspath(sys.executable), **extra}
    (work / "args.json").write_text(json.dumps(args))
    if session == "failure":  # the environment the plug-in recorded is gone
        settings = json.loads(config.read_text())
        config.write_text(json.dumps(dict(settings, python=str(tmp_path / "deleted-env" / "bin" / "python"))))
    batch = f'ARGS = "{work}/args.json"; exec(open("{SCRIPT}").read())'
    t0 = time.perf_counter()
    try:
        proc = gimp_host.run_gimp(gimp_root, batch, rw=[work, cfg, runtime],
                                  env={"GIMP3_DIRECTORY": str(cfg), "XDG_RUNTIME_DIR": str(runtime)})
    finally:
        shutil.rmtree(runtime, ignore_errors=True)
    wall = time.perf_counter() - t0
    out = work / "result.json"
    assert out.exists(), f"GIMP wrote no result (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    result = json.loads(out.read_text())
    result["wall_seconds"] = round(wall, 1)
    result["gimp_output"] = proc.stdout + proc.stderr
    (tmp_path / f"{session}-gimp-output.txt").write_text(result["gimp_output"])
    (tmp_path / f"{session}-timings.json").write_text(json.dumps({k: v for k, v in result.items()
                                                                  if k != "gimp_output"}, indent=2))
    print(json.dumps({"gimp": result["gimp"], "wall_seconds": result["wall_seconds"],
                      "steps": result["steps"]}), file=sys.stderr)
    assert not result["errors"], "\n".join(result["errors"]) + "\n" + proc.stderr[-3000:]
    return result, inputs, work


def _inside(shape):
    x, y, w, h = SELECTION
    mask = np.zeros(shape[:2], bool)
    mask[y:y + h, x:x + w] = True
    return mask


@pytest.fixture(scope="module")
def main_session(gimp_root, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gimp-main")
    (tmp / "work").mkdir()
    xcf = Path(__file__).parent / "data" / "gimp3_layers.xcf"  # to .ora by the CLI, for GIMP to open
    subprocess.run([sys.executable, "-m", "restora.cli", "restore", str(xcf), "-o", str(tmp / "work"), "-q"],
                   check=True, capture_output=True)
    return _run_session(gimp_root, tmp, "main", ora="gimp3_layers.ora")


def test_procedures_are_registered_under_filters_enhance(main_session):
    result, _, _ = main_session
    assert result["gimp"].startswith("3.")
    assert all(result["registered"].values()), result["registered"]  # a failed registration is silent
    assert all(paths == ["<Image>/Filters/Enhance/Restora"] for paths in result["menus"].values())


def test_restore_changes_only_the_selection(main_session):
    result, inputs, work = main_session
    step = result["steps"]["restore_rgb_first"]
    assert step["status"] == "success", step
    q_before, q_after, found, iterations = step["values"]
    assert "noise" in found.split(",") and q_after > q_before and iterations >= 1
    before, after = inputs["rgb"], np.asarray(Image.open(work / "rgb_restored.png"))
    assert after.shape == before.shape and after.dtype == np.uint8
    inside = _inside(before.shape)
    assert np.array_equal(after[~inside], before[~inside]), "pixels outside the selection changed"
    diff = np.abs(after.astype(int) - before.astype(int))[inside]
    assert diff.mean() > 5, f"the selection barely changed (mean |diff| {diff.mean():.2f})"
    # restored pixels are smoother than the noisy input
    assert np.abs(np.diff(after[inside].reshape(SELECTION[3], SELECTION[2], 3).astype(int), axis=1)).mean() < \
        np.abs(np.diff(before[inside].reshape(SELECTION[3], SELECTION[2], 3).astype(int), axis=1)).mean() / 1.5


def test_strength_half_changes_less(main_session):
    result, inputs, work = main_session
    assert result["steps"]["restore_rgb_again"]["status"] == "success"
    before = inputs["rgb"].astype(int)
    full = np.asarray(Image.open(work / "rgb_restored.png")).astype(int)
    half = np.asarray(Image.open(work / "rgb_restored_half.png")).astype(int)
    inside = _inside(before.shape)
    # strength applies per round, so two rounds at 0.5 keep about 1 - 0.5**2 of the change
    assert 0.3 < np.abs(half - before)[inside].mean() / np.abs(full - before)[inside].mean() < 0.9
    assert np.array_equal(half[~inside], before[~inside])


def test_bad_options_give_an_error_and_leave_the_layer(main_session):
    result, _, _ = main_session
    step = result["steps"]["bad_options"]
    assert step["status"] == "execution-error"
    assert "tick 'auto' or at least one" in step["error"]
    assert result["bad_options_unchanged"]


def test_assess_returns_values(main_session):
    result, _, _ = main_session
    step = result["steps"]["assess_rgb"]
    assert step["status"] == "success"
    score, found, *probs = step["values"]
    assert 0 <= score <= 1 and len(probs) == 6 and all(0 <= p <= 1 for p in probs)
    assert isinstance(found, str)


def test_segment_adds_a_map_layer_above(main_session):
    result, inputs, work = main_session
    assert result["steps"]["segment_rgb"]["status"] == "success"
    assert result["steps"]["segment_rgb"]["values"] == ["Layer"]
    names = result["rgb_layers"]
    assert len(names) == 2 and names[0].startswith("Restora degradations") and names[1] != names[0]
    rgba = np.asarray(Image.open(work / "rgb_map.png").convert("RGBA"))
    inside = _inside(rgba.shape)
    assert (rgba[..., 3][~inside] == 0).all(), "the map shows outside the selection"
    assert (rgba[..., 3][inside] == 255).all()
    palette = {(40, 40, 40), (230, 25, 75), (60, 180, 75), (0, 130, 200), (200, 200, 200), (145, 30, 180),
               (245, 130, 48)}
    colours = {tuple(c) for c in rgba[inside][:, :3]}
    assert colours <= palette, colours - palette
    assert (230, 25, 75) in colours  # noise red


def test_rgba_alpha_is_untouched(main_session):
    result, inputs, work = main_session
    assert result["steps"]["restore_rgba"]["status"] == "success"
    before, after = inputs["rgba"], np.asarray(Image.open(work / "rgba_restored.png"))
    assert after.shape == before.shape
    assert np.array_equal(after[..., 3], before[..., 3])
    inside = _inside(before.shape)
    assert np.array_equal(after[~inside], before[~inside])
    assert not np.array_equal(after[inside][:, :3], before[inside][:, :3])


def test_grey_16_bit_stays_16_bit_and_outside_is_untouched(main_session):
    result, inputs, work = main_session
    assert result["grey16_precision"].startswith("u16")
    step = result["steps"]["restore_grey16"]
    assert step["status"] == "success", step
    before = inputs["grey16"]
    after = np.asarray(Image.open(work / "grey16_restored.png"))
    assert after.dtype.itemsize == 2 or after.dtype == np.int32
    after = after.astype(np.uint16)
    inside = _inside(before.shape)
    assert np.array_equal(after[~inside], before[~inside])
    # today's model finds no noise in grey images (see the issue-8 note); the change is not checked
    assert result["steps"]["segment_grey16"]["status"] == "success"
    assert len(result["grey16_layers"]) == 2


def test_float_precision_round_trips(main_session):
    result, inputs, work = main_session
    assert result["float_precision"].startswith("float")
    assert result["steps"]["restore_float"]["status"] == "success"
    after = tifffile.imread(work / "float_restored.tif")
    assert after.dtype == np.float32 and after.shape[:2] == SIZE
    before = inputs["rgb"].astype(np.float32) / 255
    inside = _inside(before.shape)
    assert np.abs(after[..., :3][~inside] - before[~inside]).max() < 1e-4
    assert np.abs(after[..., :3][inside] - before[inside]).mean() > 0.02


def _fake_pythons(folder: Path) -> dict[str, str]:
    """Wrappers recorded as the engine's "Python" that run a misbehaving engine (fake_engine.py)
    with the chroot's own python3."""
    fakes = {}
    for mode in ("silent", "crash"):
        path = folder / f"python-{mode}"
        path.write_text(f'#!/bin/sh\nexec /usr/bin/python3 {SCRIPT.parent / "fake_engine.py"} {mode} "$@"\n')
        path.chmod(0o755)
        fakes[mode] = str(path)
    return fakes


def test_engine_missing_silent_or_crashing_leaves_the_image_unchanged(gimp_root, tmp_path):
    (tmp_path / "work").mkdir()
    result, inputs, work = _run_session(gimp_root, tmp_path, "failure", fake_pythons=_fake_pythons(tmp_path / "work"))
    for step in ("restore_missing", "assess_missing", "segment_missing"):
        rec = result["steps"][step]
        assert rec["status"] == "execution-error", rec
        assert "does not exist" in rec["error"] and "restora gimp install" in rec["error"], rec["error"]
    assert "restora gimp install" in result["gimp_output"]  # GIMP showed the message (stderr in batch mode)
    assert result["layers_after_missing"] == 1
    assert np.array_equal(np.asarray(Image.open(work / "missing_after.png")), inputs["rgb"])
    rec = result["steps"]["restore_silent"]
    assert rec["status"] == "execution-error" and "sent nothing for 1 s" in rec["error"], rec
    assert rec["seconds"] < 10
    assert np.array_equal(np.asarray(Image.open(work / "silent_after.png")), inputs["rgb"])
    rec = result["steps"]["restore_crash"]
    assert rec["status"] == "execution-error" and "stopped unexpectedly" in rec["error"], rec
    assert np.array_equal(np.asarray(Image.open(work / "crash_after.png")), inputs["rgb"])


def test_gimp_opens_the_openraster_file_the_cli_wrote(main_session):
    result, _, _ = main_session
    assert result["ora_layers"] == [["small", 8, 6, True, 100], ["hidden", 0, 0, False, 50],
                                    ["noisy", 0, 0, True, 100]]


def test_cli_reads_the_xcf_gimp_saved(main_session, tmp_path):
    pytest.importorskip("gimpformats")
    from restora.io._layers import read_xcf

    _, _, work = main_session
    canvas, layers = read_xcf(work / "rgb_layers.xcf")
    assert canvas == SIZE and len(layers) == 2
    assert layers[0].name.startswith("Restora degradations") and layers[0].image.shape == SIZE + (4,)
    assert np.array_equal(layers[1].image, np.asarray(Image.open(work / "rgb_restored.png")))
    out = tmp_path / "out"
    subprocess.run([sys.executable, "-m", "restora.cli", "restore", str(work / "rgb_layers.xcf"), "-o", str(out),
                    "-q", "--layer", "Background", "--xcf-format", "tif"], check=True, capture_output=True)
    assert tifffile.imread(out / "rgb_layers.Background.tif").shape == SIZE + (3,)
