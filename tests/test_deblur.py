"""The blur model: its kernel bank and spectrum, the blur phase that trains it, the Wiener
deconvolution that inverts blur, and the engine's last step that uses them."""

from __future__ import annotations

import pytest
import restora
import torch
from conftest import DATA
from helpers import default_engine_with, phase_model, psnr_of, sample_batch, train_on_batch, train_photo
from restora.degradations import (
    blur,
    blur_kernel,
    defocus_kernel,
    degradation_cutmix,
    degrade,
    gaussian_kernel,
    motion_kernel,
)
from restora.engine import deblur as deblur_mod
from restora.engine.deblur import balance_for, deconvolve
from restora.models.blur import BANK, bank_kernels, log_spectrum, nearest_in_bank
from restora.training.data import SyntheticBatches, blur_target
from restora.training.train import BLUR_PARTS, compute_losses

TRAIN = DATA / "train" / "bsds"


def test_blur_kernel_follows_the_parameters():
    assert torch.equal(blur_kernel({"kind": "gaussian", "sigma": 1.5}), gaussian_kernel(1.5))
    assert torch.equal(blur_kernel({"kind": "defocus", "radius": 3.0}), defocus_kernel(3.0))
    assert torch.equal(blur_kernel({"kind": "motion", "length": 9.0, "angle": 30.0}), motion_kernel(9.0, 30.0))
    with pytest.raises(ValueError, match="unknown blur kind"):
        blur_kernel({"kind": "box"})


def test_the_bank_starts_with_no_blur_and_finds_its_own_kernels():
    k = bank_kernels()
    assert BANK[0] is None and k.shape == (len(BANK), 21, 21)
    assert float(k[0, 10, 10]) == 1.0 and float(k[0].sum()) == 1.0  # a delta
    torch.testing.assert_close(k.sum((1, 2)), torch.ones(len(BANK)))
    assert nearest_in_bank(None) == 0
    for i in (1, 12, len(BANK) - 1):
        assert nearest_in_bank(BANK[i]) == i
    # an off-grid kernel maps to the nearest of its kind
    assert BANK[nearest_in_bank({"kind": "motion", "length": 11.2, "angle": 31.0})] == \
        {"kind": "motion", "length": 11.0, "angle": 30.0}


def test_the_spectrum_sees_the_blur_direction():
    """A horizontal motion blur removes horizontal high frequencies, not vertical ones."""
    x = torch.rand(1, 3, 128, 160, generator=torch.Generator().manual_seed(0))
    s = log_spectrum(blur(x, motion_kernel(9.0, 0.0))).view(64, 33)
    # rows index vertical frequency, columns horizontal (rfft over the last axis)
    assert float(s[0, 8:30].mean()) < float(s[8:30, 0].mean()) - 2
    sharp = log_spectrum(x).view(64, 33)
    assert abs(float(sharp[0, 8:30].mean()) - float(sharp[8:30, 0].mean())) < 0.5
    grey = x.mean(1, keepdim=True).expand(-1, 3, -1, -1)
    torch.testing.assert_close(log_spectrum(grey), log_spectrum(x.mean(1, keepdim=True)))
    with pytest.raises(ValueError, match="at least 64x64"):
        log_spectrum(torch.rand(1, 3, 32, 128))


def test_deconvolution_by_the_true_kernel_sharpens():
    clean = train_photo()
    for kernel, kind, floor in ((gaussian_kernel(2.0), "gaussian", 2.5), (defocus_kernel(3.0), "defocus", 1.0),
                                (motion_kernel(11.0, 30.0), "motion", 1.0)):  # measured +3.7, +1.6, +1.7
        blurred = (blur(clean, kernel) * 255).round() / 255
        sharp = deconvolve(blurred, kernel, balance_for(kind, blurred))
        assert psnr_of(sharp, clean) > psnr_of(blurred, clean) + floor, kind
    with pytest.raises(ValueError, match="k odd"):
        deconvolve(clean, torch.ones(4, 4) / 16)
    with pytest.raises(ValueError, match="balance must be positive"):
        deconvolve(clean, gaussian_kernel(1.0), 0.0)
    with pytest.raises(ValueError, match="unknown blur kind"):
        balance_for("box", clean)


