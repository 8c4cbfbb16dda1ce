"""Results as napari layer data, and as text for the widget. No Qt here.

Each builder returns napari's ``(data, kwargs, layer_type)`` tuples; the widget adds them.
The input layer is never changed: its geometry (scale, translate, rotate, shear, units,
axis labels) and metadata are copied onto the new layers.
"""

from __future__ import annotations

import copy
import html
from typing import Any

import numpy as np
from restora import SEGMENT_CLASSES, __version__
from restora.palette import SEGMENT_COLOURS

LayerData = tuple[Any, dict, str]


def _geometry(layer, colour: bool = True) -> dict:
    """The input layer's placement in the world, for a new layer of the same dimensions."""
    kwargs = {
        "scale": tuple(layer.scale), "translate": tuple(layer.translate),
        "rotate": np.asarray(layer.rotate), "shear": np.asarray(layer.shear),
    }
    # units and axis labels exist on layers from napari 0.6 on
    for name in ("units", "axis_labels"):
        if hasattr(layer, name):
            kwargs[name] = tuple(getattr(layer, name))
    return kwargs


def _metadata(layer, report: dict) -> dict:
    meta = copy.deepcopy(dict(layer.metadata))
    meta["restora"] = report
    return meta


def restore_report(result, request, source: str) -> dict:
    """What the restore did, as plain values (stored in the new layer's metadata)."""
    return {
        "operation": "restore", "source_layer": source, "restora_version": __version__,
        "degradations": dict(result.degradations),
        "quality_before": round(float(result.quality_before), 4),
        "quality_after": round(float(result.quality_after), 4),
        "iterations": int(result.iterations), "history": list(result.history),
        "refined": bool(result.refined), "seconds": round(float(result.seconds), 3), "planes": list(result.planes),
        "settings": request.settings(), "summary": result.report(),
    }


def restored_layer(layer, result, request) -> LayerData:
    """``<layer> [restored]``: same dtype, geometry, colour map and metadata as the input.

    Contrast limits are not copied: those of a noisy input are often saturated or far too wide
    for the result, so napari computes them from the restored data.
    """
    kwargs = _geometry(layer)
    kwargs.update(
        name=f"{layer.name} [restored]", rgb=bool(layer.rgb), blending=layer.blending,
        gamma=float(layer.gamma), opacity=float(layer.opacity),
        metadata=_metadata(layer, restore_report(result, request, layer.name)),
    )
    if not layer.rgb:
        kwargs["colormap"] = layer.colormap
    return result.image, kwargs, "image"


def _rgba(name: str) -> tuple[float, float, float, float]:
    r, g, b = SEGMENT_COLOURS[name]
    return (r / 255, g / 255, b / 255, 1.0)


def label_colours() -> dict:
    """napari ``DirectLabelColormap`` colours: one per degradation; clean (0) is transparent
    so the image shows through where nothing is wrong."""
    colours: dict = {None: (0.0, 0.0, 0.0, 0.0), 0: (0.0, 0.0, 0.0, 0.0)}
    for i, name in enumerate(SEGMENT_CLASSES[1:], start=1):
        colours[i] = _rgba(name)
    return colours


def class_fractions(labels: np.ndarray) -> dict[str, float]:
    """Share of pixels of each class."""
    counts = np.bincount(labels.ravel(), minlength=len(SEGMENT_CLASSES))
    total = max(int(counts.sum()), 1)
    return {name: round(int(c) / total, 4) for name, c in zip(SEGMENT_CLASSES, counts)}


def segment_layers(layer, result, request, uncertainty: bool) -> list[LayerData]:
    """``<layer> [degradations]`` (Labels, one colour per degradation) and, if asked,
    ``<layer> [uncertainty]`` (1 - the winning class's probability, float32 in [0, 1])."""
    from napari.utils.colormaps import DirectLabelColormap

    geometry = _geometry(layer)
    report = {
        "operation": "segment", "source_layer": layer.name, "restora_version": __version__,
        "classes": list(result.classes), "colours": {c: list(SEGMENT_COLOURS[c]) for c in result.classes},
        "fractions": class_fractions(result.labels), "settings": request.settings(),
    }
    labels_kwargs = dict(
        geometry, name=f"{layer.name} [degradations]", opacity=0.6,
        colormap=DirectLabelColormap(color_dict=label_colours()),
        features={"index": list(range(len(result.classes))), "degradation": list(result.classes)},
        metadata=_metadata(layer, report),
    )
    out: list[LayerData] = [(result.labels, labels_kwargs, "labels")]
    if uncertainty:
        unc = (1.0 - result.probabilities.max(axis=-1)).astype(np.float32)
        unc_report = dict(report, operation="segment uncertainty",
                          meaning="1 - probability of the most likely class, per pixel")
        out.append((unc, dict(geometry, name=f"{layer.name} [uncertainty]", colormap="magma",
                              contrast_limits=(0.0, 1.0), blending="additive", visible=True,
                              metadata=_metadata(layer, unc_report)), "image"))
    return out


# -- text for the widget ------------------------------------------------------------------
def _bar(p: float, width: int = 10) -> str:
    n = int(round(max(0.0, min(1.0, p)) * width))
    return "█" * n + "░" * (width - n)


def degradation_lines(degradations: dict[str, float]) -> list[str]:
    return [f"{name:<10} {_bar(p)} {p:.2f}" for name, p in sorted(degradations.items(), key=lambda kv: -kv[1])]


def restore_text(result) -> str:
    lines = [
        f"quality {result.quality_before:.3f} → {result.quality_after:.3f}",
        f"iterations {result.iterations}{' + refinement' if result.refined else ''}; {result.seconds:.2f} s",
        "degradations found:",
        *degradation_lines(result.degradations),
    ]
    return "\n".join(lines)


def assess_text(result) -> str:
    found = ", ".join(result.found()) or "none"
    lines = [f"quality score {result.score:.3f} (0 bad … 1 good)", f"found: {found}", *degradation_lines(result.degradations)]
    if result.planes:
        scores = [p["score"] for p in result.planes]
        lines.append(f"per plane: {min(scores):.3f} … {max(scores):.3f} over {len(scores)} planes")
    return "\n".join(lines)


def legend_html(fractions: dict[str, float] | None = None) -> str:
    """A colour legend of the degradation map (rich text for a Qt label)."""
    rows = []
    for name in SEGMENT_CLASSES:
        r, g, b = SEGMENT_COLOURS[name]
        swatch = "&nbsp;&nbsp;" if name == "clean" else "&#9632;"
        share = f" {100 * fractions[name]:.0f}%" if fractions else ""
        note = " (transparent)" if name == "clean" else ""
        rows.append(f'<span style="color:rgb({r},{g},{b})">{swatch}</span> {html.escape(name)}{note}{share}')
    return "<br>".join(rows)
