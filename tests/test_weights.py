"""Weights: shipped, checksummed, loaded without pickle, once per (file, device)."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

import restora
from restora.engine import weights as W
from restora.models import ARCHITECTURES

REPO = Path(__file__).resolve().parents[1]


def test_shipped_default_weights_verify():
    info = W.resolve_weights("default")
    assert info.path.is_file() and info.path.suffix == ".safetensors"
    assert info.sha256 == W.sha256_file(info.path)
    meta, state = W.load_state(info.path, info.sha256)
    assert meta["architecture"] in ARCHITECTURES
    n = sum(t.numel() for t in state.values())
    assert 10_000 < n <= 5_000_000  # the model issue's bound: at most 5M parameters


def test_model_loaded_once_across_calls_and_threads():
    W.clear_cache()
    before = W.load_count
    image = np.zeros((32, 32, 3), np.uint8)
    restora.assess(image, device="cpu")
    restora.restore(image, device="cpu")
    threads = [threading.Thread(target=restora.assess, args=(image, "cpu")) for _ in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert W.load_count == before + 1
    m1, _ = W.load_model("default", "cpu")
    m2, _ = W.load_model(W.resolve_weights("default").path, "cpu")
    assert m1 is m2


@pytest.fixture
def weights_copy(tmp_path):
    info = W.resolve_weights("default")
    path = tmp_path / "copy.safetensors"
    shutil.copy(info.path, path)
    return path, info.sha256


def test_missing_file_names_it(tmp_path):
    missing = tmp_path / "nope.safetensors"
    with pytest.raises(restora.WeightsError, match="nope.safetensors.*missing"):
        restora.assess(np.zeros((16, 16), np.uint8), weights=missing)


def test_corrupt_file_fails_checksum(weights_copy):
    path, digest = weights_copy
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF
    path.write_bytes(bytes(data))
    path.with_name(path.name + ".sha256").write_text(digest + "\n")
    with pytest.raises(restora.WeightsError, match="copy.safetensors is corrupt"):
        W.load_model(path, "cpu")


def test_not_a_safetensors_file(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x80\x04pickle-like garbage")
    with pytest.raises(restora.WeightsError, match="bad.safetensors"):
        W.load_model(bad, "cpu")


def test_unknown_architecture(tmp_path):
    path = tmp_path / "alien.safetensors"
    save_file({"w": np.zeros(3, np.float32)}, str(path), metadata={"architecture": "alien-net"})
    with pytest.raises(restora.WeightsError, match="unknown architecture 'alien-net'"):
        W.load_model(path, "cpu")


def test_user_cache_manifest(weights_copy, tmp_path, monkeypatch):
    path, digest = weights_copy
    cache = tmp_path / "cache"
    cache.mkdir()
    shutil.move(path, cache / "extra.safetensors")
    (cache / "manifest.json").write_text(json.dumps({"weights": {"extra": {"file": "extra.safetensors", "sha256": digest}}}))
    monkeypatch.setenv("RESTORA_CACHE", str(cache))
    assert W.cache_dir() == cache
    assert "extra" in W.available_weights()
    assert restora.assess(np.zeros((16, 16), np.uint8), device="cpu", weights="extra").score >= 0
    with pytest.raises(restora.WeightsError, match="unknown weights 'nothing'"):
        W.resolve_weights("nothing")


def test_no_pickle_in_the_package():
    source = "\n".join(p.read_text() for p in (REPO / "core" / "restora").rglob("*.py"))
    assert "torch.load(" not in source and "import pickle" not in source
    assert not list((REPO / "core").rglob("*.pt")) and not list((REPO / "core").rglob("*.pth"))
