"""The haze model: the synthesis's true transmission, the physics phase that learns it, the
inverse of the scattering model, and the engine's first round that uses it."""

from __future__ import annotations

import numpy as np
import pytest
import restora
import torch
from helpers import degrade_as_before, phase_model, sample_batch, train_on_batch
from restora import DEGRADATIONS
from restora.degradations import (
    degradation_cutmix,
    degrade,
    haze,
)
from restora.engine.dehaze import dehaze
from restora.training.config import TrainConfig
from restora.training.data import SyntheticBatches
from restora.training.train import HAZE_PARTS, compute_losses


def test_degrade_keeps_the_true_transmission_and_draws_as_before():
    x = torch.rand(3, 48, 64, generator=torch.Generator().manual_seed(0))
    s, p = degrade_as_before(x, "haze", 5)
    t, a = s.transmission, s.airlight
    assert t.shape == (48, 64) and 0 < float(t.min()) < float(t.max()) < 1 and torch.equal(a, torch.full((3,), p["airlight"]))
    torch.testing.assert_close(s.degraded, (x * t + a[:, None, None] * (1 - t)).clamp(0, 1))
    assert torch.equal(degrade(x, ["noise"], torch.Generator().manual_seed(1)).transmission, torch.ones(48, 64))
    mix = degradation_cutmix(x, ["noise"], ["haze"], torch.Generator().manual_seed(2))
    hazy = mix.transmission < 1
    assert hazy.any() and not hazy.all() and torch.equal(hazy, mix.labels == restora.SEGMENT_CLASSES.index("haze"))


def test_dehaze_inverts_the_scattering_model():
    j = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    t = 0.2 + 0.8 * torch.rand(1, 1, 64, 64, generator=torch.Generator().manual_seed(1))
    a = torch.tensor([[0.9, 0.85, 0.8]])
    hazy = haze(j, 0.0, 0.0, t=t[0, 0]) + a[:, :, None, None] * (1 - t)
    torch.testing.assert_close(dehaze(hazy, t, a), j, atol=1e-5, rtol=0)
    assert torch.equal(dehaze(j, torch.ones(1, 1, 64, 64), a), j)  # no haze: unchanged
    with pytest.raises(ValueError, match="transmission must be"):
        dehaze(j, t[:, :, :32], a)


def test_physics_phase_learns_the_transmission_and_nothing_else(tmp_path):
    model, params = phase_model("physics", HAZE_PARTS, haze_model=8)
    x = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(3))
    samples = [degrade(x, ["haze"], torch.Generator().manual_seed(s)) for s in range(4)]
    batch, physics = sample_batch(samples)
    with pytest.raises(ValueError, match="true transmission"):
        compute_losses(model, *batch, TrainConfig().loss_weights, 1, "physics")
    before, after, first, last = train_on_batch(model, params, batch, physics, "physics", 40)
    assert last < 0.75 * first and model.stem.weight.grad is None
    for key in ("restored", "quality", "segment_logits"):
        torch.testing.assert_close(before[key], after[key], rtol=0, atol=0)
    assert float((after["transmission"] - physics[0]).abs().mean()) < float((before["transmission"] - physics[0]).abs().mean())


def test_synthetic_batches_carry_the_physics(tmp_path):
    from PIL import Image

    for i in range(2):
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
    paths = sorted(tmp_path.glob("*.png"))
    plain = next(SyntheticBatches(paths, 32, 4, {"single": 1.0}, 0))
    degraded, _clean, _labels, present, t, a, gain = next(SyntheticBatches(paths, 32, 4, {"single": 1.0}, 0, physics=True))
    assert len(plain) == 4 and torch.equal(plain[0], degraded)  # the same samples either way
    assert t.shape == (4, 1, 32, 32) and a.shape == (4, 3)
    no_haze = present[:, DEGRADATIONS.index("haze")] == 0
    assert torch.equal(t[no_haze], torch.ones_like(t[no_haze]))
    no_light = present[:, DEGRADATIONS.index("low_light")] == 0
    assert gain.shape == (4, 1, 32, 32) and torch.equal(gain[no_light], torch.ones_like(gain[no_light]))


def test_dark_channel_transmission_is_the_square_minimum():
    import torch.nn.functional as F
    from restora.models.restoranet import dark_channel_transmission

    x = torch.rand(2, 3, 40, 50, generator=torch.Generator().manual_seed(0))
    a = torch.tensor([[0.9, 0.8, 0.7], [1.0, 1.0, 1.0]])
    direct = -F.max_pool2d(-(x / a[:, :, None, None]).amin(1, keepdim=True), 15, stride=1, padding=7)
    torch.testing.assert_close(dark_channel_transmission(x, a), 1 - 0.95 * direct, rtol=0, atol=0)
    assert float(dark_channel_transmission(x, a)[1, 0, 20, 25]) == pytest.approx(
        1 - 0.95 * float(x[1, :, 13:28, 18:33].min()))
