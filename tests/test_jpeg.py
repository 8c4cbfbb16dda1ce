"""The JPEG model: reading a decoded JPEG's grid and quantisation from its coefficients, the
quantisation constraint, the network and its tiles, the jpeg phase that trains it, and the
engine's first step, the coding undone where it shows."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import default_engine_with, phase_model, psnr_of, train_on_batch, train_photo
from PIL import Image
from restora.engine.dejpeg import coded_weight, dejpeg
from restora.models.jpeg import (
    JpegModel,
    block_consistency,
    blocks,
    dct,
    find_jpeg,
    grid_position,
    idct,
    ijg_table,
    luminance,
    project,
)
from restora.training.train import JPEG_PARTS, compute_losses

SAMPLE = Path(__file__).parents[1] / "core" / "restora" / "data" / "sample_clean.png"


def sample() -> np.ndarray:
    with Image.open(SAMPLE) as im:
        return np.asarray(im.convert("RGB"))


def coded(arr: np.ndarray, quality: int, crop: tuple[int, int] = (0, 0)) -> tuple[torch.Tensor, torch.Tensor]:
    """``arr`` JPEG-coded by Pillow at ``quality``, decoded, cropped by ``crop`` (dy, dx), as
    (1, 3, H, W) in [0, 1], and the luminance table Pillow wrote (8, 8)."""
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=quality)
    with Image.open(io.BytesIO(buf.getvalue())) as im:
        table = torch.tensor(im.quantization[0], dtype=torch.float32).reshape(8, 8)
        a = np.asarray(im.convert("RGB"))[crop[0] :, crop[1] :]
    return torch.from_numpy(a.copy()).permute(2, 0, 1)[None].float() / 255, table


def as_tensor(arr: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(arr.copy()).permute(2, 0, 1)[None].float() / 255


@pytest.mark.parametrize("quality", [10, 20, 35, 50, 75])
def test_ijg_table_is_pillows(quality):
    _, table = coded(sample()[:64, :64], quality)
    torch.testing.assert_close(ijg_table(quality), table, rtol=0, atol=0)


def test_dct_is_orthonormal_and_inverted():
    b = torch.randn(5, 8, 8, generator=torch.Generator().manual_seed(0))
    c = dct(b)
    torch.testing.assert_close(idct(c), b, atol=1e-5, rtol=0)
    torch.testing.assert_close((c**2).sum((-2, -1)), (b**2).sum((-2, -1)), rtol=1e-5, atol=1e-4)
    # the DC coefficient is 8x the block's mean, as JPEG's
    torch.testing.assert_close(c[:, 0, 0], 8 * b.mean((-2, -1)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("quality,crop", [(15, (0, 0)), (30, (3, 5)), (60, (7, 1))])
def test_the_grid_and_the_steps_are_read_from_a_decoded_jpeg(quality, crop):
    x, table = coded(sample(), quality, crop)
    grid = find_jpeg(x)
    assert grid is not None
    assert grid.offset == ((8 - crop[0]) % 8, (8 - crop[1]) % 8)
    assert grid.quality == quality and grid.match >= 0.9
    read = grid.steps > 0
    assert int(read.sum()) >= 12
    # read to within 1 + 3% (the decoder's rounding blurs the clusters of the largest steps)
    assert bool(((grid.steps - table).abs() <= 1 + 0.03 * table)[read].all()), (grid.steps, table)
    assert bool(((grid.table - table).abs() <= 1 + 0.03 * table).all())  # the unread from the fitted table


def test_no_coding_is_read_where_there_is_none():
    arr = sample()
    x = as_tensor(arr)
    g = torch.Generator().manual_seed(0)
    assert find_jpeg(x) is None  # a PNG
    assert find_jpeg((x + 0.03 * torch.randn(x.shape, generator=g)).clamp(0, 1)) is None
    # enough noise after the coding wipes its trace; a quality too high to matter is not read
    y, _ = coded(arr, 20)
    assert find_jpeg((y + 0.05 * torch.randn(y.shape, generator=g)).clamp(0, 1)) is None
    assert find_jpeg(coded(arr, 95)[0]) is None
    assert find_jpeg(x[..., :24, :24]) is None  # too small to read


def test_blocks_tell_a_coded_region_from_the_rest():
    arr = sample()
    x, _ = coded(arr, 25)
    mixed = x.clone()
    g = torch.Generator().manual_seed(1)
    noisy = (as_tensor(arr) + 0.05 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    mixed[..., :, 192:] = noisy[..., :, 192:]  # the right half never coded
    grid = find_jpeg(mixed)
    assert grid is not None and grid.offset == (0, 0)
    c = block_consistency(mixed, grid)[0]
    left, right = c[:, :22], c[:, 26:]
    assert float(left.nanmean()) > 0.85 and float(right.nanmean()) < 0.3
    w = coded_weight(mixed, grid)
    assert w.shape == (1, 1, 384, 384)
    assert float(w[..., :, :160].mean()) > 0.95 and float(w[..., :, 232:].mean()) < 0.05


def test_projection_keeps_the_coefficients_the_jpeg_had():
    x, table = coded(sample(), 20, (2, 6))
    grid = find_jpeg(x)
    smooth = torch.nn.functional.avg_pool2d(x, 5, stride=1, padding=2, count_include_pad=False)
    p = project(smooth, x, grid)
    q = grid.table
    cx, _ = blocks(luminance(x), grid.offset)
    cp, _ = blocks(luminance(p), grid.offset)
    nx, np_ = torch.round(dct(cx) / q), torch.round(dct(cp) / q)
    # where nothing clipped to [0, 1], each coefficient rounds to the observed multiple
    assert float((nx == np_).float().mean()) > 0.99
    torch.testing.assert_close(project(x, x, grid), x, atol=2e-3, rtol=0)
    # the chroma is left as it was
    chroma = lambda t: t - t.mean(1, keepdim=True)
    inside = (slice(None), slice(None), slice(8, -8), slice(8, -8))
    assert float((chroma(p) - chroma(smooth))[inside].abs().mean()) < 0.002  # (but where [0, 1] clipped)


def test_grid_position_follows_the_tile():
    whole = grid_position((40, 50), (3, 6))
    part = grid_position((16, 20), (3, 6), origin=(11, 17))
    torch.testing.assert_close(part, whole[..., 11:27, 17:37])
    assert whole.shape == (1, 4, 40, 50)
    # the grid's first pixel sits at phase 0
    torch.testing.assert_close(whole[0, :, 3, 6], torch.tensor([1.0, 0.0, 1.0, 0.0]))


def test_the_model_starts_as_the_identity_and_its_tiles_are_exact():
    x, _ = coded(sample()[:200, :232], 20, (1, 3))
    grid = find_jpeg(x)
    model = JpegModel(16, 2).eval()
    torch.testing.assert_close(dejpeg(model, x, grid, constrain=False), x)
    torch.manual_seed(0)
    for p in model.out.parameters():
        torch.nn.init.normal_(p, std=0.01)
    whole = dejpeg(model, x, grid, tile_size=512, constrain=False)
    tiled = dejpeg(model, x, grid, tile_size=96, constrain=False)
    assert float((whole - x).abs().mean()) > 1e-3
    torch.testing.assert_close(tiled, whole, atol=1e-5, rtol=0)


def test_jpeg_phase_learns_to_undo_the_coding_and_nothing_else():
    from restora.training.data import JpegBatches

    model, params = phase_model("jpeg", JPEG_PARTS, jpeg_model=16)
    folder = SAMPLE.parent
    batches = JpegBatches([SAMPLE], 64, 4, seed=0, qualities=(15, 15))
    coded_, before, labels, present, quality, offset = next(batches)
    assert coded_.shape == before.shape == (4, 3, 64, 64) and bool((quality == 15).all())
    for i in range(4):  # the offsets given are where the crop's grid lies
        grid = find_jpeg(coded_[i : i + 1])
        if grid is not None:
            assert grid.offset == tuple(offset[i].tolist())
    with pytest.raises(ValueError, match="quality and grid"):
        compute_losses(model, coded_, before, labels, present, {}, 1, "jpeg")
    history = []
    ref, after, first, last = train_on_batch(model, params, [coded_, before, labels, present], (quality, offset),
                                             "jpeg", 100, lr=2e-3, history=history)
    assert last < 0.97 * first and history[-1]["jpeg_gain_db"] > 0.1, history[::10]
    torch.testing.assert_close(after["restored"], ref["restored"], rtol=0, atol=0)
    assert folder.exists()


@pytest.fixture(scope="module")
def shipped_engine():
    return default_engine_with("jpeg_model")


def test_the_shipped_model_undoes_jpeg_first(shipped_engine):
    """A JPEG-20 image: its coding found and undone first (better than the input by a clear
    margin), reported; not with dejpeg=False, nor where other degradations are named; a PNG
    is left to the rounds."""
    import restora

    arr = sample()
    clean = as_tensor(arr)
    x, _ = coded(arr, 20)
    r = shipped_engine.restore(x, max_iterations=1)
    assert r.dejpegged == [True] and len(r.history[0]) >= 2
    assert r.degradation_probs[0, restora.DEGRADATIONS.index("jpeg")] >= 0.9
    assert psnr_of(r.image, clean) > psnr_of(x, clean) + 0.5
    off = shipped_engine.restore(x, max_iterations=1, dejpeg=False)
    assert off.dejpegged == [False] and psnr_of(off.image, clean) < psnr_of(r.image, clean)
    assert shipped_engine.restore(x, degradations=("noise",), max_iterations=1).dejpegged == [False]
    assert shipped_engine.restore(clean, max_iterations=1).dejpegged == [False]
    q, probs = shipped_engine.assess(x)
    assert float(probs[0, restora.DEGRADATIONS.index("jpeg")]) >= 0.9


def test_the_shipped_segmentation_finds_a_coded_box(shipped_engine):
    """JPEG-20 in a box of a photograph: the map calls the box JPEG where the head called
    part of it clean, and the rest of the image still not JPEG, also where the photograph's
    own coding (BSDS's, quality 92) lies on the box's grid and is read instead."""
    import restora
    from restora.degradations import jpeg
    from restora.engine.engine import SEGMENT_JPEG_QUALITY, _Ticker

    k = restora.SEGMENT_CLASSES.index("jpeg")
    share = lambda m, where: float(m[where].float().mean())
    for size in (250, 256):  # the photograph's grid off the box's, and on it
        clean = torch.round(train_photo(2, size) * 255) / 255
        x = clean.clone()
        x[..., 32:216, 32:216] = jpeg(clean, 20)[..., 32:216, 32:216]  # half the image
        box = torch.zeros(size, size, dtype=torch.bool)
        box[40:208, 40:208] = True
        outside = torch.ones_like(box)
        outside[24:224, 24:224] = False
        head = shipped_engine._pass(x, True, _Ticker(None, 0))["segment_logits"].argmax(1)[0] == k
        found = shipped_engine.segment(x).argmax(1)[0] == k
        grid = shipped_engine.jpeg_estimate(x)
        print(f"{size}: quality read {grid.quality}, box: head {share(head, box):.2f}, "
              f"map {share(found, box):.2f}; outside {share(found, outside):.2f}")
        assert share(found, outside) < 0.1 and share(found, box) >= share(head, box)
        if size == 250:
            assert grid.quality <= SEGMENT_JPEG_QUALITY and share(found, box) > 0.97  # (the head: 0.92)
        else:
            assert grid.quality > SEGMENT_JPEG_QUALITY
