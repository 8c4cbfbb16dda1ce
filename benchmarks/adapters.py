"""Adapter ablation: one restoration pass per row of the quality benchmark, by the base model
without adapters, and by a model with adapters blended as it blends them itself (per image by
default, by the quality head's degradation probabilities) and by the true
label map (an upper bound on what a perfect estimator would give). CutMix rows (``--rows
cutmix,cutmix_rain_haze,...``) use their true per-region label maps: the headroom of blending
per region (``export --blend region`` makes a per-region variant of any weights).

    PYTHONPATH=core python benchmarks/adapters.py --adapted runs/phase3/adapted.safetensors --limit 8 --crop 256

Each degraded image is synthesised exactly as in ``quality.py`` (same rows, seeds, uint8).
One pass means no restore-assess loop, so the table isolates what the adapters add.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
for _p in (HERE, HERE.parent / "core"):
    if str(_p) not in sys.path:
        sys.path.append(str(_p))

import _baselines
import quality as qb
from _tables import format_rows
from restora.degradations import degradation_cutmix
from restora.engine.weights import load_model
from restora.training.train import adapter_targets

DEFAULT_ROWS = "noise25,blur_gauss,defocus,motion,rain,haze,low_light,jpeg20"


def one_pass(model, img: np.ndarray, weights: torch.Tensor | None = None) -> np.ndarray:
    x = torch.from_numpy(img.astype(np.float32) / 255).permute(2, 0, 1)[None]
    h, w = x.shape[-2:]
    ph, pw = (-h) % 4, (-w) % 4
    xp = torch.nn.functional.pad(x, (0, pw, 0, ph), mode="replicate")
    with torch.no_grad():
        out = model(xp, adapter_weights=weights) if weights is not None else model(xp)
    return qb.quantise(out["restored"][0, :, :h, :w].clamp(0, 1).permute(1, 2, 0).numpy())


def true_weights(row: qb.Row, clean: np.ndarray, seed: int, model) -> torch.Tensor:
    """(1, D, H/2, W/2) weights of the true degradations: a whole-image row's visible (last)
    one everywhere; a CutMix row's label map (synthesised again from the same seed); adapters
    the model keeps for grey images off on colour ones, as in its own blend."""
    adapters = tuple(model.config.adapters)
    h, w = (clean.shape[0] + 3) // 4 * 4, (clean.shape[1] + 3) // 4 * 4
    if row.cutmix is not None:
        x = torch.from_numpy(clean.astype(np.float32) / 255).permute(2, 0, 1)
        labels = degradation_cutmix(x, list(row.cutmix[0]), list(row.cutmix[1]),
                                    torch.Generator().manual_seed(seed)).labels.numpy()
        labels = np.pad(labels, ((0, h - labels.shape[0]), (0, w - labels.shape[1])), mode="edge")
        wts = adapter_targets(torch.from_numpy(labels)[None], adapters)[0]
    else:
        wts = torch.zeros(1, len(adapters), h // 2, w // 2)
        last = row.steps[-1][0]
        if last in adapters:
            wts[:, adapters.index(last)] = 1
    grey = torch.tensor([_baselines.is_grey(clean)])
    return model.grey_only(wts, grey)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--adapted", required=True, help="weights of a model with adapters (.safetensors)")
    p.add_argument("--base", default="restora-base", help="weights without adapters (default: the shipped v0)")
    p.add_argument("--data", type=Path, default=qb.DEFAULT_DATA)
    p.add_argument("--limit", type=int, default=8)
    p.add_argument("--crop", type=int, default=256)
    p.add_argument("--rows", default=DEFAULT_ROWS)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--markdown", action="store_true")
    args = p.parse_args(argv)
    base, _ = load_model(args.base, "cpu")
    adapted, _ = load_model(args.adapted, "cpu")
    adapters = tuple(adapted.config.adapters)
    if not adapters:
        raise SystemExit(f"error: {args.adapted} has no adapters")
    rows = qb.select_rows(args.rows)
    paths = qb.list_images(args.data)[: args.limit]
    table = []
    for row in rows:
        acc = {k: [] for k in ("input", "base", "estimator", "true map")}
        for path in paths:
            clean = qb.load_image(path, args.crop)
            seed = qb.image_seed(args.seed, row.name, path.stem)
            degraded, _ = qb.synthesise(row, clean, seed)
            acc["input"].append(qb.measure(degraded, clean)[0])
            acc["base"].append(qb.measure(one_pass(base, degraded), clean)[0])
            acc["estimator"].append(qb.measure(one_pass(adapted, degraded), clean)[0])
            tw = true_weights(row, clean, seed, adapted)
            acc["true map"].append(qb.measure(one_pass(adapted, degraded, tw), clean)[0])
        m = {k: float(np.mean(v)) for k, v in acc.items()}
        table.append([row.name, str(len(paths))] + [f"{m[k]:.2f}" for k in acc]
                     + [f"{m['estimator'] - m['base']:+.2f}", f"{m['true map'] - m['base']:+.2f}"])
        print(f"{row.name} done", file=sys.stderr)
    print(f"One-pass PSNR (dB), {len(paths)} images, crop {args.crop}; adapters {', '.join(adapters)}")
    header = ["row", "n", "input", "base", "adapters (own blend)", "adapters (true map)", "gain own", "gain true"]
    print(format_rows(header, table, args.markdown))


if __name__ == "__main__":
    main()
