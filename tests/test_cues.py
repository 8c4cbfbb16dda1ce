"""The local degradation cues: each rises or falls where its degradation is, reads no further
than `REACH`, agrees between a tile and the whole image, and stays float32 under autocast."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import restora
from restora.degradations import apply_degradation
from restora.models.cues import CUES, REACH, cue_maps


def _clean() -> torch.Tensor:
    with Image.open(Path(restora.__file__).parent / "data" / "sample_clean.png") as im:
        a = np.asarray(im.convert("RGB"), dtype=np.float32) / 255
    return torch.from_numpy(a.copy()).permute(2, 0, 1)[None]


def _mean(x: torch.Tensor, cue: str) -> float:
    return float(cue_maps(x)[0, CUES.index(cue)].mean())


def test_shape_and_bad_input():
    maps = cue_maps(torch.rand(2, 3, 64, 96))
    assert maps.shape == (2, len(CUES), 32, 48) and maps.dtype == torch.float32
    assert torch.isfinite(maps).all()
    for bad in (torch.rand(1, 1, 64, 64), torch.rand(3, 64, 64), torch.rand(1, 3, 63, 64)):
        with pytest.raises(ValueError, match="even size"):
            cue_maps(bad)


@pytest.mark.parametrize("name, params, cue, sign", [
    ("jpeg", {"quality": 20}, "blockiness_columns", 1),
    ("jpeg", {"quality": 20}, "blockiness_rows", 1),
    ("blur", {"kind": "gaussian", "sigma": 1.5}, "sharpness", -1),
    ("blur", {"kind": "defocus", "radius": 3.0}, "sharpness", -1),
    ("rain", {"density": 0.01, "length": 15, "angle": 100, "intensity": 0.1}, "streak_direction", 1),
    ("noise", {"kind": "gaussian", "sigma": 15 / 255}, "noise", 1),
])
def test_each_cue_moves_where_its_degradation_is(name, params, cue, sign):
    clean = _clean()
    degraded = apply_degradation(clean, name, params, torch.Generator().manual_seed(0))
    assert sign * (_mean(degraded, cue) - _mean(clean, cue)) > 0.15  # in standard deviations: 0.22 (rain) to 1.77


def test_reach_and_tiles():
    """One pixel changed moves the cues no further than REACH from it, so a tile's cues
    (it starts on a multiple of 4, as the engine's do) equal the whole image's inside it,
    away from its edges."""
    x = torch.rand(1, 3, 160, 160, generator=torch.Generator().manual_seed(0))
    y = x.clone()
    y[:, :, 80, 81] += 0.5
    moved = (cue_maps(y) - cue_maps(x)).abs().amax((0, 1)) > 0
    rows, cols = moved.nonzero().T
    reach = max(int((2 * rows - 80).abs().max()), int((2 * cols - 81).abs().max())) + 1
    assert 8 <= reach <= REACH
    whole, tile = cue_maps(x), cue_maps(x[:, :, 36:, 20:132])
    inner = REACH // 2
    torch.testing.assert_close(tile[..., inner:-inner, inner:-inner],
                               whole[..., 18 + inner : 80 - inner, 10 + inner : 66 - inner], rtol=0, atol=1e-5)


def test_float32_under_autocast():
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fast = cue_maps(x.bfloat16())
    assert fast.dtype == torch.float32
    torch.testing.assert_close(fast, cue_maps(x.bfloat16().float()), rtol=0, atol=0)
