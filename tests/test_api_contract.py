"""The numpy contract that frontends and benchmarks rely on."""

from __future__ import annotations

import numpy as np
import pytest

import restora
from restora import DEGRADATIONS, SEGMENT_CLASSES

from helpers import smooth_image

SHAPES = [(40, 52), (40, 52, 1), (40, 52, 3), (40, 52, 4)]
DTYPES = [np.uint8, np.uint16, np.float32, np.float64]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_restore_keeps_shape_dtype_range_alpha(shape, dtype, rng):
    image = smooth_image(rng, shape, dtype)
    if len(shape) == 3 and shape[2] == 4:
        image[..., 3] = rng.integers(0, 2, shape[:2]) * (1 if np.dtype(dtype).kind == "f" else np.iinfo(dtype).max)
    r = restora.restore(image, device="cpu", max_iterations=2)
    assert r.image.shape == image.shape and r.image.dtype == image.dtype
    if np.dtype(dtype).kind == "f":
        assert 0 <= r.image.min() and r.image.max() <= 1
    if len(shape) == 3 and shape[2] == 4:
        np.testing.assert_array_equal(r.image[..., 3], image[..., 3])
    assert r.uncertainty.shape == shape[:2] and r.uncertainty.dtype == np.float32
    assert 0 <= r.quality_before <= 1 and 0 <= r.quality_after <= 1
    assert set(r.degradations) == set(DEGRADATIONS)
    assert all(0 <= p <= 1 for p in r.degradations.values())
    assert 0 <= r.iterations <= 2
    assert len(r.history) >= 2 and r.history[0] == pytest.approx(r.quality_before, abs=1e-4)
    # the loop keeps its last accepted round (rounds accepted in turn: a smooth image shows no
    # haze or low light for a physical round), and the reported quality is that round's own.
    # (Not necessarily the highest reported: the loop compares the quality head's scores, the
    # report is the quality fusion's, which also reads the image.)
    assert not (r.dehazed or r.brightened)
    assert r.quality_after == pytest.approx(r.history[r.iterations], abs=1e-4)


def test_uint16_uses_full_range_and_in_range_image_maps_back(rng):
    image = (smooth_image(rng, (48, 48), np.float32) * 4095).astype(np.uint16)  # 12-bit data
    r = restora.restore(image, device="cpu", in_range="image")
    assert r.image.dtype == np.uint16
    assert r.image.min() >= image.min() and r.image.max() <= image.max()
    with pytest.raises(restora.ImageError, match="in_range"):
        restora.restore(image, device="cpu", in_range="bogus")


def test_strength_zero_returns_input(rng):
    image = smooth_image(rng, (32, 40, 3))
    noisy = np.clip(image + rng.normal(0, 25, image.shape), 0, 255).astype(np.uint8)
    r = restora.restore(noisy, device="cpu", strength=0.0)
    np.testing.assert_array_equal(r.image, noisy)


def test_named_degradations(rng):
    image = smooth_image(rng, (32, 40, 3))
    assert restora.restore(image, "noise", device="cpu").image.shape == image.shape
    assert restora.restore(image, ["noise", "jpeg"], device="cpu").image.shape == image.shape
    with pytest.raises(restora.RestoraError, match="unknown degradation"):
        restora.restore(image, "sharpen", device="cpu")


