#!/usr/bin/env python3
"""Restora for GIMP 3: Filters > Enhance > Restora > Restore, Assess, Segment.

This file runs inside GIMP's own Python, which has no torch: it uses only GIMP's GObject API
and the standard library. Pixels go to Restora's engine (``restora.gimp.server``, run by the
Python recorded in ``restora-gimp.json`` by ``restora gimp install``) as raw bytes with a JSON
header, through ``restora_protocol.py`` (installed beside this file from
``restora/gimp/protocol.py``). The drawable is changed only after the engine has answered in
full, through GIMP's shadow buffer, so the selection is honoured, the change is one undo
step, and any failure leaves the image as it was.

Called from scripts (run mode NONINTERACTIVE) the procedures take their options as arguments
and return what they found::

    proc = Gimp.get_pdb().lookup_procedure("plug-in-restora-assess")
    config = proc.create_config()
    config.set_property("image", image)
    config.set_core_object_array("drawables", [layer])
    result = proc.run(config)   # result.index(1) is the score, result.index(2) the degradations found
"""

import json
import os
import sys

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("Gegl", "0.4")
from gi.repository import Gegl, Gimp, GLib, GObject  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import restora_protocol as rp  # noqa: E402  (installed beside this file)

CONFIG_FILE = os.path.join(HERE, "restora-gimp.json")
MENU = "<Image>/Filters/Enhance/Restora"
DEGRADATIONS = ("noise", "blur", "rain", "haze", "low_light", "jpeg")  # the engine's names, checked at hello
CONTEXT = 16  # extra pixels around the selection sent to the engine, so edges see their surroundings
REINSTALL = "In the environment where Restora is installed, run: restora gimp install"


def _arg(name):
    """GIMP argument names use dashes."""
    return name.replace("_", "-")


# -- settings and the engine ---------------------------------------------------------------------

def load_settings():
    """The install record: which Python runs the engine, and its timeouts."""
    try:
        with open(CONFIG_FILE, encoding="utf-8") as f:
            settings = json.load(f)
    except FileNotFoundError:
        raise rp.EngineError("missing", f"{CONFIG_FILE} is missing. {REINSTALL}") from None
    except (OSError, ValueError) as e:
        raise rp.EngineError("missing", f"{CONFIG_FILE} is unreadable ({e}). {REINSTALL}") from None
    if not isinstance(settings, dict) or not settings.get("python"):
        raise rp.EngineError("missing", f"{CONFIG_FILE} names no engine Python. {REINSTALL}")
    return settings


def engine_client():
    s = load_settings()
    return rp.EngineClient(s["python"], timeout=float(s.get("timeout", rp.DEFAULT_TIMEOUT)),
                           idle=float(s.get("idle", rp.DEFAULT_IDLE)),
                           startup=float(s.get("startup", rp.DEFAULT_STARTUP)))


def pixel_format(image, drawable):
    """(babl format name, protocol dtype, channels) to read and write ``drawable`` with.

    Non-linear (perceptual) values, as the engine's training images were; 8-bit images travel
    as u8, 16-bit as u16, and 32-bit integer, half, float and double as float32.
    """
    precision = image.get_precision().value_nick  # e.g. "u8-non-linear", "float-linear"
    if precision.startswith("u8"):
        kind, dtype = "u8", "uint8"
    elif precision.startswith("u16"):
        kind, dtype = "u16", "uint16"
    else:
        kind, dtype = "float", "float32"
    alpha = drawable.has_alpha()
    if drawable.is_rgb():
        model, channels = ("R'G'B'A", 4) if alpha else ("R'G'B'", 3)
    elif drawable.is_gray():
        model, channels = ("Y'A", 2) if alpha else ("Y'", 1)
    else:
        raise rp.EngineError("input", "Restora works on RGB and grey layers; convert the image with "
                                      "Image > Mode > RGB first")
    return f"{model} {kind}", dtype, channels


