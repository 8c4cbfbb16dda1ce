"""The training pipeline runs small on CPU, checkpoints, resumes and exports loadable weights."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import restora
from restora.training.config import TrainConfig
from restora.training.export import export
from restora.training.train import train

from conftest import DATA

CONFIGS = Path(restora.__file__).parent / "training" / "configs"
pytestmark = pytest.mark.skipif(not (DATA / "train" / "bsds").is_dir(), reason=f"training data not at {DATA}")


def test_config_files_load():
    for path in CONFIGS.glob("*.json"):
        assert TrainConfig.load(path).steps > 0
    with pytest.raises(ValueError, match="unknown config keys"):
        bad = CONFIGS.parent / "nope.json"
        try:
            bad.write_text(json.dumps({"stepz": 3}))
            TrainConfig.load(bad)
        finally:
            bad.unlink()


def test_train_resume_export(tmp_path):
    config = TrainConfig.load(CONFIGS / "smoke.json")
    config.steps = 6
    last = train(config, DATA, tmp_path, stop_at=4)  # stops early, schedule still over 6 steps
    log = [json.loads(line) for line in (tmp_path / "smoke" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [2, 4]
    assert all(np.isfinite(r["total"]) for r in log)
    assert log[1]["lr"] > TrainConfig().min_lr * 10  # not annealed: the schedule spans 6 steps
    config = TrainConfig.load(CONFIGS / "smoke.json")
    config.steps = 6
    train(config, DATA, tmp_path, resume=True)
    log = [json.loads(line) for line in (tmp_path / "smoke" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [2, 4, 6]  # resumed at 4, not restarted
    out = export(last, tmp_path / "weights", "smoke", "smoke.safetensors")
    manifest = json.loads((tmp_path / "weights" / "manifest.json").read_text())
    assert manifest["weights"]["smoke"]["sha256"]
    r = restora.restore(np.zeros((32, 32, 3), np.uint8), device="cpu", weights=out)
    assert r.image.shape == (32, 32, 3)
    from restora.engine.weights import load_state

    blended = export(last, tmp_path / "weights", "smoke-region", "smoke-region.safetensors", blend="region")
    (meta, tensors), (_, same) = load_state(blended), load_state(out)
    assert json.loads(meta["config"])["adapter_blend"] == "region"
    assert tensors.keys() == same.keys() and all(tensors[k].equal(same[k]) for k in same)


def test_init_from_shipped_weights(tmp_path):
    config = TrainConfig.load(CONFIGS / "smoke.json")
    config.model, config.steps, config.eval_every = {}, 1, 1  # the default architecture = shipped
    config.lr = config.min_lr = 1e-9  # one step that barely moves: the log shows the initial model
    shipped = restora.engine.weights.resolve_weights("restora-base").path  # the architecture without adapters
    train(config, DATA, tmp_path, init=shipped)
    log = json.loads((tmp_path / "smoke" / "log.jsonl").read_text().splitlines()[0])
    assert log["val_psnr_out"] > log["val_psnr_in"] + 3  # starts from a trained denoiser


def _tiny_batch():
    """A tiny seeded network and a random batch: (model, degraded, clean, labels, present, weights)."""
    import torch

    from restora.models import RestoraNet, RestoraNetConfig

    torch.manual_seed(0)
    model = RestoraNet(RestoraNetConfig(channels=(8, 16, 16), encoder_blocks=(1, 1)))
    x, clean = torch.rand(4, 3, 32, 32), torch.rand(4, 3, 32, 32)
    labels, present = torch.zeros(4, 32, 32, dtype=torch.long), torch.zeros(4, 6)
    return model, x, clean, labels, present, TrainConfig().loss_weights


def test_self_rounds_train_the_loop(tmp_path):
    """With self_rounds=2 the network also restores its own output and scores each round."""
    from restora.training.train import compute_losses

    model, x, clean, labels, present, weights = _tiny_batch()
    one = compute_losses(model, x, clean, labels, present, weights, 1)
    two = compute_losses(model, x, clean, labels, present, weights, 2)
    assert float(two["restore"].detach()) > float(one["restore"].detach())  # a second restoration term
    assert float(two["quality"].detach()) > float(one["quality"].detach())  # a further quality term
    two["total"].backward()
    assert model.quality_head[0].weight.grad.abs().sum() > 0


def test_quality_encoder_grad_scales_only_the_encoder_gradient():
    """The quality head keeps its full gradient; the shared encoder gets the scaled share, and
    inference (the forward values) does not change."""
    import torch

    from restora.models.restoranet import RestoraNet, RestoraNetConfig

    torch.manual_seed(0)
    x = torch.rand(1, 3, 16, 16)
    grads, values = {}, {}
    for scale in (1.0, 0.1, 0.0):
        torch.manual_seed(1)
        model = RestoraNet(RestoraNetConfig(channels=(8, 8, 8), encoder_blocks=(1, 1)))
        model.quality_grad_scale = scale
        q = model(x)["quality"].sum()
        q.backward()
        values[scale] = float(q)
        grads[scale] = (model.stem.weight.grad.clone(), model.quality_head[0].weight.grad.clone())
    assert values[0.1] == values[1.0] == values[0.0]
    torch.testing.assert_close(grads[0.1][0], 0.1 * grads[1.0][0])
    assert torch.count_nonzero(grads[0.0][0]) == 0
    for scale in (0.1, 0.0):
        torch.testing.assert_close(grads[scale][1], grads[1.0][1])


def test_a_grown_model_starts_where_its_init_weights_were():
    """Residual blocks that the init weights lack start as the identity, so a model grown by
    ``full_blocks`` or ``decoder_blocks`` restores exactly as the one it grew from."""
    import torch

    from restora.models.restoranet import RestoraNet, RestoraNetConfig
    from restora.training.train import residual_blocks_added

    torch.manual_seed(0)
    small = RestoraNet(RestoraNetConfig(channels=(8, 8, 8), encoder_blocks=(1, 1)))
    grown = RestoraNet(RestoraNetConfig(channels=(8, 8, 8), encoder_blocks=(1, 1), full_blocks=2, decoder_blocks=2))
    result = grown.load_state_dict(small.state_dict(), strict=False)
    prefixes = residual_blocks_added(grown, result.missing_keys)
    assert sorted(prefixes) == ["dec2.1.", "full.0.", "full.1."]
    assert all(k.startswith(prefixes) for k in result.missing_keys)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(grown(x)["restored"], small(x)["restored"])
    assert float(grown.full[0].conv1.weight.abs().sum()) > 0  # only the last conv is zeroed


def _write_pairs(folder: Path, names: list[str], rng) -> None:
    from PIL import Image

    for sub in ("noisy", "clean"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for name in names:
        clean = rng.integers(0, 200, (40, 48), dtype=np.uint8)
        Image.fromarray(clean).save(folder / "clean" / name)
        Image.fromarray(np.clip(clean + 40, 0, 255).astype(np.uint8)).save(folder / "noisy" / name)


def test_pairs_and_grey_samples(tmp_path):
    """Real pairs are cropped alike and labelled noise; held-out fields stay out; grey samples
    carry the same noise in every channel."""
    import torch

    from restora import SEGMENT_CLASSES
    from restora.training.data import SyntheticBatches, pair_paths

    rng = np.random.default_rng(0)
    _write_pairs(tmp_path / "w2s", ["fov001_ch0.png", "fov002_ch0.png", "fov071_ch0.png"], rng)
    pairs = pair_paths(tmp_path / "w2s", ["fov071"])
    assert sorted(p.name for p, _ in pairs) == ["fov001_ch0.png", "fov002_ch0.png"]
    photos = sorted((DATA / "train" / "bsds").glob("*"))[:3]
    batches = SyntheticBatches(photos, 32, 8, {"pairs": 1.0}, seed=0, pairs=pairs)
    degraded, clean, labels, present = next(batches)
    torch.testing.assert_close(degraded, (clean + 40 / 255).clamp(max=1), atol=1e-6, rtol=0)  # same crop
    assert (labels == SEGMENT_CLASSES.index("noise")).all() and (present[:, 0] == 1).all()
    assert (present[:, 1:] == 0).all()
    greys = SyntheticBatches(photos, 32, 8, {"noise": 1.0}, seed=0, grey=1.0)
    degraded, clean, _, _ = next(greys)
    assert (degraded[:, 0] == degraded[:, 1]).all() and (clean[:, 1] == clean[:, 2]).all()
    assert float((degraded - clean).std()) > 1 / 255  # noisy, and the noise is grey too
    with pytest.raises(ValueError, match="noisy/ and clean/"):
        pair_paths(tmp_path)
    with pytest.raises(ValueError, match="unknown kinds"):
        SyntheticBatches(photos, 32, 8, {"rainbow": 1.0}, seed=0)


def test_refine_quality_teaches_the_head_the_second_stage():
    import torch

    from restora.training.train import compute_losses

    model, x, clean, labels, present, weights = _tiny_batch()
    plain = compute_losses(model, x, clean, labels, present, weights, 2)
    refine = compute_losses(model, x, clean, labels, present, weights, 2, refine_quality=True)
    assert float(refine["quality"].detach()) > float(plain["quality"].detach())  # one more term
    torch.testing.assert_close(refine["restore"], plain["restore"])


def test_bfloat16_training_runs_and_keeps_its_targets_float32(tmp_path):
    """``precision: "bfloat16"`` trains under autocast; the master weights, the metrics and the
    quality target stay float32, and the losses stay close to float32's."""
    import torch

    from restora.metrics import psnr, quality_target, ssim
    from restora.training.train import compute_losses

    a, b = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert ssim(a, b).dtype == psnr(a, b).dtype == torch.float32
        target, rounded = quality_target(a, b), ssim.__wrapped__(a, b)  # the latter's convs in bfloat16
    torch.testing.assert_close(target, quality_target(a, b), rtol=0, atol=0)  # as outside autocast
    assert not torch.equal(rounded, ssim(a, b))
    model, x, clean, labels, present, weights = _tiny_batch()
    exact = compute_losses(model, x, clean, labels, present, weights, 2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fast = compute_losses(model, x, clean, labels, present, weights, 2)
    assert not torch.equal(fast["restore"], exact["restore"])  # it did run in bfloat16
    torch.testing.assert_close(fast["total"], exact["total"], rtol=0.02, atol=0.01)
    config = TrainConfig.load(CONFIGS / "smoke.json")
    config.precision = "bfloat16"
    last = train(config, DATA, tmp_path)
    log = [json.loads(line) for line in (tmp_path / "smoke" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [2, 4] and all(np.isfinite(r["total"]) for r in log)
    from restora.engine.weights import load_state

    assert all(t.dtype == torch.float32 for t in load_state(last)[1].values() if t.is_floating_point())
    config.precision = "half"
    with pytest.raises(ValueError, match="precision.*'half'"):
        train(config, DATA, tmp_path / "bad")


def test_auto_precision_takes_bfloat16_only_where_it_is_native(monkeypatch):
    """``precision: "auto"`` trains in bfloat16 on a CPU with native bfloat16 and in float32 on
    one that would emulate it (18x slower there); an explicit bfloat16 is kept there, with a
    warning that says so."""
    import warnings

    import torch

    from restora.training import train as T

    cpu = torch.device("cpu")
    monkeypatch.setattr(T, "native_bfloat16", lambda device: False)
    assert T.training_precision("auto", cpu) == "float32"
    with pytest.warns(UserWarning, match="no native bfloat16"):
        assert T.training_precision("bfloat16", cpu) == "bfloat16"
    monkeypatch.setattr(T, "native_bfloat16", lambda device: True)
    assert T.training_precision("auto", cpu) == "bfloat16"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert T.training_precision("bfloat16", cpu) == "bfloat16"
        assert T.training_precision("float32", cpu) == "float32"
    with pytest.raises(ValueError, match="'auto'"):
        T.training_precision("half", cpu)


def test_the_command_line_overrides_the_precision(tmp_path):
    """``--precision auto`` replaces the config's arithmetic, and the run records it."""
    from restora.training.train import main

    main([str(CONFIGS / "smoke.json"), "--data", str(DATA), "--out", str(tmp_path), "--precision", "auto", "--steps", "2"])
    recorded = json.loads((tmp_path / "smoke" / "config.json").read_text())
    assert recorded["precision"] == "auto" and recorded["steps"] == 2
    assert (tmp_path / "smoke" / "last.safetensors").is_file()


def test_a_pack_keeps_the_layout_within_its_budget_and_trains(tmp_path):
    """`restora.training.pack` copies a budgeted, byte-exact subset with the data root's layout
    (pairs whole, held-out fields never), checksummed, and a run reads it as its data root."""
    import hashlib

    from restora.training.pack import main as pack_main
    from restora.training.pack import pack

    out = tmp_path / "pack"
    manifest = pack(DATA, out, 6, {"train/bsds": 0.5, "train/w2s": 0.5}, holdout=("fov001",))
    sizes = [f.stat().st_size for f in out.rglob("*") if f.is_file() and f.name != "manifest.json"]
    assert 0 < sum(sizes) <= 6 * 2**20 and len(sizes) == len(manifest["files"])
    assert sorted(manifest["folders"]) == ["train/bsds", "train/w2s", "val/bsds"]
    assert len(list((out / "val" / "bsds").iterdir())) == len(list((DATA / "val" / "bsds").iterdir()))
    noisy = sorted(p.name for p in (out / "train" / "w2s" / "noisy").iterdir())
    assert noisy and noisy == sorted(p.name for p in (out / "train" / "w2s" / "clean").iterdir())
    assert not any(n.startswith("fov001") for n in noisy)
    for rel, f in manifest["files"].items():
        assert hashlib.sha256((out / rel).read_bytes()).hexdigest() == f["sha256"]
        assert (out / rel).read_bytes() == (DATA / rel).read_bytes()
    with pytest.raises(FileExistsError, match="exists"):
        pack(DATA, out, 6)
    with pytest.raises(SystemExit, match="not in"):
        pack_main(["--data", str(DATA), "--out", str(tmp_path / "p2"), "--share", "train/nope=1"])
    assert not (tmp_path / "p2").exists() and not (tmp_path / "p2.tmp").exists()
    config = TrainConfig.load(CONFIGS / "smoke.json")
    config.steps = 2
    assert train(config, out, tmp_path / "runs").is_file()
