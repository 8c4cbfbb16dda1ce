"""The second stage: noise level estimation and the pilot-guided Wiener refinement."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import restora
from restora.engine import engine as engine_mod
from restora.engine.refine import noise_gate, noise_model, noise_sigma, refine_noise, wiener_refine
from restora.metrics import psnr

from helpers import smooth_image


def _smooth(rng, shape=(1, 3, 96, 112)) -> torch.Tensor:
    img = smooth_image(rng, shape[2:] + (shape[1],), np.float32)
    return torch.from_numpy(img).permute(2, 0, 1)[None].expand(shape[0], -1, -1, -1).contiguous()


@pytest.mark.parametrize("sigma", [5 / 255, 25 / 255, 50 / 255])
def test_noise_sigma_recovers_the_level_of_white_noise(sigma, rng):
    clean = _smooth(rng)
    g = torch.Generator().manual_seed(1)
    noisy = clean + sigma * torch.randn(clean.shape, generator=g)
    est = noise_sigma(noisy)
    assert est.shape == (1, 3)
    np.testing.assert_allclose(est.numpy(), sigma, rtol=0.12)


def test_noise_sigma_of_grey_noise_stored_as_rgb(rng):
    """The same noise in all three channels is all luminance: sqrt(3) sigma there, none in chroma
    (per-channel estimates would call it sigma in each, as if it were independent)."""
    clean = _smooth(rng, (1, 1, 96, 96))
    noisy = (clean + 0.1 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(2))).expand(-1, 3, -1, -1)
    est = noise_sigma(noisy)[0]
    assert est[0] == pytest.approx(0.1 * 3**0.5, rel=0.12) and float(est[1:].max()) < 1e-6
    assert noise_sigma(clean)[0, 0] < 0.01  # a smooth clean image has next to none


def _poisson_gaussian(clean: torch.Tensor, gain: float, sigma: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return gain * torch.poisson(clean / gain, generator=g) + sigma * torch.randn(clean.shape, generator=g)


@pytest.mark.parametrize("gain, sigma", [(0.01, 0.0), (0.004, 0.02), (0.0, 0.05)])
def test_noise_model_recovers_poisson_gaussian_noise(gain, sigma, rng):
    """Variance gain * x + sigma^2 is recovered from the noisy image alone (grey, as a
    microscope's camera gives), and a pure Gaussian level reads as no gain."""
    clean = 0.05 + 0.9 * _smooth(rng, (1, 1, 192, 192))
    noisy = _poisson_gaussian(clean, gain, sigma, 4) if gain else clean + sigma * torch.randn(
        clean.shape, generator=torch.Generator().manual_seed(4))
    s, a = noise_model(noisy)
    assert s.shape == a.shape == (1, 1)
    for level in (0.1, 0.5, 0.9):  # the fitted variance where it matters, at every intensity
        assert float(s[0, 0] ** 2 + a[0, 0] * level) == pytest.approx(sigma**2 + gain * level, rel=0.2)
    np.testing.assert_allclose(noise_model(noisy, clean)[1].numpy(), gain, atol=2e-3)


def test_noise_model_of_a_flat_or_tiny_image():
    flat = torch.full((2, 3, 64, 64), 0.4)
    s, a = noise_model(flat + 0.1 * torch.randn(flat.shape, generator=torch.Generator().manual_seed(5)))
    assert s.shape == (2, 3) and float(a.max()) < 0.02  # one intensity: nothing to fit a slope on
    np.testing.assert_allclose(s[:, 0].numpy(), 0.1, rtol=0.15)
    s, a = noise_model(torch.rand(1, 1, 1, 9))
    assert float(s) == 0 and float(a) == 0
    with pytest.raises(ValueError, match="pilot"):
        noise_model(flat, flat[:, :1])


def test_signal_dependent_refinement_beats_one_level():
    """Poisson noise on dark and bright halves (variance 30x apart): the signal-dependent model
    filters each half at its own level, the one-level model at the median level."""
    clean = torch.full((1, 1, 128, 128), 0.03)
    clean[..., 64:] = 0.9
    clean = clean + 0.02 * torch.sin(torch.arange(128.0) / 5)[None, None, :, None]
    noisy = _poisson_gaussian(clean, 0.02, 0.0, 6)
    pilot = torch.nn.functional.avg_pool2d(torch.nn.functional.pad(noisy, (2, 2, 2, 2), mode="reflect"), 5, 1)
    flat = float(psnr(refine_noise(noisy, pilot), clean))
    assert float(psnr(refine_noise(noisy, pilot, signal_dependent=True), clean)) > flat + 0.5
    s, a = noise_model(noisy)
    gate = noise_gate(noisy, pilot, s, gain=a)
    assert float(gate.mean()) > 0.9  # the pilot removed no more than the noise model allows


def test_refinement_beats_its_pilot(rng):
    """Filtering the noisy input with a fair pilot (here a blurred copy) beats the pilot."""
    clean = _smooth(rng)
    noisy = (clean + 0.1 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(3))).clamp(0, 1)
    k = torch.ones(3, 1, 5, 5) / 25
    pilot = torch.nn.functional.conv2d(torch.nn.functional.pad(noisy, (2, 2, 2, 2), mode="reflect"), k, groups=3)
    refined = wiener_refine(noisy, pilot, noise_sigma(noisy))
    assert refined.shape == noisy.shape and refined.dtype == noisy.dtype
    assert float(psnr(refined, clean)) > float(psnr(pilot, clean)) + 1.0
    assert float(refined.min()) >= 0 and float(refined.max()) <= 1


