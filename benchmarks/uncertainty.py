"""Uncertainty benchmark: does the network's uncertainty map know where its result is wrong,
and could it guide the second stage?

For each noisy image (Gaussian sigma 15/25/50 on colour photographs, real W2S microscopy
pairs held out from training) the engine restores without the second stage; then, on the same
pilot, the table compares the second stage as the engine runs it with versions weighted per
pixel by the uncertainty map, and with two oracles that know the true local error of the
pilot and of the Wiener result (an upper bound on any guidance by an error map).

    PYTHONPATH=core python benchmarks/uncertainty.py --limit 6 --crop 256

Columns: the pilot's PSNR; the stage as shipped; the Wiener result wherever it is allowed;
``u-weighted``, the stage weighted by ``min(1, u^2 / sigma^2)`` (``u`` the predicted expected
absolute error, 9-pixel mean); ``oracle fuse``, by inverse true local squared error; ``oracle
pick``, the better of the two per pixel; ``corr``, the correlation of ``u`` with the pilot's
true local absolute error; ``|e|/u``, their ratio of means (1 when calibrated).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
for _p in (HERE, HERE.parent / "core"):
    if str(_p) not in sys.path:
        sys.path.append(str(_p))

import quality as qb
import restora
from _tables import format_rows
from restora import SEGMENT_CLASSES
from restora.engine import refine as rf
from restora.engine.engine import Engine
from restora.metrics import psnr

W2S = qb.ROOT.parent / "shared" / "data" / "train" / "w2s"
HELD_OUT = ("fov071", "fov072", "fov073", "fov074", "fov075")  # validation fields, never trained on


def cases(args) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(row, degraded, clean) float (H, W, 3) in [0, 1]: synthetic noise rows, then W2S pairs."""
    out = []
    # images after the quality benchmark's first 8, so this is not tuned on its table
    for path in qb.list_images(args.data)[8 : 8 + args.limit]:
        clean = qb.load_image(path, args.crop)
        for sigma in (15, 25, 50):
            row = qb.Row(f"noise{sigma}", (qb._noise(sigma),))
            degraded, _ = qb.synthesise(row, clean, qb.image_seed(args.seed, row.name, path.stem))
            out.append((row.name, qb.to_float(degraded), qb.to_float(clean)))
    if (W2S / "noisy").is_dir():
        names = sorted(p.name for p in (W2S / "noisy").iterdir() if p.name.startswith(HELD_OUT))
        for name in names[: args.limit]:
            pair = [qb.centre_crop(qb.as_rgb(restora.read_image(W2S / d / name)[0]), args.crop) for d in ("noisy", "clean")]
            out.append(("w2s", qb.to_float(pair[0]), qb.to_float(pair[1])))
    return out


def measure(engine: Engine, degraded: np.ndarray, clean: np.ndarray) -> dict[str, float]:
    to_t = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).permute(2, 0, 1)[None]
    x, c = to_t(degraded), to_t(clean)
    r = engine.restore(x, refine=False)
    pilot, u = r.image, r.uncertainty
    grey = bool((x.amax(1) == x.amin(1)).all())
    sigma, gain = rf.noise_model(x) if grey else (rf.noise_sigma(x), None)
    where = engine.segment(x)[:, SEGMENT_CLASSES.index("noise")][:, None]
    gate = rf.noise_gate(x, pilot, sigma, gain=gain) * where
    wiener = rf.wiener_refine(x, pilot, sigma, gain=gain)
    local = lambda t: F.avg_pool2d(t, 9, 1, 4, count_include_pad=False)
    err_p = (pilot - c).abs().mean(1, keepdim=True)
    ep, ew = local(err_p.square()), local((wiener - c).abs().mean(1, keepdim=True).square())
    var = sigma.square().mean(1)[:, None, None, None] + (0 if gain is None else gain.mean(1)[:, None, None, None] * local(pilot.mean(1, keepdim=True)))
    staged = lambda a: float(psnr((pilot + (wiener - pilot) * gate * a).clamp(0, 1), c))
    uu = local(u)
    return {
        "pilot": float(psnr(pilot, c)),
        "stage": staged(1.0),
        "wiener": float(psnr(wiener, c)),
        "u-weighted": staged((uu.square() / var.clamp(min=1e-12)).clamp(0, 1)),
        "oracle fuse": staged(ep / (ep + ew + 1e-12)),
        "oracle pick": staged((ep > ew).float()),
        "corr": float(torch.corrcoef(torch.stack([uu.flatten(), local(err_p).flatten()]))[0, 1]),
        "|e|/u": float(err_p.mean() / u.mean()),
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=qb.DEFAULT_DATA)
    p.add_argument("--limit", type=int, default=6, help="photographs (and W2S fields) to use")
    p.add_argument("--crop", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--weights", default="default")
    p.add_argument("--markdown", action="store_true")
    args = p.parse_args(argv)
    engine = Engine(args.weights, "cpu")
    acc: dict[str, list[dict]] = {}
    for row, degraded, clean in cases(args):
        acc.setdefault(row, []).append(measure(engine, degraded, clean))
    keys = ["pilot", "stage", "wiener", "u-weighted", "oracle fuse", "oracle pick", "corr", "|e|/u"]
    table = [[row, str(len(recs))] + [f"{np.mean([r[k] for r in recs]):.{3 if k in ('corr', '|e|/u') else 2}f}" for k in keys]
             for row, recs in acc.items()]
    print(f"Second stage guided by the uncertainty map: PSNR (dB), crop {args.crop}, weights {args.weights}")
    print(format_rows(["row", "n"] + keys, table, args.markdown))


if __name__ == "__main__":
    main()
