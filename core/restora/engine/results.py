"""What the numpy-level operations return."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .._names import SEGMENT_CLASSES


@dataclass
class RestoreResult:
    """Result of `restora.restore`.

    For a stack, the scalar fields summarise every plane (mean quality, mean degradation
    probabilities, most iterations) and ``planes`` holds each plane's own report.
    """

    image: np.ndarray  # same shape and dtype as the input
    quality_before: float  # in [0, 1], higher is better (the quality fusion's, where the weights have one)
    quality_after: float
    degradations: dict[str, float]  # probability that each degradation is present
    iterations: int  # accepted restore -> assess rounds
    history: list[float]  # assessed quality (as quality_before) before the first round and after each round run
    uncertainty: np.ndarray  # float32, the input's shape without channels: expected |error| in [0, 1] units
    seconds: float = 0.0
    planes: list[dict] = field(default_factory=list)
    refined: bool = False  # the second stage (Wiener refinement) was kept, in any plane
    dehazed: bool = False  # the haze model's inverse was kept as a round, in any plane
    brightened: bool = False  # a low-light gain was applied (the exposure model's, or the low-light model's as a round), in any plane
    deblurred: bool = False  # the result was deconvolved by the blur model's kernel, in any plane
    dejpegged: bool = False  # the JPEG model undid the input's JPEG coding first, in any plane
    derained: bool = False  # the rain model's layer was taken out, in any plane

    def report(self) -> str:
        """A one-line summary for people."""
        found = ", ".join(f"{k} {v:.2f}" for k, v in sorted(self.degradations.items(), key=lambda kv: -kv[1]) if v >= 0.5)
        return (f"degradations: {found or 'none found'}; quality {self.quality_before:.3f} -> "
                f"{self.quality_after:.3f}; iterations {self.iterations}{self._physical()}"
                f"{' + refinement' if self.refined else ''}{' + deblurring' if self.deblurred else ''}; "
                f"{self.seconds:.2f} s")

    def _physical(self) -> str:
        """Which physical models' inverses were kept, for the report."""
        models = [m for m, kept in (("JPEG", self.dejpegged), ("rain", self.derained), ("haze", self.dehazed),
                                    ("low-light", self.brightened)) if kept]
        return f" (one by the {' and '.join(models)} model{'s' if len(models) > 1 else ''})" if models else ""


@dataclass
class AssessResult:
    """Result of `restora.assess`: a no-reference quality score and the degradations found."""

    score: float  # in [0, 1], higher is better (mean over planes for a stack)
    degradations: dict[str, float]
    planes: list[dict] = field(default_factory=list)

    def found(self, threshold: float = 0.5) -> list[str]:
        return [k for k, v in self.degradations.items() if v >= threshold]


@dataclass
class SegmentResult:
    """Result of `restora.segment`: which degradation is where."""

    labels: np.ndarray  # uint8, the input's shape without channels; index into ``classes``
    probabilities: np.ndarray  # float32, labels' shape + (len(classes),)
    classes: tuple[str, ...] = SEGMENT_CLASSES
