"""No-reference quality benchmark: how well ``restora.assess`` ranks images by their
full-reference quality, beside NIQE and BRISQUE, and how well it names the degradations present.

Each clean image (default ``../shared/data/val/bsds``, held out from training) is used as is and
degraded by every row of the quality benchmark (14 versions, fixed seeds, quantised to uint8);
with ``--restored`` the Restora output of each degraded version joins the set too (so the loop's
judge is also judged on its own work). Every version is scored without its reference by
``restora.assess``, NIQE and BRISQUE, and with it by PSNR, SSIM and the quality target
``0.5 SSIM + 0.5 (PSNR - 15) / 30`` that Restora's quality head learns. The table gives
Spearman and Pearson correlations of each no-reference score with each full-reference one
(NIQE and BRISQUE are negated: lower is better for them), then per degradation the mean
probability ``assess`` gives it when present and when absent, and its ROC AUC.

    PYTHONPATH=core python benchmarks/iqa.py --limit 8
    PYTHONPATH=core python benchmarks/iqa.py --fetch-niqe --markdown   # all 32 images

NIQE's pristine model comes from basicsr's sdist (``--fetch-niqe`` downloads it once into
``--cache``); BRISQUE from the ``brisque`` package (``pip install "brisque[opencv-python-headless]"``).
Either is left out, with a note on stderr, when it is not available.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy import stats

HERE = Path(__file__).resolve().parent
for _p in (HERE, HERE.parent / "core"):
    if str(_p) not in sys.path:
        sys.path.append(str(_p))

import _niqe
from _tables import format_rows
import quality as qb
import restora
from restora import DEGRADATIONS
from restora.metrics import quality_target

CACHE = HERE.parent / "runs" / "bench"
NO_REF = ("restora", "NIQE", "BRISQUE")
FULL_REF = ("target", "PSNR", "SSIM")
PSNR_CAP = 60.0


# -- statistics ----------------------------------------------------------------------------------
def pearson(a: np.ndarray, b: np.ndarray) -> float:
    return float(stats.pearsonr(a, b).statistic)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    return float(stats.spearmanr(a, b).statistic)


def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U); nan when one class is empty."""
    positive = np.asarray(positive, bool)
    n1, n0 = positive.sum(), (~positive).sum()
    if n1 == 0 or n0 == 0:
        return float("nan")
    r = stats.rankdata(scores)
    return float((r[positive].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


# -- scorers -------------------------------------------------------------------------------------
def niqe_scorer(args: argparse.Namespace):
    sdist = args.cache / _niqe.SDIST_URL.rsplit("/", 1)[1]
    if not sdist.exists():
        if not args.fetch_niqe:
            print(f"NIQE left out: {sdist} is missing (rerun with --fetch-niqe to download basicsr's sdist once)",
                  file=sys.stderr)
            return None
        sdist = _niqe.fetch_sdist(args.cache)
    params = _niqe.pristine_params(sdist)
    return lambda rgb: -_niqe.niqe(rgb, params)


def brisque_scorer():
    try:
        from brisque import BRISQUE
    except ImportError as e:
        print(f"BRISQUE left out: {e}", file=sys.stderr)
        return None

    class _Brisque(BRISQUE):
        # brisque 0.2.0 returns some features as 1-element arrays, which NumPy 2 refuses to
        # turn into floats in its own scale_features: flatten them first.
        def calculate_brisque_features(self, image, kernel_size=7, sigma=7 / 6):
            f = super().calculate_brisque_features(image, kernel_size=kernel_size, sigma=sigma)
            return np.array([float(np.asarray(v).reshape(-1)[0]) for v in f])

    model = _Brisque(url=False)
    return lambda rgb: -float(model.score(rgb))


def full_reference(img: np.ndarray, clean: np.ndarray) -> dict[str, float]:
    t = lambda a: torch.from_numpy(qb.to_float(a)).float().permute(2, 0, 1)[None]
    p, s = qb.measure(img, clean)
    # a clean version's PSNR is infinite: cap it so that Pearson's r stays defined
    return {"target": float(quality_target(t(img), t(clean))[0]), "PSNR": min(p, PSNR_CAP), "SSIM": s}


# -- the run -------------------------------------------------------------------------------------
def versions(clean: np.ndarray, name: str, args: argparse.Namespace):
    """(label, image, degradations present) for every version of one clean image."""
    yield "clean", clean, set()
    for row in qb.ROWS:
        degraded, _ = qb.synthesise(row, clean, qb.image_seed(args.seed, row.name, name))
        present = set(row.cutmix[0] + row.cutmix[1]) if row.cutmix else {n for n, _ in row.steps}
        yield row.name, degraded, present
        if args.restored:
            out = restora.restore(degraded, device=args.device, weights=args.weights).image
            yield row.name + "+restored", out, None  # what is left after restoration is unknown


def collect(args: argparse.Namespace) -> list[dict]:
    scorers = {"NIQE": niqe_scorer(args), "BRISQUE": brisque_scorer()}
    paths = qb.list_images(args.data)[: args.limit]
    records = []
    for i, path in enumerate(paths, 1):
        clean = qb.load_image(path, args.crop)
        if clean.dtype != np.uint8:
            clean = qb.quantise(qb.to_float(clean))
        t0 = time.perf_counter()
        for label, img, present in versions(clean, path.stem, args):
            q = restora.assess(img, device=args.device, weights=args.weights)
            rec = {"image": path.stem, "version": label, "present": sorted(present) if present is not None else None,
                   "restora": q.score, "probabilities": q.degradations, **full_reference(img, clean)}
            for key, scorer in scorers.items():
                if scorer is not None:
                    rec[key] = scorer(img)
            records.append(rec)
        print(f"[{i}/{len(paths)}] {path.name}: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return records


def correlation_table(records: list[dict]) -> list[list[str]]:
    rows = []
    for nr in NO_REF:
        if nr not in records[0]:
            continue
        x = np.array([r[nr] for r in records])
        cells = [nr, str(len(x))]
        for fr in FULL_REF:
            y = np.array([r[fr] for r in records])
            cells += [f"{spearman(x, y):.3f}", f"{pearson(x, y):.3f}"]
        rows.append(cells)
    return rows


def detection_table(records: list[dict]) -> list[list[str]]:
    known = [r for r in records if r["present"] is not None]
    rows = []
    for d in DEGRADATIONS:
        p = np.array([r["probabilities"][d] for r in known])
        pos = np.array([d in r["present"] for r in known])
        mean = lambda m: f"{p[m].mean():.3f}" if m.any() else "-"
        acc = ((p >= 0.5) == pos).mean()
        rows.append([d, str(int(pos.sum())), mean(pos), mean(~pos), f"{roc_auc(p, pos):.3f}", f"{acc:.3f}"])
    return rows


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=qb.DEFAULT_DATA, help="folder of clean images (default: %(default)s)")
    p.add_argument("--limit", type=int, default=None, help="first N images by name (default: all)")
    p.add_argument("--crop", type=int, default=None, help="centre crop to SxS (at least 192 for NIQE)")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic degradations (default: %(default)s)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--weights", default="default", help="Restora weights name or .safetensors path")
    p.add_argument("--restored", action="store_true", help="also score Restora's output of each degraded version")
    p.add_argument("--cache", type=Path, default=CACHE, help="where basicsr's sdist is kept (default: %(default)s)")
    p.add_argument("--fetch-niqe", action="store_true", help="download basicsr's sdist (NIQE's pristine model) once")
    p.add_argument("--markdown", action="store_true", help="print Markdown tables")
    p.add_argument("--json", type=Path, metavar="OUT", help="also write every score to this JSON file")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    records = collect(args)
    if not records:
        raise SystemExit(f"error: no images in {args.data}")
    if args.json:
        args.json.write_text(json.dumps(records, indent=1))
    header = ["score", "n"] + [f"{k} {fr}" for fr in FULL_REF for k in ("SROCC", "PLCC")]
    print(f"Correlation with full-reference quality ({len({r['image'] for r in records})} images)")
    print(format_rows(header, correlation_table(records), args.markdown))
    print()
    print("Degradation detection by restora.assess (probability when present / absent, ROC AUC, accuracy at 0.5)")
    header = ["degradation", "present", "p present", "p absent", "AUC", "accuracy"]
    print(format_rows(header, detection_table(records), args.markdown))


if __name__ == "__main__":
    main()
