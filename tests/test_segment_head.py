"""The segmentation head's context network: it starts as the linear head, reads the whole
image's context (so tiles stay exact), and trains alone in the ``segment`` phase without
changing restoration or assessment."""

from __future__ import annotations

import json

import pytest
import restora
import torch
from restora import DEGRADATIONS, SEGMENT_CLASSES
from restora.engine.weights import load_state, resolve_weights
from restora.models import RestoraNet, RestoraNetConfig, model_metadata
from restora.training.config import TrainConfig
from restora.training.train import (
    HAZE_PARTS,
    LIGHT_PARTS,
    SEGMENT_PARTS,
    compute_losses,
    trainable_parameters,
)

SMALL = {"channels": (8, 16, 16), "encoder_blocks": (1, 1)}


def _shipped_with_context(k: int = 16) -> tuple[RestoraNet, RestoraNet]:
    """restora-base as shipped (no context head), and the same weights in a model with one."""
    meta, state = load_state(resolve_weights("restora-base").path)
    cfg = RestoraNetConfig.from_dict(json.loads(meta["config"]))
    plain, grown = RestoraNet(cfg), RestoraNet(RestoraNetConfig.from_dict({**cfg.to_dict(), "segment_context": k}))
    plain.load_state_dict(state)
    missing = grown.load_state_dict(state, strict=False).missing_keys
    assert missing and all(k.startswith(SEGMENT_PARTS[1:]) for k in missing)
    return plain.eval(), grown.eval()


def test_a_new_context_head_leaves_the_shipped_model_unchanged():
    plain, grown = _shipped_with_context()
    x = torch.rand(2, 3, 48, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a, b = plain(x), grown(x)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


def _randomised(model: RestoraNet) -> RestoraNet:
    torch.manual_seed(3)
    for name, p in model.named_parameters():
        if name.startswith(SEGMENT_PARTS[1:] + HAZE_PARTS + LIGHT_PARTS):
            torch.nn.init.normal_(p, std=0.5)
    return model


def test_the_segmentation_reads_the_whole_image_context():
    """Two images that share a region but differ elsewhere get different segmentations there:
    the context network reads the image as a whole (through its latent statistics)."""
    model = _randomised(RestoraNet(RestoraNetConfig(**SMALL, segment_context=8))).eval()
    g = torch.Generator().manual_seed(1)
    a = torch.rand(1, 3, 128, 128, generator=g)
    b = a.clone()
    b[:, :, :, 64:] = 0.2 * b[:, :, :, 64:]  # the right half darker
    with torch.no_grad():
        sa, sb = model(a)["segment_logits"], model(b)["segment_logits"]
        # the linear head alone cannot see past its reach: same left edge
        ctx = model.context_from_stats(*model.latent_stats(model.encode(a)[2]))
        fa = model.decode(a, *model.encode(a), None, ctx)["segment_logits"]
        fb = model.decode(b, *model.encode(b), None, ctx)["segment_logits"]
    assert (sa[..., :8] - sb[..., :8]).abs().max() > 1e-3
    torch.testing.assert_close(fa[..., :8], fb[..., :8], rtol=0, atol=1e-5)


@pytest.mark.parametrize("cues", [False, True])
def test_the_context_head_adds_no_reach(cues):
    """With the image-level context fixed, each segmentation pixel depends on input no further
    than ``receptive_radius``, the local cues' included: the tiles' context still covers it."""
    torch.manual_seed(0)
    model = RestoraNet(RestoraNetConfig(channels=(8, 8, 8), segment_context=8, segment_cues=cues)).double()
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.1)
    x = torch.rand(1, 3, 168, 168, dtype=torch.float64, requires_grad=True)
    with torch.no_grad():
        ctx = model.context_from_stats(*model.latent_stats(model.encode(x)[2]))
    seg = model.decode(x, *model.encode(x), None, ctx)["segment_logits"]
    (g,) = torch.autograd.grad(seg[0, :, 84, 84].sum(), x)
    nz = (g.abs().sum((0, 1)) > 0).nonzero()
    reach = int((nz - torch.tensor([84, 84])).abs().max())
    assert 30 <= reach <= model.receptive_radius


def _whole_and_tiled(model: RestoraNet, tmp_path):
    """``model`` saved as weights and run by the engine over one image whole and in tiles: the
    image (a bright-to-dark ramp under texture, so that the haze model's transmission
    varies), the whole-image engine and both passes' outputs."""
    from restora.engine.engine import _Ticker
    from safetensors.torch import save_file

    path = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, path,
              metadata=model_metadata("restoranet-v0", model))
    ramp = torch.linspace(0.9, 0.0, 200)[:, None].expand(200, 136)
    x = (ramp + 0.1 * torch.rand(1, 3, 200, 136, generator=torch.Generator().manual_seed(2))).clamp(0, 1)
    # float32: exactness is the point (bfloat16 tiles agree to its rounding, test_precision.py)
    whole_engine = restora.Engine(weights=path, device="cpu", tile_size=512, precision="float32")
    tiled_engine = restora.Engine(weights=path, device="cpu", tile_size=128, precision="float32")
    assert whole_engine.tiles_per_pass(200, 136) == 1 < tiled_engine.tiles_per_pass(200, 136)
    whole, tiled = (e._pass(x, True, _Ticker(None, 0)) for e in (whole_engine, tiled_engine))
    return x, whole_engine, whole, tiled


