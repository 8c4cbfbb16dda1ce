"""Restoration quality benchmark: PSNR/SSIM of Restora against the degraded input and the best
classical baseline, per degradation, on a folder of clean images.

Each row synthesises one degradation (fixed parameters, a fixed seed per image and row, so every
run is identical), quantises it to uint8 as a user's file would be, and restores it blindly with
``restora.restore(..., degradations="auto")``. Baselines receive the same uint8 input.

    PYTHONPATH=core python benchmarks/quality.py --limit 4 --crop 128
    PYTHONPATH=core python benchmarks/quality.py --rows noise25,haze --ablation --markdown
    PYTHONPATH=core python benchmarks/quality.py --pairs DEGRADED_DIR CLEAN_DIR
    PYTHONPATH=core python benchmarks/quality.py --pairs W2S/noisy W2S/clean --only fov071 fov072 ...
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for _p in (HERE, ROOT / "core"):  # run as a script from anywhere, with or without PYTHONPATH
    if str(_p) not in sys.path:
        sys.path.append(str(_p))

import _baselines
import restora
from restora.degradations import apply_degradation, degradation_cutmix
from restora.degradations import blur_kernel as core_blur_kernel
from restora.engine.engine import PRECISIONS
from restora.io import list_images as restora_list_images
from restora.metrics import psnr, ssim

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "val" / "bsds"


# -- rows --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Row:
    """One benchmark row: degradation steps applied in turn (or a CutMix) and its baselines."""

    name: str
    steps: tuple[tuple[str, dict], ...] = ()
    baselines: tuple[str, ...] = ()
    cutmix: tuple[tuple[str, ...], tuple[str, ...]] | None = None  # (outside, inside)


def _noise(sigma: float) -> tuple[str, dict]:
    return ("noise", {"kind": "gaussian", "sigma": sigma / 255})


_DEBLUR = ("RL-30 (oracle kernel)", "Wiener (oracle kernel)")
ROWS: tuple[Row, ...] = (
    Row("noise15", (_noise(15),), _baselines.DENOISERS),
    Row("noise25", (_noise(25),), _baselines.DENOISERS),
    Row("noise50", (_noise(50),), _baselines.DENOISERS),
    Row("poisson", (("noise", {"kind": "poisson_gaussian", "gain": 0.01, "read_sigma": 2 / 255}),),
        _baselines.DENOISERS),
    Row("blur_gauss", (("blur", {"kind": "gaussian", "sigma": 2.0}),), _DEBLUR),
    Row("defocus", (("blur", {"kind": "defocus", "radius": 3.0}),), _DEBLUR),
    Row("motion", (("blur", {"kind": "motion", "length": 11.0, "angle": 30.0}),), _DEBLUR),
    Row("rain", (("rain", {"density": 0.01, "length": 15.0, "angle": 80.0, "intensity": 0.1}),),
        ("median 3x3", "streak opening")),
    Row("haze", (("haze", {"beta": 1.5, "airlight": 0.9}),), ("dark channel", "dark channel+GF")),
    Row("low_light", (("low_light", {"exposure": 0.1, "gamma": 2.2, "gain": 1e-3, "read_sigma": 1 / 255}),),
        ("gamma mean->0.45", "CLAHE")),
    # the same exposure with little noise (a million photons at full scale, no read noise): outside
    # the training synthesis of every head but the exposure model's (aio-v5), whose low light
    # was always noisy (gain 10^-3.5 to 10^-2.5)
    Row("underexposed", (("low_light", {"exposure": 0.1, "gamma": 2.2, "gain": 1e-6, "read_sigma": 0.0}),),
        ("gamma mean->0.45", "CLAHE")),
    Row("jpeg20", (("jpeg", {"quality": 20}),), ("TV Chambolle 0.05",)),
    Row("blur+noise", (("blur", {"kind": "gaussian", "sigma": 1.5}), _noise(15)), ("NLM+RL-30 (oracle kernel)",)),
    Row("cutmix", baselines=("dark channel", "dark channel+GF"), cutmix=(("haze",), ("noise",))),
    # more composites (degradation CutMix, random parameters): outside / inside a random box
    Row("cutmix_rain_haze", baselines=("dark channel", "median 3x3", "streak opening"), cutmix=(("rain",), ("haze",))),
    Row("cutmix_lowlight_noise", baselines=("gamma mean->0.45", "CLAHE"), cutmix=(("low_light",), ("noise",))),
    Row("cutmix_jpeg_lowlight", baselines=("CLAHE", "TV Chambolle 0.05"), cutmix=(("jpeg",), ("low_light",))),
)
ROW_NAMES = tuple(r.name for r in ROWS)
PAIRS_ROW = Row("pairs", baselines=_baselines.DENOISERS + (("BM3D (GAT)",) if _baselines.HAVE_BM3D else ())
                + ("TV Chambolle 0.05", "median 3x3"))
"""Real pairs: the degradation is unknown, so general-purpose (blind) baselines only."""


def blur_kernel(params: dict) -> np.ndarray:
    """The (k, k) kernel that `apply_degradation` uses for blur ``params``."""
    return core_blur_kernel(params).double().numpy()


def image_seed(seed: int, row: str, image_name: str) -> int:
    """A fixed seed per (run seed, row, image), independent of --limit and --rows."""
    return zlib.crc32(f"{seed}/{row}/{image_name}".encode())


def synthesise(row: Row, clean: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Degrade uint8 (H, W, 3) ``clean`` by ``row``; return the uint8 result and the blur kernel
    (of the last blur step; None without one)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.from_numpy(clean.astype(np.float32) / 255).permute(2, 0, 1)
    kernel = None
    if row.cutmix is not None:
        y = degradation_cutmix(x, list(row.cutmix[0]), list(row.cutmix[1]), g).degraded
    else:
        y = x[None]
        for name, params in row.steps:
            y = apply_degradation(y, name, params, g)
            if name == "blur":
                kernel = blur_kernel(params)
        y = y[0]
    return quantise(y.permute(1, 2, 0).numpy()), kernel


# -- images and metrics ------------------------------------------------------------------------
def quantise(a: np.ndarray) -> np.ndarray:
    """Float [0, 1] to uint8, rounding and clipping."""
    return np.clip(np.round(np.asarray(a, dtype=np.float64) * 255), 0, 255).astype(np.uint8)


def to_float(a: np.ndarray) -> np.ndarray:
    """uint8/uint16/float image to float64 in [0, 1]."""
    if np.issubdtype(a.dtype, np.integer):
        return a.astype(np.float64) / np.iinfo(a.dtype).max
    return np.clip(a.astype(np.float64), 0, 1)


def as_rgb(a: np.ndarray) -> np.ndarray:
    """Grey, grey+alpha or RGBA (H, W[, C]) to (H, W, 3), keeping the dtype."""
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3:
        raise ValueError(f"expected a 2-D image, got shape {a.shape}")
    return np.repeat(a[..., :1], 3, axis=2) if a.shape[2] < 3 else a[..., :3]


def centre_crop(a: np.ndarray, size: int | None) -> np.ndarray:
    """Centre crop to at most ``size`` x ``size`` (None: unchanged)."""
    if not size:
        return a
    h, w = a.shape[:2]
    top, left = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return a[top:top + size, left:left + size]


def load_image(path: Path, crop: int | None) -> np.ndarray:
    """Read an image file as (H, W, 3) in its own dtype, centre-cropped."""
    a, _ = restora.read_image(path)
    return np.ascontiguousarray(centre_crop(as_rgb(a), crop))


def part_benchmark_setup(doc: str, part: str, argv: list[str] | None = None):
    """The shared set-up of the benchmarks of one model part (``blur.py``, ``exposure.py``):
    their arguments (``--data``, ``--limit``, ``--weights``, ``--markdown``), the engine on 2
    CPU threads, checked to have ``part`` (e.g. "blur model"), and each image's clean uint8
    version, as ``(args, engine, [(path, clean), ...])``."""
    from restora.engine.engine import Engine

    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--limit", type=int, default=8)
    p.add_argument("--weights", default="default")
    p.add_argument("--markdown", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(2)
    engine = Engine(args.weights, "cpu")
    if not getattr(engine, "has_" + part.replace(" ", "_")):
        raise SystemExit(f"error: the weights {args.weights!r} have no {part}")
    images = [(path, quantise(to_float(load_image(path, None)))) for path in list_images(args.data)[: args.limit]]
    return args, engine, images


def list_images(folder: Path) -> list[Path]:
    """Image files in ``folder``, sorted by name; a missing folder ends the script."""
    try:
        return restora_list_images(folder)
    except restora.ImageFileError as e:
        raise SystemExit(f"error: {e}") from None


def measure(out: np.ndarray, clean: np.ndarray) -> tuple[float, float]:
    """(PSNR dB, SSIM) of an image against the clean one, both converted to float in [0, 1]."""
    t = lambda a: torch.from_numpy(to_float(a)).float().permute(2, 0, 1)[None]
    x, ref = t(out), t(clean)
    return float(psnr(x, ref)[0]), float(ssim(x, ref)[0])


# -- running one image -------------------------------------------------------------------------
def run_baseline(method: str, degraded: np.ndarray, kernel: np.ndarray | None) -> np.ndarray:
    """Run a classical method on the (uint8) degraded image; the result is quantised to uint8
    like Restora's."""
    out = _baselines.METHODS[method](to_float(degraded), kernel)
    return quantise(np.clip(np.nan_to_num(out), 0, 1))


