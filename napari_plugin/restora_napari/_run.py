"""One operation request and its call into the core engine; no Qt here, so it runs in any thread.

The widget builds a `Request` on the GUI thread, `run` executes it in a worker thread, and
the result comes back to the GUI thread, which turns it into layers.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ._axes import LayerAxes

OPERATIONS = ("restore", "assess", "segment")
RANGES = ("auto", "dtype", "image")


class Cancelled(Exception):
    """Raised from the progress callback when the user pressed Cancel."""

    def __init__(self, done: int, total: int) -> None:
        super().__init__(f"cancelled after {done} of {total} steps")
        self.done, self.total = done, total


@dataclass
class Request:
    """Everything one run needs, captured on the GUI thread when Run is pressed.

    ``data`` is the layer's array itself (never written to): the core reads it and returns new
    arrays.
    """

    operation: str
    data: np.ndarray
    axes: LayerAxes
    degradations: str | tuple[str, ...] = "auto"
    max_iterations: int = 3
    target_quality: float | None = None
    refine: bool = True
    value_range: str = "auto"
    tile_size: int = 512
    device: str = "auto"
    cancel: threading.Event = field(default_factory=threading.Event)

    def in_range(self) -> str:
        """The core's ``in_range``: "auto" reads uint16 by its own min..max (microscopy cameras
        rarely fill 0..65535), and floats outside [0, 1] (counts, normalised data) by theirs;
        everything else by its dtype's range."""
        if self.value_range != "auto":
            return self.value_range
        if self.data.dtype == np.uint16:
            return "image"
        if self.data.dtype.kind == "f" and self.data.size and (self.data.min() < 0 or self.data.max() > 1):
            return "image"
        return "dtype"

    def settings(self) -> dict:
        """The options as plain values, for the result layer's metadata."""
        return {
            "operation": self.operation, "axes": self.axes.names, "degradations": self.degradations,
            "max_iterations": self.max_iterations, "target_quality": self.target_quality, "refine": self.refine,
            "in_range": self.in_range(), "tile_size": self.tile_size, "device": self.device,
        }


def run(request: Request, progress: Callable[[int, int], None] | None = None):
    """Run ``request`` through the core engine and return its result object.

    ``progress(done, total)`` is called between tiles; pressing Cancel (``request.cancel``)
    makes the next call raise `Cancelled`, which stops the engine at the next tile or plane.
    """
    import restora  # torch loads here, in the worker thread, on first use

    def tick(done: int, total: int) -> None:
        if request.cancel.is_set():
            raise Cancelled(done, total)
        if progress is not None:
            progress(done, total)

    tick(0, 1)  # a Cancel pressed before the thread started
    data = np.asarray(request.data)  # dask or zarr layers are read here, off the GUI thread
    common = dict(device=request.device, axes=request.axes.core, progress=tick,
                  in_range=request.in_range(), tile_size=request.tile_size)
    if request.operation == "restore":
        return restora.restore(data, degradations=request.degradations,
                               max_iterations=request.max_iterations,
                               target_quality=request.target_quality, refine=request.refine, **common)
    if request.operation == "assess":
        return restora.assess(data, **common)
    if request.operation == "segment":
        return restora.segment(data, **common)
    raise ValueError(f"unknown operation {request.operation!r}; choose from {', '.join(OPERATIONS)}")
