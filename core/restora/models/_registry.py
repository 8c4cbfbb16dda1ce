"""The registry of model architectures (spandrel-style): a name, a constructor from a config
dict, and detection from a safetensors file's metadata."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Callable

from torch import nn

from .._checks import WeightsError
from .restoranet import RestoraNet, RestoraNetConfig


@dataclass(frozen=True)
class Architecture:
    name: str
    build: Callable[[dict], nn.Module]
    description: str


ARCHITECTURES: dict[str, Architecture] = {
    "restoranet-v0": Architecture(
        "restoranet-v0",
        lambda cfg: RestoraNet(RestoraNetConfig.from_dict(cfg)),
        "U-Net with shared encoder; restoration + uncertainty, quality and segmentation heads",
    ),
}


def build_model(metadata: dict[str, str], source: str = "weights") -> nn.Module:
    """Build the architecture named in safetensors ``metadata`` ("architecture", "config")."""
    name = metadata.get("architecture")
    if name not in ARCHITECTURES:
        raise WeightsError(
            f"{source}: unknown architecture {name!r} in the file's metadata; "
            f"known: {', '.join(ARCHITECTURES)}"
        )
    try:
        config = json.loads(metadata.get("config", "{}"))
    except json.JSONDecodeError as e:
        raise WeightsError(f"{source}: unreadable model config in metadata ({e})") from None
    return ARCHITECTURES[name].build(config)


def model_metadata(name: str, model: nn.Module, **extra: str) -> dict[str, str]:
    """The metadata written beside a model's tensors so that `build_model` can rebuild it."""
    if name not in ARCHITECTURES:
        raise WeightsError(f"unknown architecture {name!r}; known: {', '.join(ARCHITECTURES)}")
    return {"architecture": name, "config": json.dumps(model.config.to_dict()), **extra}
