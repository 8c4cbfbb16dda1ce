"""The ComfyUI node pack's logic, without ComfyUI: layouts, batches, masks, tiling, the gate,
the weights folder, and the pack's files. The nodes in a real ComfyUI: test_comfy_e2e.py."""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import restora
from restora import DEGRADATIONS, SEGMENT_CLASSES
from restora.palette import SEGMENT_COLOURS

from helpers import smooth_image

REPO = Path(__file__).resolve().parents[1]
PACK = REPO / "comfy_nodes"
sys.path.insert(0, str(REPO))

from comfy_nodes import layout, model_handle, operations  # noqa: E402
from comfy_nodes.model_handle import load_restora_model, register_models_folder  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One thread: on a shared 2-core machine, two threads per op can run ten times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def engine() -> restora.Engine:
    return restora.Engine("default", "cpu")


def _batch(rng, n=3, h=37, w=53, c=3, noise=0.0) -> torch.Tensor:
    """[n, h, w, c] float32 IMAGE of smooth pictures, optionally with Gaussian noise."""
    imgs = [smooth_image(rng, (h, w, c), np.float32) for _ in range(n)]
    x = torch.from_numpy(np.stack(imgs))
    if noise:
        x = (x + noise * torch.from_numpy(rng.standard_normal(x.shape).astype(np.float32))).clamp(0, 1)
    return x


# -- layout ------------------------------------------------------------------------------------
@pytest.mark.parametrize("c", [1, 3, 4])
def test_layout_round_trip_keeps_pixels_and_alpha(c, rng):
    image = torch.from_numpy(rng.random((2, 7, 9, c), dtype=np.float32))
    x, alpha = layout.image_to_engine(image)
    assert x.shape == (2, 1 if c == 1 else 3, 7, 9) and x.dtype == torch.float32
    assert torch.equal(x[1, 0], image[1, :, :, 0])  # (B, C, H, W) <- [B, H, W, C]
    assert (alpha is None) == (c != 4)
    back = layout.image_from_engine(x, alpha)
    assert back.shape == image.shape and back.is_contiguous()
    assert torch.equal(back, image)


def test_layout_clips_float_overshoot_and_accepts_float16(rng):
    image = torch.full((1, 8, 8, 3), 1.02, dtype=torch.float16)
    x, _ = layout.image_to_engine(image)
    assert x.dtype == torch.float32
    assert layout.image_from_engine(x).max() == 1.0


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros((8, 8, 3), np.float32), "expected an IMAGE tensor"),
        (torch.zeros(8, 8, 3), r"shape \[B, H, W, C\]"),
        (torch.zeros(1, 8, 8, 2), "2 channels"),
        (torch.zeros(0, 8, 8, 3), "batch is empty"),
        (torch.zeros(1, 3, 8, 3), "8x3 pixels"),
        (torch.zeros(1, 8, 8, 3, dtype=torch.uint8), "dtype torch.uint8"),
        (torch.full((1, 8, 8, 3), float("nan")), "NaN"),
    ],
)
def test_layout_rejects_bad_images_with_clear_errors(bad, message):
    with pytest.raises(restora.ImageError, match=message):
        layout.image_to_engine(bad)


def test_mask_layout():
    m = torch.rand(2, 1, 5, 6) * 1.5
    out = layout.mask_from_engine(m)
    assert out.shape == (2, 5, 6) and out.dtype == torch.float32 and out.max() <= 1
    assert layout.mask_from_engine(torch.rand(2, 5, 6)).shape == (2, 5, 6)
    with pytest.raises(restora.ImageError):
        layout.mask_from_engine(torch.rand(2, 3, 5, 6))


# -- restore -----------------------------------------------------------------------------------
def test_restore_batch_of_odd_size_equals_each_image_alone(engine, rng):
    batch = _batch(rng, n=3, noise=0.1)
    ticks = []
    out = operations.restore_images(engine, batch, max_iterations=2, progress=lambda d, t: ticks.append((d, t)))
    assert out.image.shape == batch.shape and out.image.dtype == torch.float32
    assert 0 <= out.image.min() and out.image.max() <= 1
    assert out.uncertainty.shape == (3, 37, 53) and 0 <= out.uncertainty.min() and out.uncertainty.max() <= 1
    for i in range(3):
        alone = operations.restore_images(engine, batch[i : i + 1], max_iterations=2)
        torch.testing.assert_close(out.image[i], alone.image[0], atol=1e-5, rtol=0)
        torch.testing.assert_close(out.uncertainty[i], alone.uncertainty[0], atol=1e-5, rtol=0)
    assert all(q1 >= q0 for q0, q1 in zip(out.quality_before, out.quality_after))
    lines = out.report.splitlines()
    assert [l.split(":")[0] for l in lines[:3]] == ["image 1/3", "image 2/3", "image 3/3"]
    assert "noise" in lines[0] and "quality" in lines[0]
    # progress: increasing, ending at the total the engine announced
    assert ticks and ticks[-1][0] == ticks[-1][1]
    assert [d for d, _ in ticks] == sorted(d for d, _ in ticks)