def evaluate_image(name: str, degraded: np.ndarray, clean: np.ndarray, kernel: np.ndarray | None, row: Row,
                   args: argparse.Namespace) -> dict:
    """All the measurements for one degraded image: input, Restora (and 1 round), baselines."""
    rec: dict = {"input": measure(degraded, clean)}
    t0 = time.perf_counter()
    r = restora.restore(degraded, degradations="auto", max_iterations=3, device=args.device, weights=args.weights)
    rec["restora_seconds"] = time.perf_counter() - t0
    rec["restora"], rec["iterations"], rec["refined"] = measure(r.image, clean), r.iterations, r.refined
    rec["dehazed"], rec["brightened"], rec["deblurred"] = r.dehazed, r.brightened, r.deblurred
    if args.ablation:
        r1 = restora.restore(degraded, degradations="auto", max_iterations=1, device=args.device,
                             weights=args.weights)
        rec["restora_1round"] = measure(r1.image, clean)
        r0 = restora.restore(degraded, degradations="auto", max_iterations=3, device=args.device,
                             weights=args.weights, refine=False)
        rec["restora_norefine"] = measure(r0.image, clean)
        # without the physical models' inverses (haze, low light, blur): the same run where none was kept
        rec["restora_nophysical"] = rec["restora"]
        if r.dehazed or r.brightened or r.deblurred:
            rn = restora.restore(degraded, degradations="auto", max_iterations=3, device=args.device,
                                 weights=args.weights, dehaze=False, brighten=False, deblur=False)
            rec["restora_nophysical"] = measure(rn.image, clean)
    rec["baselines"] = {}
    if not args.no_baselines:
        t0 = time.perf_counter()
        for method in row.baselines:
            # baselines do not depend on Restora's weights: a cache saves rerunning slow ones (CBM3D)
            key = f"{row.name}|{name}|{args.seed}|{args.crop}|{method}"
            if key in args.cache:
                cached = args.cache[key]
                rec["baselines"][method] = tuple(cached) if isinstance(cached, list) else cached
                continue
            try:
                rec["baselines"][method] = args.cache[key] = measure(run_baseline(method, degraded, kernel), clean)
            except Exception as e:  # noqa: BLE001 - a failing baseline is reported, not fatal
                print(f"  baseline {method!r} failed on {name}: {type(e).__name__}: {e}",
                      file=sys.stderr)
                rec["baselines"][method] = f"{type(e).__name__}: {e}"
        rec["baseline_seconds"] = time.perf_counter() - t0
    return rec


