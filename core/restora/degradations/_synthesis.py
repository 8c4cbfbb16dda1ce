"""Random, seeded degradations and degradation CutMix: each sample returns the degraded image, the
clean target, the per-pixel label map and the true parameters."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from .._names import DEGRADATIONS, SEGMENT_CLASSES
from ._atmosphere import haze, rain, transmission
from ._blur import blur, blur_kernel
from ._jpeg import jpeg
from ._light import low_light
from ._noise import gaussian_noise, poisson_gaussian_noise


def _u(g: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=g))


def sample_params(name: str, generator: torch.Generator) -> dict:
    """Draw the parameters of degradation ``name`` from its training distribution."""
    g = generator
    if name == "noise":
        if _u(g, 0, 1) < 0.7:
            return {"kind": "gaussian", "sigma": _u(g, 2, 55) / 255}
        return {"kind": "poisson_gaussian", "gain": 10 ** _u(g, -3, -1.5), "read_sigma": _u(g, 0, 10) / 255}
    if name == "blur":
        kind = ("gaussian", "defocus", "motion")[int(_u(g, 0, 3))]
        if kind == "gaussian":
            return {"kind": kind, "sigma": _u(g, 0.8, 3.0)}
        if kind == "defocus":
            return {"kind": kind, "radius": _u(g, 1.5, 5.0)}
        return {"kind": kind, "length": _u(g, 4, 15), "angle": _u(g, 0, 180)}
    if name == "rain":
        return {
            "density": _u(g, 0.002, 0.02),
            "length": _u(g, 8, 25),
            "angle": _u(g, 60, 120),
            "intensity": _u(g, 0.05, 0.15),
        }
    if name == "haze":
        return {"beta": _u(g, 0.6, 2.5), "airlight": _u(g, 0.7, 1.0)}
    if name == "low_light":
        # From 300 photons at full scale (a phone at night) to a million (a long exposure
        # that is merely dark): until aio-v5 the least was 3,000, and every head learned low
        # light as darkness with shot noise.
        return {
            "exposure": _u(g, 0.03, 0.3),
            "gamma": _u(g, 1.8, 2.4),
            "gain": 10 ** _u(g, -6.0, -2.5),
            "read_sigma": _u(g, 0, 3) / 255,
        }
    if name == "jpeg":
        return {"quality": int(_u(g, 10, 60))}
    raise ValueError(f"unknown degradation {name!r}; choose from {DEGRADATIONS}")


def apply_degradation(
    x: torch.Tensor, name: str, params: dict, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Apply degradation ``name`` with ``params`` to (B, 3, H, W) ``x`` in [0, 1]; result in [0, 1]."""
    if name == "noise":
        if params["kind"] == "gaussian":
            y = gaussian_noise(x, params["sigma"], generator)
        else:
            y = poisson_gaussian_noise(x, params["gain"], params["read_sigma"], generator)
    elif name == "blur":
        y = blur(x, blur_kernel(params))
    elif name == "rain":
        y = rain(x, generator=generator, **params)
    elif name == "haze":
        y = haze(x, generator=generator, **params)
    elif name == "low_light":
        y = low_light(x, generator=generator, **params)
    elif name == "jpeg":
        y = jpeg(x, params["quality"])
    else:
        raise ValueError(f"unknown degradation {name!r}; choose from {DEGRADATIONS}")
    return y.clamp(0, 1)


@dataclass
class DegradedSample:
    """One synthetic training or benchmark sample."""

    degraded: torch.Tensor  # (3, H, W) in [0, 1]
    clean: torch.Tensor  # (3, H, W) in [0, 1]
    labels: torch.Tensor  # (H, W) int64, index into SEGMENT_CLASSES
    present: torch.Tensor  # (len(DEGRADATIONS),) float, 1 where the degradation covers any pixel
    params: list[dict] = field(default_factory=list)  # [{"name", "region", **params}, ...]
    # The haze's physical parameters: the transmission (H, W), 1 where there is no haze, and
    # the airlight (3,); None where unknown (real pairs).
    transmission: torch.Tensor | None = None
    airlight: torch.Tensor | None = None
    # Low light's physical parameter: the display-space gain (H, W) that undoes the exposure,
    # ``exposure ** (-1 / gamma)`` (the tone curve turns linear scaling into scaling), 1 where
    # there is no low light; None where unknown.
    light_gain: torch.Tensor | None = None


