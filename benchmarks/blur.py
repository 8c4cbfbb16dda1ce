"""Blur model benchmark: does it find blur (and only blur), and how close is its kernel?

For each image and condition (the quality benchmark's rows, with their fixed seeds, and
random blurs drawn from the training synthesis, alone, with noise or with JPEG), it prints
how often the blur model and the quality head call the image blurred, how often the model's
kernel is of the right kind, and the PSNR of a Wiener deconvolution (`restora.engine.deblur`)
by the model's kernel against the same by the true kernel.

    PYTHONPATH=core python benchmarks/blur.py --limit 8
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
from restora._names import DEGRADATIONS
from restora.degradations import apply_degradation, blur_kernel, sample_params
from restora.engine.deblur import balance_for, deconvolve
from restora.engine.engine import _Ticker
from restora.metrics import psnr

RANDOM_ROWS = {"random blur": (), "random blur+noise": ("noise",), "random blur+jpeg": ("jpeg",)}


def _tensor(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a.astype(np.float32) / 255).permute(2, 0, 1)[None]


def random_blur(clean: np.ndarray, extra: tuple[str, ...], seed: int) -> tuple[np.ndarray, dict]:
    """``clean`` blurred by a kernel drawn from the training synthesis, then ``extra``."""
    g = torch.Generator().manual_seed(seed)
    params = sample_params("blur", g)
    y = apply_degradation(_tensor(clean), "blur", params, g)
    for name in extra:
        y = apply_degradation(y, name, sample_params(name, g), g)
    return Q.quantise(y[0].permute(1, 2, 0).numpy()), params


def main(argv: list[str] | None = None) -> None:
    args, engine, images = Q.part_benchmark_setup(__doc__, "blur model", argv)
    paths = [path for path, _ in images]
    stats: dict[str, dict[str, list]] = {}
    for path, clean in images:
        cases = [("clean", clean, None)]
        for row in Q.ROWS:
            if row.cutmix is None:
                degraded, _ = Q.synthesise(row, clean, Q.image_seed(0, row.name, path.name))
                blurs = [prm for name, prm in row.steps if name == "blur"]
                cases.append((row.name, degraded, blurs[-1] if blurs else None))
        for name, extra in RANDOM_ROWS.items():
            degraded, params = random_blur(clean, extra, zlib.crc32(f"{name}/{path.name}".encode()))
            cases.append((name, degraded, params))
        ref = _tensor(clean)
        for name, degraded, params in cases:
            x = _tensor(degraded)
            kernel, _ = engine.blur_estimate(x)
            head = float(engine._pass(x, False, _Ticker(None, 0))["degradation_probs"][0, DEGRADATIONS.index("blur")])
            s = stats.setdefault(name, {k: [] for k in ("model", "head", "kind", "input", "est", "true")})
            s["model"].append(kernel is not None)
            s["head"].append(head >= 0.5)
            if params is not None:
                s["kind"].append(kernel is not None and kernel["kind"] == params["kind"])
                s["input"].append(float(psnr(x, ref)[0]))
                if kernel is not None:
                    est = deconvolve(x, blur_kernel(kernel), balance_for(kernel["kind"], x))
                else:
                    est = x
                s["est"].append(float(psnr(est, ref)[0]))
                true = deconvolve(x, blur_kernel(params), balance_for(params["kind"], x))
                s["true"].append(float(psnr(true, ref)[0]))
        print(f"  {path.name} done", file=sys.stderr, flush=True)
    f = lambda v, fmt: format(float(np.mean(v)), fmt) if v else "-"
    rows = [[name, str(len(s["model"])), f(s["model"], ".2f"), f(s["head"], ".2f"), f(s["kind"], ".2f"),
             f(s["input"], ".2f"), f(s["est"], ".2f"), f(s["true"], ".2f")] for name, s in stats.items()]
    print(f"_Blur model benchmark: {len(paths)} images from {args.data}, weights {args.weights}; "
          "'found' is the share called blurred; deconvolution without the network's rounds_\n")
    print(format_rows(["condition", "n", "found (blur model)", "found (quality head)", "right kind",
                       "input PSNR", "deconv. (its kernel)", "deconv. (true kernel)"], rows, args.markdown))


if __name__ == "__main__":
    main()