def work_region(drawable):
    """The selection's bounds within ``drawable`` and a region around them for context:
    ((x, y, w, h) of the selection, Gegl.Rectangle of the region), drawable coordinates."""
    nonempty, x, y, w, h = drawable.mask_intersect()
    if not nonempty or w < 1 or h < 1:
        raise rp.EngineError("input", "the selection does not touch this layer; select part of it, or Select > None")
    x0, y0 = max(0, x - CONTEXT), max(0, y - CONTEXT)
    x1, y1 = min(drawable.get_width(), x + w + CONTEXT), min(drawable.get_height(), y + h + CONTEXT)
    if x1 - x0 < 4 or y1 - y0 < 4:
        raise rp.EngineError("input", f"the region is {x1 - x0}x{y1 - y0} pixels; Restora needs at least 4x4")
    return (x, y, w, h), Gegl.Rectangle.new(x0, y0, x1 - x0, y1 - y0)


def one_drawable(drawables):
    if len(drawables) != 1:
        raise rp.EngineError("input", f"{len(drawables)} layers are selected; select exactly one")
    drawable = drawables[0]
    if isinstance(drawable, Gimp.GroupLayer):
        raise rp.EngineError("input", "a layer group has no pixels of its own; select one of its layers")
    return drawable


def run_engine(op, image, drawable, options, label):
    """Send the drawable's region to the engine; return (reply, pixels, rect, format)."""
    fmt, dtype, channels = pixel_format(image, drawable)
    _, rect = work_region(drawable)
    pixels = drawable.get_buffer().get(rect, 1.0, fmt, Gegl.AbyssPolicy.CLAMP)
    Gimp.progress_init(f"Restora: {label}")
    with engine_client() as client:
        missing = set(DEGRADATIONS) - set(client.capabilities.get("degradations", []))
        if missing:
            raise rp.EngineError("protocol", f"the engine does not know {', '.join(sorted(missing))}. {REINSTALL}")
        reply, out = client.call(op, bytes(pixels), rect.width, rect.height, channels, dtype, options,
                                 progress=lambda done, total: Gimp.progress_update(done / max(total, 1)))
    Gimp.progress_update(1.0)
    return reply, out, rect, fmt


def write_through_shadow(drawable, rect, fmt, pixels):
    """Write pixels where the selection allows: GIMP merges the shadow through the selection
    mask and records the change for undo."""
    shadow = drawable.get_shadow_buffer()
    shadow.set(rect, fmt, bytes(pixels))
    shadow.flush()
    drawable.merge_shadow(True)
    drawable.update(rect.x, rect.y, rect.width, rect.height)


# -- procedures -----------------------------------------------------------------------------------

def failure(procedure, run_mode, error):
    """An error status carrying a message that says what to do; shown by GIMP when interactive."""
    message = str(error) if str(error).startswith("Restora") else f"Restora: {error}"
    if run_mode != Gimp.RunMode.INTERACTIVE:
        Gimp.message(message)  # scripts and batch runs see it in the error console / on stderr
    return procedure.new_return_values(Gimp.PDBStatusType.EXECUTION_ERROR, GLib.Error(message))


def with_returns(procedure, values):
    """SUCCESS plus the procedure's return values, given as (GType, value) in declared order."""
    result = procedure.new_return_values(Gimp.PDBStatusType.SUCCESS, None)
    for i, (gtype, value) in enumerate(values, start=1):
        result.remove(i)
        result.insert(i, GObject.Value(gtype, value))
    return result


def show_dialog(procedure, config, title):
    gi.require_version("GimpUi", "3.0")
    from gi.repository import GimpUi

    GimpUi.init("restora")
    dialog = GimpUi.ProcedureDialog.new(procedure, config, title)
    dialog.fill(None)
    ok = dialog.run()
    dialog.destroy()
    return ok


