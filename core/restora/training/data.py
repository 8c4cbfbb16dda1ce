"""Training batches: random crops of clean photographs, degraded on the fly by the
synthesis in `restora.degradations` (single degradations, composites and CutMix), some made
grey, and random crops of real (degraded, clean) pairs such as W2S microscopy."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .._names import DEGRADATIONS, SEGMENT_CLASSES
from ..degradations import (DegradedSample, degradation_cutmix, degrade, jpeg, rain_layer, random_box,
                            sample_params, screen, unscreen)
from ..io import list_images
from ..models.blur import nearest_in_bank
from ..models.rain import STREAK


def to_8bit(x: torch.Tensor) -> torch.Tensor:
    """``x`` in [0, 1] (clamped) rounded to the 256 steps of an 8-bit image, as the images
    the engine reads are."""
    return torch.round(x.clamp(0, 1) * 255) / 255


def load_rgb(path: Path) -> torch.Tensor:
    """(3, H, W) uint8 tensor."""
    with Image.open(path) as im:
        return torch.from_numpy(np.array(im.convert("RGB"))).permute(2, 0, 1).contiguous()


def pair_paths(folder: Path, holdout: list[str] = ()) -> list[tuple[Path, Path]]:
    """(degraded, clean) files of a pairs folder: ``noisy/`` and ``clean/`` hold the same
    names. Names starting with a ``holdout`` prefix are left out (kept for validation)."""
    noisy, clean = folder / "noisy", folder / "clean"
    if not noisy.is_dir() or not clean.is_dir():
        raise ValueError(f"{folder} needs noisy/ and clean/ sub-folders of same-named images")
    pairs = [(p, clean / p.name) for p in list_images(noisy) if not p.name.startswith(tuple(holdout))]
    missing = [str(c) for _, c in pairs if not c.exists()]
    if missing:
        raise ValueError(f"{len(missing)} clean images are missing, e.g. {missing[0]}")
    return pairs


def grey(sample: DegradedSample) -> DegradedSample:
    """The sample as a grey image stored as RGB: the channels' mean, so its noise is the same
    in every channel, as in a grey photograph or a microscope's camera."""
    return DegradedSample(sample.degraded.mean(0, keepdim=True).expand(3, -1, -1).contiguous(),
                          sample.clean.mean(0, keepdim=True).expand(3, -1, -1).contiguous(),
                          sample.labels, sample.present, sample.params + [{"name": "grey"}],
                          sample.transmission, sample.airlight, sample.light_gain)


