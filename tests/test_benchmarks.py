"""The measuring code of the benchmark scripts (not the model: see test_quality.py)."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

pytest.importorskip("scipy")
import _niqe  # noqa: E402
import iqa  # noqa: E402
import segment  # noqa: E402
import torch  # noqa: E402

from restora import DEGRADATIONS, SEGMENT_CLASSES  # noqa: E402
from restora.degradations import cutmix_regions  # noqa: E402


def test_matlab_half_resize_keeps_constants_and_averages_pairs():
    m = _niqe._resize_matrix(9, 0.5)
    assert m.shape == (5, 9)
    np.testing.assert_allclose(m.sum(1), 1, atol=1e-12)
    img = np.full((10, 14), 7.0)
    np.testing.assert_allclose(_niqe.imresize_half(img), 7.0, atol=1e-12)
    # the antialiased bicubic kernel is symmetric about each output centre (between two inputs)
    row = _niqe._resize_matrix(20, 0.5)[5]
    centre = np.nonzero(row)[0]
    np.testing.assert_allclose(row[centre], row[centre][::-1], atol=1e-12)


def test_luma_matches_bt601():
    rgb = np.array([[[255, 255, 255], [0, 0, 0], [255, 0, 0]]], dtype=np.uint8)
    np.testing.assert_allclose(_niqe.luma(rgb)[0], [235, 16, 81])


def test_aggd_fit_recovers_a_symmetric_gaussian():
    x = np.random.default_rng(0).normal(0, 2.0, 200_000)
    alpha, bl, br = _niqe._aggd(x)
    assert alpha == pytest.approx(2.0, abs=0.05)  # a Gaussian is the shape-2 case
    assert bl == pytest.approx(br, rel=0.02)


def test_niqe_refuses_images_smaller_than_two_blocks():
    params = (np.zeros(36), np.eye(36), np.full((7, 7), 1 / 49))
    with pytest.raises(ValueError, match="two 96x96 blocks"):
        _niqe.niqe(np.zeros((100, 100, 3), np.uint8), params)


def test_niqe_rates_noise_worse_with_a_synthetic_model():
    # a pristine model fitted to smooth images must find noisy ones further from it
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[:192, :288] / 40.0
    smooth = (127 + 60 * np.sin(xx) * np.cos(yy))[..., None].repeat(3, 2)
    feats = []
    for k in range(6):
        img = np.clip(smooth + rng.normal(0, 1, smooth.shape) + k, 0, 255).astype(np.uint8)
        y = _niqe.luma(img)
        window = np.outer(*(2 * [np.exp(-np.arange(-3, 4) ** 2 / (2 * (7 / 6) ** 2))]))
        window /= window.sum()
        from scipy.ndimage import convolve
        mu = convolve(y, window, mode="nearest")
        sd = np.sqrt(np.abs(convolve(y ** 2, window, mode="nearest") - mu ** 2))
        m = (y - mu) / (sd + 1)
        f1 = _niqe._block_features(m[:96, :96])
        feats.append(f1 + f1)
    feats = np.array(feats)
    params = (feats.mean(0), np.cov(feats, rowvar=False) + np.eye(36) * 1e-3, window)
    clean = np.clip(smooth + rng.normal(0, 1, smooth.shape), 0, 255).astype(np.uint8)
    noisy = np.clip(smooth + rng.normal(0, 25, smooth.shape), 0, 255).astype(np.uint8)
    assert _niqe.niqe(noisy, params) > _niqe.niqe(clean, params)


def test_roc_auc_and_correlations():
    assert iqa.roc_auc(np.array([0.1, 0.2, 0.8, 0.9]), np.array([0, 0, 1, 1])) == 1.0
    assert iqa.roc_auc(np.array([0.9, 0.8, 0.2, 0.1]), np.array([0, 0, 1, 1])) == 0.0
    assert iqa.roc_auc(np.array([0.5, 0.5]), np.array([0, 1])) == 0.5
    assert np.isnan(iqa.roc_auc(np.array([0.5, 0.5]), np.array([1, 1])))
    a = np.array([1.0, 2.0, 3.0, 4.0])
    assert iqa.spearman(a, a ** 3) == pytest.approx(1.0)
    assert iqa.pearson(a, -a) == pytest.approx(-1.0)


def test_segment_composites_have_two_different_regions():
    clean = (np.random.default_rng(2).random((64, 80, 3)) * 255).astype(np.uint8)
    for seed in range(20):
        g = torch.Generator().manual_seed(seed)
        outside, inside = cutmix_regions(g)
        assert inside and inside[-1] in DEGRADATIONS and inside[-1:] != outside
        img, labels, desc = segment.composite(clean, seed)
        assert img.shape == clean.shape and img.dtype == np.uint8
        assert labels.shape == clean.shape[:2]
        assert set(np.unique(labels)) <= set(range(len(SEGMENT_CLASSES)))
        assert len(np.unique(labels)) == 2, desc  # the box and the rest differ


def test_segment_summary_counts_pixels():
    k = len(SEGMENT_CLASSES)
    true = np.array([0, 0, 1, 1, 2, 2])
    pred = np.array([0, 1, 1, 1, 2, 0])
    conf = segment.confusion(true, pred, k)
    rows, acc, miou = segment.summary(conf)
    assert acc == pytest.approx(4 / 6)
    # IoU: clean 1/3, noise 2/3, blur 1/2
    assert miou == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)
    assert rows[3][1:] == ["0.0%", "-", "-", "-"]


def test_adapter_ablation_true_map_follows_the_cutmix_box():
    """The CutMix row's true weights come from the same synthesis as its degraded image: the
    haze adapter's weight is the haze region, the grey-only noise adapter is off on colour."""
    import adapters as ablation
    import quality as qb

    from restora.engine.weights import load_model

    model, _ = load_model("default", "cpu")
    row = next(r for r in qb.ROWS if r.name == "cutmix")  # haze outside, noise inside
    clean = (np.random.default_rng(0).random((60, 72, 3)) * 255).astype(np.uint8)
    w = ablation.true_weights(row, clean, 7, model)
    x = torch.from_numpy(clean.astype(np.float32) / 255).permute(2, 0, 1)
    labels = qb.degradation_cutmix(x, ["haze"], ["noise"], torch.Generator().manual_seed(7)).labels
    haze = w[0, list(model.config.adapters).index("haze"), :30, :36]
    expected = torch.nn.functional.avg_pool2d((labels == SEGMENT_CLASSES.index("haze")).float()[None, None], 2)[0, 0]
    assert w.shape == (1, len(model.config.adapters), 30, 36) and 0 < float(expected.mean()) < 1
    torch.testing.assert_close(haze, expected)
    assert float(w[0, list(model.config.adapters).index("noise")].abs().max()) == 0.0


