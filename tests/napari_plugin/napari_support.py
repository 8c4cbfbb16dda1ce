"""What the napari tests need, how they skip (or, in CI, fail) when it is missing, and their
fixtures (imported by the test modules: a conftest.py here would shadow tests/conftest.py,
which other tests import by name)."""

from __future__ import annotations

import importlib.util
import os

import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _missing_gui() -> str | None:
    for module in ("napari", "qtpy", "pytestqt", "npe2"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed: pip install -e '.[napari-test]'"
    if not os.environ.get("DISPLAY"):
        return ("no X display: install Xvfb (.ci/setup.d/napari.sh); pytest-xvfb then starts one "
                "(QT_QPA_PLATFORM=offscreen cannot draw napari's canvas)")
    return None


def require_gui() -> None:
    """Call at module level: skip the module without napari and a screen; in CI, fail instead."""
    reason = _missing_gui()
    if reason is None:
        return
    if IN_CI:
        raise RuntimeError(f"napari tests must run in CI, but {reason}")
    pytest.skip(reason, allow_module_level=True)


def require_packages(*modules: str) -> None:
    """Call at module level: skip without ``modules`` (not in CI, where they are expected)."""
    for module in modules:
        if importlib.util.find_spec(module) is None:
            if IN_CI:
                raise RuntimeError(f"{module} must be installed in CI: pip install -e '.[napari-test]'")
            pytest.skip(f"{module} is not installed: pip install -e '.[napari-test]'", allow_module_level=True)


# -- fixtures -------------------------------------------------------------------------------
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
