"""What each Restora node does, as plain functions of tensors (no ComfyUI import).

Every function takes a loaded `restora.Engine`, ComfyUI's [B, H, W, C] IMAGE tensors and an
optional ``progress(done, total)`` callback (called between tiles; raising from it cancels),
and returns a small dataclass with ComfyUI-layout tensors and a report for people. The node
module only adds ComfyUI's device, progress bar, cancel check and schema around these.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch

from restora import DEGRADATIONS, SEGMENT_CLASSES, RestoraError
from restora._checks import check_degradations
from restora.palette import SEGMENT_COLOURS, colourize

from .layout import check_image, image_from_engine, image_to_engine, mask_from_engine, rgb_from_uint8

Progress = Optional[Callable[[int, int], None]]

MODES = ("auto", "chosen")
"""Restore modes: "auto" removes whatever is found; "chosen" only the named degradations."""


def parse_degradations(mode: str, degradations: str = "") -> tuple[str, ...] | None:
    """The engine's ``degradations`` argument for a node's mode and comma-separated names.

    Returns None for "auto"; raises `RestoraError` naming the problem for a bad mode or name.
    """
    if mode == "auto":
        return None
    if mode != "chosen":
        raise RestoraError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    if not degradations.strip():
        raise RestoraError(f"mode 'chosen' needs degradation names, e.g. 'noise,jpeg'; "
                           f"choose from {', '.join(DEGRADATIONS)}")
    return check_degradations(degradations)


def _found(probs: torch.Tensor, threshold: float = 0.5) -> str:
    """'noise 0.98, jpeg 0.61' for the degradations at or above ``threshold``, most likely first."""
    pairs = sorted(zip(DEGRADATIONS, probs.tolist()), key=lambda kv: -kv[1])
    found = [f"{name} {p:.2f}" for name, p in pairs if p >= threshold]
    return ", ".join(found) or "none found"


def _label(i: int, n: int) -> str:
    return f"image {i + 1}/{n}: " if n > 1 else ""


# -- restore ---------------------------------------------------------------------------------
@dataclass
class RestoreOutput:
    image: torch.Tensor  # [B, H, W, C] like the input, alpha untouched
    uncertainty: torch.Tensor  # [B, H, W] MASK: expected absolute error of the result
    quality_before: list[float]
    quality_after: list[float]
    iterations: list[int]
    report: str
    seconds: float = 0.0


def restore_images(engine, image: torch.Tensor, mode: str = "auto", degradations: str = "",
                   strength: float = 1.0, max_iterations: int = 3, progress: Progress = None,
                   refine: bool = True) -> RestoreOutput:
    """Restore every image of a batch with the restore -> assess loop.

    Parameters
    ----------
    engine : restora.Engine
        The loaded model.
    image : torch.Tensor
        ComfyUI IMAGE [B, H, W, C], C in {1, 3, 4}, float in 0..1.
    mode, degradations : str
        "auto", or "chosen" with comma-separated names (see `parse_degradations`).
    strength : float
        0 returns the input, 1 the full restoration.
    max_iterations : int
        Most restore -> assess rounds; a round is kept only while quality improves.
    progress : callable, optional
        ``progress(done, total)`` between tiles.
    refine : bool
        Run the second stage (a noise-model Wiener filter guided by the rounds) where noise
        was found.
    """
    names = parse_degradations(mode, degradations)
    t0 = time.perf_counter()
    x, alpha = image_to_engine(image)
    r = engine.restore(x, names, int(max_iterations), float(strength), progress=progress, refine=bool(refine))
    seconds = time.perf_counter() - t0
    n = x.shape[0]
    lines = [f"{_label(i, n)}degradations: {_found(r.degradation_probs[i])}; quality "
             f"{float(r.quality_before[i]):.3f} -> {float(r.quality_after[i]):.3f}; iterations {r.iterations[i]}"
             f"{' + JPEG model' if r.dejpegged[i] else ''}{' + rain model' if r.derained[i] else ''}"
             f"{' + refinement' if r.refined[i] else ''}"
             f"{' + deblurring' if r.deblurred[i] else ''}"
             for i in range(n)]
    lines.append(f"Restora {engine.weights.name} on {engine.device} ({engine.precision}): {seconds:.2f} s")
    return RestoreOutput(
        image=image_from_engine(r.image, alpha), uncertainty=mask_from_engine(r.uncertainty),
        quality_before=[float(q) for q in r.quality_before], quality_after=[float(q) for q in r.quality_after],
        iterations=list(r.iterations), report="\n".join(lines), seconds=seconds,
    )


# -- assess ----------------------------------------------------------------------------------
@dataclass
class AssessOutput:
    scores: list[float]  # per image, in [0, 1], higher is better
    degradations: list[dict[str, float]]  # per image: probability of each degradation
    report: str

    @property
    def score(self) -> float:
        """The batch's mean score (a FLOAT output carries one number)."""
        return float(sum(self.scores) / len(self.scores))