def test_the_balance_grows_with_the_noise():
    x = torch.full((1, 3, 64, 64), 0.5)
    noisy = (x + 0.05 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    assert balance_for("gaussian", x) == pytest.approx(deblur_mod.BALANCE["gaussian"])
    assert balance_for("gaussian", noisy) > 5 * balance_for("gaussian", x)


def test_tiled_deconvolution_matches_the_whole_image(monkeypatch):
    clean = train_photo(1)
    kernel = gaussian_kernel(2.0)
    blurred = blur(clean, kernel)
    whole = deconvolve(blurred, kernel, 0.001)
    monkeypatch.setattr(deblur_mod, "TILE", 64)
    tiled = deconvolve(blurred, kernel, 0.001)
    assert float((tiled - whole).abs().max()) < 5e-3


def test_blur_targets_follow_the_synthesis():
    x = torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(0))
    assert blur_target(degrade(x, ["noise"], torch.Generator().manual_seed(1))) == 0
    s = degrade(x, ["blur", "noise"], torch.Generator().manual_seed(2))
    p = {k: v for k, v in s.params[0].items() if k not in ("name", "region")}
    assert blur_target(s) == nearest_in_bank(p) > 0
    # blur in a CutMix region: one spectrum cannot say where, so no target
    assert blur_target(degradation_cutmix(x, ["noise"], ["blur"], torch.Generator().manual_seed(3))) == -1
    assert blur_target(degradation_cutmix(x, ["blur"], ["rain"], torch.Generator().manual_seed(3))) == -1


def test_batches_name_a_degradation_to_cover_whole_images():
    paths = sorted(TRAIN.glob("*.jpg"))[:2]
    if not paths:
        pytest.skip(f"training images not at {TRAIN}")
    batches = SyntheticBatches(paths, 64, 8, {"blur": 1.0}, 0, blur=True)
    *_, targets = next(batches)
    assert targets.shape == (8,) and bool((targets > 0).all())
    with pytest.raises(ValueError, match="unknown kinds"):
        SyntheticBatches(paths, 64, 8, {"sharpen": 1.0}, 0)


def test_blur_phase_learns_the_kernel_and_nothing_else():
    model, params = phase_model("blur", BLUR_PARTS, blur_model=16)
    x = torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(3))
    samples = [degrade(x, ["blur"] if s % 2 else [], torch.Generator().manual_seed(s)) for s in range(4)]
    batch, _ = sample_batch(samples)
    targets = torch.tensor([blur_target(s) for s in samples])
    with pytest.raises(ValueError, match="blur targets"):
        compute_losses(model, *batch, {}, 1, "blur")
    before, after, first, last = train_on_batch(model, params, batch, (targets,), "blur", 30)
    assert last < 0.1 * first and model.stem.weight.grad is None
    for key in ("restored", "quality", "segment_logits"):
        torch.testing.assert_close(before[key], after[key], rtol=0, atol=0)
    with torch.no_grad():
        assert torch.equal(model.blur_model(batch[0]).argmax(1), targets)


def test_the_engine_deconvolves_last_where_blur_is_found(monkeypatch):
    """Where the blur model finds blur, the rounds' result is deconvolved by its kernel; not
    with deblur=False, nor when blur is not among the named degradations, nor in a grey image
    unless blur is named."""
    from restora.engine.engine import Engine

    engine = Engine(device="cpu")
    if not engine.has_blur_model:
        pytest.skip("the default weights have no blur model")
    params = {"kind": "gaussian", "sigma": 2.0}
    monkeypatch.setattr(Engine, "blur_estimate", lambda self, x: (params, 0.9))
    clean = train_photo(2, 128)
    x = blur(clean, blur_kernel(params))
    r = engine.restore(x, max_iterations=1)
    assert r.deblurred == [True]
    assert r.degradation_probs[0, restora.DEGRADATIONS.index("blur")] == pytest.approx(0.9)
    assert psnr_of(r.image, clean) > psnr_of(x, clean) + 1.5
    r0 = engine.restore(x, max_iterations=1, deblur=False)
    assert r0.deblurred == [False] and psnr_of(r0.image, clean) < psnr_of(x, clean) + 0.5
    assert engine.restore(x, degradations=("noise",), max_iterations=1).deblurred == [False]
    half = engine.restore(x, max_iterations=1, strength=0.5)
    torch.testing.assert_close(half.image, (x + 0.5 * (r.image - x)), atol=2e-2, rtol=0)
    # grey images (microscopy, mostly, whose optical blur is part of the picture): when named
    grey = x.mean(1, keepdim=True)
    assert engine.restore(grey, max_iterations=1).deblurred == [False]
    named = engine.restore(grey, degradations=("noise", "blur"), max_iterations=1)
    assert named.deblurred == [True] and named.image.shape == grey.shape