# -- aggregation -------------------------------------------------------------------------------
@dataclass
class RowResult:
    """Per-image records of one row and their means."""

    name: str
    images: list[dict] = field(default_factory=list)

    def mean(self, key: str, i: int = 0) -> float:
        return float(np.mean([rec[key][i] for rec in self.images])) if self.images else math.nan

    def best_baseline(self) -> tuple[str, float, float] | None:
        """(method, mean PSNR, mean SSIM) of the best method that ran on every image; None if
        there were no baselines; ("failed", nan, nan) if all of them failed."""
        methods = {m for rec in self.images for m in rec["baselines"]}
        if not methods:
            return None
        scores = []
        for m in sorted(methods):
            vals = [rec["baselines"].get(m) for rec in self.images]
            if all(isinstance(v, tuple) for v in vals):
                scores.append((float(np.mean([v[0] for v in vals])), float(np.mean([v[1] for v in vals])), m))
        if not scores:
            return ("failed", math.nan, math.nan)
        p, s, m = max(scores)
        return m, p, s

    def summary(self, ablation: bool) -> dict:
        """The row's table entries."""
        out = {"row": self.name, "n": len(self.images),
               "input_psnr": self.mean("input"), "input_ssim": self.mean("input", 1),
               "restora_psnr": self.mean("restora"), "restora_ssim": self.mean("restora", 1),
               "iterations": float(np.mean([r["iterations"] for r in self.images])) if self.images else math.nan,
               "refined": float(np.mean([r["refined"] for r in self.images])) if self.images else math.nan,
               **{k: float(np.mean([r[k] for r in self.images])) if self.images else math.nan
                  for k in ("dehazed", "brightened", "deblurred")}}
        if ablation:
            out["restora_1round_psnr"] = self.mean("restora_1round")
            out["restora_norefine_psnr"] = self.mean("restora_norefine")
            out["restora_nophysical_psnr"] = self.mean("restora_nophysical")
        best = self.best_baseline()
        if best is not None:
            out["baseline"], out["baseline_psnr"], out["baseline_ssim"] = best
            out["delta_db"] = out["restora_psnr"] - best[1]
        return out


