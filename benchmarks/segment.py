"""Degradation segmentation benchmark: pixel accuracy and IoU of ``restora.segment`` on
degradation CutMix composites.

Each clean image (default ``../shared/data/val/bsds``, held out from training) is composited
``--draws`` times (fixed seeds): one degradation, or none, over the whole image, and a different
one (sometimes followed by noise) inside a random box covering 20-60% of it, with parameters
drawn from the training distribution (``restora.degradations.sample_params``), quantised to
uint8. The true label of a pixel is the degradation applied last there (``clean`` where none
was); the prediction is ``restora.segment(image).labels``. The table gives per class its pixel
share, recall, precision and IoU, then overall pixel accuracy and mean IoU over the classes that
occur.

    PYTHONPATH=core python benchmarks/segment.py --limit 8 --draws 2
    PYTHONPATH=core python benchmarks/segment.py --markdown          # 32 images x 4 draws
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
for _p in (HERE, HERE.parent / "core"):
    if str(_p) not in sys.path:
        sys.path.append(str(_p))

import quality as qb
from _tables import format_rows
import restora
from restora import DEGRADATIONS, SEGMENT_CLASSES
from restora.training import segment_fusion as trainer


def composite(clean: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, str]:
    """uint8 composite, its (H, W) true labels and a description, for one seed: the fusion's
    training draws the same (`restora.training.segment_fusion.composite`)."""
    return trainer.composite(torch.from_numpy(np.ascontiguousarray(clean)).permute(2, 0, 1), seed)


def confusion(true: np.ndarray, pred: np.ndarray, k: int) -> np.ndarray:
    return np.bincount(true.ravel().astype(np.int64) * k + pred.ravel(), minlength=k * k).reshape(k, k)


def summary(conf: np.ndarray) -> tuple[list[list[str]], float, float]:
    """Per-class rows, pixel accuracy and mean IoU (classes that occur in the truth)."""
    tp = np.diag(conf).astype(np.float64)
    truth, predicted = conf.sum(1), conf.sum(0)
    rows, ious = [], []
    for i, name in enumerate(SEGMENT_CLASSES):
        if truth[i] == 0:
            rows.append([name, "0.0%", "-", "-", "-"])
            continue
        iou = tp[i] / (truth[i] + predicted[i] - tp[i])
        ious.append(iou)
        prec = f"{tp[i] / predicted[i]:.3f}" if predicted[i] else "-"
        rows.append([name, f"{100 * truth[i] / conf.sum():.1f}%", f"{tp[i] / truth[i]:.3f}", prec, f"{iou:.3f}"])
    return rows, float(tp.sum() / conf.sum()), float(np.mean(ious))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=qb.DEFAULT_DATA, help="folder of clean images (default: %(default)s)")
    p.add_argument("--limit", type=int, default=None, help="first N images by name (default: all)")
    p.add_argument("--draws", type=int, default=4, help="composites per image (default: %(default)s)")
    p.add_argument("--crop", type=int, default=None, help="centre crop to SxS pixels (default: none)")
    p.add_argument("--seed", type=int, default=0, help="seed of the composites (default: %(default)s)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--weights", default="default", help="Restora weights name or .safetensors path")
    p.add_argument("--markdown", action="store_true", help="print a Markdown table")
    p.add_argument("--confusion", action="store_true", help="also print where each class's pixels went")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    k = len(SEGMENT_CLASSES)
    conf = np.zeros((k, k), dtype=np.int64)
    paths = qb.list_images(args.data)[: args.limit]
    if not paths:
        raise SystemExit(f"error: no images in {args.data}")
    n = 0
    for i, path in enumerate(paths, 1):
        clean = qb.load_image(path, args.crop)
        if clean.dtype != np.uint8:
            clean = qb.quantise(qb.to_float(clean))
        t0 = time.perf_counter()
        for d in range(args.draws):
            img, labels, desc = composite(clean, trainer.composite_seed(path.stem, d, args.seed))
            pred = restora.segment(img, device=args.device, weights=args.weights).labels
            conf += confusion(labels, pred, k)
            n += 1
        print(f"[{i}/{len(paths)}] {path.name}: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    rows, acc, miou = summary(conf)
    print(f"Degradation segmentation on {n} CutMix composites of {len(paths)} images")
    print(format_rows(["class", "share", "recall", "precision", "IoU"], rows, args.markdown))
    print(f"pixel accuracy {acc:.3f}   mean IoU {miou:.3f}")
    if args.confusion:
        share = conf / np.maximum(conf.sum(1, keepdims=True), 1)
        rows = [[SEGMENT_CLASSES[i]] + [f"{v:.2f}" for v in share[i]] for i in range(k) if conf[i].sum()]
        print("\nShare of each true class's pixels (rows) given each label (columns)")
        print(format_rows(["true \\ labelled"] + list(SEGMENT_CLASSES), rows, args.markdown))


if __name__ == "__main__":
    main()
