"""The exposure model: its brightness quantiles, the exposure phase that trains it, and the
engine's first step, the gain that undoes a whole image's under-exposure."""

from __future__ import annotations

import math

import pytest
import restora
import torch
from conftest import DATA
from helpers import default_engine_with, phase_model, psnr_of, sample_batch, train_on_batch, train_photo
from restora.degradations import (
    apply_degradation,
    degradation_cutmix,
    degrade,
    low_light,
)
from restora.models.exposure import LEVELS, exposure_features
from restora.training.data import SyntheticBatches, exposure_target
from restora.training.train import EXPOSURE_PARTS, compute_losses

TRAIN = DATA / "train" / "bsds"
DARK = {"exposure": 0.1, "gamma": 2.2, "gain": 1e-6, "read_sigma": 0.0}  # the benchmark's `underexposed`


def test_scaling_an_image_shifts_its_log_quantiles():
    """Under-exposure scales display values (noise-free), so every log quantile moves by the
    log of the scale, and the share of white pixels drops to nothing."""
    g = torch.Generator().manual_seed(0)
    x = 0.2 + 0.6 * torch.rand(2, 3, 64, 64, generator=g)
    x[:, :, :4, :4] = 1.0  # a white highlight
    f, scaled = exposure_features(x), exposure_features(x / 2)
    n = len(LEVELS)
    # the luminance's quantiles shift by log 2 (with the 1e-3 offset, almost exactly)
    shift = f[:, : 2 * n] - scaled[:, : 2 * n]
    assert torch.allclose(shift, torch.full_like(shift, math.log(2)), atol=0.01)
    assert f[0, -1] > 0 and scaled[0, -1] == 0
    with pytest.raises(ValueError, match="at least 4x4"):
        exposure_features(torch.rand(1, 3, 2, 8))


def test_exposure_targets_follow_the_synthesis():
    x = torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(0))
    assert exposure_target(degrade(x, ["noise"], torch.Generator().manual_seed(1))) == (0, 0.0)
    s = degrade(x, ["low_light", "noise"], torch.Generator().manual_seed(2))
    p = s.params[0]
    flag, log_gain = exposure_target(s)
    assert flag == 1 and log_gain == pytest.approx(-math.log(p["exposure"]) / p["gamma"], rel=1e-5)
    # low light in part of the image: a global gain would over-brighten the rest
    assert exposure_target(degradation_cutmix(x, ["noise"], ["low_light"], torch.Generator().manual_seed(3))) == (0, 0.0)
    assert exposure_target(degradation_cutmix(x, ["low_light"], ["rain"], torch.Generator().manual_seed(3))) == (0, 0.0)
    # two exposures: no target
    assert exposure_target(degradation_cutmix(x, ["low_light"], ["low_light"], torch.Generator().manual_seed(4)))[0] == -1


def test_low_light_is_drawn_at_any_noise_level():
    """The synthesis's low light runs from noisy (300 photons at full scale) to nearly noise-free
    (a million), so that no head learns low light as noise."""
    from restora.degradations import sample_params

    g = torch.Generator().manual_seed(0)
    gains = [sample_params("low_light", g)["gain"] for _ in range(400)]
    assert min(gains) < 1e-5 and max(gains) > 1e-3 and all(1e-6 <= v <= 10 ** -2.5 for v in gains)


def test_batches_carry_the_exposure_targets():
    paths = sorted(TRAIN.glob("*.jpg"))[:2]
    if not paths:
        pytest.skip(f"training images not at {TRAIN}")
    *_, flags, gains = next(SyntheticBatches(paths, 64, 8, {"low_light": 1.0}, 0, exposure=True))
    assert flags.shape == gains.shape == (8,) and bool((flags == 1).all()) and bool((gains > 0.4).all())


