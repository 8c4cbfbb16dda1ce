"""Train the segmentation fusion (`restora.models.segment_fusion`) on frozen weights.

The fusion reads what the whole engine computes for a segmentation: the network pass, the
rain, JPEG and blur models' maps (`restora.engine.Engine.segment_parts`), about 2 s per
0.15-megapixel composite on one CPU core. So training runs in two steps: ``composites``
writes each degradation CutMix composite of the training images (drawn as
`benchmarks/segment.py` draws them, `restora.degradations.cutmix_regions`, seeded by name)
with those parts to a cache folder, one file each, skipping the files already there (a
stopped run resumes); ``fit`` trains the fusion on the cache for some epochs, the rest of the
model frozen, with a checkpoint after each epoch (``--resume`` continues) that
`restora.training.export` ships::

    python -m restora.training.segment_fusion composites --data ../shared/data/train/bsds \\
        --out runs/segfusion-cache --draws 4 [--limit N] [--init W]
    python -m restora.training.segment_fusion fit --cache runs/segfusion-cache --out runs \\
        --name segfusion-v1 --init W [--hidden 32] [--epochs 24] [--resume]
    python -m restora.training.export runs/segfusion-v1/last.safetensors --name restora-aio \\
        --file restora-aio-v10.safetensors --grey-adapters noise

The loss is the cross-entropy of the fused map against the true labels at half resolution
(the fusion's grid is an eighth). The composites of the last ``--holdout`` share of the images
(by name) are left out of training, and the accuracy on them is logged after each epoch.
"""

from __future__ import annotations

import argparse
import time
import zlib
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..degradations import cutmix_regions, degradation_cutmix
from ..engine.engine import Engine
from ..io import list_images
from ..models.segment_fusion import fusion_maps
from .checkpoint import (add_cache_arguments, add_fit_arguments, cached_files, log_epoch, part_model, save_npz,
                         set_cosine_lr, start_run)
from .data import load_rgb

def composite(clean: torch.Tensor, seed: int) -> tuple[np.ndarray, np.ndarray, str]:
    """The uint8 (H, W, 3) degradation CutMix composite of ``clean`` (3, H, W; uint8) for
    ``seed``, its (H, W) uint8 labels and a description ("outside | inside")."""
    g = torch.Generator().manual_seed(seed)
    outside, inside = cutmix_regions(g)
    s = degradation_cutmix(clean.float() / 255, outside, inside, g)
    image = np.clip(np.round(s.degraded.permute(1, 2, 0).double().numpy() * 255), 0, 255).astype(np.uint8)
    return image, s.labels.numpy().astype(np.uint8), f"{'+'.join(outside) or 'clean'} | {'+'.join(inside)}"


def composite_seed(stem: str, draw: int, seed: int = 0) -> int:
    """The seed of draw ``draw`` of image ``stem`` (as `benchmarks/segment.py` seeds its own)."""
    return zlib.crc32(f"{seed}/{stem}/{draw}".encode())


def write_composites(engine: Engine, paths: list[Path], out: Path, draws: int, seed: int = 0) -> int:
    """Write ``draws`` composites of each image in ``paths`` with their segmentation parts to
    ``out`` (``STEM_DRAW.npz``), skipping those already there; return how many were written."""
    out.mkdir(parents=True, exist_ok=True)
    written = 0
    for i, path in enumerate(paths, 1):
        clean = None
        for d in range(draws):
            file = out / f"{path.stem}_{d}.npz"
            if file.exists():
                continue
            clean = load_rgb(path) if clean is None else clean
            image, labels, desc = composite(clean, composite_seed(path.stem, d, seed))
            x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
            with torch.no_grad():
                parts = engine.segment_parts(x)
            save_npz(file, image=image, labels=labels, head=parts["head"][0].half().numpy(),
                      moved=parts["moved"][0].half().numpy(), maps=parts["maps"][0].half().numpy(),
                      quality=np.float32(parts["quality"]), degradation=parts["degradation_probs"][0].numpy(),
                      colour=np.bool_(parts["colour"]), desc=desc)
            written += 1
        print(f"[{i}/{len(paths)}] {path.name}", flush=True)
    return written


