"""The training loop: ``python -m restora.training.train CONFIG --data ../shared/data``.

The config's ``phase`` picks what trains: phase I, ``base``, the whole network (restoration,
uncertainty, quality and segmentation heads) on synthetic and CutMix data; phase II,
``adapters``, only the per-degradation low-rank adapters, each blended by the true label map
(``train_adapters`` names the ones to train, e.g. one new degradation); phase III, ``heads``,
the adapter estimator (if any) with the quality and segmentation heads, on frozen features
(also how a retrained encoder's heads are re-fitted); ``segment``, the segmentation head alone
(with its context network, ``model.segment_context``), on frozen features blended as at
inference, which changes no restoration and no assessment; ``physics``, the haze model's head
alone (``model.haze_model``: transmission and airlight), on the same frozen features, from the
synthesis's true transmission and airlight; ``light``, the low-light model's head alone
(``model.light_model``: the gain that undoes the exposure), likewise; ``blur``, the blur model
alone (``model.blur_model``: which bank kernel blurred the image), from its power spectrum,
which needs no network pass; ``exposure``, the exposure model alone (``model.exposure_model``:
whether the whole image is under-exposed and by how much), from its brightness quantiles,
likewise; ``fusion``, the quality fusion alone (``model.quality_fusion``: the reported quality,
the quality head's corrected from the blur and exposure models); ``jpeg``, the JPEG model alone
(``model.jpeg_model``), on crops JPEG-coded at random qualities and grid offsets
(`restora.training.data.JpegBatches`), against the image before the coding; ``rain``, the rain
model alone (``model.rain_model``: the streak layer of the screen blend), on crops with and
without the synthesis's rain (`restora.training.data.RainBatches`), against the true layer.
Checkpoints every few hundred steps; ``--resume`` picks up
the last one, ``--init`` starts from shipped weights. Logs are JSON lines beside the checkpoints.
"""

from __future__ import annotations

import argparse
import json
import math
import time
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

from .._names import DEGRADATIONS, SEGMENT_CLASSES
from ..degradations import unscreen
from ..engine.dehaze import dehaze
from ..engine.engine import PRECISIONS, native_bfloat16
from ..engine.lowlight import brighten
from ..engine.readings import fusion_readings
from ..engine.refine import refine_noise
from ..io import list_images
from ..metrics import float32, psnr, quality_target
from ..models import build_model
from ..models.jpeg import find_jpeg, grid_position
from ..models.quality_fusion import fusion_inputs
from ..models.rain import MAX_LAYER, STREAK, rain_share
from .checkpoint import load_checkpoint, save_checkpoint
from .config import TrainConfig
from .data import JpegBatches, RainBatches, SyntheticBatches, pair_paths, to_8bit, validation_set

PHASES = ("base", "adapters", "heads", "segment", "physics", "light", "blur", "exposure", "fusion", "jpeg", "rain")
SEGMENT_PARTS = ("segment_head.", "segment_film.", "segment_in.", "segment_mid.", "segment_out.", "segment_cues_in.")
HAZE_PARTS = ("haze_film.", "haze_in.", "haze_mid.", "haze_out.", "airlight_head.")
LIGHT_PARTS = ("light_film.", "light_in.", "light_mid.", "light_out.", "exposure_head.")
BLUR_PARTS = ("blur_model.",)
EXPOSURE_PARTS = ("exposure_model.",)
FUSION_PARTS = ("quality_fusion.",)
JPEG_PARTS = ("jpeg_model.",)
RAIN_PARTS = ("rain_model.",)