def mean_summary(summaries: list[dict]) -> dict:
    """The last line: the mean of each numeric column over the rows (nan entries left out)."""
    out: dict = {"row": "mean", "n": max(s["n"] for s in summaries), "baseline": "-"}
    for key, value in summaries[0].items():
        if isinstance(value, float):
            vals = [s[key] for s in summaries if isinstance(s.get(key), float) and not math.isnan(s[key])]
            out[key] = float(np.mean(vals)) if vals else math.nan
    return out


# -- output ------------------------------------------------------------------------------------
def columns(ablation: bool, baselines: bool) -> list[tuple[str, str, str]]:
    """(key, header, format) of each table column."""
    cols = [("row", "row", "s"), ("n", "n", "d"),
            ("input_psnr", "input PSNR", ".2f"), ("input_ssim", "input SSIM", ".4f"),
            ("restora_psnr", "Restora PSNR", ".2f"), ("restora_ssim", "Restora SSIM", ".4f")]
    if ablation:
        cols += [("restora_1round_psnr", "1-round PSNR", ".2f"), ("restora_norefine_psnr", "no-refine PSNR", ".2f"),
                 ("restora_nophysical_psnr", "no-physical PSNR", ".2f")]
    if baselines:
        cols += [("baseline", "baseline", "s"), ("baseline_psnr", "base PSNR", ".2f"),
                 ("baseline_ssim", "base SSIM", ".4f"), ("delta_db", "Restora-base dB", "+.2f")]
    cols += [("iterations", "iters", ".2f"), ("refined", "refined", ".2f"), ("dehazed", "dehazed", ".2f"),
             ("brightened", "brightened", ".2f"), ("deblurred", "deblurred", ".2f")]
    return cols


