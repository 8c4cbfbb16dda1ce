"""The shipped model does real work: blind denoising raises PSNR by at least 8 dB at sigma 25."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import restora
from restora.demo import SAMPLE_CLEAN, SAMPLE_DEGRADED, psnr

from conftest import DATA

VAL = DATA / "val" / "bsds"


def test_demo_sample_gain():
    degraded, _ = restora.read_image(SAMPLE_DEGRADED)
    clean, _ = restora.read_image(SAMPLE_CLEAN)
    r = restora.restore(degraded, device="cpu")
    assert psnr(r.image, clean) - psnr(degraded, clean) >= 8.0
    assert r.degradations["noise"] > 0.5
    assert r.quality_after > r.quality_before


@pytest.mark.skipif(not VAL.is_dir(), reason=f"validation images not at {VAL}")
def test_blind_denoising_gain_on_validation_images():
    rng = np.random.default_rng(25)
    gains = []
    for path in sorted(VAL.glob("*.jpg"))[:4]:
        clean = np.asarray(Image.open(path).convert("RGB"))
        noisy = np.clip(np.rint(clean + rng.normal(0, 25, clean.shape)), 0, 255).astype(np.uint8)
        r = restora.restore(noisy, device="cpu")  # blind: degradations="auto"
        gains.append(psnr(r.image, clean) - psnr(noisy, clean))
    assert np.mean(gains) >= 8.0, gains


def test_clean_image_is_left_nearly_alone():
    clean, _ = restora.read_image(SAMPLE_CLEAN)
    r = restora.restore(clean, device="cpu")
    assert psnr(r.image, clean) > 33  # restoring a clean image must not damage it
    assert r.degradations["noise"] < 0.5