def test_refinement_without_noise_returns_the_input(rng):
    """With no noise every coefficient passes, but each block's mean is the pilot's."""
    x = _smooth(rng, (2, 3, 40, 52))
    pilot = (x + 0.05).clamp(0, 1)
    torch.testing.assert_close(wiener_refine(x, pilot, 1e-6, pilot_dc=False), x, atol=1e-4, rtol=0)
    kept = wiener_refine(x, pilot, 1e-6)
    torch.testing.assert_close(kept - kept.mean((2, 3), keepdim=True), x - x.mean((2, 3), keepdim=True),
                               atol=2e-3, rtol=0)
    torch.testing.assert_close(kept.mean((2, 3)), pilot.mean((2, 3)), atol=2e-3, rtol=0)


def test_noise_gate_keeps_changes_larger_than_noise(rng):
    """Where the pilot removed about the noise, the gate is open; where it changed the image
    by far more (a dehazed or brightened region), it is shut."""
    clean = _smooth(rng)
    sigma = 0.05
    noisy = clean + sigma * torch.randn(clean.shape, generator=torch.Generator().manual_seed(5))
    pilot = clean.clone()
    pilot[..., :, 60:] += 0.3  # the right part changed far beyond the noise
    gate = noise_gate(noisy, pilot, noise_sigma(noisy))
    assert gate.shape == (1, 1, 96, 112)
    assert float(gate[..., 10:-10, 5:45].min()) == 1.0 and float(gate[..., 10:-10, 70:].max()) == 0.0


@pytest.mark.parametrize("shape", [(1, 3, 77, 93), (2, 1, 40, 33), (1, 3, 9, 300)])
@pytest.mark.parametrize("stride", [1, 2, 3])
def test_strips_give_the_whole_image_result(shape, stride):
    g = torch.Generator().manual_seed(4)
    x = torch.rand(shape, generator=g)
    pilot = (x + 0.1 * torch.randn(shape, generator=g)).clamp(0, 1)
    whole = wiener_refine(x, pilot, 0.1, stride=stride, rows=10_000)
    strips = wiener_refine(x, pilot, 0.1, stride=stride, rows=8)
    torch.testing.assert_close(strips, whole, atol=1e-5, rtol=0)


def test_bad_tensors_are_refused():
    with pytest.raises(ValueError, match="C in"):
        wiener_refine(torch.rand(1, 2, 8, 8), torch.rand(1, 2, 8, 8), 0.1)
    with pytest.raises(ValueError, match="differs"):
        wiener_refine(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 9), 0.1)
    with pytest.raises(ValueError, match="tensor"):
        noise_sigma(np.zeros((1, 3, 8, 8)))


def _noisy_photo(rng):
    return np.clip(smooth_image(rng, (64, 72, 3)) + rng.normal(0, 25, (64, 72, 3)), 0, 255).astype(np.uint8)


def test_restore_runs_the_refinement_only_for_noise(rng, monkeypatch):
    calls = []
    real = engine_mod.refine_noise
    monkeypatch.setattr(engine_mod, "refine_noise", lambda *a, **k: calls.append(1) or real(*a, **k))
    image = _noisy_photo(rng)
    r = restora.restore(image, device="cpu")
    assert r.iterations >= 1 and calls == [1]
    assert isinstance(r.refined, bool)
    restora.restore(image, device="cpu", degradations="blur")
    restora.restore(image, device="cpu", refine=False)
    assert calls == [1]  # no noise named, or refinement off: not run


@pytest.mark.parametrize("found, runs", [({"noise": 0.9}, True), ({"noise": 0.2, "haze": 0.9}, False)])
def test_refinement_follows_the_noise_detection(found, runs, rng, monkeypatch):
    """The stage runs only where noise was found, and the quality it reports is the
    returned image's own assessment."""
    image = _noisy_photo(rng)
    # the quality head's scores reported as they are (the quality fusion would read the
    # findings scripted below too)
    monkeypatch.setattr(engine_mod.Engine, "has_quality_fusion", property(lambda self: False))
    base = restora.restore(image, device="cpu", refine=False)
    assert base.iterations >= 1
    real_pass = engine_mod.Engine._pass
    assessed = []

    def with_findings(self, x, decode, ticker):
        out = real_pass(self, x, decode, ticker)
        probs = torch.zeros_like(out["degradation_probs"])
        for name, p in found.items():
            probs[:, restora.DEGRADATIONS.index(name)] = p
        out["degradation_probs"] = probs
        assessed.append(float(out["quality"][0]))
        return out

    monkeypatch.setattr(engine_mod.Engine, "_pass", with_findings)
    r = restora.restore(image, device="cpu")
    assert r.refined is runs and r.iterations == base.iterations
    if runs:
        assert not np.array_equal(r.image, base.image)
        assert r.quality_after == pytest.approx(assessed[-1], abs=1e-6)  # the refined image's
    else:
        np.testing.assert_array_equal(r.image, base.image)
        assert r.quality_after == pytest.approx(base.quality_after, abs=1e-6)


def test_refine_noise_changes_only_where_allowed(rng):
    clean = _smooth(rng, (1, 3, 64, 64))
    noisy = (clean + 0.1 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(6))).clamp(0, 1)
    pilot = (clean + 0.02).clamp(0, 1)
    where = torch.zeros(1, 1, 64, 64)
    where[..., 32:] = 1
    out = refine_noise(noisy, pilot, where)
    torch.testing.assert_close(out[..., :32], pilot[..., :32], atol=0, rtol=0)
    assert not torch.equal(out[..., 32:], pilot[..., 32:])