def restore_options(config):
    if config.get_property("auto"):
        chosen = "auto"
    else:
        chosen = [d for d in DEGRADATIONS if config.get_property(_arg(d))]
        if not chosen:
            raise rp.EngineError("input", "'auto' is off and no degradation is ticked; tick 'auto' or at least one")
    return {"degradations": chosen, "strength": config.get_property("strength"),
            "max_iterations": config.get_property("max-iterations"), "refine": config.get_property("refine")}


def run_restore(procedure, run_mode, image, drawables, config, data):
    if run_mode == Gimp.RunMode.INTERACTIVE and not show_dialog(procedure, config, "Restora: Restore"):
        return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, None)
    try:
        drawable = one_drawable(drawables)
        reply, out, rect, fmt = run_engine("restore", image, drawable, restore_options(config), "restoring")
    except rp.EngineError as e:
        return failure(procedure, run_mode, e)
    image.undo_group_start()
    try:
        write_through_shadow(drawable, rect, fmt, out)
    finally:
        image.undo_group_end()
    Gimp.displays_flush()
    report = reply["report"]
    return with_returns(procedure, [
        (GObject.TYPE_DOUBLE, float(report["quality_before"])),
        (GObject.TYPE_DOUBLE, float(report["quality_after"])),
        (GObject.TYPE_STRING, ",".join(report["found"])),
        (GObject.TYPE_INT, int(report["iterations"])),
    ])


def run_assess(procedure, run_mode, image, drawables, config, data):
    try:
        reply, _, _, _ = run_engine("assess", image, one_drawable(drawables), {}, "assessing")
    except rp.EngineError as e:
        return failure(procedure, run_mode, e)
    report = reply["report"]
    found = ", ".join(report["found"]) or "none"
    if run_mode == Gimp.RunMode.INTERACTIVE:
        probs = ", ".join(f"{k} {v:.2f}" for k, v in report["degradations"].items())
        Gimp.message(f"Restora: quality {report['score']:.3f} (0 to 1, higher is better)\n"
                     f"Degradations found: {found}\nProbabilities: {probs}")
    return with_returns(procedure, [(GObject.TYPE_DOUBLE, float(report["score"])),
                                    (GObject.TYPE_STRING, ",".join(report["found"]))]
                        + [(GObject.TYPE_DOUBLE, float(report["degradations"][d])) for d in DEGRADATIONS])


def run_segment(procedure, run_mode, image, drawables, config, data):
    try:
        drawable = one_drawable(drawables)
        rgb = image.get_base_type() == Gimp.ImageBaseType.RGB
        reply, out, rect, _ = run_engine("segment", image, drawable, {"map": "rgb" if rgb else "grey"}, "segmenting")
    except rp.EngineError as e:
        return failure(procedure, run_mode, e)
    report = reply["report"]
    present = [c for c, f in report["fractions"].items() if f > 0]
    image.undo_group_start()
    try:
        layer = Gimp.Layer.new(image, "Restora degradations: " + ", ".join(present), drawable.get_width(),
                               drawable.get_height(),
                               Gimp.ImageType.RGBA_IMAGE if rgb else Gimp.ImageType.GRAYA_IMAGE,
                               100.0, Gimp.LayerMode.NORMAL)
        _, ox, oy = drawable.get_offsets()
        layer.set_offsets(ox, oy)
        if isinstance(drawable, Gimp.Layer):
            image.insert_layer(layer, drawable.get_parent(), image.get_item_position(drawable))
        else:  # a channel or mask: put the map on top
            image.insert_layer(layer, None, 0)
        layer.fill(Gimp.FillType.TRANSPARENT)
        # through the shadow, so only the selected area shows the map
        write_through_shadow(layer, rect, "R'G'B' u8" if rgb else "Y' u8", out)
    finally:
        image.undo_group_end()
    Gimp.displays_flush()
    if run_mode == Gimp.RunMode.INTERACTIVE:
        levels = report.get("grey_levels", {})  # grey images cannot hold colours: say which grey is which
        Gimp.message("Restora degradation map: " + ", ".join(
            f"{c} {100 * f:.1f}%" + (f" (grey {levels[c]})" if c in levels else "")
            for c, f in report["fractions"].items() if f > 0))
    return with_returns(procedure, [(Gimp.Layer, layer)])


