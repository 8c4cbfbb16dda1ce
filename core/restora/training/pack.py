"""Pack a subset of the training data into a folder small enough to travel with the repository
to a machine that cannot read ``../shared/data`` (a lent GPU takes 64 MiB in all).

The pack keeps the data root's layout (``train/bsds``, ``train/w2s/noisy`` and ``clean``,
``val/bsds``, ...), so a run reads it with ``--data PACK`` and its config unchanged. Files are
copied byte for byte (re-encoding would add JPEG artefacts to the clean targets); each folder
gets its share of the budget, filled from a seeded shuffle of its files (pairs folders by
pair, both halves or neither). Held-out pairs (a config's ``pair_holdout``) are never packed,
and the validation folder is packed whole, first. ``manifest.json`` lists every file with its
size and SHA-256. The pack is written beside ``out`` and renamed into place when complete.

    python -m restora.training.pack --data ../shared/data --out runs/pack --budget-mb 44
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import shutil
from pathlib import Path

from ..io import list_images

__all__ = ["DEFAULT_SHARES", "pack"]

# Shares of the budget left after the validation folder: the photographs most of the phases
# crop from, and the W2S pairs that the microscopy phases need.
DEFAULT_SHARES = {"train/bsds": 0.4, "train/imagenet_half": 0.2, "train/photos": 0.1, "train/w2s": 0.3}
W2S_HOLDOUT = tuple(f"fov{i:03d}" for i in range(71, 81))


def _units(folder: Path, holdout: tuple[str, ...]) -> list[list[Path]]:
    """A folder's files as packing units: single images, or (noisy, clean) pairs."""
    noisy, clean = folder / "noisy", folder / "clean"
    if noisy.is_dir() and clean.is_dir():
        return [[p, clean / p.name] for p in list_images(noisy)
                if not p.name.startswith(holdout) and (clean / p.name).is_file()]
    return [[p] for p in list_images(folder)]


def pack(data: Path, out: Path, budget_mb: float, shares: dict[str, float] | None = None,
         val_dir: str = "val/bsds", holdout: tuple[str, ...] = W2S_HOLDOUT, seed: int = 0,
         overwrite: bool = False) -> dict:
    """Copy a subset of the data root ``data`` into ``out``; return the manifest.

    Parameters
    ----------
    data : Path
        The data root (``train/...``, ``val/...``).
    out : Path
        The pack's folder; an existing one is replaced only with ``overwrite``.
    budget_mb : float
        The pack's largest size in MiB, the validation folder included.
    shares : dict of str to float, optional
        Folders (relative to ``data``) and their shares of what the validation folder leaves;
        normalised. Default `DEFAULT_SHARES`; a missing folder is an error.
    val_dir : str
        Folder packed whole, first ("" for none).
    holdout : tuple of str
        File-name prefixes of pairs never packed (held out for validation).
    seed : int
        Seed of the shuffle that picks each folder's files.
    overwrite : bool
        Replace an existing ``out``.

    Returns
    -------
    dict
        ``{"budget_mb", "seed", "folders": {folder: {"files", "bytes"}}, "files": {path: {"bytes",
        "sha256"}}}``, as written to ``out / "manifest.json"``.
    """
    data, out = Path(data), Path(out)
    shares = dict(DEFAULT_SHARES if shares is None else shares)
    if budget_mb <= 0:
        raise ValueError(f"budget_mb must be positive, got {budget_mb}")
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists (pass overwrite=True, or --overwrite, to replace it)")
    if out.resolve() == data.resolve() or data.resolve() in out.resolve().parents:
        raise ValueError(f"the pack {out} must not lie inside the data root {data}")
    missing = [f for f in [*shares, *([val_dir] if val_dir else [])] if not (data / f).is_dir()]
    if missing:
        raise FileNotFoundError(f"not in {data}: {', '.join(missing)}")
    budget = int(budget_mb * 2**20)
    chosen: dict[str, list[Path]] = {}
    if val_dir:
        chosen[val_dir] = [p for unit in _units(data / val_dir, ()) for p in unit]
        budget -= sum(p.stat().st_size for p in chosen[val_dir])
        if budget < 0:
            raise ValueError(f"{val_dir} alone is larger than {budget_mb} MiB")
    total = sum(shares.values())
    for folder, share in shares.items():
        units = _units(data / folder, holdout)
        random.Random(f"{seed}/{folder}").shuffle(units)
        allowed, files = budget * share / total, []
        for unit in units:
            size = sum(p.stat().st_size for p in unit)
            if size <= allowed:
                files += unit
                allowed -= size
        chosen[folder] = sorted(files)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    manifest: dict = {"budget_mb": budget_mb, "seed": seed, "folders": {}, "files": {}}
    for folder, files in chosen.items():
        nbytes = 0
        for src in files:
            rel = src.relative_to(data).as_posix()
            dst = tmp / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
            content = dst.read_bytes()
            manifest["files"][rel] = {"bytes": len(content), "sha256": hashlib.sha256(content).hexdigest()}
            nbytes += len(content)
        manifest["folders"][folder] = {"files": len(files), "bytes": nbytes}
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return manifest


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m restora.training.pack", description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"), help="data root (default: %(default)s)")
    ap.add_argument("--out", type=Path, required=True, help="the pack's folder (keep it git-ignored, e.g. runs/pack)")
    ap.add_argument("--budget-mb", type=float, default=44.0, help="largest size in MiB (default: %(default)s)")
    ap.add_argument("--share", action="append", metavar="FOLDER=SHARE",
                    help="a folder and its share of the budget, repeatable (default: "
                         + ", ".join(f"{k}={v}" for k, v in DEFAULT_SHARES.items()) + ")")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--overwrite", action="store_true", help="replace an existing pack")
    args = ap.parse_args(argv)
    shares = None
    if args.share:
        try:
            shares = {k: float(v) for k, v in (s.split("=", 1) for s in args.share)}
        except ValueError:
            ap.error(f"--share wants FOLDER=SHARE, got {args.share}")
    try:
        manifest = pack(args.data, args.out, args.budget_mb, shares, seed=args.seed, overwrite=args.overwrite)
    except (ValueError, FileExistsError, FileNotFoundError) as e:
        raise SystemExit(f"error: {e}") from None
    for folder, f in manifest["folders"].items():
        print(f"{folder}: {f['files']} files, {f['bytes'] / 2**20:.1f} MiB")
    print(f"wrote {args.out} ({sum(f['bytes'] for f in manifest['folders'].values()) / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
