"""The engine side of Restora's GIMP 3 plug-in: protocol, engine server and install command.

The plug-in itself lives in the repository's ``gimp_plugin/`` and runs in GIMP's Python; this
package runs in Restora's environment and never imports GIMP. `restora.gimp.protocol` (standard
library only) is shared by both sides: ``restora gimp install`` copies it beside the plug-in.
"""
