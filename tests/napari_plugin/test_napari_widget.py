"""The dock widget in a real napari viewer (Qt, under Xvfb): restore, assess, segment, cancel, refuse."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from napari_support import notes, open_widget, require_gui, wait  # noqa: F401 (fixtures)

require_gui()

from restora import DEGRADATIONS, SEGMENT_CLASSES  # noqa: E402
from restora.palette import SEGMENT_COLOURS  # noqa: E402
from restora_napari._widget import RestoraWidget  # noqa: E402

ARTEFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "napari"


def _noisy(shape, dtype, seed=0):
    """A smooth pattern plus Gaussian noise (sigma 25/255), in ``dtype``'s full range."""
    rng = np.random.default_rng(seed)
    h, w = shape[-2:]
    y, x = np.mgrid[0:h, 0:w]
    clean = 0.5 + 0.3 * np.sin(x / 5.0) * np.cos(y / 7.0)
    img = np.clip(np.broadcast_to(clean, shape) + rng.normal(0, 25 / 255, shape), 0, 1)
    top = np.iinfo(dtype).max
    return np.round(img * top).astype(dtype)


CASES = {
    "2d-uint8": dict(data=_noisy((64, 80), np.uint8), kwargs={}),
    "2d-uint16": dict(data=_noisy((64, 80), np.uint16), kwargs={}),
    "3d-stack": dict(
        data=_noisy((3, 48, 56), np.uint16),
        kwargs=dict(scale=(2.0, 0.25, 0.25), translate=(1.0, 5.0, 7.0), axis_labels=("z", "y", "x"),
                    units=("um", "um", "um")),
    ),
}


def _add(viewer, case: str):
    c = CASES[case]
    return viewer.add_image(c["data"].copy(), name=case, metadata={"experiment": "E7"}, **c["kwargs"])


def _shown(w) -> bool:
    """Whether the widget is set to show (the viewer's window itself may be hidden in tests)."""
    return not w.native.isHidden()


def _choose(widget: RestoraWidget, layer, operation: str) -> None:
    widget._layer.value = layer
    widget._operation.value = operation


def test_widget_opens_through_the_plugin_manager(open_widget):
    viewer, widget = open_widget()
    assert isinstance(widget, RestoraWidget)
    layer = _add(viewer, "3d-stack")
    assert widget._layer.value is layer  # the new image layer is offered and chosen
    assert widget._axes.value == "ZYX, 3 planes"
    assert widget._device.choices[:1] == ("auto",) and "cpu" in widget._device.choices
    assert widget._device_info.value.startswith("cpu")
    widget._device.value = "cpu"
    assert widget._device_info.value == "cpu"


def test_widget_takes_the_active_layer_when_opened(make_napari_viewer):
    """napari hands the widget a proxy of the viewer; the layer already open must still be chosen."""
    viewer = make_napari_viewer()
    layer = viewer.add_image(_noisy((48, 64), np.uint8), name="already open")
    _dock, widget = viewer.window.add_plugin_dock_widget("restora", "Restora")
    assert widget._layer.value == layer
    assert widget._axes.value == "YX, 1 plane"


@pytest.mark.parametrize("case", list(CASES))
def test_restore_adds_a_layer_like_the_input(open_widget, wait, case):
    viewer, widget = open_widget()
    layer = _add(viewer, case)
    layer.contrast_limits = (0, float(layer.data.max()) / 8)  # saturated display of the input
    before = layer.data.copy()
    _choose(widget, layer, "restore")
    widget._max_iterations.value = 2
    seen = []
    widget._relay.progressed.connect(lambda done, total: seen.append((done, total, widget._status.value)))
    widget.run()
    assert widget.running and not widget._run.enabled and widget._cancel.enabled  # Run disabled while running
    assert widget._pbar is not None  # napari's activity-panel bar
    wait(widget)
    assert widget._run.enabled and not widget._cancel.enabled and widget._pbar is None

    assert [lay.name for lay in viewer.layers] == [case, f"{case} [restored]"]
    out = viewer.layers[f"{case} [restored]"]
    np.testing.assert_array_equal(layer.data, before)  # input untouched
    assert out.data.dtype == layer.data.dtype and out.data.shape == layer.data.shape
    for attr in ("scale", "translate"):
        np.testing.assert_array_equal(getattr(out, attr), getattr(layer, attr))
    assert out.axis_labels == layer.axis_labels and out.units == layer.units
    assert tuple(out.contrast_limits) != tuple(layer.contrast_limits)  # not copied
    report = out.metadata["restora"]
    assert out.metadata["experiment"] == "E7"  # the input's metadata is kept
    assert set(report["degradations"]) == set(DEGRADATIONS)
    assert 0 <= report["quality_before"] <= 1 and 0 <= report["quality_after"] <= 1
    assert report["iterations"] <= 2 and report["seconds"] > 0 and report["source_layer"] == case
    assert "quality" in widget._status.value and "iterations" in widget._status.value
    assert seen and seen[-1][0] == seen[-1][1]  # progress reached its total
    if layer.ndim == 3:
        assert report["settings"]["axes"] == "ZYX" and len(report["planes"]) == 3
        texts = {s for _, _, s in seen}
        assert {f"restore '{case}': plane {k} of 3" for k in (1, 2, 3)} <= texts


