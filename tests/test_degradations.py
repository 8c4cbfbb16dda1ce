"""Degradation synthesis: seeded, in range, physically sensible."""

from __future__ import annotations

import pytest
import torch

from restora import DEGRADATIONS, SEGMENT_CLASSES
from restora import degradations as D


def clean(seed: int = 0, size: tuple[int, int] = (48, 64)) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, size[0]), torch.linspace(0, 1, size[1]), indexing="ij")
    base = 0.5 + 0.3 * torch.sin(8 * xx) * torch.cos(5 * yy) + 0.1 * torch.sign(torch.sin(90 * xx) * torch.sin(70 * yy))
    return (base[None].repeat(3, 1, 1) + 0.05 * torch.rand((3, 1, 1), generator=g)).clamp(0, 1)


@pytest.mark.parametrize("name", DEGRADATIONS)
def test_each_degradation_is_seeded_and_in_range(name):
    x = clean(size=(96, 128))  # big enough for sparse rain to show
    a = D.degrade(x, [name], torch.Generator().manual_seed(3))
    b = D.degrade(x, [name], torch.Generator().manual_seed(3))
    c = D.degrade(x, [name], torch.Generator().manual_seed(4))
    assert torch.equal(a.degraded, b.degraded) and a.params == b.params
    assert not torch.equal(a.degraded, c.degraded)
    assert a.degraded.shape == (3, 96, 128) and 0 <= a.degraded.min() and a.degraded.max() <= 1
    assert (a.degraded - a.clean).abs().max() > 0.02  # it really degrades (rain is sparse: max, not mean)
    assert (a.labels == SEGMENT_CLASSES.index(name)).all()
    assert a.present[DEGRADATIONS.index(name)] == 1 and a.present.sum() == 1
    assert a.params[0]["name"] == name


def test_gaussian_noise_level():
    x = torch.full((1, 3, 128, 128), 0.5)
    y = D.gaussian_noise(x, 0.1, torch.Generator().manual_seed(0))
    assert abs(float((y - x).std()) - 0.1) < 0.005


def test_poisson_gaussian_is_signal_dependent():
    g = torch.Generator().manual_seed(0)
    dark = D.poisson_gaussian_noise(torch.full((1, 1, 128, 128), 0.05), 0.01, 0.0, g)
    bright = D.poisson_gaussian_noise(torch.full((1, 1, 128, 128), 0.8), 0.01, 0.0, g)
    assert float(bright.var()) > 5 * float(dark.var())
    assert abs(float(bright.var()) - 0.01 * 0.8) < 0.002  # variance = gain * signal


@pytest.mark.parametrize("kernel", [D.gaussian_kernel(1.5), D.defocus_kernel(3.0), D.motion_kernel(9, 30)])
def test_kernels_are_normalised_and_blur(kernel):
    assert abs(float(kernel.sum()) - 1) < 1e-5 and (kernel >= 0).all()
    x = clean()[None]
    y = D.blur(x, kernel)
    assert y.shape == x.shape
    assert float((y[..., 1:] - y[..., :-1]).abs().mean()) < float((x[..., 1:] - x[..., :-1]).abs().mean())


def test_haze_follows_scattering_model():
    x = torch.zeros((1, 3, 32, 32))
    y = D.haze(x, beta=2.0, airlight=0.9, generator=torch.Generator().manual_seed(0))
    # a black scene shows only airlight: A (1 - t), more at the top (far) than at the bottom
    assert float(y.max()) <= 0.9 and float(y[..., :4, :].mean()) > float(y[..., -4:, :].mean())


def test_low_light_darkens_and_rain_brightens():
    x = clean()[None]
    g = torch.Generator().manual_seed(0)
    assert float(D.low_light(x, 0.1, 2.2, 1e-3, 0.0, g).mean()) < 0.6 * float(x.mean())
    assert float(D.rain(x, 0.02, 15, 80, 0.2, g).mean()) > float(x.mean())


def test_jpeg_quality_orders_error():
    x = clean()[None]
    e10 = float((D.jpeg(x, 10) - x).abs().mean())
    e90 = float((D.jpeg(x, 90) - x).abs().mean())
    assert e10 > e90 > 0


def test_cutmix_labels_follow_the_box():
    g = torch.Generator().manual_seed(5)
    s = D.degradation_cutmix(clean(), ["haze"], ["noise"], g)
    box = s.params[-1]["region"]
    top, left, bh, bw = box
    inside = s.labels[top : top + bh, left : left + bw]
    assert (inside == SEGMENT_CLASSES.index("noise")).all()
    outside = s.labels.clone()
    outside[top : top + bh, left : left + bw] = -1
    assert set(outside.unique().tolist()) <= {-1, SEGMENT_CLASSES.index("haze")}
    assert s.present[DEGRADATIONS.index("noise")] == 1 and s.present[DEGRADATIONS.index("haze")] == 1
    assert 0.15 < (s.labels == SEGMENT_CLASSES.index("noise")).float().mean() < 0.65


def test_composite_applies_in_order():
    s = D.degrade(clean(), ["blur", "noise"], torch.Generator().manual_seed(1))
    assert [p["name"] for p in s.params] == ["blur", "noise"]
    assert (s.labels == SEGMENT_CLASSES.index("noise")).all() and s.present.sum() == 2
