"""The low-light model's inverse: a gain.

Low light (`restora.degradations.low_light`) scales linear light by the exposure ``e`` under a
tone curve ``v ** (1 / gamma)``, so in display space it scales the image by ``e ** (1 / gamma)``
before the shot and read noise; its inverse is the gain ``e ** (-1 / gamma)``, which the
network's low-light model predicts per pixel (as a log, 0 where there is no low light). The
noise is brightened with the image; the rounds that follow remove it.

Tensor functions on (B, C, H, W) floats in [0, 1]; differentiable.
"""

from __future__ import annotations

import torch

__all__ = ["brighten"]


def brighten(x: torch.Tensor, log_gain: torch.Tensor) -> torch.Tensor:
    """Undo under-exposure by the predicted gain.

    Parameters
    ----------
    x : torch.Tensor
        Under-exposed images (B, C, H, W) in [0, 1].
    log_gain : torch.Tensor
        Predicted log gain (B, 1, H, W), at least 0; 0 where there is no low light.

    Returns
    -------
    torch.Tensor
        ``x * exp(log_gain)``, clipped to [0, 1].
    """
    if x.ndim != 4 or log_gain.shape != (x.shape[0], 1, *x.shape[-2:]):
        raise ValueError(f"log_gain must be (B, 1, H, W) for images {tuple(x.shape)}, got {tuple(log_gain.shape)}")
    return (x * torch.exp(log_gain.to(x))).clamp(0, 1)
