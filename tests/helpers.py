"""Test helpers shared by several test modules."""

from __future__ import annotations

import numpy as np


def smooth_image(rng: np.random.Generator, shape: tuple[int, ...], dtype=np.uint8) -> np.ndarray:
    """A smooth, natural-ish test image (noise alone would be a degraded image)."""
    h, w = shape[:2]
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    base = 0.5 + 0.3 * np.sin(6 * xx + rng.uniform(0, 6)) * np.cos(4 * yy)
    img = np.repeat(base[..., None], shape[2] if len(shape) == 3 else 1, axis=2)
    img = img + 0.1 * rng.random((1, 1, img.shape[2]))
    img = np.clip(img, 0, 1)
    img = img if len(shape) == 3 else img[..., 0]
    if np.dtype(dtype).kind == "f":
        return img.astype(dtype)
    return np.rint(img * np.iinfo(dtype).max).astype(dtype)


SMALL = {"channels": (8, 16, 16), "encoder_blocks": (1, 1)}
"""A small RestoraNet's config, for tests that train one."""


def phase_model(phase: str, parts: tuple[str, ...], **head):
    """A small model with the head ``head`` names (e.g. ``haze_model=8``) and the parameters
    that ``phase`` trains, checked to be the head's (``parts``) alone, the phase refused for a
    model without that head."""
    import pytest
    import torch
    from restora.models import RestoraNet, RestoraNetConfig
    from restora.training.train import trainable_parameters

    torch.manual_seed(0)
    model = RestoraNet(RestoraNetConfig(**SMALL, **head))
    with pytest.raises(ValueError, match="needs a model with a"):
        trainable_parameters(RestoraNet(RestoraNetConfig(**SMALL)), phase, [])
    params, _ = trainable_parameters(model, phase, [])
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    assert names and all(n.startswith(parts) for n in names)
    return model, params


def sample_batch(samples: list) -> tuple[list, tuple]:
    """From synthetic ``DegradedSample`` s: the batch (degraded, clean, labels, present) and its
    physics (the haze's transmission and airlight, low light's gain), as training stacks them."""
    import torch

    batch = [torch.stack([getattr(s, k) for s in samples]) for k in ("degraded", "clean", "labels", "present")]
    physics = (torch.stack([s.transmission for s in samples])[:, None], torch.stack([s.airlight for s in samples]),
               torch.stack([s.light_gain for s in samples])[:, None])
    return batch, physics


def train_on_batch(model, params: list, batch: list, physics: tuple, phase: str, steps: int, lr: float = 1e-2,
                   history: list | None = None):
    """``steps`` Adam steps of ``phase`` at ``lr`` on one batch: the model's outputs on it
    before and after (eval mode), and the first and last total loss. Each step's losses (a
    dict of floats) are appended to ``history`` where given."""
    import torch
    from restora.training.config import TrainConfig
    from restora.training.train import compute_losses

    with torch.no_grad():
        before = model.eval()(batch[0])
    opt = torch.optim.Adam(params, lr=lr)
    losses = []
    for _ in range(steps):
        out = compute_losses(model.train(), *batch, TrainConfig().loss_weights, 1, phase, physics=physics)
        loss = out["total"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        if history is not None:
            history.append({k: float(v.detach()) for k, v in out.items()})
    with torch.no_grad():
        after = model.eval()(batch[0])
    return before, after, losses[0], losses[-1]


def degrade_as_before(x, name: str, seed: int):
    """``degrade(x, [name])`` with ``seed``, checked to draw as ``apply_degradation`` does (so
    that keeping a degradation's physical parameters changed no older run); the sample and
    its parameters."""
    import torch
    from restora.degradations import apply_degradation, degrade, sample_params

    s = degrade(x, [name], torch.Generator().manual_seed(seed))
    g = torch.Generator().manual_seed(seed)
    p = sample_params(name, g)
    torch.testing.assert_close(s.degraded, apply_degradation(x[None], name, p, g)[0], rtol=0, atol=0)
    return s, p


def train_photo(index: int = 0, size: int = 256):
    """A ``train/bsds`` photograph's centre crop (1, 3, size, size) in [0, 1] (skips the test
    where the training images are absent)."""
    import pytest
    import torch
    from conftest import DATA
    from PIL import Image

    files = sorted((DATA / "train" / "bsds").glob("*.jpg"))
    if not files:
        pytest.skip(f"training images not at {DATA / 'train' / 'bsds'}")
    with Image.open(files[index]) as im:
        a = np.asarray(im.convert("RGB"), dtype=np.float32) / 255
    h, w = a.shape[:2]
    top, left = (h - size) // 2, (w - size) // 2
    return torch.from_numpy(a[top : top + size, left : left + size].copy()).permute(2, 0, 1)[None]


def psnr_of(a, b) -> float:
    """The PSNR of one image (1, C, H, W) against another, in dB."""
    from restora.metrics import psnr

    return float(psnr(a, b)[0])


def default_engine_with(part: str):
    """The default weights' engine on the CPU, the test skipped where the weights lack
    ``part`` (``Engine.has_<part>``, e.g. "rain_model")."""
    import pytest
    from restora.engine.engine import Engine

    engine = Engine(device="cpu")
    if not getattr(engine, "has_" + part):
        pytest.skip(f"the default weights have no {part.replace('_', ' ')}")
    return engine
