"""Fixtures for the napari tests: the widget opened through napari's plug-in manager."""

from __future__ import annotations

import pytest


@pytest.fixture
def notes():
    """napari notifications shown during the test."""
    from napari.utils.notifications import notification_manager

    got: list = []
    notification_manager.notification_ready.connect(got.append)
    yield got
    notification_manager.notification_ready.disconnect(got.append)


@pytest.fixture
def open_widget(make_napari_viewer, qtbot):
    """``open_widget(show=False) -> (viewer, widget)``: a viewer with Restora's dock widget,
    added the way the Plugins menu adds it (found through npe2's plug-in manager)."""
    opened = []

    def factory(show: bool = False):
        viewer = make_napari_viewer(show=show)
        _dock, widget = viewer.window.add_plugin_dock_widget("restora", "Restora")
        opened.append(widget)
        return viewer, widget

    yield factory
    for widget in opened:  # never leave a worker running into the next test
        widget.cancel()
        qtbot.waitUntil(lambda w=widget: not w.running, timeout=60_000)


@pytest.fixture
def wait(qtbot):
    """``wait(widget)``: process Qt events until the widget's operation has finished."""

    def waiter(widget, timeout_ms: int = 120_000):
        qtbot.waitUntil(lambda: not widget.running, timeout=timeout_ms)
        qtbot.wait(10)  # let queued signals (the last progress) arrive

    return waiter
