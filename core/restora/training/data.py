"""Training batches: random crops of clean photographs, degraded on the fly by the
synthesis in `restora.degradations` (single degradations, composites and CutMix)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .._names import DEGRADATIONS
from ..degradations import degradation_cutmix, degrade
from ..io import list_images


def load_rgb(path: Path) -> torch.Tensor:
    """(3, H, W) uint8 tensor."""
    with Image.open(path) as im:
        return torch.from_numpy(np.array(im.convert("RGB"))).permute(2, 0, 1).contiguous()


class SyntheticBatches:
    """Endless, seeded batches ``(degraded, clean, labels, present)`` of random crops."""

    def __init__(
        self, paths: list[Path], patch: int, batch: int, mix: dict[str, float], seed: int
    ) -> None:
        self.images = [im for im in map(load_rgb, paths) if min(im.shape[1:]) >= patch]
        if not self.images:
            raise ValueError(f"no training image is at least {patch}x{patch}")
        self.patch, self.batch = patch, batch
        kinds, p = zip(*mix.items())
        self.kinds, self.p = kinds, torch.tensor(p, dtype=torch.float64) / sum(p)
        self.generator = torch.Generator().manual_seed(seed)

    def _crop(self) -> torch.Tensor:
        g = self.generator
        im = self.images[int(torch.randint(len(self.images), (), generator=g))]
        _, h, w = im.shape
        top = int(torch.randint(h - self.patch + 1, (), generator=g))
        left = int(torch.randint(w - self.patch + 1, (), generator=g))
        x = im[:, top : top + self.patch, left : left + self.patch].float() / 255
        if torch.rand((), generator=g) < 0.5:
            x = x.flip(2)
        return torch.rot90(x, int(torch.randint(4, (), generator=g)), (1, 2))

    def _names(self) -> list[str]:
        """One degradation other than noise, followed by noise a third of the time."""
        g = self.generator
        others = [d for d in DEGRADATIONS if d != "noise"]
        names = [others[int(torch.randint(len(others), (), generator=g))]]
        if torch.rand((), generator=g) < 1 / 3:
            names.append("noise")
        return names

    def sample(self):
        g = self.generator
        kind = self.kinds[int(torch.multinomial(self.p, 1, generator=g))]
        clean = self._crop()
        if kind == "clean":
            return degrade(clean, [], g)
        if kind == "noise":
            return degrade(clean, ["noise"], g)
        if kind == "single":
            return degrade(clean, self._names(), g)
        outside = [] if torch.rand((), generator=g) < 0.3 else self._names()
        inside = [DEGRADATIONS[int(torch.randint(len(DEGRADATIONS), (), generator=g))]]
        return degradation_cutmix(clean, outside, inside, g)

    def __iter__(self):
        return self

    def __next__(self):
        samples = [self.sample() for _ in range(self.batch)]
        return (
            torch.stack([s.degraded for s in samples]),
            torch.stack([s.clean for s in samples]),
            torch.stack([s.labels for s in samples]),
            torch.stack([s.present for s in samples]),
        )


def validation_set(folder: Path, count: int, size: int = 256, sigma: float = 25 / 255, seed: int = 1234):
    """Centre crops of the first ``count`` images with Gaussian noise of ``sigma``: (noisy, clean)."""
    g = torch.Generator().manual_seed(seed)
    clean = []
    for p in list_images(folder)[:count]:
        im = load_rgb(p).float() / 255
        _, h, w = im.shape
        s = min(size, h, w) // 4 * 4
        top, left = (h - s) // 2, (w - s) // 2
        clean.append(im[:, top : top + s, left : left + s])
    clean = torch.stack(clean)
    noisy = (clean + sigma * torch.randn(clean.shape, generator=g)).clamp(0, 1)
    return noisy, clean
