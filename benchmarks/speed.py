"""Speed benchmark: seconds and peak memory per megapixel, per restore round.

``python benchmarks/speed.py [--device cpu] [--sizes 512 1024 2048] [--threads N]``

Each size runs in a fresh process so that its peak memory is its own. One round is one pass
of the network over the image (restoration + quality + segmentation heads, tiled); a full
restore runs up to ``--max-iterations`` rounds plus a final assessment, then (where it found
noise) the second stage: the Wiener refinement, timed alone as "refine s", and its assessment;
"deblur s" times the blur model's estimate and a deconvolution by a 15 px motion kernel (where
the weights have a blur model), the last step where blur is found; "rain s" the rain model's
layer and streaks (where the weights have one), run once per restore, before the rounds;
"assess s" and "segment s" time one whole `assess` and `segment` (the fusions included), and
"stats s" the quality fusion's `image_statistics` and `region_statistics`, which it reads of every image it scores
(the input and each result of a restore). ``--precision`` sets the
network's arithmetic (`restora.Engine`); the table says which one ran.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))


def _measure(size: int, device: str, threads: int, repeats: int, max_iterations: int, tile: int, weights: str,
             precision: str, queue) -> None:
    import numpy as np
    import torch
    from restora.degradations import motion_kernel
    from restora.engine.deblur import balance_for, deconvolve
    from restora.engine.engine import Engine, _Ticker
    from restora.engine.refine import noise_sigma, wiener_refine
    from restora.models.quality_fusion import image_statistics, region_statistics

    if threads:
        torch.set_num_threads(threads)
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    engine = Engine(weights, device, tile, precision)
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.random((1, 3, size, size), dtype=np.float32))
    engine._pass(x[..., :64, :64], True, _Ticker(None, 0))  # warm up
    if engine.device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        engine._pass(x, True, _Ticker(None, 0))
        if engine.device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    t = time.perf_counter()
    r = engine.restore(x, max_iterations=max_iterations)
    restore_s = time.perf_counter() - t
    pilot = (x + 0.01).clamp(0, 1).to(engine.device)
    refine = []
    for _ in range(repeats):
        t = time.perf_counter()
        wiener_refine(x.to(engine.device), pilot, noise_sigma(x.to(engine.device)))
        if engine.device.type == "cuda":
            torch.cuda.synchronize()
        refine.append(time.perf_counter() - t)
    deblur = []
    for _ in range(repeats if engine.has_blur_model else 0):
        t = time.perf_counter()
        engine.blur_estimate(x)
        deconvolve(x.to(engine.device), motion_kernel(15.0, 30.0), balance_for("motion", x))
        if engine.device.type == "cuda":
            torch.cuda.synchronize()
        deblur.append(time.perf_counter() - t)
    derain = []
    for _ in range(repeats if engine.has_rain_model else 0):
        t = time.perf_counter()
        engine.rain_estimate(x)
        if engine.device.type == "cuda":
            torch.cuda.synchronize()
        derain.append(time.perf_counter() - t)
    t = time.perf_counter()
    engine.assess(x)
    assess_s = time.perf_counter() - t
    t = time.perf_counter()
    engine.segment(x)
    segment_s = time.perf_counter() - t
    stats = []
    for _ in range(repeats):
        t = time.perf_counter()
        image_statistics(x.to(engine.device))
        region_statistics(x.to(engine.device))
        stats.append(time.perf_counter() - t)
    peak_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base_rss) / 1024
    if engine.device.type == "cuda":
        peak_mb = torch.cuda.max_memory_allocated() / 2**20
    queue.put({"size": size, "mp": size * size / 1e6, "round_s": min(times), "restore_s": restore_s,
               "rounds": r.iterations[0], "refine_s": min(refine),
               "deblur_s": min(deblur) if deblur else float("nan"),
               "rain_s": min(derain) if derain else float("nan"), "assess_s": assess_s, "segment_s": segment_s,
               "stats_s": min(stats), "tiles": engine.tiles_per_pass(size, size), "peak_mb": peak_mb,
               "device": str(engine.device), "threads": torch.get_num_threads(),
               "precision": engine.precision})


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 2048])
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--max-iterations", type=int, default=3)
    ap.add_argument("--tile-size", type=int, default=512)
    ap.add_argument("--weights", default="default", help="Restora weights name or .safetensors path")
    from restora.engine.engine import PRECISIONS

    ap.add_argument("--precision", default="auto", choices=PRECISIONS,
                    help="the network's arithmetic (auto: bfloat16 on a CPU with native bfloat16)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    ctx = mp.get_context("spawn")
    rows = []
    for size in args.sizes:
        q = ctx.Queue()
        p = ctx.Process(target=_measure, args=(size, args.device, args.threads, args.repeats,
                                               args.max_iterations, args.tile_size, args.weights, args.precision, q))
        p.start()
        rows.append(q.get())
        p.join()
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{'size':>11} {'MP':>6} {'tiles':>5} {'s/round':>8} {'s/MP/round':>10} {'restore s':>9} {'rounds':>6} {'refine s':>8} {'deblur s':>8} {'rain s':>8} {'assess s':>8} {'segment s':>9} {'stats s':>7} {'peak MB':>8}  device (threads, precision)")
    for r in rows:
        print(f"{r['size']:>5}x{r['size']:<5} {r['mp']:6.2f} {r['tiles']:5d} {r['round_s']:8.2f} {r['round_s'] / r['mp']:10.2f} "
              f"{r['restore_s']:9.2f} {r['rounds']:6d} {r['refine_s']:8.2f} {r['deblur_s']:8.2f} {r['rain_s']:8.2f} {r['assess_s']:8.2f} {r['segment_s']:9.2f} {r['stats_s']:7.3f} {r['peak_mb']:8.0f}  {r['device']} ({r['threads']}, {r['precision']})")


if __name__ == "__main__":
    main()
