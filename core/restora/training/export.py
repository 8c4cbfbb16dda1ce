"""Export a training checkpoint as shippable weights: model tensors only, in safetensors,
with the architecture in the metadata, then record its SHA-256 in a manifest.

``python -m restora.training.export runs/base-v0/last.safetensors --name restora-base
--file restora-base-v0.safetensors [--folder core/restora/weights] [--default] [--drop-adapters NAME ...] [--grey-adapters NAME ...]
[--blend image|region|pixel]``

``--drop-adapters`` leaves trained adapters out of the export (a model that has them minus those
is exactly the model with their weight held at zero): how an adapter that did not earn its
place is withdrawn without retraining the others; ``--grey-adapters`` keeps adapters that act on
grey images only (``RestoraNetConfig.grey_adapters``); ``--blend`` sets how the engine blends the
adapters (``RestoraNetConfig.adapter_blend``; the tensors are the same whichever).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from safetensors import safe_open
from safetensors.torch import save_file

from ..engine.weights import SHIPPED_DIR, sha256_file
from ..models import build_model, model_metadata
from ..models.restoranet import ADAPTER_BLENDS


def drop_adapters(model_config: dict, state: dict, names: list[str]) -> tuple[dict, dict]:
    """The model config and tensors without the adapters ``names`` (and their estimator class)."""
    adapters = list(model_config.get("adapters", ()))
    unknown = [n for n in names if n not in adapters]
    if unknown:
        raise ValueError(f"cannot drop {unknown}: the model's adapters are {adapters}")
    rank = int(model_config.get("adapter_rank", 8))
    gone = {adapters.index(n) for n in names}
    keep = [j for j in range(len(adapters) * rank) if j // rank not in gone]
    classes = [0] + [i + 1 for i in range(len(adapters)) if i not in gone]  # class 0: no adapter
    out = {}
    for k, v in state.items():
        if k.startswith("adapters.") and k.endswith(".down.weight"):
            v = v[keep]
        elif k.startswith("adapters.") and k.endswith(".up.weight"):
            v = v[:, keep]
        elif k.startswith("estimator.2."):  # the estimator's last conv: one output per class
            v = v[classes]
        out[k] = v.contiguous()
    return {**model_config, "adapters": [a for a in adapters if a not in names]}, out


def export(checkpoint: Path, folder: Path, name: str, file: str, make_default: bool = False,
           half: bool = False, drop: list[str] = (), grey: list[str] = (), blend: str | None = None) -> Path:
    with safe_open(str(checkpoint), framework="pt") as f:
        meta = f.metadata()
        model_tensors = {k[6:]: f.get_tensor(k) for k in f.keys() if k.startswith("model.")}
    config = json.loads(json.loads(meta["extra"])["config"])
    if drop:
        config["model"], model_tensors = drop_adapters(config["model"], model_tensors, list(drop))
    if grey:
        config["model"] = {**config["model"], "grey_adapters": list(grey)}
    if blend:
        config["model"] = {**config["model"], "adapter_blend": blend}
    model = build_model({"architecture": config["architecture"], "config": json.dumps(config["model"])})
    model.load_state_dict(model_tensors)  # proves the tensors fit the architecture
    tensors = {k: (v.half() if half else v).contiguous() for k, v in model.state_dict().items()}
    out = folder / file
    folder.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out), metadata=model_metadata(
        config["architecture"], model, training_run=config["name"], training_steps=meta["step"],
        **({"dropped_adapters": ",".join(drop)} if drop else {})))
    manifest_path = folder / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {"weights": {}}
    manifest["weights"][name] = {"file": file, "sha256": sha256_file(out), "architecture": config["architecture"]}
    if make_default or "default" not in manifest:
        manifest["default"] = name
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m restora.training.export", description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("--name", required=True, help="manifest name, e.g. restora-base")
    ap.add_argument("--file", required=True, help="file name, e.g. restora-base-v0.safetensors")
    ap.add_argument("--folder", type=Path, default=SHIPPED_DIR)
    ap.add_argument("--default", action="store_true", help="make these the default weights")
    ap.add_argument("--half", action="store_true", help="store float16 (half the size)")
    ap.add_argument("--drop-adapters", nargs="+", default=[], metavar="NAME", help="leave these adapters out")
    ap.add_argument("--grey-adapters", nargs="+", default=[], metavar="NAME", help="these adapters act on grey images only")
    ap.add_argument("--blend", choices=ADAPTER_BLENDS, help="how adapters are blended (default: the run's)")
    args = ap.parse_args(argv)
    print(export(args.checkpoint, args.folder, args.name, args.file, args.default, args.half, args.drop_adapters,
                 args.grey_adapters, args.blend))


if __name__ == "__main__":
    main()
