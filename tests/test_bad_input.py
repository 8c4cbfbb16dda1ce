"""Bad input gives a clear error naming the problem."""

from __future__ import annotations

import numpy as np
import pytest

import restora


@pytest.mark.parametrize(
    "image, match",
    [
        (np.zeros((0, 0), np.uint8), "empty"),
        (np.zeros((1, 1), np.uint8), "1x1 pixels"),
        (np.full((16, 16), np.nan, np.float32), "NaN or infinite"),
        (np.full((16, 16, 3), np.inf, np.float64), "NaN or infinite"),
        (np.zeros((2, 2, 2, 16, 16), np.uint8), "axes="),
        (np.zeros((16, 16), object), "unsupported dtype object"),
        (np.zeros((16, 16), np.int32), "unsupported dtype int32"),
        (np.full((16, 16), 2.0, np.float32), r"\[0, 1\]"),
        (np.zeros((16, 16, 2), np.uint8), "2 channels"),
        ([[0, 1], [2, 3]], "numpy array"),
    ],
)
@pytest.mark.parametrize("op", ["restore", "assess", "segment"])
def test_bad_images(image, match, op):
    with pytest.raises(restora.ImageError, match=match):
        getattr(restora, op)(image, device="cpu")


def test_errors_are_value_errors():
    assert issubclass(restora.RestoraError, ValueError)
    assert issubclass(restora.ImageError, restora.RestoraError)


@pytest.mark.parametrize("kwargs, match", [
    ({"max_iterations": 0}, "max_iterations"),
    ({"strength": 1.5}, "strength"),
    ({"device": "tpu"}, "device"),
    ({"device": "cuda:7"}, "not available"),
])
def test_bad_options(kwargs, match):
    with pytest.raises(restora.RestoraError, match=match):
        restora.restore(np.zeros((16, 16), np.uint8), **kwargs)


def test_input_is_not_modified():
    image = np.random.default_rng(1).integers(0, 255, (24, 24, 4), dtype=np.uint8)
    before = image.copy()
    restora.restore(image, device="cpu")
    np.testing.assert_array_equal(image, before)
