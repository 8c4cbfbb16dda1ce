"""Per-degradation low-rank adapters: exact no-ops until trained, blended per pixel, trainable
one at a time (phase II), with the estimator and heads on frozen features (phase III)."""

from __future__ import annotations

import pytest
import torch

import restora
from restora import DEGRADATIONS, SEGMENT_CLASSES
from restora.engine.weights import load_state, resolve_weights
from restora.models import RestoraNet, RestoraNetConfig
from restora.models.adapters import LowRankAdapters
from restora.training.config import TrainConfig
from restora.training.train import adapter_targets, compute_losses, trainable_parameters

SMALL = dict(channels=(8, 16, 16), encoder_blocks=(1, 1))


def test_new_adapters_leave_the_shipped_model_unchanged():
    _, state = load_state(resolve_weights("restora-base").path)  # the shipped model without adapters
    base, adapted = RestoraNet(), RestoraNet(RestoraNetConfig(adapters=DEGRADATIONS))
    base.load_state_dict(state)
    missing = adapted.load_state_dict(state, strict=False).missing_keys
    assert missing and all(k.startswith(("adapters.", "estimator.")) for k in missing)
    x = torch.rand(1, 3, 48, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a, b = base.eval()(x), adapted.eval()(x)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
    assert b["estimator_logits"].shape == (1, 1 + len(DEGRADATIONS), 24, 32)


def test_image_level_blend_ramps_the_degradation_probabilities():
    """Per-image blending (the default): an adapter acts only where the quality head is sure of
    its degradation, from 0 at probability 0.5 to fully at 0.8, in the adapters' order."""
    model = RestoraNet(RestoraNetConfig(adapters=("haze", "noise"), **SMALL))
    p = torch.tensor([[0.9, 0.2, 0.1, 0.65, 0.5, 0.79]])  # DEGRADATIONS order: noise, blur, rain, haze, ...
    w = model.image_adapter_weights(torch.logit(p))
    torch.testing.assert_close(w, torch.tensor([[0.5, 1.0]]), atol=1e-5, rtol=0)
    assert model.blends_per_image and not RestoraNet(RestoraNetConfig(**SMALL)).blends_per_image
    with pytest.raises(ValueError, match="adapter_blend"):
        RestoraNet(RestoraNetConfig(adapters=("haze",), adapter_blend="tile", **SMALL))


def test_grey_adapters_act_on_grey_images_only():
    model = RestoraNet(RestoraNetConfig(adapters=("noise", "haze"), grey_adapters=("noise",), **SMALL))
    logits = torch.logit(torch.tensor([[0.95, 0.1, 0.1, 0.95, 0.1, 0.1]] * 2))
    w = model.image_adapter_weights(logits, torch.tensor([True, False]))
    torch.testing.assert_close(w, torch.tensor([[1.0, 1.0], [0.0, 1.0]]))
    x = torch.rand(2, 1, 8, 8).expand(-1, 3, -1, -1).clone()
    x[1, 0, 0, 0] += 0.01
    assert model.is_grey(x).tolist() == [True, False]
    with pytest.raises(ValueError, match="grey_adapters"):
        RestoraNet(RestoraNetConfig(adapters=("haze",), grey_adapters=("noise",), **SMALL))


def test_forward_blends_by_its_own_assessment():
    torch.manual_seed(0)
    model = RestoraNet(RestoraNetConfig(adapters=DEGRADATIONS, **SMALL)).eval()
    for module in model.adapters.values():
        torch.nn.init.normal_(module.up.weight, std=0.1)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        out = model(x)
        w = model.image_adapter_weights(out["degradation_logits"])
        torch.testing.assert_close(out["restored"], model(x, adapter_weights=w)["restored"])
        pixel = RestoraNet(RestoraNetConfig(adapters=DEGRADATIONS, adapter_blend="pixel", **SMALL)).eval()
        pixel.load_state_dict(model.state_dict())
        assert not torch.allclose(pixel(x)["restored"], out["restored"])  # the estimator's blend differs


def test_region_blend_follows_the_segmentation():
    """Per-region blending: each adapter weighted, per half-resolution pixel, by its class's
    segmentation probability (ramped as the image-level ones), read from a decoder pass that
    is blended per image; grey-only adapters stay off on colour images."""
    torch.manual_seed(5)
    model = RestoraNet(RestoraNetConfig(adapters=("noise", "haze"), grey_adapters=("noise",),
                                        adapter_blend="region", **SMALL)).eval()
    assert model.blends_per_image and model.blends_per_region
    logits = torch.full((2, len(SEGMENT_CLASSES), 1, 2), -10.0)
    logits[:, SEGMENT_CLASSES.index("haze"), 0, 0] = 10.0  # haze at the first pixel,
    logits[:, SEGMENT_CLASSES.index("noise"), 0, 1] = 10.0  # noise at the second
    w = model.region_adapter_weights(logits, torch.tensor([True, False]))
    torch.testing.assert_close(w[0, :, 0], torch.tensor([[0.0, 1.0], [1.0, 0.0]]), atol=1e-4, rtol=0)
    torch.testing.assert_close(w[1, :, 0], torch.tensor([[0.0, 0.0], [1.0, 0.0]]), atol=1e-4, rtol=0)
    for module in model.adapters.values():
        torch.nn.init.normal_(module.up.weight, std=0.1)
    torch.nn.init.normal_(model.segment_head.weight, std=2.0)
    with torch.no_grad():
        model.segment_head.bias[SEGMENT_CLASSES.index("haze")] = 3.0  # haze in some places only
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        out = model(x)
        e1, e2, latent = model.encode(x)
        image_w = model.image_adapter_weights(out["degradation_logits"], model.is_grey(x))
        region_w = model.region_adapter_weights(model.segment_half(e2, latent, image_w), model.is_grey(x))
        torch.testing.assert_close(out["restored"], model.decode(x, e1, e2, latent, region_w)["restored"])
    assert region_w.shape == (1, 2, 16, 16) and region_w[:, 1].max() > 0.5 > region_w[:, 1].min()


def test_one_image_blend_folds_into_the_kernels():
    """With one weight per adapter for the image, the decoder folds the corrections into its
    kernels: the same result as the per-pixel path with that weight everywhere."""
    torch.manual_seed(2)
    model = RestoraNet(RestoraNetConfig(adapters=DEGRADATIONS, **SMALL)).eval()
    for module in model.adapters.values():
        torch.nn.init.normal_(module.up.weight, std=0.1)
    x = torch.rand(1, 3, 32, 40)
    w = torch.rand(1, len(DEGRADATIONS))
    with torch.no_grad():
        folded = model(x, adapter_weights=w)["restored"]
        everywhere = model(x, adapter_weights=w[:, :, None, None].expand(-1, -1, 16, 20))["restored"]
        plain = model(x, adapter_weights=torch.zeros_like(w))["restored"]
    torch.testing.assert_close(folded, everywhere, atol=1e-5, rtol=0)
    assert (folded - plain).abs().max() > 1e-3  # the adapters did act


def test_dropping_an_adapter_equals_holding_its_weight_at_zero():
    from restora.training.export import drop_adapters

    torch.manual_seed(1)
    full = RestoraNet(RestoraNetConfig(adapters=DEGRADATIONS, adapter_blend="pixel", **SMALL)).eval()
    for module in full.adapters.values():
        torch.nn.init.normal_(module.up.weight, std=0.1)
    config, state = drop_adapters(full.config.to_dict(), full.state_dict(), ["noise", "jpeg"])
    assert config["adapters"] == ["blur", "rain", "haze", "low_light"]
    less = RestoraNet(RestoraNetConfig.from_dict(config)).eval()
    less.load_state_dict(state)
    x = torch.rand(1, 3, 32, 32)
    w = torch.rand(1, len(DEGRADATIONS), 16, 16)
    kept = [DEGRADATIONS.index(n) for n in config["adapters"]]
    with torch.no_grad():
        zeroed = w.clone()
        zeroed[:, [0, 5]] = 0
        torch.testing.assert_close(less(x, adapter_weights=w[:, kept])["restored"],
                                   full(x, adapter_weights=zeroed)["restored"])
        # the estimator keeps its other classes' logits
        torch.testing.assert_close(less(x)["estimator_logits"], full(x)["estimator_logits"][:, [0, 2, 3, 4, 5]])
    with pytest.raises(ValueError, match="cannot drop"):
        drop_adapters(config, state, ["noise"])


def test_adapter_weights_blend_per_pixel():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(4, 5, 3, padding=1)
    ad = LowRankAdapters(conv, ("noise", "blur"), rank=2)
    torch.nn.init.normal_(ad.up.weight)
    x = torch.rand(2, 4, 6, 7)
    only_blur = torch.tensor([[0.0, 1.0], [0.0, 1.0]])
    per_pixel = only_blur[:, :, None, None].expand(2, 2, 6, 7)
    torch.testing.assert_close(ad(x, only_blur), ad(x, per_pixel))
    # the noise adapter's tensors do not matter where its weight is zero
    before = ad(x, only_blur)
    with torch.no_grad():
        ad.down.weight[:2] += 1.0
        ad.up.weight[:, :2] += 1.0
    torch.testing.assert_close(ad(x, only_blur), before)
    # half-resolution weights are resized to the layer's resolution
    assert ad(torch.rand(1, 4, 8, 8), torch.rand(1, 2, 4, 4)).shape == (1, 5, 8, 8)


def test_adapter_targets_follow_the_label_map():
    labels = torch.zeros(1, 4, 4, dtype=torch.long)
    labels[0, :2, :2] = SEGMENT_CLASSES.index("blur")
    labels[0, 2:, 2:] = SEGMENT_CLASSES.index("noise")
    weights, target = adapter_targets(labels, ("blur", "haze"))
    assert weights.shape == (1, 2, 2, 2)
    assert weights[0, 0].tolist() == [[1.0, 0.0], [0.0, 0.0]]  # blur: top-left
    assert weights[0, 1].abs().sum() == 0  # no haze anywhere; noise has no adapter here
    assert target[0].tolist() == [[1, 0], [0, 0]]


def _batch(n=4, size=32):
    g = torch.Generator().manual_seed(1)
    x, clean = torch.rand(n, 3, size, size, generator=g), torch.rand(n, 3, size, size, generator=g)
    labels = torch.randint(0, len(SEGMENT_CLASSES), (n, size, size), generator=g)
    return x, clean, labels, torch.zeros(n, len(DEGRADATIONS))


def test_phase_two_trains_only_the_named_adapter():
    torch.manual_seed(0)
    model = RestoraNet(RestoraNetConfig(**SMALL, adapters=("noise", "rain"), adapter_rank=2))
    params, masks = trainable_parameters(model, "adapters", ["rain"])
    named = dict(model.named_parameters())
    for name, mask in masks.items():
        named[name].register_hook(lambda g, m=mask: g * m)
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    opt = torch.optim.Adam(params, lr=1e-2)
    for _ in range(3):
        loss = compute_losses(model, *_batch(), TrainConfig().loss_weights, 2, "adapters")["total"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = model.state_dict()
    changed = {k for k in after if not torch.equal(after[k], before[k])}
    assert changed and all(k.startswith("adapters.") for k in changed)
    up = after["adapters.fuse2.up.weight"]  # (out, 2 * rank): noise slice first, then rain
    assert torch.equal(up[:, :2], before["adapters.fuse2.up.weight"][:, :2])
    assert not torch.equal(up[:, 2:], before["adapters.fuse2.up.weight"][:, 2:])


def test_phase_three_trains_the_heads_on_frozen_features():
    model = RestoraNet(RestoraNetConfig(**SMALL, adapters=("blur",), adapter_rank=2))
    params, _ = trainable_parameters(model, "heads", [])
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    assert names and all(n.startswith(("estimator.", "quality_head.", "segment_head.")) for n in names)  # no context head here
    losses = compute_losses(model, *_batch(), TrainConfig().loss_weights, 1, "heads")
    assert "estimator" in losses
    losses["total"].backward()
    assert model.estimator[0].weight.grad is not None and model.stem.weight.grad is None


def test_phase_three_refits_the_heads_of_a_model_without_adapters():
    plain = RestoraNet(RestoraNetConfig(**SMALL))
    trainable_parameters(plain, "heads", [])
    names = {n for n, p in plain.named_parameters() if p.requires_grad}
    assert names and all(n.startswith(("quality_head.", "segment_head.")) for n in names)
    losses = compute_losses(plain, *_batch(), TrainConfig().loss_weights, 1, "heads")
    losses["total"].backward()
    assert plain.quality_head[0].weight.grad is not None and plain.stem.weight.grad is None


def test_bad_phases_are_refused():
    plain = RestoraNet(RestoraNetConfig(**SMALL))
    with pytest.raises(ValueError, match="needs a model with adapters"):
        trainable_parameters(plain, "adapters", [])
    with pytest.raises(ValueError, match="unknown phase"):
        trainable_parameters(plain, "everything", [])
    adapted = RestoraNet(RestoraNetConfig(**SMALL, adapters=("blur",)))
    with pytest.raises(ValueError, match="not adapters of the model"):
        trainable_parameters(adapted, "adapters", ["rain"])
    with pytest.raises(ValueError, match="adapters must be distinct names"):
        RestoraNet(RestoraNetConfig(**SMALL, adapters=("blur", "fog")))


@pytest.mark.parametrize("blend", ["image", "region", "pixel"])
def test_engine_runs_a_model_with_adapters_exactly_tiled(tmp_path, blend):
    """Tiles agree with the whole image however adapters are blended: per image and per region
    the engine finds the whole image's weights (latent statistics, segmentation) first."""
    from safetensors.torch import save_file

    from restora.models import model_metadata

    torch.manual_seed(0)
    model = RestoraNet(RestoraNetConfig(**SMALL, adapters=("noise", "haze"), adapter_rank=2, adapter_blend=blend))
    for ad in model.adapters.values():
        torch.nn.init.normal_(ad.up.weight, std=0.2)
    torch.nn.init.normal_(model.segment_head.weight, std=2.0)  # regions that do differ
    with torch.no_grad():  # quality head sure of both degradations, haze found in places
        model.quality_head[-1].bias[1:] = 3.0
        model.segment_head.bias[SEGMENT_CLASSES.index("haze")] = 3.0
    path = tmp_path / "adapted.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, path,
              metadata=model_metadata("restoranet-v0", model))
    from restora.engine.engine import _Ticker

    x = torch.rand(1, 3, 200, 136)
    # float32: exactness is the point (bfloat16 tiles agree to its rounding, test_precision.py)
    whole_engine = restora.Engine(weights=path, device="cpu", tile_size=512, precision="float32")
    tiled_engine = restora.Engine(weights=path, device="cpu", tile_size=128, precision="float32")
    assert whole_engine.tiles_per_pass(200, 136) == 1 < tiled_engine.tiles_per_pass(200, 136)
    whole, tiled = (e._pass(x, True, _Ticker(None, 0)) for e in (whole_engine, tiled_engine))
    for key in ("restored", "log_error", "segment_logits", "quality"):
        torch.testing.assert_close(whole[key], tiled[key], atol=1e-4, rtol=0)
    with torch.no_grad():
        plain = whole_engine.model.decode(x, *whole_engine.model.encode(x), torch.zeros(1, 2))["restored"]
    assert (whole["restored"] - plain).abs().max() > 1e-3  # the adapters did act


def test_tiled_per_image_blend_reuses_the_encoder_sweep(monkeypatch):
    """A tiled pass with per-image adapters encodes each tile once: the sweep that finds the
    image's weights keeps its features for decoding (within FEATURE_CACHE_BYTES)."""
    from restora.engine import engine as engine_module
    from restora.engine.engine import Engine, _Ticker

    engine = Engine("default", "cpu", tile_size=128)
    assert engine.model.blends_per_image
    x = torch.rand(1, 3, 200, 136, generator=torch.Generator().manual_seed(4))
    tiles = engine.tiles_per_pass(200, 136)
    real_encode, calls = engine.model.encode, []
    monkeypatch.setattr(engine.model, "encode", lambda t: calls.append(1) or real_encode(t))
    cached = engine._pass(x, True, _Ticker(None, 0))
    assert tiles > 1 and len(calls) == tiles
    monkeypatch.setattr(engine_module, "FEATURE_CACHE_BYTES", 0)
    calls.clear()
    uncached = engine._pass(x, True, _Ticker(None, 0))
    assert len(calls) == 2 * tiles
    for key in ("restored", "log_error", "segment_logits", "quality"):
        torch.testing.assert_close(cached[key], uncached[key], atol=0, rtol=0)


def test_engine_keeps_a_grey_image_grey():
    """Grey stored as RGB stays grey through the rounds, so grey-only adapters see it as grey."""
    import numpy as np

    rng = np.random.default_rng(3)
    grey = np.clip(0.5 + 0.3 * np.sin(np.arange(64) / 6)[None, :] + rng.normal(0, 0.1, (64, 64)), 0, 1)
    image = np.repeat(grey[..., None], 3, axis=2).astype(np.float32)
    r = restora.restore(image, device="cpu", max_iterations=2)
    assert np.array_equal(r.image[..., 0], r.image[..., 1]) and np.array_equal(r.image[..., 0], r.image[..., 2])
