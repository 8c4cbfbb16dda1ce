"""Which axes a napari image layer has, and how the core engine should walk them.

napari layers carry no axis names that Restora can rely on (the default labels are
"-3", "-2", "-1"), so the rules are explicit:

- the last two layer dimensions are Y and X; an RGB(A) layer adds a colour axis after them;
- up to two leading dimensions are allowed. Each is named from its axis label where the
  label says what it is ("t"/"time" -> T, "z"/"depth" -> Z, "c"/"channel" -> C), else by
  position: one leading axis is Z, two are T then Z;
- every leading axis is a stack of independent grey (or RGB) planes: a channel axis of a
  grey layer is never mistaken for colour, even when it has 3 channels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from restora import ImageError

_LABEL_LETTERS = {
    "t": "T", "time": "T", "frame": "T", "frames": "T",
    "z": "Z", "depth": "Z", "slice": "Z", "slices": "Z", "plane": "Z", "planes": "Z",
    "c": "C", "ch": "C", "channel": "C", "channels": "C", "wavelength": "C",
}
_DEFAULT_LEADING = {0: "", 1: "Z", 2: "TZ"}
# Leading axes as the core sees them: plain stacks ("C" of size 1, 3 or 4 would mean colour).
_CORE_LEADING = {0: "", 1: "Z", 2: "TZ"}
_SUPPORTED = "YX, ZYX, TYX, CYX, TZYX, TCYX or CZYX (each optionally RGB)"


@dataclass(frozen=True)
class LayerAxes:
    """How a layer's data maps to planes.

    Attributes
    ----------
    names : str
        What each data axis is, e.g. "ZYX", "TYXC" (C last means RGB colour).
    core : str
        The ``axes`` argument for the core engine (leading axes as plain stacks).
    planes : int
        Number of 2-D planes the engine runs, one after another.
    """

    names: str
    core: str
    planes: int

    def describe(self) -> str:
        """A short text for the widget, e.g. "ZYX, 12 planes"."""
        return f"{self.names}, {self.planes} plane{'s' if self.planes != 1 else ''}"


def _leading_names(labels: tuple[str, ...]) -> str:
    letters = [_LABEL_LETTERS.get(str(label).strip().lower()) for label in labels]
    if all(letters) and len(set(letters)) == len(letters):
        return "".join(letters)
    return _DEFAULT_LEADING[len(labels)]


def layer_axes(shape: tuple[int, ...], rgb: bool, axis_labels: tuple[str, ...] | None = None) -> LayerAxes:
    """Name the axes of layer data of ``shape``.

    Parameters
    ----------
    shape : tuple of int
        The layer's data shape (for an RGB layer, including the colour axis).
    rgb : bool
        Whether the last axis is RGB(A) colour (napari's ``layer.rgb``).
    axis_labels : tuple of str, optional
        napari's ``layer.axis_labels`` (one per non-colour dimension).

    Returns
    -------
    LayerAxes

    Raises
    ------
    restora.ImageError
        For data that is not 2-D to 4-D (plus colour), naming the shape.
    """
    spatial = len(shape) - (1 if rgb else 0)
    if rgb and shape[-1] not in (3, 4):
        raise ImageError(f"RGB layer has {shape[-1]} colour channels; expected 3 or 4")
    if spatial < 2 or spatial > 4:
        raise ImageError(
            f"layer data has {spatial} dimension{'s' if spatial != 1 else ''} {tuple(shape)}; Restora runs "
            f"layers with axes {_SUPPORTED}. Split or slice the layer first (Layers > Split Stack)"
        )
    if any(int(s) == 0 for s in shape):
        raise ImageError(f"layer is empty (shape {tuple(shape)})")
    lead = spatial - 2
    labels = tuple(axis_labels or ())[:lead] if axis_labels is not None and len(axis_labels) == spatial else ()
    names = (_leading_names(labels) if len(labels) == lead else _DEFAULT_LEADING[lead]) + "YX"
    core = _CORE_LEADING[lead] + "YX"
    if rgb:
        names, core = names + "C", core + "C"
    planes = int(np.prod(shape[:lead])) if lead else 1
    return LayerAxes(names, core, planes)