def test_restore_only_chosen_degradations_in_tiles(open_widget, wait):
    viewer, widget = open_widget()
    layer = viewer.add_image(_noisy((120, 300), np.uint8), name="wide")
    _choose(widget, layer, "restore")
    widget._mode.value = "only these"
    assert _shown(widget._degradations)
    widget._degradations.value = ["noise"]
    widget._max_iterations.value = 1
    widget._tile.value = 128  # smaller than the image: the engine runs it in tiles
    assert _shown(widget._refine) and widget._refine.value  # the second stage is on by default
    widget._refine.value = False
    totals = []
    widget._relay.progressed.connect(lambda done, total: totals.append(total))
    widget.run()
    wait(widget)
    meta = viewer.layers["wide [restored]"].metadata["restora"]
    settings = meta["settings"]
    assert settings["degradations"] == ("noise",) and settings["tile_size"] == 128
    assert settings["refine"] is False and meta["refined"] is False
    assert totals and totals[-1] > 2 * 2  # (1 round + 1 assessment) x several tiles per pass


@pytest.mark.parametrize("case", list(CASES))
def test_assess_shows_score_and_probabilities(open_widget, wait, case):
    viewer, widget = open_widget()
    layer = _add(viewer, case)
    _choose(widget, layer, "assess")
    widget.run()
    wait(widget)
    assert len(viewer.layers) == 1  # nothing added
    result = widget.last_result
    assert 0 <= result.score <= 1
    text = widget._status.value
    assert f"quality score {result.score:.3f}" in text
    for name, p in result.degradations.items():
        assert f"{p:.2f}" in text and name in text


@pytest.mark.parametrize("case", list(CASES))
def test_segment_adds_labels_legend_and_uncertainty(open_widget, wait, case):
    viewer, widget = open_widget()
    layer = _add(viewer, case)
    _choose(widget, layer, "segment")
    assert _shown(widget._uncertainty)
    widget._uncertainty.value = True
    widget.run()
    wait(widget)
    assert [lay.name for lay in viewer.layers] == [case, f"{case} [degradations]", f"{case} [uncertainty]"]
    labels, unc = viewer.layers[f"{case} [degradations]"], viewer.layers[f"{case} [uncertainty]"]
    assert type(labels).__name__ == "Labels" and labels.data.dtype == np.uint8
    assert labels.data.shape == layer.data.shape and unc.data.shape == layer.data.shape
    assert unc.data.dtype == np.float32 and 0 <= unc.data.min() and unc.data.max() <= 1
    np.testing.assert_array_equal(labels.scale, layer.scale)
    np.testing.assert_array_equal(unc.translate, layer.translate)
    for i, name in enumerate(SEGMENT_CLASSES[1:], start=1):  # one colour per degradation
        np.testing.assert_allclose(labels.colormap.map(i)[:3], np.array(SEGMENT_COLOURS[name]) / 255, atol=1e-6)
    assert labels.colormap.map(0)[3] == 0  # clean is transparent
    assert list(labels.features["degradation"]) == list(SEGMENT_CLASSES)
    assert labels.metadata["restora"]["classes"] == list(SEGMENT_CLASSES)
    assert _shown(widget._legend) and all(name in widget._legend.value for name in SEGMENT_CLASSES)


