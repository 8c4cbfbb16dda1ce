"""Restora for ComfyUI: restore, assess and segment degradations as nodes.

ComfyUI loads this folder from ``custom_nodes`` and calls `comfy_entrypoint`. The node
classes (the only code importing ComfyUI) load then, so the plain modules here (`layout`,
`operations`, `model_handle`) import and test without ComfyUI.
"""

WEB_DIRECTORY = "./web"  # restora.js: shows each node's report on the node


async def comfy_entrypoint():
    """ComfyUI's V3 entry point: register ``models/restora`` and return the extension."""
    import sys

    try:
        import restora  # noqa: F401
    except ImportError as e:  # the pack is in custom_nodes, but Restora is not in ComfyUI's Python
        raise ImportError(
            f"Restora is not installed in the Python that runs ComfyUI ({sys.executable}); install it with "
            f"'{sys.executable} -m pip install -e /path/to/restora' (see the pack's README)"
        ) from e
    import folder_paths

    from .model_handle import register_models_folder

    register_models_folder(folder_paths.folder_names_and_paths, folder_paths.models_dir)
    from .nodes import RestoraExtension

    return RestoraExtension()
