"""Training configuration: one dataclass, read from and written to JSON."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path


@dataclass
class TrainConfig:
    name: str = "base-v0"
    architecture: str = "restoranet-v0"
    model: dict = field(default_factory=dict)  # the architecture's config; {} = its defaults
    data_dirs: list[str] = field(default_factory=lambda: ["train/bsds", "train/imagenet_half", "train/photos"])
    max_images: int = 0  # 0: every image in data_dirs
    val_dir: str = "val/bsds"
    val_images: int = 8
    patch: int = 64
    batch: int = 16
    steps: int = 8000
    lr: float = 1e-3
    min_lr: float = 1e-5
    seed: int = 0
    threads: int = 2
    # The network's arithmetic in training: "float32", or "bfloat16" (autocast: float32 master
    # weights and accumulation; the targets and metrics stay float32), faster on a CPU with
    # native bfloat16 and on recent GPUs; "auto": bfloat16 where native, else float32
    # (`restora.training.train.training_precision`).
    precision: str = "float32"
    # The mix of training samples (probabilities, normalised): clean, noise alone, another
    # degradation (maybe with noise), degradation CutMix; a degradation's name: that one over
    # the whole image (then maybe noise and JPEG; `restora.training.data.SyntheticBatches`).
    mix: dict = field(default_factory=lambda: {"clean": 0.1, "noise": 0.45, "single": 0.25, "cutmix": 0.2})
    # Chance that a synthetic sample is made grey (its noise the same in every channel).
    grey: float = 0.0
    # Folders of real pairs (``noisy/`` and ``clean/``, same names) for the mix's "pairs"; file
    # names starting with a ``pair_holdout`` prefix stay out of training (validation fields).
    pair_dirs: list[str] = field(default_factory=list)
    pair_holdout: list[str] = field(default_factory=list)
    loss_weights: dict = field(
        default_factory=lambda: {"uncertainty": 0.05, "segment": 0.05, "degradation": 0.05, "quality": 1.0,
                                 "estimator": 0.1}
    )
    # Rounds of restore-assess-repeat seen in training: 1 trains on degraded inputs only; 2 or
    # more also restores the model's own outputs and scores each round's true quality.
    self_rounds: int = 1
    # Also teach the quality head the true quality of the engine's second stage (the Wiener
    # refinement guided by the network's output), which the head underrates otherwise.
    refine_quality: bool = False
    # How much of the quality and degradation heads' gradient reaches the shared encoder. Their
    # gradient norm is 1-6x the restoration loss's there, and under Adam it would decide the
    # encoder's updates; the heads themselves always learn at full rate.
    quality_encoder_grad: float = 1.0
    # Which parameters train: "base" (phase I: everything), "adapters" (phase II: the low-rank
    # adapters only, blended by the true label maps; ``train_adapters`` limits it to some, e.g.
    # one new degradation), "heads" (phase III: the adapter estimator, quality and segmentation
    # heads, on frozen features), "segment" (the segmentation head alone, with its context
    # network: restoration and assessment stay exactly as they were), "physics" (the haze
    # model's transmission and airlight head alone, from the synthesis's true values) or
    # "light" (the low-light model's gain head alone, likewise) or "blur" (the blur model
    # alone, from the synthesis's true kernels).
    phase: str = "base"
    train_adapters: list[str] = field(default_factory=list)
    eval_every: int = 250
    checkpoint_every: int = 250

    @classmethod
    def load(cls, path: str | Path) -> "TrainConfig":
        data = json.loads(Path(path).read_text())
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"{path}: unknown config keys {sorted(unknown)}")
        return cls(**data)

    def dump(self) -> str:
        return json.dumps(asdict(self), indent=2)