class Restora(Gimp.PlugIn):
    """Registers Restore, Assess and Segment under Filters > Enhance > Restora."""

    def do_set_i18n(self, name):
        return False

    def do_query_procedures(self):
        return ["plug-in-restora-restore", "plug-in-restora-assess", "plug-in-restora-segment"]

    def do_create_procedure(self, name):
        flags = GObject.ParamFlags.READWRITE
        if name == "plug-in-restora-restore":
            p = Gimp.ImageProcedure.new(self, name, Gimp.PDBProcType.PLUGIN, run_restore, None)
            p.set_menu_label("_Restore...")
            p.set_documentation("Remove noise, blur, rain, haze, low light and JPEG artefacts",
                                "Blind restoration by Restora's engine; only the selected area changes.", name)
            p.add_boolean_argument("auto", "_Auto", "Remove whatever degradations are found", True, flags)
            for d in DEGRADATIONS:
                p.add_boolean_argument(_arg(d), d.replace("_", " ").capitalize(),
                                       f"Remove {d.replace('_', ' ')} (when Auto is off)", False, flags)
            p.add_double_argument("strength", "_Strength", "0 keeps the input, 1 the full restoration",
                                  0.0, 1.0, 1.0, flags)
            p.add_int_argument("max-iterations", "_Max iterations", "Most restore-assess rounds", 1, 10, 3, flags)
            p.add_boolean_argument("refine", "Second stage (noise)",
                                   "Where noise was found, a noise-model Wiener filter guided by the rounds", True, flags)
            p.add_double_return_value("quality-before", "Quality before", "No-reference quality, 0 to 1",
                                      0.0, 1.0, 0.0, flags)
            p.add_double_return_value("quality-after", "Quality after", "No-reference quality, 0 to 1",
                                      0.0, 1.0, 0.0, flags)
            p.add_string_return_value("found", "Found", "Comma-separated degradations found", "", flags)
            p.add_int_return_value("iterations", "Iterations", "Rounds kept", 0, 100, 0, flags)
        elif name == "plug-in-restora-assess":
            p = Gimp.ImageProcedure.new(self, name, Gimp.PDBProcType.PLUGIN, run_assess, None)
            p.set_menu_label("_Assess")
            p.set_documentation("Score the quality and name the degradations present",
                                "No-reference quality in [0, 1] and each degradation's probability, "
                                "over the selected area.", name)
            p.add_double_return_value("score", "Score", "No-reference quality, 0 to 1", 0.0, 1.0, 0.0, flags)
            p.add_string_return_value("found", "Found", "Comma-separated degradations found", "", flags)
            for d in DEGRADATIONS:
                p.add_double_return_value(_arg(d), d, f"Probability of {d.replace('_', ' ')}", 0.0, 1.0, 0.0, flags)
        elif name == "plug-in-restora-segment":
            p = Gimp.ImageProcedure.new(self, name, Gimp.PDBProcType.PLUGIN, run_segment, None)
            p.set_menu_label("_Segment")
            p.set_documentation("Map which degradation is where",
                                "Adds a layer above the active one with the colour-coded degradation map "
                                "of the selected area.", name)
            p.add_layer_return_value("layer", "Layer", "The new map layer", False, flags)
        else:
            return None
        p.set_image_types("RGB*, GRAY*")
        p.set_sensitivity_mask(Gimp.ProcedureSensitivityMask.DRAWABLE)
        p.set_attribution("The Restora team", "The Restora team", "2025")
        p.add_menu_path(MENU)
        return p


if __name__ == "__main__":
    Gimp.main(Restora.__gtype__, sys.argv)
