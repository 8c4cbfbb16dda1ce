"""Device choice: "auto" picks CUDA, then Apple's MPS, then the CPU."""

from __future__ import annotations

import torch

from .._checks import RestoraError


def available_devices() -> list[str]:
    """Every device this machine can run on, best first."""
    devices = [f"cuda:{i}" for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        devices.append("mps")
    return devices + ["cpu"]


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Turn "auto", "cpu", "cuda", "cuda:N", "mps" or a torch.device into an available device."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device(available_devices()[0])
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise RestoraError(f"unknown device {device!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available() or (dev.index or 0) >= torch.cuda.device_count():
            raise RestoraError(f"device {device!r} is not available; available: {', '.join(available_devices())}")
    elif dev.type == "mps":
        if "mps" not in available_devices():
            raise RestoraError(f"device 'mps' is not available; available: {', '.join(available_devices())}")
    elif dev.type != "cpu":
        raise RestoraError(f"unsupported device {device!r}; use auto, cpu, cuda, cuda:N or mps")
    return dev