class SyntheticBatches:
    """Endless, seeded batches ``(degraded, clean, labels, present)`` of random crops.

    ``mix`` gives the chance of each kind of sample: "clean", "noise" (alone), "single" (one
    other degradation, then noise a third of the time), "cutmix" and, with ``pairs``, "pairs"
    (a crop of a real noisy/clean pair, labelled noise); a degradation's name (not "noise")
    stands for that degradation over the whole image, then noise a third of the time and JPEG
    a quarter of the time (as a camera's pipeline would). A synthetic sample is made grey with
    chance ``grey``. With ``physics`` each batch also holds the haze's true transmission
    (B, 1, H, W) and airlight (B, 3), and low light's true gain (B, 1, H, W); with ``blur``,
    the index of the blur model's bank kernel nearest the true one (B,) (`blur_target`); with
    ``exposure``, whether the whole crop is under-exposed (B,) and the log gain that undoes it
    (B,) (`exposure_target`).
    """

    def __init__(
        self, paths: list[Path], patch: int, batch: int, mix: dict[str, float], seed: int,
        pairs: list[tuple[Path, Path]] = (), grey: float = 0.0, physics: bool = False,
        blur: bool = False, exposure: bool = False,
    ) -> None:
        self.physics, self.blur, self.exposure = physics, blur, exposure
        self.images = [im for im in map(load_rgb, paths) if min(im.shape[1:]) >= patch]
        if not self.images:
            raise ValueError(f"no training image is at least {patch}x{patch}")
        self.pairs = [(a, b) for a, b in ((load_rgb(n), load_rgb(c)) for n, c in pairs) if min(a.shape[1:]) >= patch]
        bad = [tuple(a.shape) for a, b in self.pairs if a.shape != b.shape]
        if bad:
            raise ValueError(f"a degraded image and its clean pair differ in shape: {bad[0]}")
        if mix.get("pairs", 0) > 0 and not self.pairs:
            raise ValueError(f"mix asks for 'pairs' but no pair is at least {patch}x{patch}")
        unknown = set(mix) - {"clean", "noise", "single", "cutmix", "pairs"} - set(DEGRADATIONS)
        if unknown:
            raise ValueError(f"unknown kinds in mix: {sorted(unknown)}")
        self.patch, self.batch, self.grey = patch, batch, grey
        kinds, p = zip(*mix.items())
        self.kinds, self.p = kinds, torch.tensor(p, dtype=torch.float64) / sum(p)
        self.generator = torch.Generator().manual_seed(seed)

    def _crop(self, *images: torch.Tensor) -> list[torch.Tensor]:
        """The same random crop, flip and rotation of each image."""
        g = self.generator
        _, h, w = images[0].shape
        top = int(torch.randint(h - self.patch + 1, (), generator=g))
        left = int(torch.randint(w - self.patch + 1, (), generator=g))
        flip = bool(torch.rand((), generator=g) < 0.5)
        turns = int(torch.randint(4, (), generator=g))
        out = []
        for im in images:
            x = im[:, top : top + self.patch, left : left + self.patch].float() / 255
            out.append(torch.rot90(x.flip(2) if flip else x, turns, (1, 2)))
        return out

    def _pair(self) -> DegradedSample:
        a, b = self.pairs[int(torch.randint(len(self.pairs), (), generator=self.generator))]
        degraded, clean = self._crop(a, b)
        labels = torch.full(clean.shape[1:], SEGMENT_CLASSES.index("noise"), dtype=torch.int64)
        present = torch.tensor([float(d == "noise") for d in DEGRADATIONS])
        # real microscopy: no haze (transmission 1), no low light (gain 1)
        return DegradedSample(degraded, clean, labels, present, [{"name": "pair"}],
                              torch.ones(clean.shape[1:]), torch.ones(3), torch.ones(clean.shape[1:]))

    def _names(self) -> list[str]:
        """One degradation other than noise, followed by noise a third of the time."""
        g = self.generator
        others = [d for d in DEGRADATIONS if d != "noise"]
        names = [others[int(torch.randint(len(others), (), generator=g))]]
        if torch.rand((), generator=g) < 1 / 3:
            names.append("noise")
        return names

    def sample(self) -> DegradedSample:
        g = self.generator
        kind = self.kinds[int(torch.multinomial(self.p, 1, generator=g))]
        if kind == "pairs":
            return self._pair()
        # the grey draw is taken only when asked for, so that grey=0 repeats older runs exactly
        make_grey = self.grey > 0 and bool(torch.rand((), generator=g) < self.grey)
        (clean,) = self._crop(self.images[int(torch.randint(len(self.images), (), generator=g))])
        if kind in DEGRADATIONS and kind != "noise":
            names = [kind]
            if torch.rand((), generator=g) < 1 / 3:
                names.append("noise")
            if kind != "jpeg" and torch.rand((), generator=g) < 1 / 4:
                names.append("jpeg")
            s = degrade(clean, names, g)
        elif kind == "clean":
            s = degrade(clean, [], g)
        elif kind == "noise":
            s = degrade(clean, ["noise"], g)
        elif kind == "single":
            s = degrade(clean, self._names(), g)
        else:
            outside = [] if torch.rand((), generator=g) < 0.3 else self._names()
            inside = [DEGRADATIONS[int(torch.randint(len(DEGRADATIONS), (), generator=g))]]
            s = degradation_cutmix(clean, outside, inside, g)
        return grey(s) if make_grey else s

    def __iter__(self):
        return self

    def __next__(self):
        samples = [self.sample() for _ in range(self.batch)]
        batch = (
            torch.stack([s.degraded for s in samples]),
            torch.stack([s.clean for s in samples]),
            torch.stack([s.labels for s in samples]),
            torch.stack([s.present for s in samples]),
        )
        if self.physics:
            batch += (torch.stack([s.transmission for s in samples])[:, None],
                      torch.stack([s.airlight for s in samples]),
                      torch.stack([s.light_gain for s in samples])[:, None])
        if self.blur:
            batch += (torch.tensor([blur_target(s) for s in samples]),)
        if self.exposure:
            flags, gains = zip(*(exposure_target(s) for s in samples))
            batch += (torch.tensor(flags), torch.tensor(gains))
        return batch


