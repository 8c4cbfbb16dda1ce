"""Model architectures and their registry."""

from ._registry import ARCHITECTURES, Architecture, build_model, model_metadata
from .restoranet import RestoraNet, RestoraNetConfig

__all__ = ["ARCHITECTURES", "Architecture", "RestoraNet", "RestoraNetConfig", "build_model", "model_metadata"]