def test_segment_rgb_gives_labels_without_colour_axis(open_widget, wait):
    viewer, widget = open_widget()
    rgb = np.stack([_noisy((48, 64), np.uint8, seed=s) for s in range(3)], axis=-1)
    layer = viewer.add_image(rgb, rgb=True, name="rgb")
    _choose(widget, layer, "segment")
    widget.run()
    wait(widget)
    assert viewer.layers["rgb [degradations]"].data.shape == (48, 64)


def test_cancel_mid_stack(open_widget, wait, notes):
    viewer, widget = open_widget()
    stack = _noisy((16, 64, 64), np.uint8)
    layer = viewer.add_image(stack, name="long stack")
    _choose(widget, layer, "restore")
    progress = []

    def on_progress(done, total):
        progress.append((done, total))
        if len(progress) == 1:
            widget._cancel.native.click()  # as a user would

    widget._relay.progressed.connect(on_progress)
    widget.run()
    wait(widget)
    assert [lay.name for lay in viewer.layers] == ["long stack"]  # nothing added
    assert widget._run.enabled and not widget._cancel.enabled
    assert progress and progress[-1][0] < progress[-1][1]  # stopped before the end
    assert "cancelled at plane" in widget._status.value
    assert any("cancelled" in str(n.message) for n in notes)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (np.zeros((2, 2, 2, 8, 8), np.uint8), "5 dimensions"),
        (np.zeros((0, 16, 16), np.uint8), "empty"),
        (np.zeros((32, 32), np.int16), "unsupported dtype int16"),  # refused by the engine, in the worker
    ],
    ids=["5-D", "empty", "int16"],
)
def test_bad_layer_gives_notification_and_no_layer(open_widget, wait, notes, data, message):
    viewer, widget = open_widget()
    layer = viewer.add_image(data, name="bad")
    _choose(widget, layer, "restore")
    widget.run()
    wait(widget)
    assert [lay.name for lay in viewer.layers] == ["bad"]
    errors = [n for n in notes if str(n.severity).lower().endswith("error")]
    assert errors and message in str(errors[-1].message), [str(n.message) for n in notes]
    assert message in widget._status.value
    assert widget._run.enabled and not widget.running


def test_reader_and_samples_through_napari(make_napari_viewer, tmp_path):
    from xcf_writer import write_xcf

    viewer = make_napari_viewer()
    a = np.full((20, 30, 3), 90, np.uint8)
    path = write_xcf(tmp_path / "doc.xcf", [{"name": "paint", "data": a}], width=30, height=20)
    viewer.open(str(path), plugin="restora")
    assert [lay.name for lay in viewer.layers] == ["paint"] and viewer.layers["paint"].rgb
    viewer.open_sample("restora", "noisy_microscopy")
    viewer.open_sample("restora", "noisy_photo")
    assert viewer.layers["w2s noisy"].data.dtype == np.uint16
    assert viewer.layers["noisy photo"].rgb


def test_screenshot_after_restore(open_widget, wait, qtbot):
    """The whole window after restoring the photograph sample, input and result side by side:
    a test artefact (test-artifacts/napari/) and the README's picture."""
    viewer, widget = open_widget(show=True)
    viewer.window.resize(1400, 760)
    viewer.open_sample("restora", "noisy_photo")
    layer = viewer.layers["noisy photo"]
    _choose(widget, layer, "restore")
    widget.run()
    wait(widget)
    restored = viewer.layers["noisy photo [restored]"]
    assert restored.data.dtype == np.uint8 and restored.rgb
    assert restored.metadata["restora"]["quality_after"] > restored.metadata["restora"]["quality_before"]
    viewer.grid.enabled = True
    viewer.grid.shape = (1, 2)
    qtbot.wait(300)  # let the canvas take its new size before fitting the view
    viewer.reset_view()
    qtbot.wait(300)
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTEFACTS / "window_after_restore.png"
    shot = viewer.window.screenshot(str(path), canvas_only=False)
    assert shot.shape[0] > 400 and shot.shape[1] > 800
    assert shot[..., :3].std() > 20  # a drawn window, not a blank frame
    assert path.stat().st_size > 10_000
