"""JPEG model benchmark: does it find JPEG's coding (and only where it is), does it read the
quality, and how much does undoing the coding gain?

For each image and condition (the quality benchmark's rows with their fixed seeds, and JPEG at
qualities 10-80 of the image cropped at a random grid offset, alone or after blur or haze),
it prints how often the coding is found (`restora.models.jpeg.find_jpeg`; on the rows without
JPEG, a false alarm), the median error of the read IJG quality, the share of the image called
coded, and the PSNR against the image before the coding (the clean one, or the blurred or
hazed one) of: the input, the JPEG model alone, then projected on the quantisation
constraint, and its result blended by the coded blocks' map (what the engine applies first,
before its rounds).

    PYTHONPATH=core python benchmarks/jpeg.py --limit 8
"""

from __future__ import annotations

import io
import sys
import zlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image

HERE = Path(__file__).resolve().parent
for _p in (HERE, HERE.parent / "core"):
    if str(_p) not in sys.path:
        sys.path.append(str(_p))

import quality as Q
from _tables import format_rows
from restora.degradations import apply_degradation, sample_params
from restora.engine.dejpeg import coded_weight, dejpeg
from restora.metrics import psnr

QUALITIES = (10, 20, 30, 40, 60, 80)
BEFORE = ("blur", "haze")


def _tensor(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a.astype(np.float32) / 255).permute(2, 0, 1)[None]


def coded(before: np.ndarray, quality: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``before`` JPEG-coded by Pillow at ``quality``, both cropped at the same random offset
    (0-7 each way: the grid no longer at the origin, as in a cropped JPEG)."""
    buf = io.BytesIO()
    Image.fromarray(before).save(buf, format="JPEG", quality=quality)
    with Image.open(io.BytesIO(buf.getvalue())) as im:
        out = np.asarray(im.convert("RGB"))
    rng = np.random.default_rng(seed)
    dy, dx = (int(v) for v in rng.integers(0, 8, 2))
    return out[dy:, dx:], before[dy:, dx:]


def cases(path: Path, clean: np.ndarray):
    """(condition, degraded, reference before the coding or None, true quality or None)."""
    for row in Q.ROWS:
        degraded, _ = Q.synthesise(row, clean, Q.image_seed(0, row.name, path.name))
        quality = [p["quality"] for name, p in row.steps if name == "jpeg"]
        yield row.name, degraded, (clean if row.name == "jpeg20" else None), (quality[0] if quality else None)
    yield "clean", clean, None, None
    for q in QUALITIES:
        seed = zlib.crc32(f"jpeg{q}/{path.name}".encode())
        yield (f"JPEG {q}, cropped", *coded(clean, q, seed), q)
    for name in BEFORE:
        seed = zlib.crc32(f"{name}+jpeg/{path.name}".encode())
        g = torch.Generator().manual_seed(seed)
        y = apply_degradation(_tensor(clean), name, sample_params(name, g), g)
        before = Q.quantise(y[0].permute(1, 2, 0).numpy())
        yield (f"{name} + JPEG 30, cropped", *coded(before, 30, seed), 30)


def main(argv: list[str] | None = None) -> None:
    args, engine, images = Q.part_benchmark_setup(__doc__, "jpeg model", argv)
    stats: dict[str, dict[str, list]] = {}
    model = engine.model.jpeg_model
    for path, clean in images:
        for name, degraded, before, quality in cases(path, clean):
            x = _tensor(degraded)
            grid = engine.jpeg_estimate(x)
            s = stats.setdefault(name, {k: [] for k in ("found", "qerr", "share", "input", "net", "proj", "out")})
            s["found"].append(grid is not None)
            if grid is not None:
                s["share"].append(float(coded_weight(x, grid).mean()))
                if quality is not None:
                    s["qerr"].append(abs(grid.quality - quality))
            if before is None:
                continue
            ref = _tensor(before)
            s["input"].append(float(psnr(x, ref)[0]))
            if grid is None:
                for k in ("net", "proj", "out"):
                    s[k].append(s["input"][-1])
                continue
            run = lambda **kw: dejpeg(model, x, grid, engine.tile_size, engine._network, **kw)
            s["net"].append(float(psnr(run(constrain=False, blend=False), ref)[0]))
            s["proj"].append(float(psnr(run(blend=False), ref)[0]))
            s["out"].append(float(psnr(run(), ref)[0]))
        print(f"  {path.name} done", file=sys.stderr, flush=True)
    f = lambda v, fmt: format(float(np.mean(v)), fmt) if v else "-"
    med = lambda v: f"{float(np.median(v)):.0f}" if v else "-"
    rows = [[name, str(len(s["found"])), f(s["found"], ".2f"), med(s["qerr"]), f(s["share"], ".2f"),
             f(s["input"], ".2f"), f(s["net"], ".2f"), f(s["proj"], ".2f"), f(s["out"], ".2f"),
             (f"{np.mean(s['out']) - np.mean(s['input']):+.2f}" if s["input"] else "-")] for name, s in stats.items()]
    print(f"_JPEG model benchmark: {len(images)} images from {args.data}, weights {args.weights} "
          f"({engine.precision}); 'found' is the share where the coding is read; PSNR against the image before "
          "the coding, without the network's rounds_\n")
    print(format_rows(["condition", "n", "found", "median quality error", "coded share", "input PSNR",
                       "JPEG model", "+ constraint", "blended (engine)", "gain"], rows, args.markdown))


if __name__ == "__main__":
    main()
