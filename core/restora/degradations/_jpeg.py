"""JPEG compression through Pillow's encoder, the one most images really went through."""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image


def jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    """Encode each image of (B, 3, H, W) ``x`` in [0, 1] as JPEG at ``quality`` and decode it."""
    out = []
    for img in x.detach().clamp(0, 1).cpu():
        arr = (img.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="JPEG", quality=int(quality))
        dec = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"), dtype=np.float32) / 255
        out.append(torch.from_numpy(dec).permute(2, 0, 1))
    return torch.stack(out).to(x)
