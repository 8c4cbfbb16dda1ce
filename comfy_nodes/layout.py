"""ComfyUI's tensor layouts and the engine's, and the one conversion between them.

ComfyUI passes an IMAGE as a float32 tensor [B, H, W, C] in 0..1 (C is 3, sometimes 1 or 4)
and a MASK as [B, H, W]. The engine works on (B, C, H, W) float tensors with C of 1 or 3.
Nothing here imports ComfyUI, so it is tested without it.
"""

from __future__ import annotations

import torch

from restora import ImageError
from restora._checks import MIN_SIZE


def check_image(image: object, name: str = "image") -> torch.Tensor:
    """Check a ComfyUI IMAGE and return it as a float32 CPU tensor; raise `ImageError`.

    Parameters
    ----------
    image : torch.Tensor
        [B, H, W, C] with C in {1, 3, 4}; values in 0..1 (slight overshoot is clipped later).
    name : str
        The input's name, used in error messages.
    """
    if not isinstance(image, torch.Tensor):
        raise ImageError(f"{name}: expected an IMAGE tensor, got {type(image).__name__}")
    if image.ndim != 4:
        raise ImageError(f"{name}: expected an IMAGE of shape [B, H, W, C], got shape {tuple(image.shape)}")
    b, h, w, c = image.shape
    if c not in (1, 3, 4):
        raise ImageError(f"{name}: IMAGE has {c} channels; expected 1, 3 or 4 (grey, RGB, RGBA)")
    if b == 0:
        raise ImageError(f"{name}: the IMAGE batch is empty")
    if h < MIN_SIZE or w < MIN_SIZE:
        raise ImageError(f"{name}: image is {w}x{h} pixels; at least {MIN_SIZE}x{MIN_SIZE} is needed")
    if not image.is_floating_point():
        raise ImageError(f"{name}: IMAGE has dtype {image.dtype}; expected float32 in 0..1")
    image = image.detach().to("cpu", torch.float32)
    if not torch.isfinite(image).all():
        raise ImageError(f"{name}: IMAGE contains NaN or infinite values")
    return image


def image_to_engine(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """[B, H, W, C] IMAGE to the engine's (B, C', H, W), C' in {1, 3}, and the alpha plane.

    Returns
    -------
    x : torch.Tensor
        (B, 1 or 3, H, W) float32, contiguous.
    alpha : torch.Tensor or None
        [B, H, W, 1] for a 4-channel IMAGE (it is passed through untouched), else None.
    """
    image = check_image(image)
    alpha = image[..., 3:4].clone() if image.shape[-1] == 4 else None
    colour = image[..., :3] if image.shape[-1] == 4 else image
    return colour.permute(0, 3, 1, 2).contiguous(), alpha


def image_from_engine(x: torch.Tensor, alpha: torch.Tensor | None = None) -> torch.Tensor:
    """The engine's (B, C, H, W) back to a [B, H, W, C] IMAGE in 0..1, alpha appended."""
    out = x.detach().to("cpu", torch.float32).clamp(0, 1).permute(0, 2, 3, 1)
    if alpha is not None:
        out = torch.cat([out, alpha.to(out.dtype)], dim=-1)
    return out.contiguous()


def mask_from_engine(m: torch.Tensor) -> torch.Tensor:
    """A (B, 1, H, W) or (B, H, W) map to a [B, H, W] float32 MASK in 0..1."""
    if m.ndim == 4:
        if m.shape[1] != 1:
            raise ImageError(f"expected a (B, 1, H, W) map, got shape {tuple(m.shape)}")
        m = m[:, 0]
    if m.ndim != 3:
        raise ImageError(f"expected a (B, H, W) map, got shape {tuple(m.shape)}")
    return m.detach().to("cpu", torch.float32).clamp(0, 1).contiguous()


def rgb_from_uint8(rgb) -> torch.Tensor:
    """A uint8 numpy [B, H, W, 3] picture (e.g. the colour map) to a float32 IMAGE."""
    return torch.from_numpy(rgb).to(torch.float32).div_(255.0).contiguous()
