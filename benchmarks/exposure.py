"""Exposure model benchmark: does it find whole-image under-exposure (and only that), and how
close is its gain?

For each image and condition (the quality benchmark's rows, CutMix ones included, with their
fixed seeds, and random low light drawn from the training synthesis: noise-free, noisy, or
followed by JPEG), it prints how often the exposure model and the quality head call the image
under-exposed (for the CutMix rows, a global gain is the wrong answer), the exposure model's
median error in gain, and the PSNR of the input brightened by the model's gain against the
same by the true gain (without the network's rounds, which remove the brightened noise).

    PYTHONPATH=core python benchmarks/exposure.py --limit 8
"""

from __future__ import annotations

import math
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
from restora._names import DEGRADATIONS
from restora.degradations import apply_degradation, sample_params
from restora.engine.engine import _Ticker
from restora.engine.lowlight import brighten
from restora.metrics import psnr

# the random rows' low light: (lowest, highest) log10 gain of its shot noise, then what follows
RANDOM_ROWS = {"random dark, noise-free": ((-6.0, -5.0), ()), "random dark, noisy": ((-3.5, -2.5), ()),
               "random dark + JPEG": ((-6.0, -2.5), ("jpeg",))}


def _tensor(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a.astype(np.float32) / 255).permute(2, 0, 1)[None]


def random_dark(clean: np.ndarray, noise: tuple[float, float], extra: tuple[str, ...], seed: int):
    """``clean`` under-exposed as the training synthesis draws it, its shot noise's gain drawn
    from 10 ** ``noise``, then ``extra``; the uint8 result and the true display-space gain."""
    g = torch.Generator().manual_seed(seed)
    params = sample_params("low_light", g)
    params["gain"] = 10 ** (noise[0] + (noise[1] - noise[0]) * float(torch.rand((), generator=g)))
    y = apply_degradation(_tensor(clean), "low_light", params, g)
    for name in extra:
        y = apply_degradation(y, name, sample_params(name, g), g)
    return Q.quantise(y[0].permute(1, 2, 0).numpy()), params["exposure"] ** (-1 / params["gamma"])


def _brightened(x: torch.Tensor, gain: float) -> torch.Tensor:
    return brighten(x, torch.full_like(x[:, :1], math.log(gain)))


def main(argv: list[str] | None = None) -> None:
    args, engine, images = Q.part_benchmark_setup(__doc__, "exposure model", argv)
    paths = [path for path, _ in images]
    stats: dict[str, dict[str, list]] = {}
    for path, clean in images:
        cases = [("clean", clean, None)]
        for row in Q.ROWS:
            degraded, _ = Q.synthesise(row, clean, Q.image_seed(0, row.name, path.name))
            dark = [prm for name, prm in row.steps if name == "low_light"]
            cases.append((row.name, degraded, dark[-1]["exposure"] ** (-1 / dark[-1]["gamma"]) if dark else None))
        for name, (noise, extra) in RANDOM_ROWS.items():
            cases.append((name, *random_dark(clean, noise, extra, zlib.crc32(f"{name}/{path.name}".encode()))))
        ref = _tensor(clean)
        for name, degraded, true_gain in cases:
            x = _tensor(degraded)
            gain, _ = engine.exposure_estimate(x)
            head = engine._pass(x, False, _Ticker(None, 0))["degradation_probs"][0, DEGRADATIONS.index("low_light")]
            s = stats.setdefault(name, {k: [] for k in ("model", "head", "error", "input", "est", "true")})
            s["model"].append(gain is not None)
            s["head"].append(float(head) >= 0.5)
            if true_gain is not None:
                s["error"].append(abs(math.log((gain or 1.0) / true_gain)))
                s["input"].append(float(psnr(x, ref)[0]))
                s["est"].append(float(psnr(_brightened(x, gain or 1.0), ref)[0]))
                s["true"].append(float(psnr(_brightened(x, true_gain), ref)[0]))
        print(f"  {path.name} done", file=sys.stderr, flush=True)
    f = lambda v, fmt: format(float(np.mean(v)), fmt) if v else "-"
    med = lambda v: f"{100 * (math.exp(float(np.median(v))) - 1):.1f}%" if v else "-"
    rows = [[name, str(len(s["model"])), f(s["model"], ".2f"), f(s["head"], ".2f"), med(s["error"]),
             f(s["input"], ".2f"), f(s["est"], ".2f"), f(s["true"], ".2f")] for name, s in stats.items()]
    print(f"_Exposure model benchmark: {len(paths)} images from {args.data}, weights {args.weights}; "
          "'found' is the share called under-exposed as a whole (the CutMix rows' low light is partial); "
          "gain without the network's rounds_\n")
    print(format_rows(["condition", "n", "found (exposure model)", "found (quality head)", "median gain error",
                       "input PSNR", "gain (its)", "gain (true)"], rows, args.markdown))


if __name__ == "__main__":
    main()