def random_crop(images: list[torch.Tensor], n: int, generator: torch.Generator) -> torch.Tensor:
    """An (3, n, n) float crop in [0, 1] of one of the uint8 ``images``, turned by a random
    multiple of 90 degrees."""
    g = generator
    im = images[int(torch.randint(len(images), (), generator=g))]
    top = int(torch.randint(im.shape[1] - n + 1, (), generator=g))
    left = int(torch.randint(im.shape[2] - n + 1, (), generator=g))
    return torch.rot90(im[:, top : top + n, left : left + n].float() / 255, int(torch.randint(4, (), generator=g)), (1, 2))


class JpegBatches:
    """Endless, seeded batches ``(coded, before, labels, present, quality, offset)`` for the
    JPEG model: random crops, a quarter of them blurred, hazed or rained on first (what
    came before the coding stays in the target: the model undoes the coding only), made grey
    with chance ``grey``, JPEG-coded by Pillow at an IJG quality drawn from ``qualities``
    (B,), then cropped at a random grid offset (oy, ox) (B, 2) in 0-7, as a cropped JPEG is.
    ``labels`` and ``present`` say JPEG everywhere."""

    BEFORE = ("blur", "haze", "rain")

    def __init__(self, paths: list[Path], patch: int, batch: int, seed: int, grey: float = 0.0,
                 qualities: tuple[int, int] = (10, 80), before: float = 0.25) -> None:
        self.images = [im for im in map(load_rgb, paths) if min(im.shape[1:]) >= patch + 8]
        if not self.images:
            raise ValueError(f"no training image is at least {patch + 8}x{patch + 8}")
        self.patch, self.batch, self.grey, self.qualities, self.before = patch, batch, grey, qualities, before
        self.generator = torch.Generator().manual_seed(seed)

    def sample(self) -> tuple[torch.Tensor, torch.Tensor, int, tuple[int, int]]:
        g, n = self.generator, self.patch + 8
        x = random_crop(self.images, n, g)
        if torch.rand((), generator=g) < self.before:
            x = degrade(x, [self.BEFORE[int(torch.randint(len(self.BEFORE), (), generator=g))]], g).degraded
        if self.grey > 0 and torch.rand((), generator=g) < self.grey:
            x = x.mean(0, keepdim=True).expand(3, -1, -1)
        # what the coder saw, in its own 8-bit steps
        x = to_8bit(x)
        quality = int(torch.randint(self.qualities[0], self.qualities[1] + 1, (), generator=g))
        coded = jpeg(x[None], quality)[0]
        dy, dx = (int(torch.randint(8, (), generator=g)) for _ in range(2))
        crop = lambda t: t[:, dy : dy + self.patch, dx : dx + self.patch]
        # the grid of the crop starts where the next block does
        return crop(coded), crop(x), quality, ((8 - dy) % 8, (8 - dx) % 8)

    def __iter__(self):
        return self

    def __next__(self):
        coded, before, quality, offset = zip(*(self.sample() for _ in range(self.batch)))
        coded, before = torch.stack(coded), torch.stack(before)
        b, _, h, w = coded.shape
        labels = torch.full((b, h, w), SEGMENT_CLASSES.index("jpeg"), dtype=torch.int64)
        present = torch.tensor([float(d == "jpeg") for d in DEGRADATIONS]).expand(b, -1)
        return coded, before, labels, present, torch.tensor(quality), torch.tensor(offset)