@pytest.fixture(scope="module")
def shipped_engine():
    return default_engine_with("blur_model")


@pytest.mark.parametrize("params", [{"kind": "gaussian", "sigma": 2.0}, {"kind": "defocus", "radius": 3.0}])
def test_the_shipped_model_finds_and_undoes_blur(shipped_engine, params):
    """A training photograph blurred as the quality benchmark's rows are: the blur model finds
    blur of the right kind, and the restoration is sharper by a clear margin."""
    clean = train_photo(3, 256)
    x = (blur(clean, blur_kernel(params)) * 255).round() / 255
    kernel, p = shipped_engine.blur_estimate(x)
    assert p > 0.5 and kernel is not None and kernel["kind"] == params["kind"], (kernel, p)
    r = shipped_engine.restore(x)
    assert r.deblurred == [True] and psnr_of(r.image, clean) > psnr_of(x, clean) + 1.0


@pytest.mark.parametrize("name, params", [
    ("none", {}), ("noise", {"kind": "gaussian", "sigma": 25 / 255}), ("jpeg", {"quality": 20}),
    ("haze", {"beta": 1.5, "airlight": 0.9}),
])
def test_the_shipped_model_leaves_sharp_images_alone(shipped_engine, name, params):
    from restora.degradations import apply_degradation

    clean = train_photo(4, 256)
    x = clean if name == "none" else apply_degradation(clean, name, params, torch.Generator().manual_seed(0))
    x = (x * 255).round() / 255
    kernel, p = shipped_engine.blur_estimate(x)
    assert kernel is None and p < 0.5, (name, kernel, p)


def test_the_shipped_blur_region_and_map_find_a_blurred_box(shipped_engine):
    """Motion blur in the middle of a photograph: the blur model read patch by patch finds it
    there and not on the sharp rest, and the segmentation calls the box blurred, where the
    head alone called a fifth of it something else."""
    from restora.engine.deblur import REGION, blur_region
    from restora.engine.engine import _Ticker

    clean = torch.round(train_photo(4, 320) * 255) / 255
    x = clean.clone()
    x[..., 64:256, 64:256] = blur(clean, motion_kernel(9, 30.0))[..., 64:256, 64:256]  # 36% of it
    region = blur_region(shipped_engine.model.blur_model, x)
    assert region.shape == (1, 1, 320, 320) and 0 <= float(region.min()) and float(region.max()) <= 1
    inside, rest = region[..., 128:192, 128:192].mean(), region[..., :32, :].mean()
    print(f"region: box {float(inside):.2f}, top {float(rest):.2f}")
    assert inside > 0.8 and rest < 0.2
    assert blur_region(shipped_engine.model.blur_model, x[..., : REGION - 1, :]) is None  # too small
    k = restora.SEGMENT_CLASSES.index("blur")
    share = lambda m, rows, cols: float((m[rows, cols] == k).float().mean())
    head = shipped_engine._pass(x, True, _Ticker(None, 0))["segment_logits"].argmax(1)[0]
    labels = shipped_engine.segment(x).argmax(1)[0]
    box = (slice(112, 208), slice(112, 208))
    print(f"map: box {share(labels, *box):.2f} (head {share(head, *box):.2f}), top {share(labels, slice(0, 32), slice(None)):.2f}")
    assert share(labels, *box) > 0.95 and share(labels, *box) > share(head, *box) + 0.1  # (head: 0.80)
    assert share(labels, slice(0, 32), slice(None)) < 0.1
