"""The node pack inside a real ComfyUI: start it, run the example workflows, cancel, bad input.

Needs a ComfyUI checkout named by ``COMFYUI_DIR`` and a Python that has ComfyUI's
requirements plus Restora (``COMFYUI_PYTHON``, default: this interpreter). Skipped otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
PACK = REPO / "comfy_nodes"
sys.path.insert(0, str(REPO))

from comfy_server import WebSocketListener, start_comfyui, ui_to_api  # noqa: E402

COMFYUI_DIR = os.environ.get("COMFYUI_DIR")
pytestmark = pytest.mark.skipif(
    not COMFYUI_DIR,
    reason="COMFYUI_DIR is not set: set it to a ComfyUI checkout (and COMFYUI_PYTHON to its Python) "
           "to run the node pack against a real ComfyUI",
)

NODE_IDS = ["RestoraLoadModel", "RestoraRestore", "RestoraAssess", "RestoraSegment", "RestoraQualityGate"]
API_WORKFLOW = PACK / "api_workflows" / "restora_assess_restore_api.json"
UI_WORKFLOW = PACK / "example_workflows" / "restora_assess_restore.json"


def _test_image() -> np.ndarray:
    """An odd-sized noisy crop of the bundled sample (uint8 RGB)."""
    import restora

    sample = Path(restora.__file__).parent / "data" / "sample_degraded.png"
    return np.asarray(Image.open(sample).convert("RGB"))[100:175, 140:237].copy()  # 75 x 97


@pytest.fixture(scope="module")
def comfy(tmp_path_factory):
    base = tmp_path_factory.mktemp("comfy_base")
    for d in ("custom_nodes", "input", "models/restora"):
        (base / d).mkdir(parents=True)
    (base / "custom_nodes" / "comfyui-restora").symlink_to(PACK, target_is_directory=True)
    Image.fromarray(_test_image()).save(base / "input" / "example.png")
    # weights in the base directory's models/restora and in a folder named by extra_model_paths.yaml
    import restora.engine.weights as w

    shipped = w.resolve_weights("default").path
    shutil.copy(shipped, base / "models" / "restora" / "restora-copy.safetensors")
    extra = tmp_path_factory.mktemp("extra_models")
    shutil.copy(shipped, extra / "restora-extra.safetensors")
    yaml = base / "extra_model_paths.yaml"
    yaml.write_text(f"restora_test:\n    restora: {extra}\n")
    python = os.environ.get("COMFYUI_PYTHON", sys.executable)
    t0 = time.perf_counter()
    server = start_comfyui(Path(COMFYUI_DIR), python, base, ["--extra-model-paths-config", str(yaml)])
    print(f"ComfyUI answered after {time.perf_counter() - t0:.1f} s")
    yield server
    server.stop()


@pytest.fixture
def ws(comfy):
    listener = WebSocketListener(comfy.port, comfy.client_id)
    yield listener
    listener.close()


def _output_file(comfy, entry: dict, node: str) -> Path:
    image = entry["outputs"][node]["images"][0]
    return comfy.base / image["type"] / image["subfolder"] / image["filename"]


def _saved(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def test_object_info_lists_nodes_and_weights_folders(comfy):
    info = comfy.get("/object_info")
    for node in NODE_IDS:
        assert node in info, f"{node} missing from /object_info; log: {comfy.log}"
        assert info[node]["category"] == "image/restoration"
    weights = info["RestoraLoadModel"]["input"]["required"]["weights"][1]["options"]
    assert weights[0] == "default"
    assert "restora-copy.safetensors" in weights  # models/restora under --base-directory
    assert "restora-extra.safetensors" in weights  # restora: in extra_model_paths.yaml
    assert info["RestoraAssess"]["output_node"] is True
    assert info["RestoraRestore"]["output"] == ["IMAGE", "MASK", "STRING"]


def test_example_workflow_restores_and_saves(comfy, ws):
    from comfy_nodes.operations import assess_images, restore_images

    import restora

    prompt = json.loads(API_WORKFLOW.read_text())
    t0 = time.perf_counter()
    prompt_id = comfy.queue_prompt(prompt)
    entry = comfy.wait(prompt_id)
    seconds = time.perf_counter() - t0
    assert entry["status"]["status_str"] == "success", entry["status"]
    print(f"example workflow: {seconds:.2f} s")

    # the saved pixels equal Restora's own result (LoadImage: uint8 / 255; SaveImage truncates)
    x = torch.from_numpy(_test_image().astype(np.float32) / 255.0)[None]
    engine = restora.Engine("default", "cpu")
    expected = restore_images(engine, x)
    want = np.clip(expected.image[0].numpy() * 255.0, 0, 255).astype(np.uint8)
    got = _saved(_output_file(comfy, entry, "6"))
    assert got.shape == want.shape == (75, 97, 3)
    diff = np.abs(got.astype(int) - want.astype(int))
    assert diff.max() <= 1, f"saved image differs by up to {diff.max()}/255 from Restora's result"
    assert np.abs(got.astype(int) - _test_image().astype(int)).mean() > 2, "the image was not restored"

    # both assessments ran and show their scores; the second is the restored image's
    before = entry["outputs"]["3"]["text"][0]
    after = entry["outputs"]["5"]["text"][0]
    q0 = assess_images(engine, x).scores[0]
    q1 = assess_images(engine, expected.image).scores[0]
    assert f"quality {q0:.3f}" in before, before
    assert f"quality {q1:.3f}" in after, after
    assert q1 > q0 + 0.1
    assert "iterations" in entry["outputs"]["4"]["text"][0]

    # progress went through ComfyUI's progress bar: the restore node reported up to its total
    done = ws.next(lambda m: m["type"] == "progress" and m["data"].get("node") == "4"
                   and m["data"]["value"] == m["data"]["max"], timeout=5)
    assert done["data"]["max"] >= 2


def test_ui_workflow_matches_api_workflow_and_runs(comfy):
    info = comfy.get("/object_info")
    converted = ui_to_api(json.loads(UI_WORKFLOW.read_text()), info)
    api = {k: {"class_type": v["class_type"], "inputs": v["inputs"]} for k, v in json.loads(API_WORKFLOW.read_text()).items()}
    assert converted == api
    entry = comfy.wait(comfy.queue_prompt(converted))
    assert entry["status"]["status_str"] == "success", entry["status"]


def test_segment_gate_and_folder_weights(comfy):
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "example.png"}},
        "2": {"class_type": "RestoraLoadModel",
              "inputs": {"weights": "restora-extra.safetensors", "device": "cpu", "tile_size": 256}},
        "3": {"class_type": "RestoraRestore", "inputs": {"image": ["1", 0], "model": ["2", 0], "mode": "chosen",
                                                         "degradations": "noise", "strength": 1.0, "max_iterations": 2}},
        "4": {"class_type": "RestoraQualityGate", "inputs": {"image_a": ["1", 0], "image_b": ["3", 0], "model": ["2", 0]}},
        "5": {"class_type": "SaveImage", "inputs": {"images": ["4", 0], "filename_prefix": "gate"}},
        "6": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "restored"}},
        "7": {"class_type": "RestoraSegment", "inputs": {"image": ["1", 0], "degradation": "noise"}},
        "8": {"class_type": "SaveImage", "inputs": {"images": ["7", 1], "filename_prefix": "map"}},
        "9": {"class_type": "MaskToImage", "inputs": {"mask": ["7", 0]}},
        "10": {"class_type": "SaveImage", "inputs": {"images": ["9", 0], "filename_prefix": "noise_mask"}},
    }
    entry = comfy.wait(comfy.queue_prompt(prompt))
    assert entry["status"]["status_str"] == "success", entry["status"]
    # the gate passed on the restored image (better than the noisy input)
    np.testing.assert_array_equal(_saved(_output_file(comfy, entry, "5")), _saved(_output_file(comfy, entry, "6")))
    assert "-> B" in entry["outputs"]["4"]["text"][0]
    # the noisy crop is noise nearly everywhere: the map is mostly noise's colour, the mask mostly white
    from restora.palette import SEGMENT_COLOURS

    colour = _saved(_output_file(comfy, entry, "8"))
    assert colour.shape == (75, 97, 3)
    assert (colour == SEGMENT_COLOURS["noise"]).all(-1).mean() > 0.8
    assert _saved(_output_file(comfy, entry, "10")).mean() > 0.7 * 255


def test_interrupt_stops_a_long_restore_between_tiles(comfy, ws):
    # 512x512 with 128-pixel tiles: hundreds of tiles per pass, about a minute of work on 2 cores
    prompt = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 512, "height": 512, "batch_size": 1, "color": 8421504}},
        "2": {"class_type": "RestoraLoadModel", "inputs": {"weights": "default", "device": "auto", "tile_size": 128}},
        "3": {"class_type": "RestoraRestore", "inputs": {"image": ["1", 0], "model": ["2", 0], "mode": "auto",
                                                         "degradations": "noise", "strength": 1.0, "max_iterations": 3}},
        "4": {"class_type": "PreviewImage", "inputs": {"images": ["3", 0]}},
    }
    prompt_id = comfy.queue_prompt(prompt)
    first = ws.next(lambda m: m["type"] == "progress" and m["data"].get("node") == "3", timeout=120)
    total = first["data"]["max"]
    time.sleep(1.0)  # let some tiles run
    t0 = time.perf_counter()
    status, _ = comfy.post("/interrupt")
    assert status == 200
    entry = comfy.wait(prompt_id, timeout=60)
    stopped_after = time.perf_counter() - t0
    kinds = [m[0] for m in entry["status"]["messages"]]
    assert "execution_interrupted" in kinds, entry["status"]
    assert "execution_success" not in kinds
    assert "4" not in entry.get("outputs", {}), "the preview after the interrupted node ran"
    assert stopped_after < 10, f"took {stopped_after:.1f} s to stop after /interrupt"
    print(f"interrupt: stopped {stopped_after:.2f} s after /interrupt, job had {total} tiles")
    # the server goes on working
    assert "RestoraRestore" in comfy.get("/object_info/RestoraRestore")


def test_bad_input_is_a_node_error_not_a_crash(comfy):
    # a bad widget value is refused when the prompt is validated, naming the node and the value
    bad = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "example.png"}},
        "2": {"class_type": "RestoraRestore", "inputs": {"image": ["1", 0], "mode": "chosen", "degradations": "sharpen",
                                                         "strength": 1.0, "max_iterations": 3}},
        "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}},
    }
    status, body = comfy.post("/prompt", {"prompt": bad, "client_id": comfy.client_id})
    assert status == 400
    assert "2" in body["node_errors"], body
    assert "sharpen" in json.dumps(body["node_errors"]["2"])

    # an image too small to restore fails in the node, with Restora's message, and ComfyUI goes on
    tiny = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 2, "height": 2, "batch_size": 1, "color": 0}},
        "2": {"class_type": "RestoraRestore", "inputs": {"image": ["1", 0], "mode": "auto", "degradations": "noise",
                                                         "strength": 1.0, "max_iterations": 3}},
        "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}},
    }
    entry = comfy.wait(comfy.queue_prompt(tiny))
    assert entry["status"]["status_str"] == "error"
    errors = [m[1] for m in entry["status"]["messages"] if m[0] == "execution_error"]
    assert errors and errors[0]["node_id"] == "2", entry["status"]
    assert "at least 4x4" in errors[0]["exception_message"]
    assert errors[0]["exception_type"].endswith("ImageError")
    comfy.check_alive()
    ok = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 33, "height": 17, "batch_size": 2, "color": 0}},
        "2": {"class_type": "RestoraAssess", "inputs": {"image": ["1", 0]}},
    }
    entry = comfy.wait(comfy.queue_prompt(ok))
    assert entry["status"]["status_str"] == "success", entry["status"]
    assert entry["outputs"]["2"]["text"][0].startswith("image 1/2: quality ")
