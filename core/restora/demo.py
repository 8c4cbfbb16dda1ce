"""The demo: restore the bundled degraded sample, print what was found, write the results.

The sample is NASA's public-domain portrait of astronaut Eileen Collins (as shipped by
scikit-image, ``skimage.data.astronaut``), cropped to 384x384; ``sample_degraded.png`` is it
with Gaussian noise of sigma 25/255 (seed 0), made by `make_sample`.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parent / "data"
SAMPLE_CLEAN = DATA / "sample_clean.png"
SAMPLE_DEGRADED = DATA / "sample_degraded.png"
OUTPUTS = ("restored.png", "before_after.png", "degradations.png")


def make_sample(clean: np.ndarray, sigma: float = 25 / 255, seed: int = 0) -> np.ndarray:
    """The degraded sample: ``clean`` (uint8 RGB) plus Gaussian noise, rounded to uint8."""
    rng = np.random.default_rng(seed)
    noisy = clean / 255 + rng.normal(0, sigma, clean.shape)
    return np.clip(np.rint(noisy * 255), 0, 255).astype(np.uint8)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two uint8 images."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255**2 / mse))


def side_by_side(before: np.ndarray, after: np.ndarray, labels: tuple[str, str]) -> np.ndarray:
    """Two uint8 RGB images next to each other, each captioned."""
    from PIL import Image, ImageDraw

    h, w = before.shape[:2]
    canvas = Image.new("RGB", (2 * w + 8, h + 22), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for i, (img, label) in enumerate(zip((before, after), labels)):
        canvas.paste(Image.fromarray(img), (i * (w + 8), 22))
        draw.text((i * (w + 8) + 4, 5), label, fill=(0, 0, 0))
    return np.asarray(canvas)


def run_demo(outdir: Path, overwrite: bool = False, device: str = "auto") -> int:
    from . import assess, restore, segment
    from .io import read_image, write_image
    from ._checks import RestoraError
    from .palette import colourize, with_legend

    # refuse before any work, so that no output is half-written
    if outdir.exists() and not outdir.is_dir():
        raise RestoraError(f"{outdir} is not a folder; -o takes an output folder")
    existing = [outdir / n for n in OUTPUTS if (outdir / n).exists()]
    if existing and not overwrite:
        raise RestoraError(f"{existing[0]} exists; pass --overwrite to replace it")
    degraded, _ = read_image(SAMPLE_DEGRADED)
    clean, _ = read_image(SAMPLE_CLEAN)
    outdir.mkdir(parents=True, exist_ok=True)
    print(f"Restora demo: {SAMPLE_DEGRADED.name} ({degraded.shape[1]}x{degraded.shape[0]}, {degraded.dtype})")
    t0 = time.perf_counter()
    q = assess(degraded, device)
    r = restore(degraded, device=device)
    s = segment(degraded, device)
    seconds = time.perf_counter() - t0
    found = ", ".join(f"{k} ({v:.2f})" for k, v in q.degradations.items() if v >= 0.5) or "none"
    print(f"  degradations found: {found}")
    print(f"  quality (no reference): {r.quality_before:.3f} -> {r.quality_after:.3f}")
    print(f"  iterations: {r.iterations} (quality per round: {', '.join(f'{h:.3f}' for h in r.history)})")
    if r.refined:
        print(f"  second stage: Wiener refinement of the noise, assessed {r.quality_after:.3f}")
    print(f"  PSNR against the clean original: {psnr(degraded, clean):.2f} dB -> {psnr(r.image, clean):.2f} dB")
    print(f"  time: {r.seconds:.2f} s to restore, {seconds:.2f} s for assess + restore + segment")
    written = [
        write_image(outdir / OUTPUTS[0], r.image, overwrite=overwrite),
        write_image(outdir / OUTPUTS[1],
                    side_by_side(degraded, r.image, (f"input  {psnr(degraded, clean):.1f} dB, quality {r.quality_before:.2f}",
                                                     f"Restora  {psnr(r.image, clean):.1f} dB, quality {r.quality_after:.2f}")),
                    overwrite=overwrite),
        write_image(outdir / OUTPUTS[2], with_legend(colourize(s.labels)), overwrite=overwrite),
    ]
    for path in written:
        print(f"  wrote {path}")
    return 0


if __name__ == "__main__":  # regenerate the bundled sample from scikit-image's copy
    from skimage import data

    from .io import write_image

    crop = data.astronaut()[16:400, 64:448]
    write_image(SAMPLE_CLEAN, crop, overwrite=True)
    write_image(SAMPLE_DEGRADED, make_sample(crop), overwrite=True)
