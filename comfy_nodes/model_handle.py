"""The model handle that flows between Restora nodes, the weights choices and the
``models/restora`` folder, as plain functions (no ComfyUI import).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Callable, Optional

import torch

from restora import WeightsError
from restora.engine import Engine, available_weights
from restora.engine.engine import DEFAULT_TILE

FOLDER = "restora"
"""ComfyUI model folder name: ``models/restora`` and ``restora:`` in extra_model_paths.yaml."""

EXTENSIONS = {".safetensors"}
"""Weights are loaded without pickle, so only safetensors files are listed."""

DEFAULT = "default"
"""The weights choice meaning the weights shipped inside Restora."""


@dataclass(frozen=True)
class RestoraModel:
    """What the Load Restora Model node hands to the other nodes: a loaded engine.

    The engine keeps its tile size between calls, so a size shrunk after running out of
    memory stays shrunk for later nodes using the same handle.
    """

    engine: Engine
    choice: str  # the weights choice as shown in the node

    def __repr__(self) -> str:
        return f"RestoraModel({self.choice!r}, {self.engine.weights.name}, {self.engine.device}, tile {self.engine.tile_size}, {self.engine.precision})"


def register_models_folder(folder_names_and_paths: dict, models_dir: str) -> None:
    """Register ``<models_dir>/restora`` in ComfyUI's folder table, listing safetensors only.

    Called with ``folder_paths.folder_names_and_paths`` and ``folder_paths.models_dir``, so the
    folder follows ``--base-directory``. Folders that ``extra_model_paths.yaml`` already added
    under ``restora:`` (read before custom nodes load) keep their place in front.
    """
    default = os.path.join(models_dir, FOLDER)
    paths, _ = folder_names_and_paths.get(FOLDER, ([], set()))
    paths = list(paths)
    if default not in paths:
        paths.append(default)
    folder_names_and_paths[FOLDER] = (paths, set(EXTENSIONS))


def weights_choices(files: list[str]) -> list[str]:
    """The Load node's weights options: "default", named weights (shipped and in Restora's
    user cache), then the files found in the ``models/restora`` folders."""
    names = [DEFAULT] + sorted(available_weights())
    return names + [f for f in files if f not in names]


def resolve_choice(choice: str, find_file: Callable[[str], Optional[str]]) -> str:
    """A weights name for the core, or the full path of a ``models/restora`` file.

    ``find_file`` is ``lambda name: folder_paths.get_full_path("restora", name)`` in ComfyUI.
    """
    if choice == DEFAULT or choice in available_weights():
        return choice
    path = find_file(choice)
    if path is None:
        raise WeightsError(f"weights {choice!r} not found in the models/restora folders; "
                           "put the .safetensors file there or pick another")
    return path


_ENGINES: dict[tuple[str, str, int, str], Engine] = {}
_LOCK = threading.Lock()


def load_restora_model(choice: str, device: torch.device | str, tile_size: int = DEFAULT_TILE,
                       find_file: Callable[[str], Optional[str]] = lambda name: None,
                       precision: str = "auto") -> RestoraModel:
    """Load (once) the weights for ``choice`` on ``device`` and return a handle.

    The core caches the network per (file, device); engines are cached here per (weights,
    device, tile size, precision) so a tile size shrunk after an out-of-memory error is
    remembered. ``precision`` is the network's arithmetic (`restora.Engine`).
    """
    weights = resolve_choice(choice, find_file)
    key = (str(weights), str(device), int(tile_size), str(precision))
    with _LOCK:
        if key not in _ENGINES:
            _ENGINES[key] = Engine(weights, device, int(tile_size), precision)
        return RestoraModel(_ENGINES[key], choice)
