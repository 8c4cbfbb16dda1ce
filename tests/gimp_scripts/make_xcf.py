"""Makes the XCF fixtures in tests/data with a real GIMP 3 (run inside python-fu-eval).

``ARGS`` names a JSON file with "out" (a folder holding noisy.png, small.png and grey16.png,
made by the test's `_write_fixture_inputs`). Writes:

- gimp3_layers.xcf: RGB 8-bit, three layers (top first): "small" (RGBA, 24x20 at offset 8,6),
  "hidden" (invisible, opacity 50%) and "noisy" (the background);
- gimp3_grey16.xcf: grey 16-bit, one layer (gimpformats cannot decode high bit depth).
"""

import json

import gi

gi.require_version("Gimp", "3.0")
from gi.repository import Gimp, Gio  # noqa: E402

args = json.load(open(ARGS))  # noqa: F821
OUT = args["out"]


def load(name):
    return Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path(f"{OUT}/{name}"))


def save(image, name):
    assert Gimp.file_save(Gimp.RunMode.NONINTERACTIVE, image, Gio.File.new_for_path(f"{OUT}/{name}"), None)


image = load("noisy.png")
image.get_layers()[0].set_name("noisy")
for name, visible in (("hidden", False), ("small", True)):
    src = load("small.png" if name == "small" else "noisy.png")
    layer = Gimp.Layer.new_from_drawable(src.get_layers()[0], image)
    layer.set_name(name)
    image.insert_layer(layer, None, 0)
    if name == "small":
        layer.set_offsets(8, 6)
    else:
        layer.set_visible(False)
        layer.set_opacity(50.0)
save(image, "gimp3_layers.xcf")
save(load("grey16.png"), "gimp3_grey16.xcf")
with open(f"{OUT}/made.json", "w") as f:
    json.dump({"gimp": Gimp.version(), "layers": [lay.get_name() for lay in image.get_layers()]}, f)
