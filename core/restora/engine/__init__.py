"""The engine: the only API the frontends call."""

from .api import assess, restore, segment
from .device import available_devices, resolve_device
from .engine import PRECISIONS, Engine, TensorRestoreResult
from .results import AssessResult, RestoreResult, SegmentResult
from .weights import available_weights, cache_dir, clear_cache, load_model, resolve_weights

__all__ = [
    "PRECISIONS", "AssessResult", "Engine", "RestoreResult", "SegmentResult", "TensorRestoreResult", "assess",
    "available_devices", "available_weights", "cache_dir", "clear_cache", "load_model", "resolve_device",
    "resolve_weights", "restore", "segment",
]
