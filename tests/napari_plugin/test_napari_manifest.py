"""Packaging: the npe2 manifest validates, napari finds the plug-in, and importing it is light."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import distribution

from napari_support import require_packages

require_packages("npe2", "napari")


def test_manifest_validates_and_is_discovered():
    from npe2 import PluginManager, PluginManifest

    manifest = PluginManifest.from_distribution("restora")  # through the napari.manifest entry point
    assert manifest.name == "restora"
    assert manifest.display_name == "Restora"
    assert {"Image Processing", "Segmentation"} <= {str(c.value) for c in manifest.categories}
    manifest.validate_imports()  # every command's python_name imports

    pm = PluginManager()
    pm.discover()
    assert "restora" in pm
    contributions = pm.get_manifest("restora").contributions
    assert [w.display_name for w in contributions.widgets] == ["Restora"]
    assert contributions.readers[0].filename_patterns == ["*.xcf"]
    assert {s.key for s in contributions.sample_data} == {"noisy_microscopy", "noisy_photo"}


def test_npe2_validate_command():
    cli = [sys.executable, "-c", "from npe2.cli import main; main()", "validate", "restora", "--imports"]
    out = subprocess.run(cli, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "valid" in out.stdout


def test_classifier_and_no_qt_binding_by_default():
    dist = distribution("restora")
    assert "Framework :: napari" in dist.metadata.get_all("Classifier")
    napari_reqs = [r for r in dist.requires or [] if 'extra == "napari"' in r]
    assert napari_reqs, "the napari extra is missing"
    for req in (dist.requires or []):
        if "extra ==" not in req or 'extra == "napari"' in req:  # default and user-facing napari extra
            assert not any(q in req.lower() for q in ("pyqt", "pyside", "napari[all]", "napari[pyqt")), req


def test_plugin_import_keeps_torch_away():
    code = ("import sys, restora_napari, restora_napari._widget, restora_napari._reader, "
            "restora_napari._sample_data; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