def test_exposure_phase_learns_the_gain_and_nothing_else():
    model, params = phase_model("exposure", EXPOSURE_PARTS, exposure_model=16)
    x = torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(3))
    samples = [degrade(x, ["low_light"] if s % 2 else [], torch.Generator().manual_seed(s)) for s in range(4)]
    batch, _ = sample_batch(samples)
    flags, gains = (torch.tensor(v) for v in zip(*map(exposure_target, samples)))
    with pytest.raises(ValueError, match="exposure targets"):
        compute_losses(model, *batch, {}, 1, "exposure")
    before, after, first, last = train_on_batch(model, params, batch, (flags, gains), "exposure", 200)
    # (the L1 of the gain wavers at this learning rate)
    assert last < 0.25 * first and model.stem.weight.grad is None
    for key in ("restored", "quality", "segment_logits"):
        torch.testing.assert_close(before[key], after[key], rtol=0, atol=0)
    with torch.no_grad():
        logit, log_gain = model.exposure_model(batch[0])
    assert torch.equal(logit > 0, flags == 1)
    torch.testing.assert_close(log_gain[flags == 1], gains[flags == 1].float(), atol=0.15, rtol=0)


def test_the_engine_brightens_first_where_the_whole_image_is_dark(monkeypatch):
    """Where the exposure model finds the image under-exposed, its gain comes first and the
    rounds restore the brightened image; not with brighten=False, nor when low light is not
    among the named degradations, nor in a grey image unless low light is named."""
    from restora.engine.engine import Engine

    engine = Engine(device="cpu")
    if not engine.has_exposure_model:
        pytest.skip("the default weights have no exposure model")
    clean = train_photo(2, 128)
    x = low_light(clean, **DARK)
    gain = 0.1 ** (-1 / 2.2)
    monkeypatch.setattr(Engine, "exposure_estimate", lambda self, x: (gain, 0.9))
    r = engine.restore(x, max_iterations=1)
    assert r.brightened == [True] and len(r.history[0]) >= 2
    assert r.degradation_probs[0, restora.DEGRADATIONS.index("low_light")] >= 0.9
    assert psnr_of(r.image, clean) > psnr_of(x, clean) + 15
    r0 = engine.restore(x, max_iterations=1, brighten=False)
    assert r0.brightened == [False] and psnr_of(r0.image, clean) < psnr_of(x, clean) + 1
    assert engine.restore(x, degradations=("noise",), max_iterations=1).brightened == [False]
    half = engine.restore(x, max_iterations=1, strength=0.5, deblur=False)
    assert psnr_of(x, clean) + 3 < psnr_of(half.image, clean) < psnr_of(r.image, clean) - 3
    grey = x.mean(1, keepdim=True)
    assert engine.restore(grey, max_iterations=1).brightened == [False]
    named = engine.restore(grey, degradations=("noise", "low_light"), max_iterations=1)
    assert named.brightened == [True] and named.image.shape == grey.shape


@pytest.fixture(scope="module")
def shipped_engine():
    return default_engine_with("exposure_model")


@pytest.mark.parametrize("index", [3, 5])
def test_the_shipped_model_finds_and_undoes_under_exposure(shipped_engine, index):
    """A training photograph darkened as the quality benchmark's `underexposed` row is (no
    noise to speak of: no network head found it): found, and brightened within 25% of the
    true gain."""
    clean = train_photo(index, 256)
    x = (low_light(clean, **DARK) * 255).round() / 255
    gain, p = shipped_engine.exposure_estimate(x)
    assert p > 0.5 and gain == pytest.approx(0.1 ** (-1 / 2.2), rel=0.25), (gain, p)
    r = shipped_engine.restore(x)
    assert r.brightened == [True] and psnr_of(r.image, clean) > psnr_of(x, clean) + 10


@pytest.mark.parametrize("name, params", [
    ("none", {}), ("noise", {"kind": "gaussian", "sigma": 25 / 255}), ("jpeg", {"quality": 20}),
    ("haze", {"beta": 1.5, "airlight": 0.9}), ("blur", {"kind": "defocus", "radius": 3.0}),
])
def test_the_shipped_model_leaves_exposed_images_alone(shipped_engine, name, params):
    clean = train_photo(4, 256)
    x = clean if name == "none" else apply_degradation(clean, name, params, torch.Generator().manual_seed(0))
    x = (x * 255).round() / 255
    gain, p = shipped_engine.exposure_estimate(x)
    assert gain is None and p < 0.5, (name, gain, p)