class RainBatches:
    """Endless, seeded batches ``(rainy, target, labels, present, layer)`` for the rain model:
    random crops, a fifth of them blurred, hazed or darkened first (kept in the target: the
    model removes the rain only), made grey with chance ``grey``; a share ``rainy`` of them
    rained on by the synthesis's streaks (`restora.degradations.rain_layer`, its training
    parameters), a third of those by two layers at different angles, a fifth only inside a
    CutMix box; the rest left without rain, half of them degraded otherwise (noise, blur,
    haze, low light, JPEG: texture and artefacts that are not rain, which the model must
    leave). A quarter of the rainy crops get Gaussian noise after the rain (a camera's), then
    every crop is rounded to 8 bits. ``layer`` (B, 1, H, W) is the true rain layer (0 without
    rain) and ``target`` the screen blend's inverse of ``rainy`` by it (the image before the
    rain, with the noise that came after); ``labels`` say rain where the layer has a streak
    (`restora.models.rain.STREAK`)."""

    BEFORE = ("blur", "haze", "low_light")
    OTHERS = ("noise", "blur", "haze", "low_light", "jpeg")

    def __init__(self, paths: list[Path], patch: int, batch: int, seed: int, grey: float = 0.0,
                 rainy: float = 0.65, before: float = 0.2, noise_after: float = 0.25) -> None:
        self.images = [im for im in map(load_rgb, paths) if min(im.shape[1:]) >= patch]
        if not self.images:
            raise ValueError(f"no training image is at least {patch}x{patch}")
        self.patch, self.batch, self.grey, self.rainy = patch, batch, grey, rainy
        self.before, self.noise_after = before, noise_after
        self.generator = torch.Generator().manual_seed(seed)

    def _layer(self, n: int) -> torch.Tensor:
        g = self.generator
        r = torch.zeros(1, 1, n, n)
        for _ in range(2 if torch.rand((), generator=g) < 1 / 3 else 1):
            layer = rain_layer((1, n, n), generator=g, **sample_params("rain", g))
            r = 1 - (1 - r) * (1 - layer)  # two layers screen-blend into one
        if torch.rand((), generator=g) < 0.2:
            top, left, bh, bw = random_box(n, n, g)
            box = torch.zeros_like(r)
            box[..., top : top + bh, left : left + bw] = 1
            r = r * box
        return r[0]

    def sample(self) -> tuple[torch.Tensor, torch.Tensor]:
        g, n = self.generator, self.patch
        x = random_crop(self.images, n, g)
        rainy = bool(torch.rand((), generator=g) < self.rainy)
        pick = lambda names: names[int(torch.randint(len(names), (), generator=g))]
        if rainy and torch.rand((), generator=g) < self.before:
            x = degrade(x, [pick(self.BEFORE)], g).degraded
        elif not rainy and torch.rand((), generator=g) < 0.5:
            x = degrade(x, [pick(self.OTHERS)], g).degraded
        if self.grey > 0 and torch.rand((), generator=g) < self.grey:
            x = x.mean(0, keepdim=True).expand(3, -1, -1)
        r = self._layer(n) if rainy else torch.zeros(1, n, n)
        y = screen(x, r)
        if rainy and torch.rand((), generator=g) < self.noise_after:
            sigma = 2 / 255 + float(torch.rand((), generator=g)) * 18 / 255
            y = y + sigma * torch.randn(y.shape, generator=g)
        y = to_8bit(y)
        return y, r

    def __iter__(self):
        return self

    def __next__(self):
        rainy, layer = (torch.stack(t) for t in zip(*(self.sample() for _ in range(self.batch))))
        target = unscreen(rainy, layer).clamp(0, 1)
        labels = torch.where(layer[:, 0] >= STREAK, SEGMENT_CLASSES.index("rain"), SEGMENT_CLASSES.index("clean"))
        present = (layer.amax((1, 2, 3)) >= STREAK).float()[:, None] * torch.tensor(
            [float(d == "rain") for d in DEGRADATIONS])
        return rainy, target, labels, present, layer


def blur_target(sample: DegradedSample) -> int:
    """The blur model's target for ``sample``: the index of the bank kernel nearest its blur's
    (`restora.models.blur.nearest_in_bank`), 0 without blur, and -1 (no target: one spectrum
    cannot say which part of the image is blurred) where blur covers only a CutMix region."""
    blurs = [p for p in sample.params if p.get("name") == "blur"]
    if not blurs:
        return 0
    # a CutMix sample's box has a region; its surround's parameters say "all"
    if len(blurs) > 1 or any(p.get("region", "all") != "all" for p in sample.params):
        return -1
    return nearest_in_bank({k: v for k, v in blurs[0].items() if k not in ("name", "region")})


def exposure_target(sample: DegradedSample) -> tuple[int, float]:
    """The exposure model's target for ``sample``, as (under-exposed, log gain), from its true
    gain map: (1, log gain) where one gain covers the whole image, (0, 0) where none does or
    only part of the image is under-exposed (a CutMix region, which a global gain would
    over-brighten), and (-1, 0), no target, where regions differ in exposure."""
    gain = sample.light_gain
    if gain is None:
        return 0, 0.0
    lo, hi = float(gain.min()), float(gain.max())
    if lo <= 1.0 + 1e-6:  # some pixels, or all, are not under-exposed
        return 0, 0.0
    if hi - lo > 1e-4 * hi:
        return -1, 0.0
    return 1, math.log(hi)


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
