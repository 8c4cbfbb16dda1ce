"""The quality fusion: the reported quality, the quality head's corrected by the blur and
exposure models, and the fusion phase that trains it."""

from __future__ import annotations

import itertools

import pytest
import torch
from helpers import default_engine_with, phase_model, sample_batch, train_photo
from restora.degradations import degrade
from restora.metrics import quality_target
from restora.models.blur import BANK, bank_spreads
from restora.models.quality_fusion import (
    FEATURES,
    QualityFusion,
    fusion_features,
    fusion_inputs,
)
from restora.training.train import FUSION_PARTS, compute_losses


def test_bank_spreads_grow_with_the_kernel():
    s = bank_spreads()
    assert s.shape == (len(BANK),) and s[0] == 0
    gauss = [s[i] for i, p in enumerate(BANK) if p and p["kind"] == "gaussian"]
    assert all(a < b for a, b in itertools.pairwise(gauss))
    assert float(gauss[0]) == pytest.approx(0.8 * 2 ** 0.5, rel=0.15)  # a Gaussian's rms radius is sigma sqrt 2


def test_the_fusion_starts_as_the_quality_head():
    q = torch.tensor([0.2, 0.7])
    f = fusion_features(q, torch.full((2, 6), 0.1), torch.tensor([0.9, 0.0]), torch.tensor([2.0, 0.0]),
                        torch.tensor([0.0, 0.8]), torch.tensor([0.0, 1.0]))
    assert f.shape == (2, FEATURES)
    torch.testing.assert_close(QualityFusion(8)(f), q)


def test_fusion_inputs_read_the_models_blur_and_exposure_models():
    model, _ = phase_model("fusion", FUSION_PARTS, quality_fusion=8, blur_model=8, exposure_model=8)
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        q, logits = model.assess(x)
        f = fusion_inputs(model, x, q, torch.sigmoid(logits))
        small = fusion_inputs(model, x[..., :32, :32], q, torch.sigmoid(logits))  # too small for the blur model
    assert torch.isfinite(f).all() and f[:, -5].abs().sum() > 0  # the blur model's probability
    assert (small[:, -4] == 0).all()  # no blur spread read


def test_fusion_phase_learns_the_quality_and_nothing_else():
    model, params = phase_model("fusion", FUSION_PARTS, quality_fusion=16, blur_model=8, exposure_model=8)
    x = torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(3)) * 0.5 + 0.25
    samples = [degrade(x, names, torch.Generator().manual_seed(s))
               for s, names in enumerate([[], ["noise"], ["blur"], ["low_light"]])]
    batch, _ = sample_batch(samples)
    opt = torch.optim.Adam(params, lr=1e-2)
    with torch.no_grad():
        q_before, _ = model.assess(batch[0])
    losses = []
    for _ in range(150):
        loss = compute_losses(model.train(), *batch, {}, 1, "fusion")
        opt.zero_grad()
        loss["total"].backward()
        opt.step()
        losses.append(float(loss["total"]))
    # (an untrained model's heads tell these four apart only faintly)
    assert losses[-1] < 0.6 * losses[0] and model.stem.weight.grad is None
    with torch.no_grad():
        q_after, _ = model.assess(batch[0])
        q, logits = model.assess(batch[0])
        fused = model.quality_fusion(fusion_inputs(model, batch[0], q, torch.sigmoid(logits)))
    torch.testing.assert_close(q_before, q_after, rtol=0, atol=0)  # the head is unchanged
    target = quality_target(batch[0], batch[1])
    assert (fused - target).abs().mean() < 0.7 * (q - target).abs().mean()


@pytest.fixture(scope="module")
def shipped_engine():
    return default_engine_with("quality_fusion")


def test_the_shipped_fusion_ranks_blurred_and_dark_images_below_clean_ones(shipped_engine):
    """The quality head alone rated blurred and noise-free darkened photographs nearly as
    high as clean ones; the fused score must rank them below."""
    from restora.degradations import apply_degradation, low_light
    from test_exposure import DARK

    clean = train_photo(6, 256)
    blurred = apply_degradation(clean, "blur", {"kind": "defocus", "radius": 3.0})
    dark = low_light(clean, **DARK)
    q, _ = shipped_engine.assess(torch.cat([clean, blurred, dark]))
    assert q[0] > q[1] + 0.1 and q[0] > q[2] + 0.1, q
