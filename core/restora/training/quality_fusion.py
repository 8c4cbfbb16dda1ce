"""Train the quality fusion (`restora.models.quality_fusion`, the score ``assess`` reports) on
whole degraded images, the rest of the model frozen.

``assess`` scores whole images, and what the fusion reads of one (the rain model's share,
the JPEG coding, the image's statistics, the image-level heads) depends on all of it: training
on crops (the ``fusion`` phase of `restora.training.train`) saw none of a whole image's
proportions. So training runs in two steps, as the segmentation fusion's does:
``versions`` writes, for each training image, its versions (clean; each degradation alone;
one with noise after, one with JPEG after; noise again; three degradation CutMix
composites; and the engine's restoration of ``--restored`` of them, since the fusion also
reports the quality of the loop's results) with what the engine reads of each and its
quality target, one file per image and draw (``--draw N``: another draw of the same kinds
of versions, from another seed), skipping the files already there (a stopped run
resumes); ``fit`` trains the fusion on the cache, with a checkpoint after each epoch
(``--resume`` continues) that `restora.training.export` ships::

    python -m restora.training.quality_fusion versions --data ../shared/data/train/bsds \\
        --out runs/qfusion-cache [--shuffle] [--offset N --limit M] [--draw D] [--init W]
    python -m restora.training.quality_fusion fit --cache runs/qfusion-cache --out runs \\
        --name qfusion-v1 [--init W] [--no-statistics] [--no-regions] [--epochs 400] [--resume]
    python -m restora.training.export runs/qfusion-v1/last.safetensors --name restora-aio \\
        --file restora-aio-v13.safetensors --grey-adapters noise

Draw ``d`` of the versions of image ``i`` (by name) of ``--data`` is drawn from seed
``7919 i + 11 + 1000003 d``. The loss is the squared error of the fused score against the
quality target (`quality_target`); the images of the last ``--holdout`` share (by name;
every draw of them) are held out, and the Spearman
correlation on them is logged after each epoch.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .._names import DEGRADATIONS
from ..degradations import cutmix_regions, degradation_cutmix, degrade
from ..engine.engine import Engine, _Ticker
from ..io import list_images
from ..metrics import quality_target
from ..models.quality_fusion import FEATURES, READINGS, fusion_inputs, image_statistics, region_statistics
from .checkpoint import (add_cache_arguments, add_fit_arguments, cached_files, log_epoch, part_model, save_npz,
                         set_cosine_lr, start_run)
from .data import load_rgb, to_8bit

BASE = FEATURES + READINGS
"""The features every cached version holds: the fusion's inputs without its statistics and
region statistics (which ``fit`` measures on the cached image itself)."""


def version_seed(index: int, draw: int = 0) -> int:
    """The seed of draw ``draw`` of the versions of the image at ``index`` (by name) of the
    data folder."""
    return 7919 * index + 11 + 1000003 * draw


def cache_name(stem: str, draw: int = 0) -> str:
    """The cache file of draw ``draw`` of image ``stem``'s versions (``STEM.npz``, then
    ``STEM-dN.npz``): every draw of an image sorts beside the first, so a hold-out by name
    keeps them together."""
    return f"{stem}.npz" if draw == 0 else f"{stem}-d{draw}.npz"


def _image_of(file: Path) -> str:
    """The image stem a cache file (`cache_name`) holds a draw of."""
    stem = file.stem
    head, _, tail = stem.rpartition("-d")
    return head if head and tail.isdigit() else stem


def versions(clean: torch.Tensor, generator: torch.Generator) -> list[tuple[str, torch.Tensor]]:
    """(kind, image) of every synthetic version of ``clean`` (3, H, W) in [0, 1], each
    (1, 3, H, W) and rounded to 8 bits, as the images ``assess`` reads are."""
    g = generator
    pick = lambda options: options[int(torch.randint(len(options), (), generator=g))]
    others = [d for d in DEGRADATIONS if d != "noise"]
    out = [("clean", clean)] + [(d, degrade(clean, [d], g).degraded) for d in DEGRADATIONS]
    out.append(("x+noise", degrade(clean, [pick(others), "noise"], g).degraded))
    out.append(("x+jpeg", degrade(clean, [pick([d for d in others if d != "jpeg"]), "jpeg"], g).degraded))
    out.append(("noise", degrade(clean, ["noise"], g).degraded))
    for _ in range(3):
        outside, inside = cutmix_regions(g)
        out.append(("cutmix", degradation_cutmix(clean, outside, inside, g).degraded))
    return [(kind, to_8bit(x)[None]) for kind, x in out]


@torch.no_grad()
def read_version(engine: Engine, x: torch.Tensor) -> tuple[np.ndarray, float]:
    """The fusion's `BASE` inputs of one image ``x`` (1, 3, H, W), read as ``assess`` reads
    them (one pass, `Engine.assess_reads`), and its reported score."""
    if not engine.has_fusion_readings:
        raise ValueError("the quality fusion's training reads the readings: use weights whose fusion has them")
    out = engine._pass(x, False, _Ticker(None, 1))
    readings = engine.assess_reads(x, colour=True)[2]  # (the fusion reads the rain of grey images too)
    features = fusion_inputs(engine.model, x, out["quality"], out["degradation_probs"], readings)
    return features[0, :BASE].numpy(), float(engine.model.quality_fusion(features)[0])


def write_versions(engine: Engine, paths: list[tuple[int, Path]], out: Path, restored: int = 2, draw: int = 0) -> int:
    """Write draw ``draw`` of the versions of each (index, path) in ``paths`` with what the
    engine reads of them to ``out`` (`cache_name`), skipping those already there; return how
    many were written."""
    from ..engine.api import restore

    out.mkdir(parents=True, exist_ok=True)
    written = 0
    for i, (index, path) in enumerate(paths, 1):
        file = out / cache_name(path.stem, draw)
        if file.exists():
            continue
        start = time.perf_counter()
        clean = load_rgb(path).float() / 255
        g = torch.Generator().manual_seed(version_seed(index, draw))
        found = versions(clean, g)
        for j in (torch.randperm(len(found) - 1, generator=g)[:restored] + 1).tolist():
            kind, x = found[j]
            y = restore(x[0].permute(1, 2, 0).numpy(), weights=engine.weights.path, device=engine.device).image
            found.append((kind + "+restored", to_8bit(torch.from_numpy(np.ascontiguousarray(y)).permute(2, 0, 1).float())[None]))
        reads = [read_version(engine, x) for _, x in found]
        images = torch.cat([x for _, x in found])
        save_npz(file, kind=np.array([k for k, _ in found]), f=np.stack([r[0] for r in reads]),
                 score=np.array([r[1] for r in reads]), target=quality_target(images, clean[None].expand_as(images)).numpy(),
                 images=(images * 255).round().byte().permute(0, 2, 3, 1).numpy())
        written += 1
        print(f"[{i}/{len(paths)}] {path.name}: {len(found)} versions, {time.perf_counter() - start:.1f} s", flush=True)
    return written


def load_cache(folder: Path, statistics: bool, holdout: float = 0.1, regions: bool = False) -> tuple[dict, dict]:
    """The (train, held-out) sets of a cache folder, each {"x": inputs (N, F), "y": targets
    (N,), "score": the scores reported when cached (N,), "kind": (N,)}: the cached inputs,
    then (with ``statistics``) the `image_statistics` and (with ``regions``) the
    `region_statistics` of each cached image. The images of the last ``holdout`` share (by
    name) are held out."""
    files = cached_files(folder, "versions")
    names = sorted({_image_of(f) for f in files})
    held = set(names[len(names) - int(round(holdout * len(names))):]) if holdout > 0 else set()
    sets = {"train": [], "val": []}
    for f in files:
        z = np.load(f)
        x = torch.from_numpy(z["f"].astype(np.float32))
        if statistics or regions:
            images = torch.from_numpy(z["images"]).permute(0, 3, 1, 2).float() / 255
            x = torch.cat([x] + [image_statistics(images)] * statistics + [region_statistics(images)] * regions, 1)
        sets["val" if _image_of(f) in held else "train"].append(
            {"x": x, "y": torch.from_numpy(z["target"].astype(np.float32)),
             "score": torch.from_numpy(z["score"].astype(np.float32)), "kind": list(z["kind"])})
    merged = lambda parts: ({k: torch.cat([p[k] for p in parts]) for k in ("x", "y", "score")}
                            | {"kind": [k for p in parts for k in p["kind"]]}) if parts else {}
    return merged(sets["train"]), merged(sets["val"])


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    """Spearman's rank correlation (ties ranked by order: the scores are continuous)."""
    rank = lambda t: torch.argsort(torch.argsort(t)).double()
    ra, rb = rank(a), rank(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    return float((ra * rb).sum() / (ra.norm() * rb.norm()))


def fit(cache: Path, out_dir: Path, name: str, init: str | Path = "default", statistics: bool = True,
        regions: bool = True, epochs: int = 400, lr: float = 1e-2, weight_decay: float = 0.05, dropout: float = 0.05, batch: int = 256,
        seed: int = 0, holdout: float = 0.1, resume: bool = False, threads: int = 2) -> Path:
    """Train the quality fusion of ``init``'s model (its fusion widened by zero columns for
    the statistics where ``statistics`` and the region statistics where ``regions``: it
    starts as it was) on ``cache``; return the last
    checkpoint (``out_dir / name / last.safetensors``). ``dropout`` drops inputs in training."""
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    model, origin = part_model(init, "quality_fusion", {"quality_fusion_statistics": statistics,
                                                        "quality_fusion_regions": regions}, widen=True)
    fusion = model.quality_fusion
    if not fusion.reads:
        raise ValueError(f"{origin['init']}'s quality fusion does not read the readings the cache holds")
    opt = torch.optim.AdamW(fusion.parameters(), lr=lr, weight_decay=weight_decay)
    train, val = load_cache(cache, statistics, holdout, regions)
    if not train:
        raise ValueError(f"{cache} holds nothing to train on")
    run = {"name": name, **origin, "phase": "quality_fusion", "cache": str(cache), "statistics": statistics,
           "regions": regions, "epochs": epochs, "lr": lr, "weight_decay": weight_decay, "dropout": dropout, "batch": batch,
           "seed": seed, "holdout": holdout}
    last, step = start_run(out_dir, name, run, model, opt, resume)
    g = torch.Generator().manual_seed(seed)
    n = len(train["y"])
    per_epoch = -(-n // batch)
    total = epochs * per_epoch
    for _ in range(step // per_epoch):
        torch.randperm(n, generator=g)  # replay the shuffles: a resumed run draws what it would have
    print(f"{n} versions to train on, {len(val.get('y', []))} held out; {per_epoch} steps per epoch")
    if val:
        print(json.dumps({"heldout_spearman_before": round(spearman(val["score"], val["y"]), 4)}))
    start = time.time()
    with (last.parent / "log.jsonl").open("a") as log:
        while step < total:
            order, loss_sum = torch.randperm(n, generator=g), 0.0
            fusion.train()
            for idx in order.split(batch):
                set_cosine_lr(opt, lr, step, total)
                x = F.dropout(train["x"][idx], dropout, training=True)
                loss = F.mse_loss(fusion(x), train["y"][idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                loss_sum += float(loss.detach())
                step += 1
            fusion.eval()
            record = {"step": step, "epoch": step // per_epoch, "seconds": round(time.time() - start, 1),
                      "loss": round(loss_sum / per_epoch, 5)}
            if val:
                with torch.no_grad():
                    p = fusion(val["x"])
                record["heldout_spearman"] = round(spearman(p, val["y"]), 4)
                record["heldout_mse"] = round(float(F.mse_loss(p, val["y"])), 5)
            log_epoch(log, record, last, model, opt, run)
    return last


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m restora.training.quality_fusion",
                                 description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="step", required=True)
    v = sub.add_parser("versions", help="write each image's versions and what the engine reads of them")
    add_cache_arguments(v, "weights whose reads are cached (default: the shipped)")
    v.add_argument("--shuffle", action="store_true",
                   help="take the images in a fixed random order (numpy default_rng(0)), not by name")
    v.add_argument("--restored", type=int, default=2, help="versions restored per image (default: %(default)s)")
    v.add_argument("--draw", type=int, default=0,
                   help="which draw of the versions (another seed per image; default: %(default)s)")
    f = sub.add_parser("fit", help="train the fusion on a cache folder")
    # 400 epochs at 1e-2, inputs dropped 5%: aio-v11's fit (100 at 3e-3, 10%) under-fitted
    # (5-fold cross-validation by image on 288 images: Spearman 0.888 -> 0.912)
    add_fit_arguments(f, epochs=400, lr=1e-2, batch=256, init_help="weights whose fusion is trained (default: the shipped)")
    f.add_argument("--no-statistics", dest="statistics", action="store_false",
                   help="train the fusion without the image statistics")
    f.add_argument("--no-regions", dest="regions", action="store_false",
                   help="train the fusion without the region statistics")
    f.add_argument("--weight-decay", type=float, default=0.05)
    f.add_argument("--dropout", type=float, default=0.05, help="share of inputs dropped in training")
    args = ap.parse_args(argv)
    if args.step == "versions":
        torch.set_num_threads(args.threads)
        paths = list(enumerate(list_images(args.data)))
        if args.shuffle:  # so that a --limit takes a subset spread over the whole folder
            paths = [paths[i] for i in np.random.default_rng(0).permutation(len(paths))]
        paths = paths[args.offset :]
        paths = paths[: args.limit] if args.limit is not None else paths
        n = write_versions(Engine(args.init, "cpu"), paths, args.out, args.restored, args.draw)
        print(f"{n} images' versions written to {args.out}")
    else:
        print(fit(args.cache, args.out, args.name, args.init or "default", args.statistics, args.regions,
                  args.epochs, args.lr, args.weight_decay, args.dropout, args.batch, args.seed, args.holdout, args.resume,
                  args.threads))


if __name__ == "__main__":
    main()