def test_restore_removes_noise(engine, rng):
    clean = _batch(rng, n=2)
    noisy = (clean + 0.1 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    out = operations.restore_images(engine, noisy)
    assert (out.image - clean).abs().mean() < 0.6 * (noisy - clean).abs().mean()
    assert all(q1 > q0 for q0, q1 in zip(out.quality_before, out.quality_after))
    assert "+ refinement" in out.report  # the second stage ran on this noise...
    plain = operations.restore_images(engine, noisy, refine=False)
    assert "+ refinement" not in plain.report and not torch.equal(plain.image, out.image)  # ...and is optional


def test_restore_keeps_alpha_and_grey(engine, rng):
    rgba = _batch(rng, n=2, c=4, noise=0.1)
    rgba[..., 3] = torch.from_numpy(rng.integers(0, 2, rgba.shape[:3]).astype(np.float32))
    out = operations.restore_images(engine, rgba, max_iterations=1)
    assert out.image.shape == rgba.shape
    assert torch.equal(out.image[..., 3], rgba[..., 3])
    grey = _batch(rng, n=2, c=1, noise=0.1)
    assert operations.restore_images(engine, grey, max_iterations=1).image.shape == grey.shape


def test_restore_strength_zero_returns_input(engine, rng):
    batch = _batch(rng, n=2, noise=0.1)
    assert torch.equal(operations.restore_images(engine, batch, strength=0.0).image, batch)


def test_restore_chosen_mode_limits_the_change(engine, rng):
    noisy = _batch(rng, n=1, h=48, w=48, noise=0.1)
    auto = operations.restore_images(engine, noisy)
    rain = operations.restore_images(engine, noisy, mode="chosen", degradations="rain")
    assert (rain.image - noisy).abs().mean() < 0.5 * (auto.image - noisy).abs().mean()
    both = operations.restore_images(engine, noisy, mode="chosen", degradations=" noise, jpeg ")
    assert both.image.shape == noisy.shape


def test_parse_degradations():
    assert operations.parse_degradations("auto", "whatever") is None
    assert operations.parse_degradations("chosen", "noise, jpeg") == ("noise", "jpeg")
    with pytest.raises(restora.RestoraError, match="unknown degradation"):
        operations.parse_degradations("chosen", "noise,sharpen")
    with pytest.raises(restora.RestoraError, match="needs degradation names"):
        operations.parse_degradations("chosen", "  ")
    with pytest.raises(restora.RestoraError, match="unknown mode"):
        operations.parse_degradations("sometimes", "noise")


# -- tiling, out of memory, cancel ----------------------------------------------------------------
def test_tiled_batch_equals_whole_image(rng):
    batch = _batch(rng, n=2, h=150, w=171, noise=0.08)
    whole = load_restora_model("default", "cpu", 512)
    tiled = load_restora_model("default", "cpu", 128)
    assert tiled.engine.tiles_per_pass(150, 171) > 1 and whole.engine.tiles_per_pass(150, 171) == 1
    a = operations.restore_images(whole.engine, batch, max_iterations=1)
    b = operations.restore_images(tiled.engine, batch, max_iterations=1)
    torch.testing.assert_close(b.image, a.image, atol=1e-3, rtol=0)
    torch.testing.assert_close(b.uncertainty, a.uncertainty, atol=1e-3, rtol=0)
    sa = operations.assess_images(whole.engine, batch).scores
    sb = operations.assess_images(tiled.engine, batch).scores
    assert sb == pytest.approx(sa, abs=1e-3)


def test_out_of_memory_retries_with_smaller_tiles(rng, monkeypatch):
    batch = _batch(rng, n=2, h=150, w=171, noise=0.08)
    reference = operations.restore_images(load_restora_model("default", "cpu", 512).engine, batch, max_iterations=1)
    model = load_restora_model("default", "cpu", 320)  # its own engine: the shrunk size must not leak
    engine = model.engine
    real = type(engine)._pass_tiles
    sizes = []

    def pass_tiles(self, x, decode, ticker):
        sizes.append(self.tile_size)
        if self.tile_size > 160:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(self, x, decode, ticker)

    monkeypatch.setattr(type(engine), "_pass_tiles", pass_tiles)
    out = operations.restore_images(engine, batch, max_iterations=1)
    assert sizes[:2] == [320, 160]  # halved once, then it fits
    assert engine.tile_size == 160  # and stays smaller for the handle's later calls
    assert load_restora_model("default", "cpu", 320).engine is engine
    torch.testing.assert_close(out.image, reference.image, atol=1e-3, rtol=0)


def test_cancel_from_progress_stops_between_tiles(rng):
    model = load_restora_model("default", "cpu", 128)
    batch = _batch(rng, n=2, h=150, w=171)
    calls = []

    class Cancelled(Exception):
        pass

    def progress(done, total):
        calls.append(done)
        if len(calls) == 3:
            raise Cancelled

    for op in (lambda: operations.restore_images(model.engine, batch, progress=progress),
               lambda: operations.assess_images(model.engine, batch, progress),
               lambda: operations.segment_images(model.engine, batch, "noise", progress),
               lambda: operations.pick_better(model.engine, batch, batch, progress)):
        calls.clear()
        with pytest.raises(Cancelled):
            op()
        assert len(calls) == 3  # nothing ran after the cancel


# -- assess ------------------------------------------------------------------------------------
def test_assess_scores_each_image(engine, rng):
    clean = _batch(rng, n=1, h=48, w=64)
    noisy = (clean + 0.15 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(2))).clamp(0, 1)
    out = operations.assess_images(engine, torch.cat([clean, noisy]))
    assert len(out.scores) == 2 and all(0 <= s <= 1 for s in out.scores)
    assert out.scores[0] > out.scores[1] + 0.2
    assert out.score == pytest.approx(sum(out.scores) / 2)
    assert set(out.degradations[1]) == set(DEGRADATIONS) and out.degradations[1]["noise"] > 0.5
    lines = out.report.splitlines()
    assert lines[0].startswith("image 1/2: quality ") and "noise" in lines[1]
    assert lines[-1].startswith("mean quality")
    single = operations.assess_images(engine, clean)
    assert single.report.startswith(f"quality {single.score:.3f}")


