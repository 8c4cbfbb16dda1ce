"""Restora for napari: restore, assess and segment image layers from a dock widget.

The plug-in is thin glue: every computation is a call to the core engine (`restora`).
Importing this package is light; torch loads when an operation first runs or the widget
opens (to list the devices).
"""

from restora import __version__

__all__ = ["__version__"]