def degrade(
    clean: torch.Tensor, names: list[str], generator: torch.Generator
) -> DegradedSample:
    """Apply the degradations ``names`` in turn to the whole (3, H, W) image ``clean``.

    The label map marks each pixel with the last degradation applied (the visible one).
    """
    y = clean[None]
    params = []
    h, w = clean.shape[-2:]
    t, airlight, gain = torch.ones(h, w), torch.ones(3), torch.ones(h, w)
    for name in names:
        p = sample_params(name, generator)
        if name == "haze":  # as apply_degradation does (the same draws), keeping t
            th = transmission((h, w), p["beta"], generator)
            y = haze(y, p["beta"], p["airlight"], t=th).clamp(0, 1)
            t, airlight = t * th, torch.full((3,), float(p["airlight"]))
        else:
            y = apply_degradation(y, name, p, generator)
            if name == "low_light":
                gain = gain * float(p["exposure"]) ** (-1 / float(p["gamma"]))
        params.append({"name": name, "region": "all", **p})
    label = SEGMENT_CLASSES.index(names[-1]) if names else 0
    present = torch.tensor([float(d in names) for d in DEGRADATIONS])
    return DegradedSample(y[0], clean, torch.full((h, w), label, dtype=torch.int64), present, params, t, airlight, gain)


def random_box(h: int, w: int, generator: torch.Generator) -> tuple[int, int, int, int]:
    """A random box covering 20-60% of the area (CutMix), as (top, left, height, width)."""
    area = _u(generator, 0.2, 0.6)
    ratio = math.exp(_u(generator, math.log(0.5), math.log(2)))
    bh = min(h, max(1, int(round(math.sqrt(area * h * w * ratio)))))
    bw = min(w, max(1, int(round(math.sqrt(area * h * w / ratio)))))
    top = int(_u(generator, 0, h - bh + 1))
    left = int(_u(generator, 0, w - bw + 1))
    return top, left, bh, bw


def degradation_cutmix(
    clean: torch.Tensor, outside: list[str], inside: list[str], generator: torch.Generator
) -> DegradedSample:
    """Degradation CutMix: ``outside`` degrades the image, ``inside`` a random box of it.

    Either list may be empty (a clean region). Labels follow each region.
    """
    h, w = clean.shape[-2:]
    a = degrade(clean, outside, generator)
    b = degrade(clean, inside, generator)
    top, left, bh, bw = random_box(h, w, generator)
    mask = torch.zeros((h, w), dtype=torch.bool)
    mask[top : top + bh, left : left + bw] = True
    degraded = torch.where(mask, b.degraded, a.degraded)
    labels = torch.where(mask, b.labels, a.labels)
    present = torch.maximum(a.present, b.present)
    params = a.params + [dict(p, region=(top, left, bh, bw)) for p in b.params]
    t = torch.where(mask, b.transmission, a.transmission)
    airlight = b.airlight if "haze" in inside else a.airlight  # one airlight per image
    gain = torch.where(mask, b.light_gain, a.light_gain)
    return DegradedSample(degraded, clean, labels, present, params, t, airlight, gain)


def cutmix_regions(generator: torch.Generator) -> tuple[list[str], list[str]]:
    """(outside, inside) degradation lists of one `degradation_cutmix` composite, as the
    segmentation benchmark and the segmentation fusion's training draw them: one degradation
    or none outside; a different one inside (never empty), followed by noise a quarter of the
    time (the visible, last label there is then noise)."""
    pick = lambda options: options[int(torch.randint(len(options), (), generator=generator))]
    outside = pick([[]] + [[d] for d in DEGRADATIONS])
    inside = [pick([d for d in DEGRADATIONS if [d] != outside])]
    if inside[0] != "noise" and float(torch.rand((), generator=generator)) < 0.25:
        inside.append("noise")
        if inside[-1:] == outside:
            inside.pop()
    return outside, inside
