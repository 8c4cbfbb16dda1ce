"""Checkpoints without pickle: model and optimizer tensors in one safetensors file, the rest
(step, optimizer hyper-parameters, config) as JSON in its metadata."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn


def save_checkpoint(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, step: int, extra: dict) -> None:
    """Write atomically: a crash mid-write never leaves a broken checkpoint behind."""
    tensors = {f"model.{k}": v.detach().contiguous() for k, v in model.state_dict().items()}
    opt = optimizer.state_dict()
    for idx, state in opt["state"].items():
        for k, v in state.items():
            t = v if torch.is_tensor(v) else torch.tensor(v)
            tensors[f"optim.{idx}.{k}"] = t.detach().contiguous()
    meta = {"step": str(step), "param_groups": json.dumps(opt["param_groups"]), "extra": json.dumps(extra)}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=meta)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load_checkpoint(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer | None) -> tuple[int, dict]:
    """Restore model (and optimizer) state in place; return (step, extra)."""
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    if optimizer is not None:
        state: dict[int, dict] = {}
        for k, v in tensors.items():
            if k.startswith("optim."):
                _, idx, name = k.split(".", 2)
                state.setdefault(int(idx), {})[name] = v
        optimizer.load_state_dict({"state": state, "param_groups": json.loads(meta["param_groups"])})
    return int(meta["step"]), json.loads(meta.get("extra", "{}"))


def save_npz(path: Path, **arrays) -> None:
    """Write a compressed npz atomically: a stopped run never leaves a broken cache file behind."""
    import numpy as np

    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp.npz")
    os.close(fd)
    try:
        np.savez_compressed(tmp, **arrays)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def cached_files(folder: Path, step: str) -> list[Path]:
    """The cache files of a part fit's cache ``folder``, by name, without the temporary files
    a stopped `save_npz` may leave.

    Raises
    ------
    FileNotFoundError
        If there are none: the cache ``step`` (e.g. "composites") has not run.
    """
    files = sorted(f for f in folder.glob("*.npz") if not f.name.endswith(".tmp.npz"))
    if not files:
        raise FileNotFoundError(f"no {step} in {folder}: run the {step} step first")
    return files


def part_model(init: str | os.PathLike, part: str, changes: dict, widen: bool = False) -> tuple[nn.Module, dict]:
    """The model of weights ``init`` (a shipped name or a file) with its config ``changes``
    applied, every tensor loaded but those of ``part`` (a module name, e.g.
    "segment_fusion") that the changes add, with ``part``'s 2-D weights given zero columns
    for added inputs where ``widen`` (`restora.training.train.inputs_widened`: it starts as
    it was). Everything is frozen but ``part``. Returns the model and what a run's config records
    of it: its "architecture", its config ("model") and the weights' path ("init").

    Raises
    ------
    ValueError
        If a tensor of the weights is left over or one outside ``part`` is missing.
    """
    from ..engine.weights import load_state, resolve_weights
    from ..models import build_model
    from .train import inputs_widened

    info = resolve_weights(init)
    meta, state = load_state(info.path, info.sha256)
    config = {**json.loads(meta["config"]), **changes}
    model = build_model({"architecture": meta["architecture"], "config": json.dumps(config)})
    if widen:
        state = inputs_widened(state, model.state_dict(), (part + ".",))
    result = model.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not k.startswith(part + ".")]
    if missing or result.unexpected_keys:
        raise ValueError(f"{info.path} does not fit: missing {missing[:5]}, unexpected {list(result.unexpected_keys)[:5]}")
    for p in model.parameters():
        p.requires_grad_(False)
    for p in getattr(model, part).parameters():
        p.requires_grad_(True)
    return model, {"architecture": meta["architecture"], "model": config, "init": str(info.path)}


def set_cosine_lr(optimizer: torch.optim.Optimizer, lr: float, step: int, total: int) -> None:
    """Set every group's learning rate for ``step`` of ``total``: a part fit's cosine from
    ``lr`` down to ``lr / 100``."""
    for group in optimizer.param_groups:
        group["lr"] = lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * step / total)))


def log_epoch(log, record: dict, path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, run: dict) -> None:
    """End a part fit's epoch: ``record`` (its "step", loss, held-out scores) appended to the
    open ``log`` (JSON lines) and printed, then the checkpoint ``path`` written, ``run`` (the
    run's config) in its metadata, so that ``--resume`` and `restora.training.export` read it."""
    log.write(json.dumps(record) + "\n")
    log.flush()
    print(json.dumps(record), flush=True)
    save_checkpoint(path, model, optimizer, record["step"], {"config": json.dumps(run)})


def add_fit_arguments(parser, epochs: int, lr: float, batch: int, init_help: str) -> None:
    """The options every part fit takes (cache, runs folder, name, init, schedule, held-out
    share, threads, resume), with the part's own defaults."""
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True, help="runs folder")
    parser.add_argument("--name", required=True, help="run name (its folder under --out)")
    parser.add_argument("--init", default=None, help=init_help)
    parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument("--lr", type=float, default=lr)
    parser.add_argument("--batch", type=int, default=batch)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--holdout", type=float, default=0.1, help="share of the images held out (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--resume", action="store_true")


def add_cache_arguments(parser, init_help: str) -> None:
    """The options every part fit's cache step takes: the training images, the cache folder,
    a slice of the images (to split the work over processes), the weights read, threads."""
    parser.add_argument("--data", type=Path, required=True, help="folder of clean training images")
    parser.add_argument("--out", type=Path, required=True, help="cache folder")
    parser.add_argument("--limit", type=int, default=None, help="N images from --offset (default: all)")
    parser.add_argument("--offset", type=int, default=0, help="skip the first N images (to split the work)")
    parser.add_argument("--init", default="default", help=init_help)
    parser.add_argument("--threads", type=int, default=1)


def start_run(out_dir: Path, name: str, run: dict, model: nn.Module, optimizer: torch.optim.Optimizer,
              resume: bool) -> tuple[Path, int]:
    """Open a part fit's run folder ``out_dir / name`` (its ``config.json`` written from
    ``run``): the path of its last checkpoint and the step to start at, the checkpoint's
    (model and optimizer restored) where ``resume`` and one exists, else 0."""
    run_dir = out_dir / name
    last, step = run_dir / "last.safetensors", 0
    if resume and last.exists():
        step, _ = load_checkpoint(last, model, optimizer)
        print(f"resumed {last} at step {step}")
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps(run, indent=2) + "\n")
    return last, step
