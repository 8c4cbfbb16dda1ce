"""Restora for ComfyUI: restore, assess and segment degradations as nodes.

ComfyUI loads this folder from ``custom_nodes`` and calls `comfy_entrypoint`. The node
classes (the only code importing ComfyUI) load then, so the plain modules here (`layout`,
`operations`, `model_handle`) import and test without ComfyUI.
"""

WEB_DIRECTORY = "./web"  # restora.js: shows each node's report on the node


async def comfy_entrypoint():
    """ComfyUI's V3 entry point: register ``models/restora`` and return the extension."""
    import folder_paths

    from .model_handle import register_models_folder

    register_models_folder(folder_paths.folder_names_and_paths, folder_paths.models_dir)
    from .nodes import RestoraExtension

    return RestoraExtension()
