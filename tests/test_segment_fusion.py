"""The segmentation fusion: it starts as the moved map, acts on colour images only, trains
from a cache of composites (resumable, exportable), and the shipped one beats the moved map."""

from __future__ import annotations

import json

import numpy as np
import pytest
import restora
import torch
from helpers import default_engine_with, train_photo
from PIL import Image
from restora import SEGMENT_CLASSES
from restora.engine.engine import Engine
from restora.models import RestoraNet, RestoraNetConfig, model_metadata
from restora.models.segment_fusion import INPUTS, MAPS, SCALE, SegmentFusion, fusion_maps
from restora.training import segment_fusion as sf
from restora.training.export import export
from safetensors.torch import save_file

SMALL = {"channels": (8, 16, 16), "encoder_blocks": (1, 1), "segment_context": 8, "haze_model": 4}
K = len(SEGMENT_CLASSES)


def _maps_of(h: int, w: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(1, 3, h, w, generator=g)
    probs = torch.softmax(torch.randn(1, K, h, w, generator=g), 1)
    head = torch.softmax(torch.randn(1, K, h, w, generator=g), 1)
    maps = torch.rand(1, MAPS, h, w, generator=g)
    return image, probs, head, maps, torch.rand(1, 6, generator=g), torch.tensor([75.0])


def test_the_fusion_starts_as_the_moved_map_on_any_size():
    image, probs, head, maps, deg, q = _maps_of(37, 50)
    features = fusion_maps(image, probs, head, maps, deg, q)
    assert features.shape == (1, INPUTS, -(-37 // SCALE), -(-50 // SCALE)) and torch.isfinite(features).all()
    fusion = SegmentFusion(8)
    torch.testing.assert_close(torch.softmax(fusion(features, probs), 1), probs, atol=1e-5, rtol=0)
    torch.nn.init.normal_(fusion.out.weight, std=0.5)
    logits = fusion(features, probs)
    assert logits.shape == probs.shape and (torch.softmax(logits, 1) - probs).abs().max() > 0.05


def _small_weights(tmp_path, fusion: int = 0, seed: int = 0):
    torch.manual_seed(seed)
    model = RestoraNet(RestoraNetConfig(**SMALL, segment_fusion=fusion)).eval()
    if fusion:
        torch.nn.init.normal_(model.segment_fusion.out.weight, std=0.5)
    path = tmp_path / f"small-{fusion}.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path),
              metadata=model_metadata("restoranet-v0", model))
    return path


def test_the_engine_fuses_colour_images_only(tmp_path):
    engine = Engine(_small_weights(tmp_path, fusion=8), "cpu")
    assert engine.has_segment_fusion
    g = torch.Generator().manual_seed(1)
    colour, grey = torch.rand(1, 3, 48, 64, generator=g), torch.rand(1, 1, 48, 64, generator=g)
    for x, fused in ((colour, True), (grey, False)):
        parts = engine.segment_parts(engine._to_rgb(x))
        probs = engine.segment(x)
        torch.testing.assert_close(probs.sum(1), torch.ones(1, 48, 64))
        assert parts["colour"] == fused
        assert ((probs - parts["moved"]).abs().max() > 0.05) == fused
    assert not Engine(_small_weights(tmp_path), "cpu").has_segment_fusion


def _photos(folder, n: int = 3):
    folder.mkdir()
    g = np.random.default_rng(0)
    for i in range(n):  # smooth scenes: a gradient and a few blocks, as a photograph's regions
        a = np.linspace(0, 1, 96)[None, :, None] * g.random(3) + np.linspace(0, 1, 72)[:, None, None] * g.random(3)
        a[10:40, 20:60] = g.random(3)
        Image.fromarray((np.clip(a / a.max(), 0, 1) * 255).astype(np.uint8)).save(folder / f"p{i}.png")
    return sorted(folder.iterdir())


def test_composites_are_cached_once_and_match_the_benchmarks(tmp_path):
    paths = _photos(tmp_path / "photos")
    engine = Engine(_small_weights(tmp_path), "cpu")
    cache = tmp_path / "cache"
    assert sf.write_composites(engine, paths, cache, draws=2) == 6
    assert sf.write_composites(engine, paths, cache, draws=2) == 0  # a rerun resumes: nothing left
    z = np.load(cache / "p0_1.npz")
    assert z["image"].dtype == np.uint8 and z["image"].shape == (72, 96, 3) and z["maps"].shape == (MAPS, 72, 96)
    # the benchmark's composite of the same image and seed
    import sys
    from conftest import REPO

    sys.path.insert(0, str(REPO / "benchmarks"))
    import segment as bench

    clean = np.asarray(Image.open(paths[0]).convert("RGB"))
    image, labels, _ = bench.composite(clean, sf.composite_seed("p0", 1))
    assert (image == z["image"]).all() and (labels == z["labels"]).all()
    parts = engine.segment_parts(torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255)
    np.testing.assert_allclose(z["moved"], parts["moved"][0].numpy(), atol=2e-3)


def test_fit_learns_resumes_and_exports(tmp_path):
    """On composites of a random small model's parts the moved map is noise; the fusion
    learns the labels from the image and the maps (training accuracy well above the moved
    map's), a resumed run continues at its step, and the export segments with it."""
    paths = _photos(tmp_path / "photos", 4)
    init = _small_weights(tmp_path)
    cache = tmp_path / "cache"
    sf.write_composites(Engine(init, "cpu"), paths, cache, draws=4)
    last = sf.fit(cache, tmp_path / "runs", "fuse", init=init, hidden=8, epochs=6, lr=1e-2, batch=4,
                  holdout=0.25, threads=1)
    log = [json.loads(line) for line in (last.parent / "log.jsonl").read_text().splitlines()]
    assert len(log) == 6 and log[-1]["loss"] < log[0]["loss"] and "heldout_accuracy" in log[-1]
    from restora.training.checkpoint import load_checkpoint

    meta = json.loads(json.loads(__import__("safetensors").safe_open(str(last), "pt").metadata()["extra"])["config"])
    model = RestoraNet(RestoraNetConfig.from_dict(meta["model"]))
    step, _ = load_checkpoint(last, model, None)
    train, held = sf.load_cache(cache, 0.25)
    fused, moved = sf.accuracy(model.segment_fusion.eval(), train)
    assert len(train) == 12 and len(held) == 4 and fused > moved + 0.2, (fused, moved)
    resumed = sf.fit(cache, tmp_path / "runs", "fuse", init=init, hidden=8, epochs=7, lr=1e-2, batch=4,
                     holdout=0.25, threads=1, resume=True)
    log = [json.loads(line) for line in (resumed.parent / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2, 3, 4, 5, 6, 7] and log[-1]["step"] == step + 3
    out = export(resumed, tmp_path / "weights", "fused", "fused.safetensors")
    engine = Engine(out, "cpu")
    assert engine.has_segment_fusion
    assert restora.segment(np.asarray(Image.open(paths[0])), weights=out, device="cpu").labels.shape == (72, 96)


@pytest.fixture(scope="module")
def shipped_engine():
    return default_engine_with("segment_fusion")


def test_the_shipped_fusion_beats_the_moved_map(shipped_engine):
    """On composites of two train/bsds photographs the fusion's training held out (the last
    tenth by name), the fused map is right on more pixels than the moved one it starts from."""
    right = base = n = 0
    for index in (-3, -7):
        clean = (train_photo(index, 256)[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        for draw in range(3):
            image, labels, _ = sf.composite(torch.from_numpy(clean).permute(2, 0, 1), 1000 + 10 * index + draw)
            x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
            truth = torch.from_numpy(labels.astype(np.int64))
            moved = shipped_engine.segment_parts(x)["moved"].argmax(1)[0]
            fused = shipped_engine.segment(x).argmax(1)[0]
            right, base, n = right + int((fused == truth).sum()), base + int((moved == truth).sum()), n + truth.numel()
    print(f"pixel accuracy: fused {right / n:.3f}, moved {base / n:.3f}")
    assert right / n > base / n + 0.02
