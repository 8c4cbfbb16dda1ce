"""The network's precision: bfloat16 where the CPU has it natively, within a hair of float32."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import restora
from restora.engine import engine as engine_module
from restora.engine.engine import Engine, _Ticker, resolve_precision

from helpers import psnr_of

DATA = Path(restora.__file__).parent / "data"


def _sample(name: str) -> torch.Tensor:
    with Image.open(DATA / f"{name}.png") as im:
        return torch.from_numpy(np.asarray(im.convert("RGB"), dtype=np.float32) / 255).permute(2, 0, 1)[None]


def test_auto_takes_bfloat16_only_where_the_cpu_has_it(monkeypatch):
    monkeypatch.delenv("RESTORA_PRECISION", raising=False)
    assert not engine_module.native_bfloat16(torch.device("cuda"))  # GPUs keep float32 unless asked
    cpu = torch.device("cpu")
    monkeypatch.setattr(engine_module, "native_bfloat16", lambda device: True)
    assert resolve_precision("auto", cpu) == resolve_precision(None, cpu) == "bfloat16"
    monkeypatch.setattr(engine_module, "native_bfloat16", lambda device: False)
    assert resolve_precision("auto", cpu) == "float32"
    assert resolve_precision("bfloat16", cpu) == "bfloat16"  # asked for by name: given, if slower


def test_environment_variable_and_bad_values(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setenv("RESTORA_PRECISION", "float32")
    assert resolve_precision(None, cpu) == "float32"
    assert Engine("default", "cpu").precision == "float32"
    assert Engine("default", "cpu", precision="bfloat16").precision == "bfloat16"  # the argument wins
    monkeypatch.setenv("RESTORA_PRECISION", "half")
    with pytest.raises(restora.ImageError, match="RESTORA_PRECISION.*'half'"):
        Engine("default", "cpu")
    image = np.zeros((64, 64), np.uint8)
    with pytest.raises(restora.ImageError, match="precision.*'fp16'"):
        restora.restore(image, device="cpu", precision="fp16")


def test_bfloat16_pass_runs_in_bfloat16_and_stays_close_to_float32():
    x = _sample("sample_degraded")
    outs = {p: Engine("default", "cpu", precision=p)._pass(x, True, _Ticker(None, 0)) for p in ("float32", "bfloat16")}
    a, b = outs["float32"], outs["bfloat16"]
    assert all(v.dtype == torch.float32 for v in b.values())  # outputs and their blending stay float32
    diff = (a["restored"] - b["restored"]).abs()
    assert diff.max() > 0  # it did run in bfloat16
    assert psnr_of(b["restored"].clamp(0, 1), a["restored"].clamp(0, 1)) > 55  # 64.8 dB measured
    assert abs(float(a["quality"][0]) - float(b["quality"][0])) < 0.002  # below the loop's margin
    assert (a["degradation_probs"] - b["degradation_probs"]).abs().max() < 0.01
    agree = (a["segment_logits"].argmax(1) == b["segment_logits"].argmax(1)).float().mean()
    assert agree > 0.98


def test_bfloat16_restore_gains_what_float32_gains():
    x, clean = _sample("sample_degraded"), _sample("sample_clean")
    gains = {}
    for p in ("float32", "bfloat16"):
        r = Engine("default", "cpu", precision=p).restore(x, max_iterations=2)
        gains[p] = psnr_of(r.image.clamp(0, 1), clean) - psnr_of(x, clean)
    assert gains["float32"] > 5
    assert abs(gains["bfloat16"] - gains["float32"]) < 0.1  # 9.28 against 9.32 dB measured


def test_tiled_bfloat16_matches_whole():
    x = _sample("sample_degraded")
    whole = Engine("default", "cpu", 1024, precision="bfloat16")._pass(x, True, _Ticker(None, 0))
    tiled = Engine("default", "cpu", 160, precision="bfloat16")._pass(x, True, _Ticker(None, 0))
    assert psnr_of(tiled["restored"].clamp(0, 1), whole["restored"].clamp(0, 1)) > 55
    assert abs(float(whole["quality"][0]) - float(tiled["quality"][0])) < 0.002
