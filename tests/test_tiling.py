"""Overlapping blended tiles give the whole-image result, in bounded pieces."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

import restora
from restora.engine.tiling import plan_tiles, windows_1d

from helpers import smooth_image


@pytest.mark.parametrize("length, tile", [(100, 100), (300, 160), (421, 200), (1000, 256), (257, 256)])
def test_window_weights_partition_unity(length, tile):
    ws = windows_1d(length, tile, 48, 16, 4 if length % 4 == 0 else 1)
    total = torch.zeros(length)
    for w in ws:
        assert w.stop - w.start <= tile
        total[w.start : w.stop] += w.weight
    assert ws[0].start == 0 and ws[-1].stop == length
    assert (total > 0.999).all()  # every pixel is fully covered by trustworthy outputs


@pytest.mark.parametrize("length", [1024, 2048, 1000, 3001])
def test_windows_are_as_few_and_small_as_cover_allows(length):
    """As many windows as fixed strides of the largest tile would take, but all of the
    smallest size that still covers: neighbours overlap little more than they must."""
    tile, context, blend, m = 512, 48, 16, 4 if length % 4 == 0 else 1
    ws = windows_1d(length, tile, context, blend, m)
    stride = (tile - 2 * context - blend) // m * m
    assert len(ws) == -(-(length - tile) // stride) + 1
    sizes = {w.stop - w.start for w in ws}
    assert len(sizes) == 1 and sizes.pop() <= -(-(length + (len(ws) - 1) * (2 * context + blend)) // len(ws)) + 2 * m
    for a, b in itertools.pairwise(ws):
        assert a.stop - b.start >= 2 * context + blend
    if length == 1024:
        assert [(w.start, w.stop) for w in ws] == [(0, 416), (304, 720), (608, 1024)]


def test_zero_weight_within_context_of_inner_edges():
    ws = windows_1d(1000, 256, 48, 16, 4)
    for w in ws[1:]:
        assert (w.weight[:48] == 0).all()
    for w in ws[:-1]:
        assert (w.weight[-48:] == 0).all()


def test_plan_tiles_bounds_tile_size():
    tiles = plan_tiles(1200, 1700, 256, 48, 16, 4)
    assert len(tiles) > 20
    assert all(t.weight.shape == (t.ys.stop - t.ys.start, t.xs.stop - t.xs.start) for t in tiles)
    assert max(t.ys.stop - t.ys.start for t in tiles) <= 256


@pytest.mark.parametrize("shape", [(300, 421, 3), (257, 260), (130, 522, 4)])
def test_tiled_equals_untiled(shape, rng):
    image = np.clip(smooth_image(rng, shape, np.float32) + rng.normal(0, 0.08, shape), 0, 1).astype(np.float32)
    whole = restora.restore(image, device="cpu", tile_size=1024, max_iterations=2)
    tiled = restora.restore(image, device="cpu", tile_size=128, max_iterations=2)
    assert np.abs(whole.image - tiled.image).max() < 1e-3
    assert np.abs(whole.uncertainty - tiled.uncertainty).max() < 1e-3
    assert abs(whole.quality_before - tiled.quality_before) < 1e-3
    s_whole = restora.segment(image, device="cpu", tile_size=1024)
    s_tiled = restora.segment(image, device="cpu", tile_size=128)
    assert np.abs(s_whole.probabilities - s_tiled.probabilities).max() < 1e-3
    q_whole, q_tiled = restora.assess(image, device="cpu", tile_size=1024), restora.assess(image, device="cpu", tile_size=128)
    assert abs(q_whole.score - q_tiled.score) < 1e-3


def test_tile_size_too_small_is_refused(rng):
    with pytest.raises(restora.ImageError, match="tile_size"):
        restora.restore(smooth_image(rng, (64, 64)), device="cpu", tile_size=32)


def test_out_of_memory_backs_off_to_smaller_tiles(rng, monkeypatch):
    from restora.engine.engine import Engine

    image = smooth_image(rng, (300, 300, 3), np.float32)
    expected = restora.restore(image, device="cpu", tile_size=1024, max_iterations=1)
    engine = Engine("default", "cpu", tile_size=1024)
    real_encode = engine.model.encode
    sizes = []

    def encode(x):
        sizes.append(x.shape[-1])
        if x.shape[-1] > 200:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real_encode(x)

    monkeypatch.setattr(engine.model, "encode", encode)
    x = torch.from_numpy(image).permute(2, 0, 1)[None]
    r = engine.restore(x, max_iterations=1)
    assert engine.tile_size <= 200 and max(sizes) > 200
    got = r.image[0].permute(1, 2, 0).numpy()
    assert np.abs(got - expected.image).max() < 1e-3
    monkeypatch.setattr(engine.model, "encode", lambda x: (_ for _ in ()).throw(torch.OutOfMemoryError("oom")))
    with pytest.raises(restora.ImageError, match="out of memory"):
        engine.assess(x)


@pytest.mark.parametrize("grown", [{}, {"full_blocks": 2}, {"full_blocks": 1, "decoder_blocks": 2},
                                   {"encoder_blocks": (3, 4)}])
def test_receptive_radius_bounds_the_true_reach(grown):
    """Tiles are exact only if no output pixel depends on input further than the model's
    ``receptive_radius`` (the tiles' context): measured from input gradients, random weights."""
    from restora.models.restoranet import RestoraNet, RestoraNetConfig

    torch.manual_seed(0)
    model = RestoraNet(RestoraNetConfig(channels=(8, 8, 8), **grown)).double()
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.1)  # no zero-initialised conv hides a path
    x = torch.rand(1, 3, 168, 168, dtype=torch.float64, requires_grad=True)
    out = model(x)["restored"]
    reach = 0
    for cy, cx in [(84, 84), (85, 85), (86, 87), (87, 86)]:
        (g,) = torch.autograd.grad(out[0, :, cy, cx].sum(), x, retain_graph=True)
        nz = (g.abs().sum((0, 1)) > 0).nonzero()
        reach = max(reach, int((nz - torch.tensor([cy, cx])).abs().max()))
    assert 36 <= reach <= model.receptive_radius
