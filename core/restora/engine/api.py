"""The numpy-level operations: restore, assess, segment.

Images are (H, W) or (H, W, C) with C in {1, 3, 4}, or stacks whose axes are named with
``axes`` (letters from "TZCYX"; "S" is read as "C"). A C axis of 1, 3 or 4 is grey, RGB or
RGBA; any other channel count is a set of grey planes (e.g. fluorescence channels). Stacks run
plane by plane.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from .._checks import ImageError, check_degradations, check_image_values, check_plane_shape
from .._dtype import InRange, from_float, to_float, value_range
from .._names import DEGRADATIONS, SEGMENT_CLASSES
from .engine import DEFAULT_TILE, Engine, Progress
from .results import AssessResult, RestoreResult, SegmentResult

AXES_LETTERS = "TZCYX"


@dataclass(frozen=True)
class _Layout:
    """How an image maps to a list of (H, W[, C]) planes and back."""

    order: str  # the axes after transposing: leading, then Y, X, then a colour C if any
    axes: str  # the caller's axes
    lead_shape: tuple[int, ...]
    colour: bool  # planes carry a colour axis (C of 1, 3 or 4)

    def planes(self, image: np.ndarray) -> np.ndarray:
        t = image.transpose([self.axes.index(a) for a in self.order])
        return t.reshape((-1,) + t.shape[len(self.lead_shape):])

    def image(self, planes: np.ndarray) -> np.ndarray:
        t = planes.reshape(self.lead_shape + planes.shape[1:])
        return t.transpose([self.order.index(a) for a in self.axes])

    def maps(self, maps: np.ndarray) -> np.ndarray:
        """(N, H, W, ...) per-plane maps back to the caller's axes without a colour C (extra
        trailing axes, like class probabilities, stay last)."""
        order = self.order.rstrip("C") if self.colour else self.order
        axes = self.axes.replace("C", "") if self.colour else self.axes
        t = maps.reshape(self.lead_shape + maps.shape[1:])
        extra = list(range(len(order), t.ndim))
        return t.transpose([order.index(a) for a in axes] + extra)


def _layout(shape: tuple[int, ...], axes: str | None) -> _Layout:
    if axes is None:
        if len(shape) == 2:
            axes = "YX"
        elif len(shape) == 3 and shape[2] in (1, 3, 4):
            axes = "YXC"
        else:
            check_plane_shape(shape)  # raises, naming the problem and suggesting axes=
    axes = axes.upper().replace("S", "C")
    if len(axes) != len(shape):
        raise ImageError(f"axes {axes!r} has {len(axes)} letters but the image has {len(shape)} dimensions {shape}")
    bad = [a for a in axes if a not in AXES_LETTERS]
    if bad or len(set(axes)) != len(axes) or "Y" not in axes or "X" not in axes:
        raise ImageError(f"axes {axes!r} must use each of {AXES_LETTERS} at most once and include Y and X")
    colour = "C" in axes and shape[axes.index("C")] in (1, 3, 4)
    lead = "".join(a for a in axes if a not in "YX" and not (a == "C" and colour))
    order = lead + "YX" + ("C" if colour else "")
    lead_shape = tuple(shape[axes.index(a)] for a in lead)
    plane_shape = tuple(shape[axes.index(a)] for a in order[len(lead):])
    check_plane_shape(plane_shape)
    return _Layout(order, axes, lead_shape, colour)


def _prepare(image, axes, in_range):
    check_image_values(image, floats_in_unit_range=isinstance(in_range, str) and in_range == "dtype")
    layout = _layout(image.shape, axes)
    lo, hi = value_range(image, in_range)
    return image, layout, lo, hi


def _plane_tensor(plane: np.ndarray, lo: float, hi: float) -> torch.Tensor:
    """(H, W[, C]) plane to a (1, 1 or 3, H, W) float tensor; alpha is left out."""
    f = to_float(plane, lo, hi)
    if f.ndim == 2:
        return torch.from_numpy(f)[None, None]
    f = f[..., :3] if f.shape[2] >= 3 else f[..., :1]
    return torch.from_numpy(np.ascontiguousarray(f)).permute(2, 0, 1)[None]


def _sub_progress(progress: Progress, offset: int, total: int) -> Progress:
    if progress is None:
        return None
    return lambda done, _: progress(offset + done, total)


def _run_planes(image, axes, in_range, weights, device, tile_size, progress, op,
                passes: int | Callable[[Engine], int] = 1, precision: str | None = None):
    """Check ``image``, then call ``op(engine, plane, tensor, progress)`` on each plane.
    ``passes`` is the network passes per plane, or a function of the engine that gives them
    (they depend on the model's parts).

    Returns the checked image, its layout, its (lo, hi) value range and the per-plane results.
    """
    image, layout, lo, hi = _prepare(image, axes, in_range)
    engine = Engine(weights, device, tile_size, precision)
    planes = layout.planes(image)
    per_plane = engine.tiles_per_pass(*planes.shape[1:3]) * (passes(engine) if callable(passes) else passes)
    total = per_plane * len(planes)
    results = [op(engine, plane, _plane_tensor(plane, lo, hi), _sub_progress(progress, i * per_plane, total))
               for i, plane in enumerate(planes)]
    return image, layout, lo, hi, results


def _mean_degradations(reports: list[dict]) -> dict[str, float]:
    """Each degradation's probability averaged over the planes' reports."""
    return {k: round(float(np.mean([p["degradations"][k] for p in reports])), 4) for k in DEGRADATIONS}


def _degradation_dict(probs: torch.Tensor) -> dict[str, float]:
    return {name: round(float(p), 4) for name, p in zip(DEGRADATIONS, probs)}


def restore(
    image: np.ndarray,
    degradations: str | Sequence[str] = "auto",
    max_iterations: int = 3,
    device: str = "auto",
    axes: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    *,
    strength: float = 1.0,
    target_quality: float | None = None,
    in_range: InRange = "dtype",
    tile_size: int = DEFAULT_TILE,
    weights: str | os.PathLike = "default",
    precision: str | None = None,
    refine: bool = True,
    dehaze: bool = True,
    brighten: bool = True,
    deblur: bool = True,
    dejpeg: bool = True,
    derain: bool = True,
) -> RestoreResult:
    """Blindly restore an image: remove noise, blur, rain, haze, low light and JPEG artefacts.

    Parameters
    ----------
    image : ndarray
        (H, W) or (H, W, C) with C in {1, 3, 4}, or a stack described by ``axes``; uint8,
        uint16, or float32/float64 in [0, 1].
    degradations : "auto" or sequence of str
        "auto" removes whatever is found; names (or "noise,blur") limit the change to the pixels
        the model attributes to those degradations.
    max_iterations : int
        Most restore -> assess rounds; rounds stop as soon as quality stops improving.
    device : str
        "auto" (CUDA, then MPS, then CPU), "cpu", "cuda", "cuda:N" or "mps".
    axes : str, optional
        Names of the image's axes for stacks, e.g. "ZYX", "TYXC", "CYX".
    progress : callable, optional
        ``progress(done, total)``, called between tiles; raising from it cancels the work.
    strength : float
        0 returns the input, 1 the full restoration.
    target_quality : float, optional
        Stop once the assessed quality reaches this value.
    in_range : "dtype", "image" or (lo, hi)
        Which input values map to black and white (see `restora._dtype`).
    tile_size : int
        Largest tile edge; smaller uses less memory.
    weights : str or path
        Weights name or ``.safetensors`` path.
    precision : {"auto", "float32", "bfloat16"}, optional
        The network's arithmetic (see `restora.Engine`): "auto" is bfloat16 on a CPU with
        native bfloat16 (about twice as fast; 0.07 dB lower on the quality benchmark's mean,
        see the model card), float32 elsewhere; None reads ``RESTORA_PRECISION``.
    refine : bool
        Run the second stage after the rounds where noise was found: a Wiener filter of the
        input guided by the rounds' result, where they removed only noise
        (`restora.engine.refine`).
    dehaze : bool
        Where haze is found and the weights have a haze model, the round after the network's
        first accepted one proposes the inverse of the atmospheric scattering model from the
        predicted transmission and airlight (`restora.engine.dehaze`); it is kept only if the
        assessed quality improves.
    brighten : bool
        Likewise where low light is found and the weights have a low-light model: the gain
        that undoes the exposure (`restora.engine.lowlight`), in the same round. A declined
        inverse (haze or low light) gets one more chance: the next round proposes the
        network's restoration of it (a brightened image keeps its noise until then). Where
        the weights have an exposure model and it finds the whole image under-exposed where the
        quality head finds no low light, its gain is applied first, before the rounds (grey
        images only with low light named).
    deblur : bool
        Where the weights have a blur model and it finds blur, deconvolve the result last by
        the estimated kernel (`restora.engine.deblur`).
    dejpeg : bool
        Where the weights have a JPEG model and the image's own coefficients show JPEG's
        coding (its 8x8 grid and quantisation steps), undo the coding first, in the blocks
        that show it (`restora.engine.dejpeg`).
    derain : bool
        Where the weights have a rain model and it finds rain streaks, take its rain layer
        out next, by the screen blend's exact inverse (`restora.engine.derain`), with no
        rounds after it where nothing else is found; grey images only with rain named.

    Returns
    -------
    RestoreResult
        ``image`` has the input's shape, dtype and value range; alpha is passed through.
    """
    t0 = time.perf_counter()
    names = check_degradations(degradations)

    def op(engine, plane, x, plane_progress):
        r = engine.restore(x, names, max_iterations, strength, target_quality, progress=plane_progress,
                           refine=refine, dehaze=dehaze, brighten=brighten, deblur=deblur,
                           dejpeg=dejpeg, derain=derain)
        report = {"quality_before": float(r.quality_before[0]), "quality_after": float(r.quality_after[0]),
                  "degradations": _degradation_dict(r.degradation_probs[0]),
                  "iterations": r.iterations[0], "history": [round(q, 4) for q in r.history[0]],
                  "refined": r.refined[0], "dehazed": r.dehazed[0], "brightened": r.brightened[0],
                  "deblurred": r.deblurred[0], "dejpegged": r.dejpegged[0], "derained": r.derained[0]}
        return r.image[0].permute(1, 2, 0).numpy(), r.uncertainty[0, 0].numpy().astype(np.float32), report

    image, layout, lo, hi, results = _run_planes(image, axes, in_range, weights, device, tile_size, progress, op,
                                                 lambda e: Engine.restore_passes(
                                                     max_iterations, refine, deblur, brighten and e.has_exposure_model,
                                                     dejpeg and e.has_jpeg_model, derain and e.has_rain_model),
                                                 precision)
    outs = []
    for plane, (rest, _, _) in zip(layout.planes(image), results):
        out = from_float(rest if plane.ndim == 3 else rest[..., 0], image.dtype, lo, hi)
        if plane.ndim == 3 and plane.shape[2] == 4:
            out = np.concatenate([out, plane[..., 3:]], axis=2)  # alpha untouched
        outs.append(out)
    uncs = [u for _, u, _ in results]
    reports = [rep for _, _, rep in results]
    return RestoreResult(
        image=layout.image(np.stack(outs)),
        quality_before=float(np.mean([p["quality_before"] for p in reports])),
        quality_after=float(np.mean([p["quality_after"] for p in reports])),
        degradations=_mean_degradations(reports),
        iterations=max(p["iterations"] for p in reports),
        history=reports[0]["history"] if len(reports) == 1 else [],
        refined=any(p["refined"] for p in reports),
        dehazed=any(p["dehazed"] for p in reports),
        brightened=any(p["brightened"] for p in reports),
        deblurred=any(p["deblurred"] for p in reports),
        dejpegged=any(p["dejpegged"] for p in reports),
        derained=any(p["derained"] for p in reports),
        uncertainty=layout.maps(np.stack(uncs)),
        seconds=time.perf_counter() - t0,
        planes=reports if len(reports) > 1 else [],
    )


def assess(
    image: np.ndarray,
    device: str = "auto",
    axes: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    *,
    in_range: InRange = "dtype",
    tile_size: int = DEFAULT_TILE,
    weights: str | os.PathLike = "default",
    precision: str | None = None,
) -> AssessResult:
    """No-reference quality score in [0, 1] (higher is better) and the degradations present.

    Parameters are as for `restore`.
    """
    def op(engine, plane, x, plane_progress):
        q, d = engine.assess(x, plane_progress)
        return {"score": float(q[0]), "degradations": _degradation_dict(d[0])}

    *_, reports = _run_planes(image, axes, in_range, weights, device, tile_size, progress, op, precision=precision)
    return AssessResult(
        score=float(np.mean([p["score"] for p in reports])),
        degradations=_mean_degradations(reports),
        planes=reports if len(reports) > 1 else [],
    )


def segment(
    image: np.ndarray,
    device: str = "auto",
    axes: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    *,
    in_range: InRange = "dtype",
    tile_size: int = DEFAULT_TILE,
    weights: str | os.PathLike = "default",
    precision: str | None = None,
) -> SegmentResult:
    """Per-pixel map of which degradation is where (``labels`` index ``classes``).

    Parameters are as for `restore`.
    """
    def op(engine, plane, x, plane_progress):
        return engine.segment(x, plane_progress)[0].permute(1, 2, 0).numpy().astype(np.float32)

    _, layout, _, _, probs = _run_planes(image, axes, in_range, weights, device, tile_size, progress, op,
                                         precision=precision)
    probabilities = layout.maps(np.stack(probs))
    return SegmentResult(labels=probabilities.argmax(-1).astype(np.uint8), probabilities=probabilities,
                         classes=SEGMENT_CLASSES)
