"""How layer shapes map to planes: 2-D, ZYX, TYX, channel axes, RGB, and refusals."""

from __future__ import annotations

import numpy as np
import pytest
from restora import ImageError
from restora_napari._axes import layer_axes


@pytest.mark.parametrize(
    ("shape", "rgb", "labels", "names", "core", "planes"),
    [
        ((48, 64), False, None, "YX", "YX", 1),
        ((48, 64, 3), True, None, "YXC", "YXC", 1),
        ((5, 48, 64), False, ("-3", "-2", "-1"), "ZYX", "ZYX", 5),
        ((5, 48, 64), False, ("t", "y", "x"), "TYX", "ZYX", 5),
        ((5, 48, 64), False, ("Time", "y", "x"), "TYX", "ZYX", 5),
        ((3, 48, 64), False, ("c", "y", "x"), "CYX", "ZYX", 3),  # 3 channels stay grey planes
        ((2, 3, 48, 64), False, None, "TZYX", "TZYX", 6),
        ((2, 3, 48, 64), False, ("c", "z", "y", "x"), "CZYX", "TZYX", 6),
        ((2, 3, 48, 64), False, ("z", "z", "y", "x"), "TZYX", "TZYX", 6),  # duplicate labels: by position
        ((4, 48, 64, 4), True, ("t", "y", "x"), "TYXC", "ZYXC", 4),
    ],
)
def test_layer_axes(shape, rgb, labels, names, core, planes):
    axes = layer_axes(shape, rgb, labels)
    assert (axes.names, axes.core, axes.planes) == (names, core, planes)
    assert str(planes) in axes.describe()


def test_core_axes_run_every_plane_separately():
    """A grey 3-channel stack goes to the core as 3 grey planes, never as one RGB image."""
    import restora

    stack = (np.random.default_rng(0).random((3, 24, 28)) * 255).astype(np.uint8)
    axes = layer_axes(stack.shape, False, ("c", "y", "x"))
    result = restora.assess(stack, axes=axes.core)
    assert len(result.planes) == 3


@pytest.mark.parametrize(
    ("shape", "rgb", "match"),
    [
        ((2, 2, 3, 48, 64), False, "5 dimensions"),
        ((2, 2, 2, 48, 64, 3), True, "5 dimensions"),
        ((64,), False, "1 dimension"),
        ((0, 48, 64), False, "empty"),
        ((48, 64, 5), True, "colour channels"),
    ],
)
def test_layer_axes_refuses(shape, rgb, match):
    with pytest.raises(ImageError, match=match):
        layer_axes(shape, rgb)


def test_auto_value_range_maps_uint16_and_out_of_range_floats_by_their_own_range():
    from restora_napari._run import Request

    axes = layer_axes((8, 8), rgb=False, axis_labels=None)
    req = lambda a: Request("restore", a, axes).in_range()
    assert req(np.zeros((8, 8), np.uint16)) == "image"
    assert req(np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)) == "dtype"
    assert req(np.linspace(-5, 300, 64, dtype=np.float32).reshape(8, 8)) == "image"  # counts, not [0, 1]
    assert req(np.zeros((8, 8), np.uint8)) == "dtype"
    assert Request("restore", np.zeros((8, 8), np.uint16), axes, value_range="dtype").in_range() == "dtype"