# -- segment -----------------------------------------------------------------------------------
def test_segment_mask_and_colour_map(engine, rng):
    batch = torch.cat([_batch(rng, n=1, h=41, w=59), _batch(rng, n=1, h=41, w=59, noise=0.15)])
    out = operations.segment_images(engine, batch, "noise")
    probs = engine.segment(batch.permute(0, 3, 1, 2))
    assert out.mask.shape == (2, 41, 59) and out.colour.shape == (2, 41, 59, 3)
    torch.testing.assert_close(out.mask, probs[:, SEGMENT_CLASSES.index("noise")])
    lut = torch.tensor([SEGMENT_COLOURS[c] for c in SEGMENT_CLASSES], dtype=torch.float32) / 255
    torch.testing.assert_close(out.colour, lut[out.labels.long()])
    assert out.mask[1].mean() > out.mask[0].mean() + 0.3  # noise found in the noisy image
    assert "noise" in out.report.splitlines()[1] and "#e6194b" in out.report
    with pytest.raises(restora.RestoraError, match="unknown class"):
        operations.segment_images(engine, batch, "sharpen")


# -- quality gate ------------------------------------------------------------------------------
def test_gate_picks_the_better_image_per_batch_item(engine, rng):
    clean = _batch(rng, n=2, h=40, w=48)
    noisy = (clean + 0.15 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(3))).clamp(0, 1)
    a = torch.stack([clean[0], noisy[1]])
    b = torch.stack([noisy[0], clean[1]])
    out = operations.pick_better(engine, a, b)
    assert out.chosen == ["A", "B"]
    assert torch.equal(out.image, clean)
    assert out.score == pytest.approx((out.scores_a[0] + out.scores_b[1]) / 2, abs=1e-6)
    assert out.report.splitlines()[1].endswith("-> B")


def test_gate_ties_go_to_a_and_shapes_may_differ(engine, rng):
    image = _batch(rng, n=1, h=40, w=48)
    tie = operations.pick_better(engine, image, image.clone())
    assert tie.chosen == ["A"]
    noisy_big = (_batch(rng, n=2, h=44, w=50) + 0.15).clamp(0, 1)
    out = operations.pick_better(engine, noisy_big, image)
    assert len(out.chosen) == 1 and "shapes differ" in out.report
    best = out.image is image or torch.equal(out.image, image)
    assert best == (out.chosen == ["B"])