@pytest.mark.parametrize(
    "shape, axes, plane_axes",
    [((3, 32, 36), "ZYX", "YX"), ((2, 32, 36), "TYX", "YX"), ((2, 32, 36, 3), "ZYXC", "YXC"),
     ((2, 32, 36), "CYX", "YX"), ((32, 36, 2), "YXC", "YX"), ((2, 2, 32, 36, 3), "TZYXC", "YXC")],
)
def test_stacks_run_plane_by_plane(shape, axes, plane_axes, rng):
    image = smooth_image(rng, shape[-3:] if shape[-1] == 3 else shape[-2:], np.uint16)
    stack = np.stack([np.roll(image, 3 * i, axis=0) for i in range(int(np.prod(shape)) // image.size)])
    # lay the planes out in the stack's own axis order
    lead = [a for a in axes if a not in "YX" and not (a == "C" and shape[axes.index("C")] in (1, 3, 4))]
    order = "".join(lead) + plane_axes
    stack = stack.reshape([shape[axes.index(a)] for a in order]).transpose([order.index(a) for a in axes])
    r = restora.restore(stack, device="cpu", axes=axes, max_iterations=1)
    assert r.image.shape == stack.shape and r.image.dtype == stack.dtype
    colour = "C" in axes and shape[axes.index("C")] in (1, 3, 4)
    assert r.uncertainty.shape == tuple(s for a, s in zip(axes, shape) if not (a == "C" and colour))
    # the first plane restored alone gives the same result as inside the stack
    index = tuple(0 if a not in "YX" and not (a == "C" and colour) else slice(None) for a in axes)
    alone = restora.restore(stack[index], device="cpu", max_iterations=1, axes=plane_axes)
    np.testing.assert_array_equal(alone.image, r.image[index])
    assert len(r.planes) == int(np.prod([shape[axes.index(a)] for a in lead]))


def test_axes_errors(rng):
    image = smooth_image(rng, (32, 32), np.uint8)
    with pytest.raises(restora.ImageError, match="axes"):
        restora.restore(image, device="cpu", axes="ZYX")
    with pytest.raises(restora.ImageError, match="axes"):
        restora.restore(image, device="cpu", axes="XX")
    with pytest.raises(restora.ImageError, match="axes="):
        restora.restore(np.zeros((5, 32, 32), np.uint8), device="cpu")


def test_assess_contract(rng):
    image = smooth_image(rng, (48, 48, 3))
    q = restora.assess(image, device="cpu")
    assert 0 <= q.score <= 1 and set(q.degradations) == set(DEGRADATIONS)
    assert q.found(0.0) == list(DEGRADATIONS) and isinstance(q.found(), list)


def test_segment_contract(rng):
    image = smooth_image(rng, (40, 44, 3))
    s = restora.segment(image, device="cpu")
    assert s.labels.shape == (40, 44) and s.labels.dtype == np.uint8
    assert s.probabilities.shape == (40, 44, len(SEGMENT_CLASSES)) and s.probabilities.dtype == np.float32
    np.testing.assert_allclose(s.probabilities.sum(-1), 1, atol=1e-4)
    np.testing.assert_array_equal(s.labels, s.probabilities.argmax(-1))
    assert s.classes == SEGMENT_CLASSES
    st = restora.segment(np.stack([image, image]), device="cpu", axes="ZYXC")
    assert st.labels.shape == (2, 40, 44) and st.probabilities.shape == (2, 40, 44, len(SEGMENT_CLASSES))


def test_progress_reports_and_cancels(rng):
    image = smooth_image(rng, (40, 40, 3))
    calls = []
    restora.restore(image, device="cpu", progress=lambda d, t: calls.append((d, t)), max_iterations=2)
    assert calls and calls[-1][0] == calls[-1][1]
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)

    class Stop(Exception):
        pass

    def cancel(done, total):
        raise Stop

    with pytest.raises(Stop):
        restora.restore(np.stack([image] * 3), device="cpu", axes="ZYXC", progress=cancel)


def test_restore_accepts_a_round_only_when_quality_improves(rng, monkeypatch):
    """With a quality head that always prefers the input, the loop returns the input unchanged."""
    from restora.engine import engine as engine_mod

    image = np.clip(smooth_image(rng, (32, 32, 3)) + rng.normal(0, 30, (32, 32, 3)), 0, 255).astype(np.uint8)
    real_pass = engine_mod.Engine._pass
    calls = {"n": 0}

    def declining(self, x, decode, ticker):
        out = real_pass(self, x, decode, ticker)
        calls["n"] += 1
        out["quality"] = out["quality"] * 0 + (1.0 / calls["n"])  # each round looks worse
        return out

    monkeypatch.setattr(engine_mod.Engine, "_pass", declining)
    r = restora.restore(image, device="cpu", max_iterations=3)
    assert r.iterations == 0 and len(r.history) == 2
    np.testing.assert_array_equal(r.image, image)


def test_target_quality_stops_early(rng):
    image = smooth_image(rng, (32, 32, 3))
    r = restora.restore(image, device="cpu", target_quality=0.0)
    assert r.iterations == 0 and r.history == [pytest.approx(r.quality_before, abs=1e-4)]


def test_floats_of_any_range_with_in_range_image_keep_their_range(rng):
    # e.g. a napari float layer of photon counts, or an HDR GIMP layer
    image = (smooth_image(rng, (40, 48), np.float32) * 900 - 100).astype(np.float32)
    with pytest.raises(restora.ImageError, match="in_range='image'"):
        restora.restore(image, device="cpu")
    for in_range in ("image", (-100.0, 800.0)):
        r = restora.restore(image, device="cpu", in_range=in_range, max_iterations=1)
        assert r.image.dtype == np.float32 and r.image.shape == image.shape
        assert r.image.min() >= -100 - 1e-3 and r.image.max() <= 800 + 1e-3
        assert np.corrcoef(r.image.ravel(), image.ravel())[0, 1] > 0.99  # same scale, not squashed to [0, 1]
    assert 0 <= restora.assess(image, device="cpu", in_range="image").score <= 1