def test_uncertainty_benchmark_measures_the_stage_and_its_oracles():
    import uncertainty

    from restora.engine.engine import Engine

    rng = np.random.default_rng(1)
    clean = np.clip(0.5 + 0.3 * np.sin(np.arange(64) / 5)[None, :, None] + np.zeros((64, 64, 3)), 0, 1)
    noisy = np.clip(clean + rng.normal(0, 0.1, clean.shape), 0, 1)
    m = uncertainty.measure(Engine("default", "cpu"), noisy, clean)
    assert m["stage"] > m["pilot"] > 10  # the shipped stage helps on plain noise
    assert m["oracle pick"] >= max(m["stage"], m["pilot"]) - 0.05  # picks the better per pixel
    assert -1 <= m["corr"] <= 1 and m["|e|/u"] > 0


def test_exposure_random_dark_draws_its_noise_range_and_true_gain():
    import exposure

    clean = np.full((64, 64, 3), 200, np.uint8)
    img, gain = exposure.random_dark(clean, (-6.0, -5.0), (), seed=3)
    assert img.dtype == np.uint8 and img.shape == clean.shape
    # noise-free: the image is the clean one scaled by 1/gain, to within rounding
    assert np.abs(img.astype(float) * gain - 200).max() < 2 * gain + 1
    noisy, _ = exposure.random_dark(clean, (-3.0, -2.5), (), seed=3)
    assert noisy.std() > img.std() + 1


def test_rain_conditions_hold_their_true_layer_and_the_image_before():
    import rain

    rng = np.random.default_rng(0)
    clean = (rng.random((96, 128, 3)) * 200).astype(np.uint8)
    for name, layers, box, sigma, before in rain.CONDITIONS:
        y, ref, layer = rain.rained(clean, layers, box, sigma, before, seed=7)
        assert y.dtype == np.uint8 and y.shape == clean.shape and layer.shape == (1, 1, 96, 128)
        x = rain._tensor(y)
        if before is None:  # the image before the rain is the clean one
            np.testing.assert_array_equal(rain._tensor(clean).numpy(), ref.numpy())
        assert float(layer.max()) > 0.02
        if not sigma:  # rain only brightens
            assert bool((x >= ref - 1 / 255 - 1e-6).all())
        if box:  # and only inside its box
            on = (layer[0, 0] > 0).numpy()
            rows, cols = np.nonzero(on)
            assert on[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1].mean() > 0.01
            assert on.mean() < 0.6


def test_streak_opening_takes_out_thin_grey_lines_only():
    import _baselines

    y = np.full((20, 20, 3), 0.3)
    y[:, 10] += 0.2  # a grey streak, one pixel wide
    y[:, 4, 0] += 0.2  # a red line: texture, not rain
    y[5:15, 14:18] += 0.2  # a bright block wider than the opening
    out = _baselines.streak_opening(y)
    np.testing.assert_allclose(out[:, 10], 0.3)
    np.testing.assert_allclose(out[:, 4], y[:, 4])
    np.testing.assert_allclose(out[5:15, 14:18], y[5:15, 14:18])