# -- model handle and the models/restora folder ------------------------------------------------
def test_register_models_folder_follows_base_directory_and_keeps_yaml_paths(tmp_path):
    table = {}
    register_models_folder(table, str(tmp_path / "models"))
    assert table["restora"] == ([str(tmp_path / "models" / "restora")], {".safetensors"})
    register_models_folder(table, str(tmp_path / "models"))  # idempotent
    assert len(table["restora"][0]) == 1
    # extra_model_paths.yaml is read before custom nodes load: its folder stays first
    table = {"restora": (["/data/restora"], set())}
    register_models_folder(table, str(tmp_path / "models"))
    assert table["restora"] == (["/data/restora", str(tmp_path / "models" / "restora")], {".safetensors"})


def test_weights_choices_and_resolution(tmp_path):
    choices = model_handle.weights_choices(["mine.safetensors", "sub/other.safetensors"])
    assert choices[0] == "default" and "restora-base" in choices
    assert choices[-2:] == ["mine.safetensors", "sub/other.safetensors"]
    files = {"mine.safetensors": str(tmp_path / "mine.safetensors")}
    assert model_handle.resolve_choice("default", files.get) == "default"
    assert model_handle.resolve_choice("restora-base", files.get) == "restora-base"
    assert model_handle.resolve_choice("mine.safetensors", files.get) == files["mine.safetensors"]
    with pytest.raises(restora.WeightsError, match="models/restora"):
        model_handle.resolve_choice("gone.safetensors", files.get)


def test_loading_is_cached_and_folder_files_load(tmp_path):
    import shutil

    from restora.engine import weights as w

    a = load_restora_model("default", "cpu", 512)
    count = w.load_count
    assert load_restora_model("default", "cpu", 512).engine is a.engine
    assert load_restora_model("default", "cpu", 384).engine.model is a.engine.model  # one network
    exact = load_restora_model("default", "cpu", 512, precision="float32")
    fast = load_restora_model("default", "cpu", 512, precision="bfloat16")
    assert (exact.engine.precision, fast.engine.precision) == ("float32", "bfloat16")
    assert exact.engine is not fast.engine and exact.engine.model is fast.engine.model
    assert "bfloat16" in repr(fast)
    assert w.load_count == count
    copy = tmp_path / "copy.safetensors"
    shutil.copy(w.resolve_weights("default").path, copy)
    m = load_restora_model("copy.safetensors", "cpu", 512, {"copy.safetensors": str(copy)}.get)
    assert m.engine.weights.path == copy and "copy.safetensors" in repr(m)


# -- the pack's files ------------------------------------------------------------------------
def test_only_the_node_module_imports_comfyui():
    host = {"comfy", "comfy_api", "folder_paths", "comfy_execution", "server", "nodes"}
    for path in sorted(PACK.glob("*.py")):
        tree = ast.parse(path.read_text())
        top = set()
        for node in tree.body:  # module level only: __init__ imports ComfyUI inside comfy_entrypoint
            if isinstance(node, ast.Import):
                top |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                top.add(node.module.split(".")[0])
        assert (top & host and path.name == "nodes.py") or not top & host, f"{path.name} imports {top & host}"
        # one schema: V3 only, no V1 mappings anywhere in the pack
        assert "NODE_CLASS_MAPPINGS" not in path.read_text()


def test_pack_metadata_for_the_registry():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    meta = tomllib.loads((PACK / "pyproject.toml").read_text())
    assert meta["project"]["name"] == "comfyui-restora"
    assert meta["project"]["version"] == restora.__version__
    assert {"PublisherId", "DisplayName"} <= set(meta["tool"]["comfy"])


def test_example_workflows_are_consistent():
    api = json.loads((PACK / "api_workflows" / "restora_assess_restore_api.json").read_text())
    ui = json.loads((PACK / "example_workflows" / "restora_assess_restore.json").read_text())
    # load, assess, restore, assess again, save
    assert [api[k]["class_type"] for k in sorted(api, key=int)] == [
        "LoadImage", "RestoraLoadModel", "RestoraAssess", "RestoraRestore", "RestoraAssess", "SaveImage"]
    assert {str(n["id"]): n["type"] for n in ui["nodes"]} == {k: v["class_type"] for k, v in api.items()}
    nodes = {n["id"]: n for n in ui["nodes"]}
    for link_id, src, src_slot, dst, dst_slot, kind in ui["links"]:
        assert link_id in nodes[src]["outputs"][src_slot]["links"]
        assert nodes[dst]["inputs"][dst_slot]["link"] == link_id
        assert nodes[src]["outputs"][src_slot]["type"] == nodes[dst]["inputs"][dst_slot]["type"] == kind
        # the API graph has the same edge
        name = nodes[dst]["inputs"][dst_slot]["name"]
        assert api[str(dst)]["inputs"][name] == [str(src), src_slot]
    assert ui["last_link_id"] == max(l[0] for l in ui["links"])
