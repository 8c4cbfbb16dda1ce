"""Runs inside the real GIMP (python-fu-eval): drives the Restora procedures as a batch script
would, through the PDB in non-interactive mode, and writes what happened to ``OUT``/result.json.

The test sets ``ARGS`` (a JSON file) before exec'ing this file. Pixels are judged from outside
by the test, on the files exported here; this script only records statuses, return values,
timings and a few in-GIMP facts (registered procedures, menu paths, layers).
"""

import json
import time
import traceback

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("Gegl", "0.4")
from gi.repository import Gegl, Gimp, Gio  # noqa: E402

args = json.load(open(ARGS))  # noqa: F821 (set by the batch command)
OUT = args["out"]
NAMES = ["plug-in-restora-restore", "plug-in-restora-assess", "plug-in-restora-segment"]
pdb = Gimp.get_pdb()
result = {"gimp": Gimp.version(), "steps": {}, "errors": []}


def load(name):
    return Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path(f"{OUT}/{name}"))


def save(image, name):
    ok = Gimp.file_save(Gimp.RunMode.NONINTERACTIVE, image, Gio.File.new_for_path(f"{OUT}/{name}"), None)
    if not ok:
        raise RuntimeError(f"GIMP could not save {name}")


def pixels(drawable):
    rect = Gegl.Rectangle.new(0, 0, drawable.get_width(), drawable.get_height())
    return bytes(drawable.get_buffer().get(rect, 1.0, None, Gegl.AbyssPolicy.CLAMP))


def call(step, name, image, drawable, **props):
    """Run a Restora procedure non-interactively; record status, values (or error) and seconds."""
    proc = pdb.lookup_procedure(name)
    config = proc.create_config()
    config.set_property("run-mode", Gimp.RunMode.NONINTERACTIVE)
    config.set_property("image", image)
    config.set_core_object_array("drawables", [drawable])
    for key, value in props.items():
        config.set_property(key, value)
    t0 = time.perf_counter()
    res = proc.run(config)
    seconds = time.perf_counter() - t0
    status = res.index(0)
    values = [res.index(i) for i in range(1, res.length())]
    record = {"status": status.value_nick, "seconds": round(seconds, 3)}
    if status == Gimp.PDBStatusType.SUCCESS:
        record["values"] = [v if isinstance(v, (int, float, str)) else type(v).__name__ for v in values]
    else:
        record["error"] = str(values[0]) if values else ""
    result["steps"][step] = record
    return res


def main_session():
    result["registered"] = {n: pdb.procedure_exists(n) for n in NAMES}
    result["menus"] = {n: list(pdb.lookup_procedure(n).get_menu_paths()) for n in NAMES if pdb.procedure_exists(n)}
    sel = args["selection"]  # x, y, w, h

    # the OpenRaster file the CLI wrote from an XCF: GIMP must read it back
    ora = load(args["ora"])
    result["ora_layers"] = [[lay.get_name(), *lay.get_offsets()[1:], lay.get_visible(), round(lay.get_opacity())]
                            for lay in ora.get_layers()]

    # RGB 8-bit: restore a rectangle, assess it, segment it
    image = load("rgb.png")
    layer = image.get_layers()[0]
    image.select_rectangle(Gimp.ChannelOps.REPLACE, *sel)
    before = pixels(layer)
    call("bad_options", "plug-in-restora-restore", image, layer, auto=False)  # nothing ticked: refused
    result["bad_options_unchanged"] = pixels(layer) == before
    call("restore_rgb_first", "plug-in-restora-restore", image, layer)  # starts the engine
    save(image, "rgb_restored.png")
    call("assess_rgb", "plug-in-restora-assess", image, layer)
    call("segment_rgb", "plug-in-restora-segment", image, layer)
    layers = image.get_layers()
    result["rgb_layers"] = [lay.get_name() for lay in layers]
    save(image, "rgb_layers.xcf")  # a real layered XCF made by GIMP, for the CLI test
    layer.set_visible(False)
    save(image, "rgb_map.png")  # only the map layer is visible: transparent outside the selection

    # the same procedure again: the engine (and its weights) are already loaded
    image2 = load("rgb.png")
    image2.select_rectangle(Gimp.ChannelOps.REPLACE, *sel)
    call("restore_rgb_again", "plug-in-restora-restore", image2, image2.get_layers()[0], strength=0.5)
    save(image2, "rgb_restored_half.png")

    # RGBA 8-bit: alpha must not change anywhere
    image = load("rgba.png")
    image.select_rectangle(Gimp.ChannelOps.REPLACE, *sel)
    call("restore_rgba", "plug-in-restora-restore", image, image.get_layers()[0])
    save(image, "rgba_restored.png")

    # grey 16-bit, restoring named degradations only
    image = load("grey16.png")
    result["grey16_precision"] = image.get_precision().value_nick
    image.select_rectangle(Gimp.ChannelOps.REPLACE, *sel)
    call("restore_grey16", "plug-in-restora-restore", image, image.get_layers()[0], auto=False, noise=True)
    save(image, "grey16_restored.png")
    call("segment_grey16", "plug-in-restora-segment", image, image.get_layers()[0])
    result["grey16_layers"] = [lay.get_name() for lay in image.get_layers()]

    # 32-bit float (high bit depth), exported as float TIFF
    image = load("rgb.png")
    image.convert_precision(Gimp.Precision.FLOAT_NON_LINEAR)
    result["float_precision"] = image.get_precision().value_nick
    image.select_rectangle(Gimp.ChannelOps.REPLACE, *sel)
    call("restore_float", "plug-in-restora-restore", image, image.get_layers()[0])
    save(image, "float_restored.tif")


def failure_session():
    """The engine is missing, then silent, then crashing: errors, and the image as it was."""
    sel = args["selection"]
    image = load("rgb.png")
    layer = image.get_layers()[0]
    image.select_rectangle(Gimp.ChannelOps.REPLACE, *sel)
    call("restore_missing", "plug-in-restora-restore", image, layer)
    call("assess_missing", "plug-in-restora-assess", image, layer)
    call("segment_missing", "plug-in-restora-segment", image, layer)
    result["layers_after_missing"] = len(image.get_layers())
    save(image, "missing_after.png")
    for mode, timeout in (("silent", 1.0), ("crash", 30.0)):  # engines that hang or die mid-reply
        with open(args["config"]) as f:
            settings = json.load(f)
        settings.update(python=args["fake_pythons"][mode], timeout=timeout)
        with open(args["config"], "w") as f:
            json.dump(settings, f)
        call(f"restore_{mode}", "plug-in-restora-restore", image, layer)
        save(image, f"{mode}_after.png")


try:
    {"main": main_session, "failure": failure_session}[args["session"]]()
except Exception:
    result["errors"].append(traceback.format_exc())
with open(f"{OUT}/result.json", "w") as f:
    json.dump(result, f, indent=2)
