"""The shipped model does real work: blind denoising at sigma 25 on validation photographs.

The engine issue's bar is a gain of at least 8 dB. The network alone (refine=False) gains
about 7.7 dB on these images; its second stage, the Wiener refinement, takes it past the bar,
and the network's own level is guarded against regressions too.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import restora
from restora.demo import SAMPLE_CLEAN, SAMPLE_DEGRADED, psnr

from conftest import DATA

VAL = DATA / "val" / "bsds"
TARGET_DB = 8.0  # the engine issue's bar
FLOOR_DB = 7.4  # the network alone (refine=False) measures about 7.7 dB here


@pytest.fixture(scope="module")
def demo_gain() -> float:
    degraded, _ = restora.read_image(SAMPLE_DEGRADED)
    clean, _ = restora.read_image(SAMPLE_CLEAN)
    r = restora.restore(degraded, device="cpu")
    assert r.degradations["noise"] > 0.5 and r.quality_after > r.quality_before
    return psnr(r.image, clean) - psnr(degraded, clean)


@pytest.fixture(scope="module")
def validation_gains() -> dict[bool, float]:
    """Mean gain in dB on 4 validation images, with and without the second stage."""
    if not VAL.is_dir():
        pytest.skip(f"validation images not at {VAL}")
    rng = np.random.default_rng(25)
    gains = {True: [], False: []}
    for path in sorted(VAL.glob("*.jpg"))[:4]:
        clean = np.asarray(Image.open(path).convert("RGB"))
        noisy = np.clip(np.rint(clean + rng.normal(0, 25, clean.shape)), 0, 255).astype(np.uint8)
        for refine in (True, False):
            r = restora.restore(noisy, device="cpu", refine=refine)  # blind: degradations="auto"
            gains[refine].append(psnr(r.image, clean) - psnr(noisy, clean))
    return {k: float(np.mean(v)) for k, v in gains.items()}


def test_demo_sample_meets_the_8_db_bar(demo_gain):
    assert demo_gain >= TARGET_DB


def test_validation_gain_meets_the_8_db_bar(validation_gains):
    assert validation_gains[True] >= TARGET_DB


def test_the_network_alone_holds_its_level(validation_gains):
    assert validation_gains[False] >= FLOOR_DB


def test_the_second_stage_earns_its_place(validation_gains):
    assert validation_gains[True] >= validation_gains[False] + 0.5


def test_clean_image_is_left_nearly_alone():
    clean, _ = restora.read_image(SAMPLE_CLEAN)
    r = restora.restore(clean, device="cpu")
    assert psnr(r.image, clean) > 36  # restoring a clean image must not damage it (40.9 dB)
    # restora-aio's re-fitted heads (v1, kept in v2) are less sure this grainy scan is clean than v0's were
    # (noise 0.51 vs 0.43; the model card's known limits): nothing else may read as present
    assert r.degradations["noise"] < 0.6
    assert max(v for k, v in r.degradations.items() if k != "noise") < 0.5
    assert not r.dehazed and not r.brightened


def test_grey_microscopy_is_denoised():
    """The napari sample (W2S field 040, a training field): the grey-only noise adapter finds and
    removes real fluorescence noise, which restora-base-v0 did not recognise at all."""
    tifffile = pytest.importorskip("tifffile")
    from pathlib import Path

    stack = tifffile.imread(Path(__file__).resolve().parents[1] / "napari_plugin" / "restora_napari" / "data"
                            / "w2s_fov040_crop.tif")
    noisy, clean = stack[0, 0], stack[1, 0]
    r = restora.restore(noisy, device="cpu")
    assert r.degradations["noise"] > 0.5
    assert psnr(r.image, clean) >= psnr(noisy, clean) + 5.0  # measured 22.6 -> 31.3 dB


def _degraded_val_image(name: str, params: dict) -> tuple[np.ndarray, np.ndarray]:
    """The second validation photograph and its degradation by ``name`` with ``params`` (seed
    0), rounded to uint8 as a user's file would be."""
    import torch

    from restora.degradations import apply_degradation

    if not VAL.is_dir():
        pytest.skip(f"validation images not at {VAL}")
    with Image.open(sorted(VAL.glob("*.jpg"))[1]) as im:
        clean = np.asarray(im.convert("RGB"))
    x = torch.from_numpy(clean.astype(np.float32) / 255).permute(2, 0, 1)[None]
    y = apply_degradation(x, name, params, torch.Generator().manual_seed(0))
    return clean, np.round(y[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def hazy_sample() -> tuple[np.ndarray, np.ndarray]:
    """A validation photograph under haze (the quality table's haze row: beta 1.5, airlight
    0.9). (The bundled portrait is not used: its black background under haze reads as haze
    with probability 0.3-0.5 only.)"""
    return _degraded_val_image("haze", {"beta": 1.5, "airlight": 0.9})


def test_haze_is_inverted_by_the_haze_model(hazy_sample):
    """The first round inverts the scattering model from the predicted transmission and
    airlight; it must beat the network's own haze adapter (dehaze=False) by a wide margin."""
    clean, hazy = hazy_sample
    r = restora.restore(hazy, device="cpu")
    r0 = restora.restore(hazy, device="cpu", dehaze=False)
    assert r.degradations["haze"] > 0.5 and r.dehazed and not r0.dehazed and r.iterations >= 1
    gain, gain0 = psnr(r.image, clean) - psnr(hazy, clean), psnr(r0.image, clean) - psnr(hazy, clean)
    assert gain > 8.0 and gain > gain0 + 2, (gain, gain0)
    limited = restora.restore(hazy, degradations="noise", device="cpu")  # haze not named: not inverted
    assert not limited.dehazed


@pytest.fixture(scope="module")
def dark_sample() -> tuple[np.ndarray, np.ndarray]:
    """A validation photograph under low light (the quality table's row: exposure 0.1, gamma
    2.2, shot noise at gain 1e-3, read noise 1/255)."""
    return _degraded_val_image("low_light", {"exposure": 0.1, "gamma": 2.2, "gain": 1e-3, "read_sigma": 1 / 255})


def test_low_light_is_undone_by_the_low_light_model(dark_sample):
    """The low-light model's gain, then the network's restoration of the brightened image, must
    beat the network's own low-light adapter (brighten=False) by a wide margin (the quality
    benchmark's row on this image: 13.1 -> 28.2 dB, and 19.9 without the gain)."""
    clean, dark = dark_sample
    r = restora.restore(dark, device="cpu")
    r0 = restora.restore(dark, device="cpu", brighten=False)
    assert r.degradations["low_light"] > 0.5 and r.brightened and not r0.brightened
    gain, gain0 = psnr(r.image, clean) - psnr(dark, clean), psnr(r0.image, clean) - psnr(dark, clean)
    assert gain > 12.0 and gain > gain0 + 4, (gain, gain0)
    limited = restora.restore(dark, degradations="noise", device="cpu")  # low light not named: not brightened
    assert not limited.brightened