def _cell(value, fmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, fmt)


def format_table(summaries: list[dict], cols: list[tuple[str, str, str]], markdown: bool) -> str:
    """Aligned plain text (numbers right, text left), or a Markdown table."""
    header = [h for _, h, _ in cols]
    body = [[_cell(s.get(k), f) for k, _, f in cols] for s in summaries]
    right = [f != "s" for _, _, f in cols]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" if r else ":---" for r in right) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in body]
        return "\n".join(lines)
    widths = [max(len(r[i]) for r in [header] + body) for i in range(len(cols))]

    def fmt(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right, strict=True))

    lines = [fmt(header), "  ".join("-" * w for w in widths)] + [fmt(r) for r in body[:-1]]
    if len(body) > 1:
        lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines + [fmt(body[-1])] if body else lines)


def _jsonable(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj


# -- driver ------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of clean images (default: %(default)s)")
    p.add_argument("--pairs", nargs=2, type=Path, metavar=("DEGRADED_DIR", "CLEAN_DIR"),
                   help="real pairs with the same file names; one row 'pairs', degraded images used as given")
    p.add_argument("--limit", type=int, default=None, help="first N images by name (default: all)")
    p.add_argument("--only", nargs="+", metavar="PREFIX",
                   help="only images whose file names start with a PREFIX (e.g. the W2S fields held out from training)")
    p.add_argument("--crop", type=int, default=None, help="centre crop to SxS pixels (default: none)")
    p.add_argument("--rows", default=None, help=f"comma list of rows (default: all): {','.join(ROW_NAMES)}")
    p.add_argument("--device", default="cpu", help="device for Restora (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic degradations (default: %(default)s)")
    p.add_argument("--weights", default="default", help="Restora weights name or .safetensors path")
    p.add_argument("--precision", choices=PRECISIONS, default=None,
                   help="the network's arithmetic (restora.Engine; default: $RESTORA_PRECISION, else auto)")
    p.add_argument("--no-baselines", action="store_true", help="skip the classical baselines")
    p.add_argument("--ablation", action="store_true",
                   help="add Restora with max_iterations=1 (one round vs the loop) and with refine=False")
    p.add_argument("--markdown", action="store_true", help="print a Markdown table instead of plain text")
    p.add_argument("--json", type=Path, metavar="OUT", help="also write every measurement to this JSON file")
    p.add_argument("--baseline-cache", type=Path, metavar="FILE",
                   help="JSON file of baseline results to reuse and extend (they do not depend on the weights)")
    args = p.parse_args(argv)
    args.cache = json.loads(args.baseline_cache.read_text()) if args.baseline_cache and args.baseline_cache.exists() else {}
    if args.pairs and args.rows:
        p.error("--rows does not apply to --pairs (its single row is 'pairs')")
    if args.limit is not None and args.limit < 1:
        p.error("--limit must be at least 1")
    if args.crop is not None and args.crop < 16:
        p.error("--crop must be at least 16")
    return args


def select_rows(spec: str | None) -> list[Row]:
    """The rows named in the comma list ``spec`` (all when None), in table order."""
    if not spec:
        return list(ROWS)
    names = [s.strip() for s in spec.split(",") if s.strip()]
    unknown = [n for n in names if n not in ROW_NAMES]
    if unknown:
        raise SystemExit(f"error: unknown rows {unknown}; choose from {','.join(ROW_NAMES)}")
    return [r for r in ROWS if r.name in names]


def chosen_images(folder: Path, args: argparse.Namespace) -> list[Path]:
    """The images of ``folder`` that ``--only`` keeps, the first ``--limit`` of them."""
    paths = list_images(folder)
    if args.only:
        paths = [p for p in paths if p.name.startswith(tuple(args.only))]
    return paths[: args.limit]


def jobs(args: argparse.Namespace) -> list[tuple[Row, list[tuple[str, callable]]]]:
    """Per row, the (image name, loader) list; a loader returns (degraded, clean, kernel, seed)."""
    if args.pairs:
        deg_dir, clean_dir = args.pairs
        paths = chosen_images(deg_dir, args)
        missing = [p.name for p in paths if not (clean_dir / p.name).exists()]
        if missing:
            raise SystemExit(f"error: no clean image in {clean_dir} for {missing}")
        items = [(p.name, lambda p=p: (load_image(p, args.crop), load_image(clean_dir / p.name, args.crop), None, None))
                 for p in paths]
        return [(PAIRS_ROW, items)]
    paths = chosen_images(args.data, args)
    out = []
    for row in select_rows(args.rows):
        def load(p, row=row):
            clean = quantise(to_float(load_image(p, args.crop)))  # 8-bit clean reference
            seed = image_seed(args.seed, row.name, p.name)
            degraded, kernel = synthesise(row, clean, seed)
            return degraded, clean, kernel, seed
        out.append((row, [(p.name, lambda p=p, load=load: load(p)) for p in paths]))
    return out


def run_row(row: Row, items: list, args: argparse.Namespace) -> RowResult:
    """Evaluate one row on every image, printing progress to stderr."""
    res = RowResult(row.name)
    t0 = time.perf_counter()
    for i, (name, load) in enumerate(items, 1):
        degraded, clean, kernel, seed = load()
        if degraded.shape[:2] != clean.shape[:2]:
            print(f"  {row.name}: skipping {name}: degraded {degraded.shape} vs clean {clean.shape}", file=sys.stderr)
            continue
        rec = {"image": name, "seed": seed}
        rec.update(evaluate_image(name, degraded, clean, kernel, row, args))
        res.images.append(rec)
        if args.baseline_cache:
            tmp = args.baseline_cache.with_suffix(".tmp")
            tmp.write_text(json.dumps(args.cache))
            tmp.replace(args.baseline_cache)
        print(f"  {row.name} {i}/{len(items)} {name}: restora {rec['restora_seconds']:.1f} s"
              + (f", baselines {rec['baseline_seconds']:.1f} s" if "baseline_seconds" in rec else ""), file=sys.stderr)
    print(f"[{row.name}] {len(res.images)} images in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return res


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    work = jobs(args)
    if not any(items for _, items in work):
        raise SystemExit(f"error: no images found in {args.pairs[0] if args.pairs else args.data}")
    if not args.no_baselines:
        for note in _baselines.missing_notes():
            print(f"note: {note}", file=sys.stderr)
    if args.precision:  # every restora call below reads it
        os.environ["RESTORA_PRECISION"] = args.precision
    precision = restora.Engine(args.weights, args.device).precision  # loads the weights once, before the timings
    results = [run_row(row, items, args) for row, items in work]
    summaries = [r.summary(args.ablation) for r in results if r.images]
    if len(summaries) > 1:
        summaries.append(mean_summary(summaries))
    source = f"pairs {args.pairs[0]} / {args.pairs[1]}" if args.pairs else str(args.data)
    caption = (f"Restora quality benchmark: {summaries[0]['n']} images from {source}, crop {args.crop or 'none'}, "
               f"seed {args.seed}, weights {args.weights}, device {args.device} ({precision}); uint8 in and out; "
               "baseline = best classical method by mean PSNR")
    print(("_" + caption + "_\n") if args.markdown else caption)
    print(format_table(summaries, columns(args.ablation, not args.no_baselines), args.markdown))
    if args.json:
        settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "cache"}
        settings["pairs"] = [str(p) for p in args.pairs] if args.pairs else None
        payload = {"args": settings,
                   "bm3d": _baselines.HAVE_BM3D, "pywt": _baselines.HAVE_PYWT, "summary": summaries,
                   "rows": [{"row": r.name, "images": r.images} for r in results]}
        args.json.write_text(json.dumps(_jsonable(payload), indent=1) + "\n")
        print(f"wrote {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
