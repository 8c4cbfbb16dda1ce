"""What the napari tests need, and how they skip (or, in CI, fail) when it is missing."""

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
