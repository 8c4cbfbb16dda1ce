"""Restora's ComfyUI nodes (V3 schema): ComfyUI's device, progress bar, Cancel and node
schemas around the plain functions in `operations`; all inference is the core engine's.
"""

from __future__ import annotations

import torch
from typing_extensions import override

import comfy.utils
import folder_paths
from comfy import model_management
from comfy_api.latest import ComfyExtension, io, ui

import restora
from restora import DEGRADATIONS, SEGMENT_CLASSES
from restora.engine import PRECISIONS, available_devices
from restora.engine.engine import DEFAULT_TILE

from .model_handle import DEFAULT, FOLDER, RestoraModel, load_restora_model, weights_choices
from .operations import MODES, assess_images, parse_degradations, pick_better, restore_images, segment_images

CATEGORY = "image/restoration"
RestoraModelType = io.Custom("RESTORA_MODEL")


def _find_file(name: str) -> str | None:
    return folder_paths.get_full_path(FOLDER, name)


def _model(model: RestoraModel | None) -> RestoraModel:
    """The connected model, else the shipped weights on ComfyUI's device."""
    if model is not None:
        return model
    return load_restora_model(DEFAULT, model_management.get_torch_device(), DEFAULT_TILE, _find_file)


def _prepare(model: RestoraModel, *images: torch.Tensor) -> None:
    """Stop early on Cancel, and on a GPU let ComfyUI unload other models to make room for
    one tile's activations (the model itself is a few MB; results stay on the CPU)."""
    model_management.throw_exception_if_processing_interrupted()
    device = model.engine.device
    if device.type != "cpu":
        tile = model.engine.tile_size
        model_management.free_memory(tile * tile * 4 * 512 + sum(i.nelement() * 4 for i in images), device)


def _progress():
    """progress(done, total) for the engine: ComfyUI's progress bar, and the graph's Cancel,
    checked between tiles (the engine stops when this raises)."""
    bar = None

    def report(done: int, total: int) -> None:
        nonlocal bar
        model_management.throw_exception_if_processing_interrupted()
        if bar is None:
            bar = comfy.utils.ProgressBar(total)
        bar.update_absolute(done, total)

    return report


def _model_input() -> io.Input:
    return RestoraModelType.Input("model", optional=True,
                                  tooltip="From Load Restora Model; unconnected: the shipped weights on ComfyUI's device")


class RestoraLoadModel(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="RestoraLoadModel",
            display_name="Load Restora Model",
            category=CATEGORY,
            description="Load Restora weights (once; later runs reuse them) on a device.",
            inputs=[
                io.Combo.Input("weights", options=weights_choices(folder_paths.get_filename_list(FOLDER)),
                               default=DEFAULT,
                               tooltip="'default' is the model shipped with Restora; files come from models/restora"),
                io.Combo.Input("device", options=["auto"] + available_devices(), default="auto",
                               tooltip="'auto' follows ComfyUI's device choice (e.g. --cpu)"),
                io.Int.Input("tile_size", default=DEFAULT_TILE, min=128, max=8192, step=16,
                             tooltip="Largest tile edge in pixels; smaller uses less memory. Halved automatically "
                                     "on an out-of-memory error"),
                io.Combo.Input("precision", options=list(PRECISIONS), default="auto", optional=True,
                               tooltip="The network's arithmetic: 'auto' is bfloat16 on a CPU with native bfloat16 "
                                       "(about twice as fast), float32 elsewhere"),
            ],
            outputs=[RestoraModelType.Output(display_name="model")],
        )

    @classmethod
    def execute(cls, weights: str, device: str, tile_size: int, precision: str = "auto") -> io.NodeOutput:
        dev = model_management.get_torch_device() if device == "auto" else device
        return io.NodeOutput(load_restora_model(weights, dev, tile_size, _find_file, precision))