@pytest.mark.parametrize("blend", [None, "image", "region", "cues"])
def test_engine_segments_exactly_tiled(tmp_path, blend):
    """The engine gives every tile the whole image's context, so tiled equals untiled: the
    segmentation (with the local cues too), the haze model's transmission and airlight and
    the low-light model's gain."""
    extra = {} if blend in (None, "cues") else {"adapters": ("noise", "haze"), "adapter_rank": 2, "adapter_blend": blend}
    if blend == "cues":
        extra = {"segment_cues": True}
        blend = None
    model = _randomised(RestoraNet(RestoraNetConfig(**SMALL, segment_context=8, haze_model=4, light_model=4, **extra)))
    if blend:
        for ad in model.adapters.values():
            torch.nn.init.normal_(ad.up.weight, std=0.2)
        with torch.no_grad():
            model.quality_head[-1].bias[1:] = 3.0
    x, whole_engine, whole, tiled = _whole_and_tiled(model, tmp_path)
    for key in ("restored", "segment_logits", "quality", "transmission", "airlight", "log_gain"):
        torch.testing.assert_close(whole[key], tiled[key], atol=1e-4, rtol=0)
    assert float(whole["transmission"].std()) > 0.05 and float(whole["log_gain"].std()) > 1e-3
    with torch.no_grad():  # and the context head did act
        lin = whole_engine.model.segment_head(whole_engine.model.half_features(x)[0])
        lin = torch.nn.functional.interpolate(lin, scale_factor=2, mode="bilinear", align_corners=False)
    assert (whole["segment_logits"] - lin).abs().max() > 1e-2


@pytest.mark.parametrize("cues", [False, True])
def test_segment_phase_trains_only_the_segmentation(cues):
    """The ``segment`` phase changes the segmentation (and its cues' weights) and nothing
    else, and its loss falls on a fixed batch (labels that follow the image: dark pixels are
    low light)."""
    torch.manual_seed(0)
    model = RestoraNet(RestoraNetConfig(**SMALL, adapters=("noise",), adapter_rank=2, segment_context=8,
                                        segment_cues=cues))
    params, _ = trainable_parameters(model, "segment", [])
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    assert names and all(n.startswith(SEGMENT_PARTS) for n in names)
    assert cues == ("segment_cues_in.weight" in names)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(4, 3, 32, 32, generator=g)
    x[:, :, :16] *= 0.1
    labels = torch.zeros(4, 32, 32, dtype=torch.int64)
    labels[:, :16] = SEGMENT_CLASSES.index("low_light")
    batch = (x, x, labels, torch.zeros(4, len(DEGRADATIONS)))
    with torch.no_grad():
        before = model.eval()(x)
    opt = torch.optim.Adam(params, lr=1e-2)
    losses = []
    for _ in range(80):
        out = compute_losses(model.train(), *batch, TrainConfig().loss_weights, 1, "segment")
        opt.zero_grad()
        out["total"].backward()
        opt.step()
        losses.append(float(out["segment"].detach()))
    assert set(out) == {"segment", "segment_accuracy", "total"} and model.stem.weight.grad is None
    assert losses[-1] < 0.5 * losses[0] and float(out["segment_accuracy"]) > 0.75  # half the pixels are each class
    with torch.no_grad():
        after = model.eval()(x)
    for key in ("restored", "log_error", "quality", "degradation_logits"):
        torch.testing.assert_close(before[key], after[key], rtol=0, atol=0)
    assert (before["segment_logits"] - after["segment_logits"]).abs().max() > 0.1
    if cues:
        assert model.segment_cues_in.weight.abs().max() > 0  # the cues did learn


def test_new_cues_leave_the_shipped_segmentation_unchanged_until_trained():
    """A model grown with ``segment_cues`` from weights without them segments as they did (its
    cue weights start at zero); it needs the image to segment, and a context network."""
    meta, state = load_state(resolve_weights("default").path)
    cfg = json.loads(meta["config"])
    if cfg.get("segment_cues"):
        cfg["segment_cues"] = False
        state = {k: v for k, v in state.items() if not k.startswith("segment_cues_in.")}
    plain = RestoraNet(RestoraNetConfig.from_dict(cfg))
    grown = RestoraNet(RestoraNetConfig.from_dict({**cfg, "segment_cues": True}))
    plain.load_state_dict(state)
    missing = grown.load_state_dict(state, strict=False).missing_keys
    assert sorted(missing) == ["segment_cues_in.bias", "segment_cues_in.weight"]
    x = torch.rand(1, 3, 64, 96, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a, b = plain.eval()(x), grown.eval()(x)
        torch.testing.assert_close(a["segment_logits"], b["segment_logits"], rtol=0, atol=0)
        d2, latent = grown.half_features(x)
        with pytest.raises(ValueError, match="pass x"):
            grown.segment_from_features(d2, latent)
    with pytest.raises(ValueError, match="segment_cues needs a segment_context"):
        RestoraNet(RestoraNetConfig(**SMALL, segment_cues=True))


@pytest.mark.parametrize("head", ["haze_model", "light_model"])
def test_engine_gives_a_physical_model_alone_the_whole_image_context(tmp_path, head):
    """A model with a haze or low-light model and no segmentation context network still gets
    the whole image's context in every tile: tiled transmission, airlight and gain equal untiled."""
    model = _randomised(RestoraNet(RestoraNetConfig(**SMALL, **{head: 4})))
    assert model.reads_context and model.needs_context and not model.blends_per_image
    _, _, whole, tiled = _whole_and_tiled(model, tmp_path)
    keys = ("transmission", "airlight") if head == "haze_model" else ("log_gain",)
    for key in ("restored", *keys):
        torch.testing.assert_close(whole[key], tiled[key], atol=1e-4, rtol=0)
