"""Rain model benchmark: does it find rain (and only where there is rain), and how much does
taking its layer out gain?

For each image and condition (the quality benchmark's rows with their fixed seeds, and rain
streaks of the synthesis at light, medium and heavy settings, two layers at once, in a box
only, then followed by noise, or after haze), it prints how often the image is called rainy
(the share of it on the model's streaks at least the engine's ``RAINY``; on the rows without
rain, a false alarm), the mean share on streaks, and the PSNR against the image before the
rain of the input and of its rain layer taken out (what the engine applies before its
rounds: the layer in the rain region its streaks make, `restora.engine.derain`), of the whole
layer taken out, of the layer times the streak probability, and of the true layer taken out
(the inverse's ceiling).

    PYTHONPATH=core python benchmarks/rain.py --limit 8
"""

from __future__ import annotations

import sys
import zlib
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
for _p in (HERE, HERE.parent / "core"):
    if str(_p) not in sys.path:
        sys.path.append(str(_p))

import quality as Q
from _tables import format_rows
from restora.degradations import apply_degradation, random_box, rain_layer, sample_params, screen
from restora.engine.derain import derain, rain_region
from restora.engine.engine import RAINY
from restora.metrics import psnr
from restora.models.rain import rain_share

# (condition, rain parameters per layer, box only, noise sigma after /255, degradation before)
LIGHT = {"density": 0.004, "length": 12.0, "angle": 95.0, "intensity": 0.07}
MEDIUM = {"density": 0.01, "length": 18.0, "angle": 75.0, "intensity": 0.1}
HEAVY = {"density": 0.02, "length": 24.0, "angle": 105.0, "intensity": 0.14}
CONDITIONS = (
    ("rain light", (LIGHT,), False, 0, None),
    ("rain medium", (MEDIUM,), False, 0, None),
    ("rain heavy", (HEAVY,), False, 0, None),
    ("rain two layers", (MEDIUM, dict(LIGHT, angle=65.0)), False, 0, None),
    ("rain in a box", (MEDIUM,), True, 0, None),
    ("rain + noise 10", (MEDIUM,), False, 10, None),
    ("haze + rain", (MEDIUM,), False, 0, "haze"),
)


def _tensor(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a.astype(np.float32) / 255).permute(2, 0, 1)[None]


def rained(clean: np.ndarray, layers, box: bool, sigma: float, before: str | None, seed: int):
    """(rainy uint8, the image before the rain uint8, the true layer (1, 1, H, W))."""
    g = torch.Generator().manual_seed(seed)
    x = _tensor(clean)
    if before is not None:
        x = apply_degradation(x, before, sample_params(before, g), g)
    x = _tensor(Q.quantise(x[0].permute(1, 2, 0).numpy()))
    h, w = x.shape[-2:]
    r = torch.zeros(1, 1, h, w)
    for p in layers:
        r = 1 - (1 - r) * (1 - rain_layer((1, h, w), generator=g, **p))
    if box:
        top, left, bh, bw = random_box(h, w, g)
        mask = torch.zeros_like(r)
        mask[..., top : top + bh, left : left + bw] = 1
        r = r * mask
    y = screen(x, r)
    if sigma:
        y = y + sigma / 255 * torch.randn(y.shape, generator=g)
    return Q.quantise(y.clamp(0, 1)[0].permute(1, 2, 0).numpy()), x, r


def cases(path: Path, clean: np.ndarray):
    """(condition, degraded uint8, reference before the rain or None, true layer or None)."""
    for row in Q.ROWS:
        degraded, _ = Q.synthesise(row, clean, Q.image_seed(0, row.name, path.name))
        yield row.name, degraded, (_tensor(clean) if row.name == "rain" else None), None
    yield "clean", clean, None, None
    for name, layers, box, sigma, before in CONDITIONS:
        y, ref, r = rained(clean, layers, box, sigma, before, zlib.crc32(f"{name}/{path.name}".encode()))
        yield name, y, ref, r


def main(argv: list[str] | None = None) -> None:
    args, engine, images = Q.part_benchmark_setup(__doc__, "rain model", argv)
    stats: dict[str, dict[str, list]] = {}
    for path, clean in images:
        for name, degraded, ref, true in cases(path, clean):
            x = _tensor(degraded)
            layer, share, streaks = engine.rain_estimate(x)
            s = stats.setdefault(name, {k: [] for k in ("found", "share", "input", "out", "whole", "soft", "ceiling")})
            s["found"].append(layer is not None)
            s["share"].append(share)
            if ref is None:
                continue
            s["input"].append(float(psnr(x, ref)[0]))
            # what the engine does: the layer out in its rain region where the image is called
            # rainy, else nothing; then the whole layer out, and the layer times the streak
            # probability, on the same images
            ways = {"out": lambda: layer * rain_region(streaks), "whole": lambda: layer, "soft": lambda: layer * streaks}
            for k, way in ways.items():
                s[k].append(float(psnr(derain(x, way()), ref)[0]) if layer is not None else s["input"][-1])
            if true is not None:
                s["ceiling"].append(float(psnr(derain(x, true), ref)[0]))
        print(f"  {path.name} done", file=sys.stderr, flush=True)
    f = lambda v, fmt: format(float(np.mean(v)), fmt) if v else "-"
    rows = [[name, str(len(s["found"])), f(s["found"], ".2f"), f(s["share"], ".3f"), f(s["input"], ".2f"),
             f(s["out"], ".2f"), (f"{np.mean(s['out']) - np.mean(s['input']):+.2f}" if s["input"] else "-"),
             f(s["whole"], ".2f"), f(s["soft"], ".2f"), f(s["ceiling"], ".2f")] for name, s in stats.items()]
    print(f"_Rain model benchmark: {len(images)} images from {args.data}, weights {args.weights} "
          f"({engine.precision}); 'found' is the share called rainy (surely on streaks: at least {RAINY:.1%} of "
          "it); PSNR against the image before the rain, without the network's rounds; 'true layer' takes "
          "the synthesis's own layer out (8-bit rounding and noise keep it below infinity)_\n")
    print(format_rows(["condition", "n", "found", "streak share", "input PSNR", "layer out (engine)", "gain",
                       "whole layer", "x streak prob", "true layer"],
                      rows, args.markdown))


if __name__ == "__main__":
    main()