def assess_images(engine, image: torch.Tensor, progress: Progress = None) -> AssessOutput:
    """No-reference quality and the degradations present, per image of a batch."""
    x, _ = image_to_engine(image)
    q, d = engine.assess(x, progress)
    n = x.shape[0]
    scores = [float(v) for v in q]
    lines = [f"{_label(i, n)}quality {scores[i]:.3f}; degradations: {_found(d[i])}" for i in range(n)]
    if n > 1:
        lines.append(f"mean quality {sum(scores) / n:.3f}")
    return AssessOutput(
        scores=scores,
        degradations=[{k: round(float(p), 4) for k, p in zip(DEGRADATIONS, d[i])} for i in range(n)],
        report="\n".join(lines),
    )


# -- segment ---------------------------------------------------------------------------------
@dataclass
class SegmentOutput:
    mask: torch.Tensor  # [B, H, W]: probability of the chosen class per pixel
    colour: torch.Tensor  # [B, H, W, 3] IMAGE: the whole map, one colour per class
    labels: torch.Tensor  # [B, H, W] uint8 indices into SEGMENT_CLASSES
    report: str


def segment_images(engine, image: torch.Tensor, degradation: str = "noise", progress: Progress = None) -> SegmentOutput:
    """Per-pixel degradation map: a MASK for one class and a colour picture of them all."""
    if degradation not in SEGMENT_CLASSES:
        raise RestoraError(f"unknown class {degradation!r}; choose from {', '.join(SEGMENT_CLASSES)}")
    x, _ = image_to_engine(image)
    probs = engine.segment(x, progress)  # (B, K, H, W)
    labels = probs.argmax(1).to(torch.uint8)
    n, k = labels.shape[0], len(SEGMENT_CLASSES)
    lines = []
    for i in range(n):
        share = torch.bincount(labels[i].flatten().long(), minlength=k).float() / labels[i].numel()
        parts = [f"{SEGMENT_CLASSES[c]} {100 * float(share[c]):.0f}%" for c in share.argsort(descending=True).tolist()
                 if share[c] > 0]
        lines.append(f"{_label(i, n)}{', '.join(parts)}")
    lines.append("colours: " + ", ".join(f"{c} #{''.join(f'{v:02x}' for v in SEGMENT_COLOURS[c])}" for c in SEGMENT_CLASSES))
    return SegmentOutput(
        mask=mask_from_engine(probs[:, SEGMENT_CLASSES.index(degradation)]),
        colour=rgb_from_uint8(colourize(labels.numpy())),
        labels=labels,
        report="\n".join(lines),
    )


# -- quality gate ----------------------------------------------------------------------------
@dataclass
class GateOutput:
    image: torch.Tensor  # the better image(s)
    score: float  # mean assessed quality of what was passed on
    chosen: list[str]  # "A" or "B" per image (one entry when whole batches were compared)
    scores_a: list[float] = field(default_factory=list)
    scores_b: list[float] = field(default_factory=list)
    report: str = ""


def pick_better(engine, image_a: torch.Tensor, image_b: torch.Tensor, progress: Progress = None) -> GateOutput:
    """Pass on the better of two images by assessed quality (A wins ties).

    Batches of the same shape are compared image by image, so a graph can compare two
    restorers on a whole batch; otherwise the batch with the higher mean quality wins.
    """
    a, b = check_image(image_a, "image_a"), check_image(image_b, "image_b")
    xa, _ = image_to_engine(a)
    xb, _ = image_to_engine(b)
    steps_a = xa.shape[0] * engine.tiles_per_pass(*xa.shape[-2:])
    total = steps_a + xb.shape[0] * engine.tiles_per_pass(*xb.shape[-2:])
    pa = None if progress is None else (lambda done, _: progress(done, total))
    pb = None if progress is None else (lambda done, _: progress(steps_a + done, total))
    qa, qb = engine.assess(xa, pa)[0], engine.assess(xb, pb)[0]
    sa, sb = [float(v) for v in qa], [float(v) for v in qb]
    if a.shape == b.shape:
        take_b = qb > qa
        image = torch.where(take_b[:, None, None, None], b, a)
        chosen = ["B" if t else "A" for t in take_b.tolist()]
        score = float(torch.where(take_b, qb, qa).mean())
        n = len(chosen)
        lines = [f"{_label(i, n)}A {sa[i]:.3f}, B {sb[i]:.3f} -> {chosen[i]}" for i in range(n)]
    else:
        ma, mb = sum(sa) / len(sa), sum(sb) / len(sb)
        chosen = ["B" if mb > ma else "A"]
        image, score = (b, mb) if mb > ma else (a, ma)
        lines = [f"shapes differ ({tuple(a.shape)} vs {tuple(b.shape)}): compared whole batches; "
                 f"mean A {ma:.3f}, B {mb:.3f} -> {chosen[0]}"]
    return GateOutput(image=image.contiguous(), score=score, chosen=chosen, scores_a=sa, scores_b=sb,
                      report="\n".join(lines))