def _half_res(t: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(t, 2, ceil_mode=True)


def load_cache(folder: Path, holdout: float = 0.1) -> tuple[list, list]:
    """The (train, held-out) examples of a cache folder: each (features, log of the moved
    probabilities at half resolution, labels at half resolution), float16 to keep the cache
    in memory. The composites of the last ``holdout`` share of the images (by name) are
    held out."""
    files = cached_files(folder, "composites")
    stems = sorted({f.stem.rsplit("_", 1)[0] for f in files})
    held = set(stems[len(stems) - int(round(holdout * len(stems))):]) if holdout > 0 else set()
    train, val = [], []
    for f in files:
        z = np.load(f)
        if not bool(z["colour"]):
            continue  # the fusion acts on colour images only
        t = lambda k: torch.from_numpy(z[k].astype(np.float32))[None]
        image = torch.from_numpy(z["image"]).permute(2, 0, 1)[None].float() / 255
        moved = t("moved")
        features = fusion_maps(image, moved, t("head"), t("maps"), t("degradation"), t("quality").reshape(1))
        labels = torch.from_numpy(z["labels"].astype(np.int64))[None, ::2, ::2]
        example = (features.half(), torch.log(_half_res(moved).clamp(min=1e-4)).half(), labels.to(torch.uint8))
        (val if f.stem.rsplit("_", 1)[0] in held else train).append(example)
    return train, val


def _batches(examples: list, batch: int, generator: torch.Generator | None) -> list[list]:
    """Batches of same-sized examples (shuffled when ``generator`` is given)."""
    groups = defaultdict(list)
    for i, (f, _, _) in enumerate(examples):
        groups[tuple(f.shape[-2:])].append(i)
    out = []
    for idx in groups.values():
        if generator is not None:
            idx = [idx[j] for j in torch.randperm(len(idx), generator=generator).tolist()]
        out += [idx[j : j + batch] for j in range(0, len(idx), batch)]
    if generator is not None:
        out = [out[j] for j in torch.randperm(len(out), generator=generator).tolist()]
    return out


def _stack(examples: list, idx: list[int], flip: bool = False):
    f, logp, labels = (torch.cat([examples[i][k] for i in idx]) for k in range(3))
    f, logp, labels = f.float(), logp.float(), labels.long()
    if flip:  # left-right: the degradations are symmetric so
        f, logp, labels = f.flip(-1), logp.flip(-1), labels.flip(-1)
    return f, logp, labels


def fused_logits(fusion, features: torch.Tensor, log_moved: torch.Tensor) -> torch.Tensor:
    """The fusion's logits at the size of ``log_moved`` (the log of the moved probabilities)."""
    return log_moved + fusion.correction(features, log_moved.shape[-2:])


@torch.no_grad()
def accuracy(fusion, examples: list) -> tuple[float, float]:
    """Pixel accuracy (at half resolution) of the fused and of the moved maps."""
    right = base = n = 0
    for idx in _batches(examples, 16, None):
        f, logp, labels = _stack(examples, idx)
        right += int((fused_logits(fusion, f, logp).argmax(1) == labels).sum())
        base += int((logp.argmax(1) == labels).sum())
        n += labels.numel()
    return right / max(n, 1), base / max(n, 1)


def fit(cache: Path, out_dir: Path, name: str, init: Path | None = None, hidden: int = 32, epochs: int = 24,
        lr: float = 2e-3, batch: int = 8, seed: int = 0, holdout: float = 0.1, resume: bool = False,
        threads: int = 2) -> Path:
    """Train the segmentation fusion of ``init``'s model (the shipped weights by default) on
    ``cache``; return the last checkpoint (``out_dir / name / last.safetensors``)."""
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    model, origin = part_model(init if init is not None else "default", "segment_fusion", {"segment_fusion": hidden})
    fusion = model.segment_fusion
    params = list(fusion.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=1e-4)
    train, val = load_cache(cache, holdout)
    if not train:
        raise ValueError(f"{cache} holds no colour composites to train on")
    run = {"name": name, **origin, "phase": "segment_fusion", "cache": str(cache), "hidden": hidden,
           "epochs": epochs, "lr": lr, "batch": batch, "seed": seed, "holdout": holdout}
    last, step = start_run(out_dir, name, run, model, opt, resume)
    g = torch.Generator().manual_seed(seed)
    per_epoch = len(_batches(train, batch, None))
    total = epochs * per_epoch
    for _ in range(step // per_epoch):
        _batches(train, batch, g)  # replay the shuffles: a resumed run draws what it would have
        torch.rand(per_epoch, generator=g)
    log = (last.parent / "log.jsonl").open("a")
    start = time.time()
    print(f"{len(train)} composites to train on, {len(val)} held out; {per_epoch} steps per epoch")
    while step < total:
        order, flips = _batches(train, batch, g), torch.rand(per_epoch, generator=g) < 0.5
        loss_sum = 0.0
        fusion.train()
        for j, idx in enumerate(order):
            set_cosine_lr(opt, lr * min(1.0, (step + 1) / per_epoch), step, total)  # after a one-epoch warm-up
            f, logp, labels = _stack(train, idx, bool(flips[j]))
            loss = F.cross_entropy(fused_logits(fusion, f, logp), labels)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += float(loss.detach())
            step += 1
        fusion.eval()
        record = {"step": step, "epoch": step // per_epoch, "seconds": round(time.time() - start, 1),
                  "loss": round(loss_sum / per_epoch, 5)}
        if val:
            record["heldout_accuracy"], record["heldout_moved_accuracy"] = (round(a, 4) for a in accuracy(fusion, val))
        log_epoch(log, record, last, model, opt, run)
    log.close()
    return last


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m restora.training.segment_fusion",
                                 description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="step", required=True)
    c = sub.add_parser("composites", help="write the composites and their segmentation parts")
    add_cache_arguments(c, "weights whose parts are read (default: the shipped)")
    c.add_argument("--draws", type=int, default=4, help="composites per image (default: %(default)s)")
    c.add_argument("--seed", type=int, default=0)
    f = sub.add_parser("fit", help="train the fusion on a cache folder")
    add_fit_arguments(f, epochs=24, lr=2e-3, batch=8, init_help="weights to add the fusion to (default: the shipped)")
    f.add_argument("--hidden", type=int, default=32)
    args = ap.parse_args(argv)
    if args.step == "composites":
        torch.set_num_threads(args.threads)
        paths = list_images(args.data)[args.offset :]
        paths = paths[: args.limit] if args.limit is not None else paths
        n = write_composites(Engine(args.init, "cpu"), paths, args.out, args.draws, args.seed)
        print(f"{n} composites written to {args.out}")
    else:
        print(fit(args.cache, args.out, args.name, args.init, args.hidden, args.epochs, args.lr, args.batch,
                  args.seed, args.holdout, args.resume, args.threads))


if __name__ == "__main__":
    main()