def adapter_targets(labels: torch.Tensor, adapters: tuple[str, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """From (B, H, W) labels (indices into SEGMENT_CLASSES): the true adapter weights
    (B, len(adapters), H/2, W/2), each pixel's share of every adapter's degradation, and the
    estimator's class targets (B, H/2, W/2): 0 for pixels no adapter covers, else 1 + index."""
    cls = torch.tensor([SEGMENT_CLASSES.index(a) for a in adapters], device=labels.device)
    onehot = (labels[:, None] == cls[:, None, None]).float()
    weights = F.avg_pool2d(onehot, 2)
    half = labels[:, ::2, ::2]
    target = torch.zeros_like(half)
    for i, c in enumerate(cls):
        target[half == c] = i + 1
    return weights, target


def segment_losses(model, degraded: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """The ``segment`` phase's loss: cross-entropy of the segmentation against the true label
    map, the features frozen (computed without gradient), and the batch's pixel accuracy."""
    with torch.no_grad():
        d2, latent = model.half_features(degraded)
    logits = model.segment_from_features(d2, latent, degraded)
    loss = F.cross_entropy(logits, labels)
    accuracy = (logits.detach().argmax(1) == labels).float().mean()
    return {"segment": loss, "segment_accuracy": accuracy, "total": loss}


def _frozen_features(model, degraded: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """What the physical models' heads read, without gradient (the features stay frozen): the
    decoder's half-resolution features and the image-level context."""
    with torch.no_grad():
        d2, latent = model.half_features(degraded)
        return d2, model.context_from_stats(*model.latent_stats(latent))


def _masked_l1(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of (B, 3, H, W) images over the pixels where ``mask`` (B, 1, H, W) is 1."""
    return ((a - b).abs() * mask).sum() / (3 * mask.sum()).clamp(min=1)


def physics_losses(model, degraded, clean, transmission, airlight, present) -> dict[str, torch.Tensor]:
    """The ``physics`` phase's losses, the features frozen: L1 of the transmission (B, 1, H, W)
    everywhere (1 where there is no haze, so the inversion leaves those pixels alone), L1 of
    the airlight (B, 3) on hazy images, and L1 of the inverted image against the clean one
    on hazy pixels (the error that the division by t amplifies), inverted as the engine does."""
    d2, context = _frozen_features(model, degraded)
    t = model.transmission_from_features(degraded, d2, context)
    a = model.airlight(context)
    hazy = present[:, DEGRADATIONS.index("haze")]
    losses = {"transmission": F.l1_loss(t, transmission),
              "airlight": ((a - airlight).abs().mean(1) * hazy).sum() / hazy.sum().clamp(min=1)}
    inverted = dehaze(degraded, t, a)
    mask = (transmission < 0.99).float()
    losses["inverted"] = _masked_l1(inverted, clean, mask)
    losses["total"] = losses["transmission"] + losses["airlight"] + losses["inverted"]
    return losses


def light_losses(model, degraded, clean, gain) -> dict[str, torch.Tensor]:
    """The ``light`` phase's losses, the features frozen: L1 of the log gain (B, 1, H, W)
    everywhere (0 where there is no low light, so brightening leaves those pixels alone) and
    L1 of the brightened image against the clean one on low-light pixels, brightened as the
    engine does (the noise stays: the network's next round removes it)."""
    d2, context = _frozen_features(model, degraded)
    log_gain = model.log_gain_from_features(degraded, d2, context)
    losses = {"log_gain": F.l1_loss(log_gain, gain.log())}
    mask = (gain > 1.01).float()
    brightened = brighten(degraded, log_gain)
    losses["brightened"] = _masked_l1(brightened, clean, mask)
    losses["total"] = losses["log_gain"] + losses["brightened"]
    return losses


def blur_losses(model, degraded: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """The ``blur`` phase's loss: cross-entropy of the blur model's bank logits against the
    nearest bank kernel (`restora.training.data.blur_target`; -1, partial blur, is left out),
    and the batch's accuracy at telling blurred from not blurred."""
    logits = model.blur_model(degraded)
    loss = F.cross_entropy(logits, target, ignore_index=-1)
    known = target >= 0
    said = logits.detach().argmax(1)[known] > 0
    accuracy = (said == (target[known] > 0)).float().mean() if known.any() else loss.new_zeros(())
    return {"blur": loss, "blur_accuracy": accuracy, "total": loss}


def exposure_losses(model, degraded: torch.Tensor, flag: torch.Tensor, log_gain: torch.Tensor) -> dict[str, torch.Tensor]:
    """The ``exposure`` phase's losses: binary cross-entropy of the exposure model's logit
    against whether the whole image is under-exposed (`restora.training.data.exposure_target`;
    -1 is left out), L1 of its log gain on the under-exposed images (the log of the
    brightened image's error, roughly), and the batch's accuracy."""
    logit, predicted = model.exposure_model(degraded)
    known, dark = flag >= 0, flag == 1
    bce = (F.binary_cross_entropy_with_logits(logit[known], flag[known].float()) if known.any()
           else logit.new_zeros(()))
    l1 = (predicted[dark] - log_gain[dark].to(predicted)).abs().mean() if dark.any() else logit.new_zeros(())
    accuracy = ((logit.detach()[known] > 0) == dark[known]).float().mean() if known.any() else logit.new_zeros(())
    return {"exposed": bce, "log_gain": l1, "exposure_accuracy": accuracy, "total": bce + 4 * l1}


def jpeg_losses(model, degraded: torch.Tensor, before: torch.Tensor, quality: torch.Tensor,
                offset: torch.Tensor) -> dict[str, torch.Tensor]:
    """The ``jpeg`` phase's loss: L1 of the JPEG model's restoration of ``degraded`` (B, 3, H,
    W), coded at IJG ``quality`` (B,) on the grid at ``offset`` (B, 2), against the image
    before the coding; and, reported, its PSNR gain over the input."""
    position = torch.cat([grid_position(degraded.shape[-2:], (int(oy), int(ox)), device=degraded.device)
                          for oy, ox in offset.tolist()])
    restored = model.jpeg_model(degraded, position, quality)
    l1 = F.l1_loss(restored, before)
    with torch.no_grad():
        gain = float32(psnr)(restored.clamp(0, 1), before).mean() - float32(psnr)(degraded, before).mean()
    return {"jpeg_l1": l1, "jpeg_gain_db": gain, "total": l1}


def rain_losses(model, rainy: torch.Tensor, target: torch.Tensor, layer: torch.Tensor) -> dict[str, torch.Tensor]:
    """The ``rain`` phase's loss: the squared error of the rain model's layer of ``rainy``
    (B, 3, H, W) against the true ``layer`` (B, 1, H, W), unclamped (a clamp passes no
    gradient to a pixel below 0), plus that of the screen blend's inverse by it against
    ``target``, both x 100, plus 0.1 x the cross-entropy of its streak logit against the true
    layer reaching `STREAK`; and, reported, the inverse's PSNR gain over the rainy crops and
    the share of the rainless crops called streaks.

    Squared, not absolute: streaks cover a few percent of the pixels, so the median of the
    layer wherever the model is unsure is 0, and with L1 it learned exactly that (+0.006 dB
    after 1,000 steps of 16 x 128, every output within 1e-4 of 0); the mean is the expected
    streak, which also maximises PSNR. That mean is above 0 wherever the model hesitates
    (texture, edges), so whether there is rain is the streak classifier's to say."""
    raw = model.rain_model.raw(rainy).float()
    r = torch.minimum(raw[:, :1].clamp(0, MAX_LAYER), rainy.amin(1, keepdim=True))
    restored = unscreen(rainy, r).clamp(0, 1)
    layer_err = 100 * F.mse_loss(raw[:, :1], layer)
    image_err = 100 * F.mse_loss(restored, target)
    on = (layer >= STREAK).float()
    streak_bce = F.binary_cross_entropy_with_logits(raw[:, 1:], on)
    with torch.no_grad():
        wet = on.amax((1, 2, 3)) > 0
        gain = (float32(psnr)(restored[wet], target[wet]).mean() - float32(psnr)(rainy[wet], target[wet]).mean()
                if wet.any() else raw.new_zeros(()))
        # how much of a rainless crop the model calls streaks (it should be none)
        dry = ~wet
        false = rain_share(torch.sigmoid(raw[dry, 1:])).mean() if dry.any() else raw.new_zeros(())
        found = ((raw[:, 1:] > 0).float() * on).sum() / on.sum().clamp(min=1)
    return {"rain_layer_mse": layer_err, "rain_image_mse": image_err, "rain_streak_bce": streak_bce,
            "rain_gain_db": gain, "rain_false_share": false, "rain_streak_recall": found,
            "total": layer_err + image_err + 0.1 * streak_bce}


def crop_readings(model, x: torch.Tensor) -> torch.Tensor:
    """`restora.engine.readings.fusion_readings` of crops ``x`` (B, 3, H, W), each read whole:
    the rain model untiled, the JPEG grid by `find_jpeg`."""
    shares = (rain_share(model.rain_model(x)[:, 1:]) if getattr(model, "rain_model", None) is not None
              else x.new_zeros(x.shape[0]))
    return fusion_readings(x, shares, [find_jpeg(x[i : i + 1].cpu().float()) for i in range(x.shape[0])])


def fusion_losses(model, degraded: torch.Tensor, clean: torch.Tensor, self_rounds: int = 1) -> dict[str, torch.Tensor]:
    """The ``fusion`` phase's loss, everything else frozen: squared error of the fused quality
    against the full-reference quality target, beside the quality head's own (``head``, for
    the log). A fusion with readings reads crops rounded to 8 bits, as the images it will
    read are (a float crop's noise level is 0, an 8-bit one's never is). With ``self_rounds``
    of 2 or more, the second half of the batch is the network's own restoration of it, so that
    the fusion also learns the quality of the loop's results, whose scores it reports."""
    reads = getattr(model.quality_fusion, "reads", False)
    with torch.no_grad():
        if self_rounds >= 2:
            half = max(1, degraded.shape[0] // 2)
            restored = model(degraded[half:])["restored"].float().clamp(0, 1)
            degraded = torch.cat([degraded[:half], restored])
        if reads:
            degraded = to_8bit(degraded)
        quality, logits = model.assess(degraded)
        readings = crop_readings(model, degraded) if reads else None
        features = fusion_inputs(model, degraded, quality, torch.sigmoid(logits), readings)
        target = quality_target(degraded, clean)
    loss = F.mse_loss(model.quality_fusion(features), target)
    return {"fusion": loss, "head": F.mse_loss(quality, target), "total": loss}


def compute_losses(model, degraded, clean, labels, present, weights: dict, self_rounds: int = 1,
                   phase: str = "base", refine_quality: bool = False, physics: tuple = ()) -> dict[str, torch.Tensor]:
    """All training losses of one batch.

    With ``self_rounds`` of 2 or more, half the batch goes round again (restore, assess,
    repeat): the network restores its own detached output towards the clean target, and the
    quality head learns the true quality of each round's output, so the loop cannot fool itself.
    With ``refine_quality`` it also learns the quality of the engine's second stage (the
    Wiener refinement of the input guided by that output), which it underrates otherwise.
    In the ``adapters`` phase the adapters are blended by the true label map (teacher forcing);
    with adapters, the estimator learns that map by cross-entropy.
    """
    if phase == "segment":
        return segment_losses(model, degraded, labels)
    if phase == "blur":
        if len(physics) != 1:
            raise ValueError("the blur phase needs the blur targets (SyntheticBatches(blur=True))")
        return blur_losses(model, degraded, physics[0])
    if phase == "fusion":
        return fusion_losses(model, degraded, clean, self_rounds)
    if phase == "jpeg":
        if len(physics) != 2:
            raise ValueError("the jpeg phase needs the coding's quality and grid (JpegBatches)")
        return jpeg_losses(model, degraded, clean, *physics)
    if phase == "rain":
        if len(physics) != 1:
            raise ValueError("the rain phase needs the true rain layer (RainBatches)")
        return rain_losses(model, degraded, clean, physics[0])
    if phase == "exposure":
        if len(physics) != 2:
            raise ValueError("the exposure phase needs the exposure targets (SyntheticBatches(exposure=True))")
        return exposure_losses(model, degraded, *physics)
    if phase in ("physics", "light"):
        if len(physics) != 3:
            raise ValueError(f"the {phase} phase needs the true transmission, airlight and light gain "
                             "(SyntheticBatches(physics=True))")
        if phase == "light":
            return light_losses(model, degraded, clean, physics[2])
        return physics_losses(model, degraded, clean, *physics[:2], present)
    adapters = getattr(model.config, "adapters", ())
    true_w, est_target = adapter_targets(labels, adapters) if adapters else (None, None)
    forced = true_w if phase == "adapters" else None
    out = model(degraded, adapter_weights=forced) if adapters else model(degraded)
    restored = out["restored"]
    losses = {"restore": F.l1_loss(restored, clean)}
    if adapters:
        losses["estimator"] = F.cross_entropy(out["estimator_logits"], est_target)
    err = (restored - clean).abs().mean(1, keepdim=True).detach()
    s = out["log_error"]
    losses["uncertainty"] = (err * torch.exp(-s) + s).mean()  # Laplace NLL: exp(s) -> E|error|
    losses["segment"] = F.cross_entropy(out["segment_logits"], labels)
    losses["degradation"] = F.binary_cross_entropy_with_logits(out["degradation_logits"], present)
    with torch.no_grad():
        t_in = quality_target(degraded, clean)
    losses["quality"] = F.mse_loss(out["quality"], t_in)
    half = max(1, degraded.shape[0] // 2)
    own, target = restored[:half].detach().clamp(0, 1), clean[:half]
    own_w = None if forced is None else forced[:half]
    for _ in range(1, self_rounds):
        nxt = model(own, adapter_weights=own_w) if adapters else model(own)
        losses["restore"] = losses["restore"] + 0.5 * F.l1_loss(nxt["restored"], target) / (self_rounds - 1)
        with torch.no_grad():
            t_own = quality_target(own, target)
        losses["quality"] = losses["quality"] + F.mse_loss(nxt["quality"], t_own)
        own = nxt["restored"].detach().clamp(0, 1)
    # The quality head learns the full-reference quality of degraded inputs AND of the model's
    # own (last) outputs.
    q_own, _ = model.assess(own)
    with torch.no_grad():
        t_own = quality_target(own, target)
    losses["quality"] = losses["quality"] + F.mse_loss(q_own, t_own)
    if refine_quality:
        with torch.no_grad():
            noisy = degraded[:half]
            refined = float32(refine_noise)(noisy, own).clamp(0, 1)  # the engine's stage, without the segment map
            t_ref = quality_target(refined, target)
        losses["quality"] = losses["quality"] + F.mse_loss(model.assess(refined)[0], t_ref)
    losses["total"] = losses["restore"] + sum(weights.get(k, 1.0) * losses[k] for k in losses if k != "restore")
    return losses


def inputs_widened(state: dict, target: dict, parts: tuple[str, ...]) -> dict:
    """``state`` with each 2-D weight of ``parts`` that has fewer input columns than
    ``target``'s padded with zero columns: a layer given more inputs (the quality fusion's
    readings) starts as it was, blind to them."""
    state = dict(state)
    for name, w in state.items():
        t = target.get(name)
        if (name.startswith(parts) and t is not None and w.ndim == 2 and t.ndim == 2
                and w.shape[0] == t.shape[0] and w.shape[1] < t.shape[1]):
            state[name] = torch.cat([w, w.new_zeros(w.shape[0], t.shape[1] - w.shape[1])], 1)
    return state


def residual_blocks_added(model, missing_keys: list[str], new_parts: tuple[str, ...] = ()) -> tuple[str, ...]:
    """Prefixes of the residual blocks that the init weights lack entirely (a grown model, e.g.
    more ``full_blocks``), after zeroing each one's last conv so that it starts as the identity
    and the grown model starts exactly where the init weights were. Blocks inside
    ``new_parts`` (prefixes of parts a phase adds whole, e.g. the JPEG model) keep their own
    initialisation."""
    from ..models.blocks import ResBlock

    missing, grown = set(missing_keys), []
    for name, module in model.named_modules():
        if (isinstance(module, ResBlock) and not (name + ".").startswith(new_parts)
                and {f"{name}.{k}" for k in module.state_dict()} <= missing):
            with torch.no_grad():
                module.conv2.weight.zero_()
                module.conv2.bias.zero_()
            grown.append(name + ".")
    return tuple(grown)


def trainable_parameters(model, phase: str, train_adapters: list[str]) -> tuple[list, dict]:
    """The parameters that ``phase`` trains (the rest are frozen) and gradient masks that keep
    adapters outside ``train_adapters`` (when given) fixed."""
    if phase not in PHASES:
        raise ValueError(f"unknown phase {phase!r}; choose from {PHASES}")
    adapters = getattr(model.config, "adapters", ())
    if phase == "adapters" and not adapters:
        raise ValueError(f"phase {phase!r} needs a model with adapters (config model.adapters)")
    unknown = set(train_adapters) - set(adapters)
    if unknown:
        raise ValueError(f"train_adapters {sorted(unknown)} are not adapters of the model {adapters}")
    prefixes = {"base": ("",), "adapters": ("adapters.",),
                "heads": ("estimator.", "quality_head.") + SEGMENT_PARTS, "segment": SEGMENT_PARTS,
                "physics": HAZE_PARTS, "light": LIGHT_PARTS, "blur": BLUR_PARTS,
                "exposure": EXPOSURE_PARTS, "fusion": FUSION_PARTS, "jpeg": JPEG_PARTS,
                "rain": RAIN_PARTS}[phase]
    if phase == "physics" and not getattr(model.config, "haze_model", 0):
        raise ValueError(f"phase {phase!r} needs a model with a haze model (config model.haze_model)")
    if phase == "light" and not getattr(model.config, "light_model", 0):
        raise ValueError(f"phase {phase!r} needs a model with a low-light model (config model.light_model)")
    if phase == "blur" and not getattr(model.config, "blur_model", 0):
        raise ValueError(f"phase {phase!r} needs a model with a blur model (config model.blur_model)")
    if phase == "fusion" and not getattr(model.config, "quality_fusion", 0):
        raise ValueError(f"phase {phase!r} needs a model with a quality fusion (config model.quality_fusion)")
    if phase == "jpeg" and not getattr(model.config, "jpeg_model", 0):
        raise ValueError(f"phase {phase!r} needs a model with a JPEG model (config model.jpeg_model)")
    if phase == "rain" and not getattr(model.config, "rain_model", 0):
        raise ValueError(f"phase {phase!r} needs a model with a rain model (config model.rain_model)")
    if phase == "exposure" and not getattr(model.config, "exposure_model", 0):
        raise ValueError(f"phase {phase!r} needs a model with an exposure model (config model.exposure_model)")
    params = []
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith(prefixes))
        if p.requires_grad:
            params.append(p)
    masks = {}
    if phase == "adapters" and train_adapters:
        for layer, module in model.adapters.items():
            for pname, mask in module.gradient_mask(set(train_adapters)).items():
                masks[f"adapters.{layer}.{pname}"] = mask
    return params, masks


@torch.no_grad()
def evaluate(model, noisy: torch.Tensor, clean: torch.Tensor) -> dict[str, float]:
    model.eval()
    out = model(noisy)
    model.train()
    return {
        "val_psnr_in": float(psnr(noisy, clean).mean()),
        "val_psnr_out": float(psnr(out["restored"].clamp(0, 1), clean).mean()),
    }


def training_precision(precision: str, device: torch.device) -> str:
    """The arithmetic a run trains in: ``precision`` ("float32", "bfloat16" or "auto"), with
    "auto" taking bfloat16 where it is native (a CPU with AVX512-BF16 or AMX, a CUDA GPU that
    supports it) and float32 elsewhere. bfloat16 asked for on a CPU that emulates it is kept
    (the run's numbers stay the config's) but warned about: there a step took 30 s against
    float32's 1.3-1.7 (a JPEG-phase run on 2 AVX2 cores)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(map(repr, PRECISIONS))}, got {precision!r}")
    native = native_bfloat16(device) or (device.type == "cuda" and torch.cuda.is_bf16_supported())
    if precision == "auto":
        return "bfloat16" if native else "float32"
    if precision == "bfloat16" and device.type == "cpu" and not native:
        warnings.warn("this CPU has no native bfloat16: training in it is emulated, about 18x slower "
                      "than float32 here (set the config's precision to \"auto\" or \"float32\")", stacklevel=2)
    return precision


def train(config: TrainConfig, data_root: Path, out_dir: Path, resume: bool = False, init: Path | None = None,
          max_seconds: float | None = None, device: str = "cpu", stop_at: int | None = None) -> Path:
    """Run (or continue) training; return the path of the last checkpoint.

    ``stop_at`` ends the run at that step, with a checkpoint, without changing the learning-rate
    schedule (which still spans ``config.steps``): ``--resume`` continues it exactly.
    """
    precision = training_precision(config.precision, torch.device(device))
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    model = build_model({"architecture": config.architecture, "config": json.dumps(config.model)})
    if config.model == {}:
        config.model = model.config.to_dict()
    model.quality_grad_scale = config.quality_encoder_grad
    model.to(device)
    params, masks = trainable_parameters(model, config.phase, config.train_adapters)
    named = dict(model.named_parameters())
    for name, mask in masks.items():
        named[name].register_hook(lambda g, m=mask.to(device): g * m)
    opt = torch.optim.Adam(params, lr=config.lr)
    run_dir = out_dir / config.name
    last = run_dir / "last.safetensors"
    step = 0
    if resume and last.exists():
        step, _ = load_checkpoint(last, model, opt)
        print(f"resumed {last} at step {step}")
    elif init is not None:
        from ..engine.weights import load_state

        new = ("adapters.", "estimator.") + SEGMENT_PARTS[1:] + HAZE_PARTS + LIGHT_PARTS + BLUR_PARTS + EXPOSURE_PARTS + FUSION_PARTS + JPEG_PARTS + RAIN_PARTS  # parts a phase adds
        state = inputs_widened(load_state(init)[1], model.state_dict(), FUSION_PARTS)
        result = model.load_state_dict(state, strict=False)
        grown = residual_blocks_added(model, result.missing_keys, new)
        missing = [k for k in result.missing_keys if not k.startswith(new + grown)]
        if missing or result.unexpected_keys:
            raise ValueError(f"{init} does not fit the config's model: missing {missing[:5]}, "
                             f"unexpected {result.unexpected_keys[:5]}")
        print(f"initialised from {init}" + (f" ({len(result.missing_keys)} new tensors)" if result.missing_keys else ""))
    paths = [p for d in config.data_dirs for p in list_images(data_root / d)]
    if config.max_images:
        paths = paths[: config.max_images]
    pairs = [pair for d in config.pair_dirs for pair in pair_paths(data_root / d, config.pair_holdout)]
    if config.phase == "jpeg":
        batches = JpegBatches(paths, config.patch, config.batch, config.seed + step, config.grey)
    elif config.phase == "rain":
        batches = RainBatches(paths, config.patch, config.batch, config.seed + step, config.grey)
    else:
        batches = SyntheticBatches(paths, config.patch, config.batch, config.mix, config.seed + step, pairs, config.grey,
                                   physics=config.phase in ("physics", "light"), blur=config.phase == "blur",
                                   exposure=config.phase == "exposure")
    val_noisy, val_clean = validation_set(data_root / config.val_dir, config.val_images)
    val_noisy, val_clean = val_noisy.to(device), val_clean.to(device)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(config.dump())
    log = (run_dir / "log.jsonl").open("a")
    start, t_last = time.time(), time.time()
    model.train()
    while step < config.steps:
        lr = config.min_lr + 0.5 * (config.lr - config.min_lr) * (1 + math.cos(math.pi * step / config.steps))
        for group in opt.param_groups:
            group["lr"] = lr
        degraded, clean, labels, present, *physics = (t.to(device) for t in next(batches))
        with torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=precision == "bfloat16"):
            losses = compute_losses(model, degraded, clean, labels, present, config.loss_weights, config.self_rounds,
                                    config.phase, config.refine_quality, physics)
        opt.zero_grad(set_to_none=True)
        losses["total"].backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        if step % config.eval_every == 0 or step == config.steps:
            record = {"step": step, "lr": lr, "seconds": round(time.time() - start, 1),
                      **{k: round(float(v.detach()), 5) for k, v in losses.items()}, **evaluate(model, val_noisy, val_clean)}
            log.write(json.dumps(record) + "\n")
            log.flush()
            print(json.dumps(record), flush=True)
        if step % config.checkpoint_every == 0 or step == config.steps:
            save_checkpoint(last, model, opt, step, {"config": config.dump()})
        if stop_at is not None and step >= stop_at:
            save_checkpoint(last, model, opt, step, {"config": config.dump()})
            print(f"stopped at step {step} (--stop-at); --resume continues")
            break
        if max_seconds is not None and time.time() - start > max_seconds:
            save_checkpoint(last, model, opt, step, {"config": config.dump()})
            print(f"stopped after {max_seconds} s at step {step}; --resume continues")
            break
        if time.time() - t_last > 60:
            print(f"step {step}/{config.steps} loss {float(losses['total'].detach()):.4f}", flush=True)
            t_last = time.time()
    log.close()
    return last


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m restora.training.train", description=__doc__.splitlines()[0])
    ap.add_argument("config", type=Path, help="JSON config (see restora/training/configs)")
    ap.add_argument("--data", type=Path, default=Path("../shared/data"), help="data root")
    ap.add_argument("--out", type=Path, default=Path("runs"), help="folder for checkpoints and logs")
    ap.add_argument("--resume", action="store_true", help="continue from the run's last checkpoint")
    ap.add_argument("--init", type=Path, help="start from these weights (e.g. the shipped ones)")
    ap.add_argument("--steps", type=int, help="override the config's step count")
    ap.add_argument("--max-seconds", type=float, help="stop (with a checkpoint) after this long")
    ap.add_argument("--stop-at", type=int, help="stop at this step, keeping the schedule of the config's steps")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", choices=PRECISIONS,
                    help="override the config's arithmetic (auto: bfloat16 where native, else float32)")
    args = ap.parse_args(argv)
    config = TrainConfig.load(args.config)
    if args.steps:
        config.steps = args.steps
    if args.precision:
        config.precision = args.precision
    train(config, args.data, args.out, args.resume, args.init, args.max_seconds, args.device, args.stop_at)


if __name__ == "__main__":
    main()
