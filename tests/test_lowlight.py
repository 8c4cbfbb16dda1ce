"""The low-light model: the synthesis's true gain, the light phase that learns it, the gain
that inverts under-exposure, and the engine's round that uses it."""

from __future__ import annotations

import pytest
import restora
import torch
from helpers import degrade_as_before, phase_model, sample_batch, train_on_batch
from restora.degradations import (
    apply_degradation,
    degradation_cutmix,
    degrade,
)
from restora.engine.lowlight import brighten
from restora.training.config import TrainConfig
from restora.training.train import LIGHT_PARTS, compute_losses


def test_degrade_keeps_the_true_gain_and_draws_as_before():
    x = torch.rand(3, 48, 64, generator=torch.Generator().manual_seed(0))
    s, p = degrade_as_before(x, "low_light", 5)
    k = p["exposure"] ** (-1 / p["gamma"])
    assert k > 1.5 and torch.allclose(s.light_gain, torch.full((48, 64), k))
    # the gain undoes the exposure: the noiseless low-light image times the gain is the clean one
    quiet = dict(p, gain=1e-9, read_sigma=0.0)
    dark = apply_degradation(x[None], "low_light", quiet, torch.Generator().manual_seed(0))
    torch.testing.assert_close(brighten(dark, torch.full((1, 1, 48, 64), float(torch.tensor(k).log()))), x[None],
                               atol=2e-3, rtol=0)
    assert torch.equal(degrade(x, ["noise"], torch.Generator().manual_seed(1)).light_gain, torch.ones(48, 64))
    mix = degradation_cutmix(x, ["noise"], ["low_light"], torch.Generator().manual_seed(2))
    dim = mix.light_gain > 1
    assert dim.any() and not dim.all() and torch.equal(dim, mix.labels == restora.SEGMENT_CLASSES.index("low_light"))


def test_brighten_scales_and_checks_its_map():
    x = 0.3 * torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    assert torch.equal(brighten(x, torch.zeros(2, 1, 16, 16)), x)  # no low light: unchanged
    torch.testing.assert_close(brighten(x, torch.full((2, 1, 16, 16), 2.0 ** 0.5).log()), x * 2 ** 0.5)
    assert float(brighten(x, torch.full((2, 1, 16, 16), 5.0)).max()) == 1.0  # clipped
    with pytest.raises(ValueError, match="log_gain must be"):
        brighten(x, torch.zeros(2, 1, 8, 16))


def test_light_phase_learns_the_gain_and_nothing_else():
    model, params = phase_model("light", LIGHT_PARTS, light_model=8)
    x = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(3))
    samples = [degrade(x, ["low_light"] if s % 2 else [], torch.Generator().manual_seed(s)) for s in range(4)]
    batch, physics = sample_batch(samples)
    with pytest.raises(ValueError, match="light gain"):
        compute_losses(model, *batch, TrainConfig().loss_weights, 1, "light")
    before, after, first, last = train_on_batch(model, params, batch, physics, "light", 60)
    assert last < 0.5 * first and model.stem.weight.grad is None
    for key in ("restored", "quality", "segment_logits"):
        torch.testing.assert_close(before[key], after[key], rtol=0, atol=0)
    err = lambda out: float((out["log_gain"] - physics[2].log()).abs().mean())
    assert err(after) < 0.5 * err(before)


@pytest.mark.parametrize("restored_quality", [0.6, 0.35])
def test_a_declined_inverse_is_judged_after_the_networks_round_on_it(monkeypatch, restored_quality):
    """The brightened image keeps its noise, so the quality head may decline it alone; then the
    next round proposes the network's restoration of it, kept only if better than the best."""
    from restora.engine import engine as engine_mod
    from restora.engine.engine import Engine

    engine = Engine(device="cpu")
    if not engine.has_light_model:
        pytest.skip("the default weights have no low-light model")
    real_pass = Engine._pass
    script = iter([0.2, 0.4, 0.3, restored_quality])  # input, network round, inverse, its restoration
    seen = []

    def scripted(self, x, decode, ticker):
        out = real_pass(self, x, decode, ticker)
        seen.append((x.clone(), out))
        out["quality"] = torch.tensor([next(script)])
        if len(seen) == 1:  # the input: low light found, a uniform gain of 2 predicted
            out["degradation_probs"] = torch.zeros_like(out["degradation_probs"])
            out["degradation_probs"][0, restora.DEGRADATIONS.index("low_light")] = 0.9
            out["log_gain"] = torch.full_like(out["log_gain"], float(torch.tensor(2.0).log()))
            seg = torch.full_like(out["segment_logits"], -10.0)  # and the segmentation finds it everywhere
            seg[:, restora.SEGMENT_CLASSES.index("low_light")] = 10.0
            out["segment_logits"] = seg
        return out

    monkeypatch.setattr(engine_mod.Engine, "_pass", scripted)
    # the history as the loop compares it: the quality head's scripted scores, not the fusion's
    monkeypatch.setattr(engine_mod.Engine, "has_quality_fusion", property(lambda self: False))
    x = 0.3 * torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    r = engine.restore(x, max_iterations=3, refine=False)
    assert len(seen) == 4 and r.history[0] == pytest.approx([0.2, 0.4, 0.3, restored_quality])
    torch.testing.assert_close(seen[2][0], (2 * x).clamp(0, 1))  # the third pass judges the inverse
    torch.testing.assert_close(seen[3][0], seen[2][1]["restored"].clamp(0, 1))  # the fourth, its restoration
    if restored_quality > 0.4:
        assert r.brightened == [True] and r.iterations == [2]
        torch.testing.assert_close(r.image, seen[3][0])
    else:  # declined too: the network's first round stays
        assert r.brightened == [False] and r.iterations == [1]
        torch.testing.assert_close(r.image, seen[1][0])


def test_the_gain_stays_where_the_segmentation_finds_low_light(monkeypatch):
    """The low-light model's gain is masked by the segmentation's low-light probability (ramped
    from 0 at 0.25 to 1 at 0.75): its own map brightened a CutMix composite's normally exposed
    region as much as the dark one."""
    from restora.engine.engine import Engine

    engine = Engine(device="cpu")
    if not engine.has_light_model:
        pytest.skip("the default weights have no low-light model")
    x = 0.3 * torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    seg = torch.full((1, len(restora.SEGMENT_CLASSES), 8, 8), -10.0)
    seg[:, restora.SEGMENT_CLASSES.index("low_light"), :, :4] = 10.0  # the left half is dark
    out = {"log_gain": torch.full((1, 1, 8, 8), float(torch.tensor(2.0).log())), "segment_logits": seg}
    y = engine._invert(x, out, 1.0, False, True)
    torch.testing.assert_close(y[..., :4], (2 * x[..., :4]).clamp(0, 1))
    torch.testing.assert_close(y[..., 4:], x[..., 4:])