class RestoraRestore(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="RestoraRestore",
            display_name="Restore (Restora)",
            category=CATEGORY,
            description="Blind restoration: restore, assess, repeat while the assessed quality improves.",
            inputs=[
                io.Image.Input("image"),
                _model_input(),
                io.Combo.Input("mode", options=list(MODES), default="auto",
                               tooltip="auto: remove whatever is found; chosen: only the degradations named below"),
                io.String.Input("degradations", default="noise",
                                tooltip=f"With mode 'chosen': names separated by commas from {', '.join(DEGRADATIONS)}"),
                io.Float.Input("strength", default=1.0, min=0.0, max=1.0, step=0.05,
                               tooltip="0 returns the input, 1 the full restoration"),
                io.Int.Input("max_iterations", default=3, min=1, max=10,
                             tooltip="Most restore -> assess rounds; a round is kept only if quality improves"),
                io.Boolean.Input("refine", default=True, optional=True,
                                 tooltip="Second stage where noise was found: a noise-model Wiener filter guided by the rounds"),
            ],
            outputs=[
                io.Image.Output(display_name="image"),
                io.Mask.Output(display_name="uncertainty", tooltip="Expected absolute error of the result, per pixel"),
                io.String.Output(display_name="report"),
            ],
        )

    @classmethod
    def validate_inputs(cls, mode: str, degradations: str | None) -> bool | str:
        if degradations is None:  # linked from another node: checked when it runs
            return True
        try:
            parse_degradations(mode, degradations)
        except restora.RestoraError as e:
            return str(e)
        return True

    @classmethod
    def execute(cls, image: torch.Tensor, mode: str, degradations: str, strength: float, max_iterations: int,
                model: RestoraModel | None = None, refine: bool = True) -> io.NodeOutput:
        m = _model(model)
        _prepare(m, image)
        out = restore_images(m.engine, image, mode, degradations, strength, max_iterations, _progress(), refine)
        return io.NodeOutput(out.image, out.uncertainty, out.report, ui=ui.PreviewText(out.report))


class RestoraAssess(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="RestoraAssess",
            display_name="Assess Quality (Restora)",
            category=CATEGORY,
            description="No-reference quality in [0, 1] (higher is better) and the degradations found; "
                        "the score shows on the node.",
            inputs=[io.Image.Input("image"), _model_input()],
            outputs=[
                io.Float.Output(display_name="score", tooltip="Quality in [0, 1]; the mean for a batch"),
                io.String.Output(display_name="report"),
            ],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, image: torch.Tensor, model: RestoraModel | None = None) -> io.NodeOutput:
        m = _model(model)
        _prepare(m, image)
        out = assess_images(m.engine, image, _progress())
        return io.NodeOutput(out.score, out.report, ui=ui.PreviewText(out.report))


class RestoraSegment(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="RestoraSegment",
            display_name="Segment Degradations (Restora)",
            category=CATEGORY,
            description="Which degradation is where: a MASK for one class and a colour map of them all.",
            inputs=[
                io.Image.Input("image"),
                _model_input(),
                io.Combo.Input("degradation", options=list(SEGMENT_CLASSES), default="noise",
                               tooltip="The class whose per-pixel probability becomes the mask"),
            ],
            outputs=[
                io.Mask.Output(display_name="mask"),
                io.Image.Output(display_name="map", tooltip="One colour per class (colours listed in the report)"),
                io.String.Output(display_name="report"),
            ],
        )

    @classmethod
    def execute(cls, image: torch.Tensor, degradation: str, model: RestoraModel | None = None) -> io.NodeOutput:
        m = _model(model)
        _prepare(m, image)
        out = segment_images(m.engine, image, degradation, _progress())
        return io.NodeOutput(out.mask, out.colour, out.report, ui=ui.PreviewText(out.report))


class RestoraQualityGate(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="RestoraQualityGate",
            display_name="Quality Gate (Restora)",
            category=CATEGORY,
            description="Pass on the better of two images by assessed quality (image by image for batches of "
                        "one shape; A wins ties), e.g. to compare two restorers.",
            inputs=[io.Image.Input("image_a"), io.Image.Input("image_b"), _model_input()],
            outputs=[
                io.Image.Output(display_name="image"),
                io.Float.Output(display_name="score", tooltip="Assessed quality of what was passed on (batch mean)"),
                io.String.Output(display_name="report"),
            ],
        )

    @classmethod
    def execute(cls, image_a: torch.Tensor, image_b: torch.Tensor, model: RestoraModel | None = None) -> io.NodeOutput:
        m = _model(model)
        _prepare(m, image_a, image_b)
        out = pick_better(m.engine, image_a, image_b, _progress())
        return io.NodeOutput(out.image, out.score, out.report, ui=ui.PreviewText(out.report))


NODES: list[type[io.ComfyNode]] = [RestoraLoadModel, RestoraRestore, RestoraAssess, RestoraSegment, RestoraQualityGate]


class RestoraExtension(ComfyExtension):
    @override
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return NODES
