"""Restora: blind all-in-one image restoration, quality assessment and degradation segmentation.

>>> import restora
>>> r = restora.restore(image)          # doctest: +SKIP
>>> q = restora.assess(image)           # doctest: +SKIP
>>> s = restora.segment(image)          # doctest: +SKIP

Importing ``restora`` is light: torch loads on first use of an operation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._checks import ImageError, ImageFileError, RestoraError, WeightsError
from ._names import DEGRADATIONS, SEGMENT_CLASSES

__version__ = "0.1.0"

_LAZY = {
    "restore": "restora.engine.api",
    "assess": "restora.engine.api",
    "segment": "restora.engine.api",
    "Engine": "restora.engine.engine",
    "read_image": "restora.io",
    "write_image": "restora.io",
}

if TYPE_CHECKING:  # pragma: no cover
    from .engine.api import assess, restore, segment
    from .engine.engine import Engine
    from .io import read_image, write_image


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'restora' has no attribute {name!r}")


__all__ = [
    "DEGRADATIONS", "SEGMENT_CLASSES", "Engine", "ImageError", "ImageFileError", "RestoraError", "WeightsError",
    "assess", "read_image", "restore", "segment", "write_image", "__version__",
]
