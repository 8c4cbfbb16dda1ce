"""The ``restora`` command: restore, assess, segment, info, demo.

Exit codes: 0 success, 1 some input failed (each with a one-line reason), 2 bad usage.
Inputs are never overwritten; an existing output is refused unless ``--overwrite``; every
file is written atomically.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

from ._checks import RestoraError
from ._names import DEGRADATIONS, SEGMENT_CLASSES


class ProgressBar:
    """A one-line progress bar on stderr, drawn only on a terminal (logs stay clean)."""

    def __init__(self, label: str, enabled: bool | None = None) -> None:
        self.label = label
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.start = time.perf_counter()

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled or total <= 0:
            return
        frac = done / total
        bar = "#" * int(30 * frac)
        elapsed = time.perf_counter() - self.start
        sys.stderr.write(f"\r{self.label[:30]:30s} [{bar:30s}] {100 * frac:5.1f}% {elapsed:6.1f}s")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def _fail(msg: str) -> None:
    print(f"restora: error: {msg}", file=sys.stderr)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def _check_outputs(pairs: list[tuple[Path, list[Path]]], inputs: list[Path], overwrite: bool) -> None:
    """Refuse, before any work, outputs that are inputs, collide, or exist (without --overwrite)."""
    seen: dict[Path, Path] = {}
    for src, outs in pairs:
        for out in outs:
            for inp in inputs:
                if _same_file(out, inp):
                    raise RestoraError(f"output {out} would overwrite the input {inp}; choose another output folder")
            key = out.resolve()
            if key in seen:
                raise RestoraError(f"{src} and {seen[key]} would both be written to {out}; restore them separately")
            seen[key] = src
            if out.exists() and not overwrite:
                raise RestoraError(f"{out} exists; pass --overwrite to replace it")
            if not out.parent.is_dir():
                raise RestoraError(f"output folder {out.parent} does not exist; create it first")


def _each(inputs: Sequence[Path], work: Callable[[Path], None]) -> int:
    failed = 0
    for path in inputs:
        try:
            work(path)
        except (RestoraError, OSError) as e:
            _fail(f"{path}: {e}" if str(path) not in str(e) else str(e))
            failed += 1
    return 1 if failed else 0


def _xcf_layers(path: Path, wanted: str | None):
    """A GIMP .xcf's canvas, all its layers, and the indices of those to work on."""
    from .io._layers import read_xcf

    canvas, layers = read_xcf(path)
    if wanted is None:
        return canvas, layers, list(range(len(layers)))
    chosen = [i for i, layer in enumerate(layers) if layer.name == wanted]
    if not chosen and wanted.isdigit() and int(wanted) < len(layers):
        chosen = [int(wanted)]
    if not chosen:
        names = ", ".join(repr(layer.name) for layer in layers)
        raise RestoraError(f"{path} has no layer {wanted!r}; its layers (top first): {names}")
    return canvas, layers, chosen


def _xcf_outputs(path: Path, outdir: Path, fmt: str, names: list[str]) -> list[Path]:
    from .io._layers import safe_name

    if fmt == "ora":
        return [outdir / (path.stem + ".ora")]
    outs, seen = [], set()
    for i, name in enumerate(names):
        stem = f"{path.stem}.{safe_name(name)}"
        stem = stem if stem not in seen else f"{stem}.{i}"
        seen.add(stem)
        outs.append(outdir / f"{stem}.{fmt}")
    return outs


def _restore_options(args: argparse.Namespace, label: str) -> dict:
    """The keyword options of `restora.restore` that the restore command's flags set, with a
    progress bar labelled ``label``."""
    return {"progress": ProgressBar(label, None if not args.quiet else False), "strength": args.strength,
            "in_range": args.in_range, "tile_size": args.tile_size, "weights": args.weights,
            "precision": args.precision, "refine": not args.no_refine, "dehaze": not args.no_dehaze, "brighten": not args.no_brighten,
            "deblur": not args.no_deblur, "dejpeg": not args.no_dejpeg, "derain": not args.no_derain}


def _restore_layer(image, args, label: str):
    """Restore one layer's pixels; grey + alpha is restored as grey with its alpha kept."""
    import numpy as np

    from .engine.api import restore

    colour, alpha = (image[..., 0], image[..., 1:]) if image.shape[2] == 2 else (image, None)
    r = restore(colour, args.degradations, args.max_iterations, args.device, None, **_restore_options(args, label))
    out = r.image if alpha is None else np.concatenate([r.image[..., None], alpha], axis=2)
    return out, r


def cmd_restore(args: argparse.Namespace) -> int:
    from .engine.api import restore
    from .io import read_image, write_image
    from .io._layers import is_xcf, write_ora

    outdir = Path(args.output)
    if not outdir.is_dir():
        if outdir.exists():
            raise RestoraError(f"{outdir} is not a folder; -o takes an output folder")
        outdir.mkdir(parents=True)
    inputs = [Path(p) for p in args.inputs]
    if args.layer is not None and not any(is_xcf(p) for p in inputs):
        raise RestoraError("--layer applies to GIMP .xcf inputs only")
    layered = {p: _xcf_layers(p, args.layer) for p in inputs if is_xcf(p)}
    planned = [(p, _xcf_outputs(p, outdir, args.xcf_format, [layered[p][1][i].name for i in layered[p][2]])
                if p in layered else [outdir / p.name]) for p in inputs]
    _check_outputs(planned, inputs, args.overwrite)
    outputs = dict(planned)
    reports = {}

    def work_xcf(path: Path) -> None:
        canvas, layers, chosen = layered[path]
        for n, i in enumerate(chosen):
            layer = layers[i]
            restored, r = _restore_layer(layer.image, args, f"{path.name}[{layer.name}]")
            layer.image = restored
            key = f"{path}[{layer.name}]"
            reports[key] = {"degradations": r.degradations, "quality_before": round(r.quality_before, 4),
                            "quality_after": round(r.quality_after, 4), "iterations": r.iterations,
                            "refined": r.refined, "dehazed": r.dehazed, "brightened": r.brightened,
                            "deblurred": r.deblurred, "dejpegged": r.dejpegged, "derained": r.derained}
            if args.xcf_format != "ora":
                img = restored[..., 0] if restored.shape[2] == 1 else restored
                if img.ndim == 3 and img.shape[2] == 2:
                    img = _grey_alpha_as_rgba(img)
                out = write_image(outputs[path][n], img, overwrite=args.overwrite)
                reports[key]["output"] = str(out)
                if not args.json:
                    print(f"{key} -> {out}: {r.report()}")
            elif not args.json:
                print(f"{key}: {r.report()}")
        if args.xcf_format == "ora":
            out = write_ora(outputs[path][0], canvas, layers, overwrite=args.overwrite)
            for i in chosen:
                reports[f"{path}[{layers[i].name}]"]["output"] = str(out)
            if not args.json:
                print(f"{path} -> {out} ({len(chosen)} of {len(layers)} layers restored)")

    def work(path: Path) -> None:
        if path in layered:
            return work_xcf(path)
        image, axes = read_image(path)
        r = restore(image, args.degradations, args.max_iterations, args.device, axes,
                    **_restore_options(args, path.name))
        out = write_image(outdir / path.name, r.image, axes, overwrite=args.overwrite)
        reports[str(path)] = {"output": str(out), "degradations": r.degradations,
                              "quality_before": round(r.quality_before, 4), "quality_after": round(r.quality_after, 4),
                              "iterations": r.iterations, "history": r.history, "refined": r.refined,
                              "dehazed": r.dehazed, "brightened": r.brightened, "deblurred": r.deblurred,
                              "dejpegged": r.dejpegged, "derained": r.derained, "seconds": round(r.seconds, 3)}
        if not args.json:
            print(f"{path} -> {out}: {r.report()}")

    code = _each(inputs, work)
    if args.json:
        print(json.dumps(reports, indent=2))
    return code


def _grey_alpha_as_rgba(image):
    """PNG/TIFF writers take 1, 3 or 4 channels: grey + alpha goes out as RGBA."""
    import numpy as np

    return np.concatenate([np.repeat(image[..., :1], 3, axis=2), image[..., 1:]], axis=2)


def cmd_assess(args: argparse.Namespace) -> int:
    from .engine.api import assess
    from .io import read_image
    from .io._layers import is_xcf

    results = {}

    def one(key: str, image, axes) -> None:
        q = assess(image, args.device, axes, weights=args.weights, in_range=args.in_range, precision=args.precision)
        results[key] = {"score": round(q.score, 4), "degradations": q.degradations, "found": q.found()}
        if not args.json:
            found = ", ".join(q.found()) or "none"
            print(f"{key}: quality {q.score:.3f}; degradations found: {found}; "
                  + " ".join(f"{k}={v:.2f}" for k, v in q.degradations.items()))

    def work(path: Path) -> None:
        if is_xcf(path):
            _, layers, chosen = _xcf_layers(path, args.layer)
            for i in chosen:  # grey + alpha is assessed on its grey
                image = layers[i].image
                one(f"{path}[{layers[i].name}]", image[..., 0] if image.shape[2] == 2 else image, None)
            return
        if args.layer is not None:
            raise RestoraError(f"{path}: --layer applies to GIMP .xcf inputs only")
        one(str(path), *read_image(path))

    code = _each([Path(p) for p in args.inputs], work)
    if args.json:
        print(json.dumps(results, indent=2))
    return code


def _labels_path(out: Path) -> Path:
    return out.with_name(out.stem + "_labels" + (".tif" if out.suffix.lower() in (".tif", ".tiff") else ".png"))


def cmd_segment(args: argparse.Namespace) -> int:
    import numpy as np

    from .engine.api import segment
    from .io import read_image, write_image
    from .palette import colourize, with_legend

    src, out = Path(args.input), Path(args.output)
    labels_out = _labels_path(out)
    _check_outputs([(src, [out, labels_out])], [src], args.overwrite)

    def work(path: Path) -> None:
        image, axes = read_image(path)
        s = segment(image, args.device, axes, ProgressBar(path.name, None if not args.quiet else False),
                    weights=args.weights, in_range=args.in_range, precision=args.precision)
        colour = colourize(s.labels)
        map_axes = axes.replace("C", "")
        if s.labels.ndim == 2:
            present = sorted(set(np.unique(s.labels).tolist()))
            write_image(out, with_legend(colour, present), "YXC", overwrite=args.overwrite)
            write_image(labels_out, s.labels, "YX", overwrite=args.overwrite)
        else:
            if out.suffix.lower() not in (".tif", ".tiff"):
                raise RestoraError(f"{path} is a stack ({axes}); write its map as .tif, not {out.suffix}")
            write_image(out, colour, map_axes + "C", overwrite=args.overwrite)
            write_image(labels_out, s.labels, map_axes, overwrite=args.overwrite)
        fractions = {c: round(float((s.labels == i).mean()), 4) for i, c in enumerate(SEGMENT_CLASSES)}
        print(f"{path} -> {out}, {labels_out}: " + ", ".join(f"{c} {100 * f:.1f}%" for c, f in fractions.items() if f > 0))

    return _each([src], work)


def cmd_info(args: argparse.Namespace) -> int:
    import numpy
    import torch

    from . import __version__
    from .engine.device import available_devices, resolve_device
    from .engine.weights import available_weights, cache_dir, default_weights_name, sha256_file

    print(f"restora {__version__}  python {sys.version.split()[0]}  torch {torch.__version__}  numpy {numpy.__version__}")
    from .engine.engine import resolve_precision

    auto = resolve_device("auto")
    print(f"devices: {', '.join(available_devices())}  (auto -> {auto})")
    print(f"precision: auto -> {resolve_precision(None, torch.device(auto))} on {auto}"
          + ("" if "RESTORA_PRECISION" not in os.environ else f" (RESTORA_PRECISION={os.environ['RESTORA_PRECISION']})"))
    print(f"weights cache: {cache_dir()}")
    default = default_weights_name()
    for name, info in available_weights().items():
        if not info.path.exists():
            state = "MISSING"
        elif info.sha256 is None:
            state = "no checksum"
        else:
            state = "sha256 ok" if sha256_file(info.path) == info.sha256 else "CORRUPT (sha256 mismatch)"
        mark = " (default)" if name == default else ""
        print(f"weights {name}{mark}: {info.path} [{state}]")
    print(f"degradations: {', '.join(DEGRADATIONS)}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(Path(args.output), overwrite=args.overwrite, device=args.device)


def cmd_gimp(args: argparse.Namespace) -> int:
    from .gimp.install import gimp_plugin_root, install, uninstall

    root = args.plugin_dir or gimp_plugin_root()
    if args.action == "install":
        dest = install(root, args.python, timeout=args.timeout, idle=args.idle)
        print(f"installed the GIMP plug-in in {dest} (engine: {args.python or sys.executable}); "
              "restart GIMP, then find it under Filters > Enhance > Restora")
    else:
        dest = uninstall(root)
        print(f"removed the GIMP plug-in from {dest}" if dest else f"the GIMP plug-in is not installed in {root}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    from .engine.engine import PRECISIONS

    ap = argparse.ArgumentParser(prog="restora", description="Blind all-in-one image restoration, assessment and segmentation.")
    ap.add_argument("--version", action="version", version=f"restora {__version__}")
    sub = ap.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default auto)")
        p.add_argument("--weights", default="default", help="weights name or .safetensors path")
        p.add_argument("--in-range", default="dtype", choices=["dtype", "image"],
                       help="map the dtype's full range (default) or the image's min..max to black..white")
        p.add_argument("--precision", choices=PRECISIONS, default=None,
                       help="the network's arithmetic: auto (default; $RESTORA_PRECISION if set) is bfloat16 "
                            "on a CPU with native bfloat16, about twice as fast, else float32")
        p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    p = sub.add_parser("restore", help="restore images into an output folder")
    p.add_argument("inputs", nargs="+", metavar="IN", help="PNG, JPEG or TIFF files")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="output folder (created if missing)")
    p.add_argument("--degradations", default="auto", help=f"auto, or a comma list of: {','.join(DEGRADATIONS)}")
    p.add_argument("--max-iterations", type=int, default=3)
    p.add_argument("--no-refine", action="store_true",
                   help="skip the second stage (the Wiener refinement of noise after the rounds)")
    p.add_argument("--no-dehaze", action="store_true",
                   help="do not propose the haze model's inverse (transmission and airlight) as a round")
    p.add_argument("--no-brighten", action="store_true",
                   help="do not propose the low-light model's inverse (the gain that undoes the exposure) as a round")
    p.add_argument("--no-deblur", action="store_true",
                   help="do not deconvolve by the blur model's kernel where it finds blur")
    p.add_argument("--no-dejpeg", action="store_true",
                   help="do not undo JPEG's coding first where the image's coefficients show it")
    p.add_argument("--no-derain", action="store_true",
                   help="do not take out the rain model's streak layer where it finds rain")
    p.add_argument("--strength", type=float, default=1.0)
    p.add_argument("--tile-size", type=int, default=512)
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs (never inputs)")
    p.add_argument("--json", action="store_true", help="print the reports as JSON")
    p.add_argument("--layer", metavar="NAME", help="GIMP .xcf inputs: restore only this layer (name or index, "
                                                   "0 = top); default: every layer")
    p.add_argument("--xcf-format", choices=["ora", "png", "tif"], default="ora",
                   help="GIMP .xcf inputs: write one OpenRaster file with every layer (default), "
                        "or one PNG/TIFF per restored layer")
    common(p)
    p.set_defaults(func=cmd_restore)

    p = sub.add_parser("assess", help="no-reference quality and the degradations present")
    p.add_argument("inputs", nargs="+", metavar="IN")
    p.add_argument("--json", action="store_true")
    p.add_argument("--layer", metavar="NAME", help="GIMP .xcf inputs: assess only this layer (default: each)")
    common(p)
    p.set_defaults(func=cmd_assess)

    p = sub.add_parser("segment", help="per-pixel degradation map (colour map with legend, and raw labels)")
    p.add_argument("input", metavar="IN")
    p.add_argument("-o", "--output", required=True, metavar="OUT",
                   help="colour map file (.png; .tif for stacks); the labels go beside it as *_labels.png/.tif")
    p.add_argument("--overwrite", action="store_true")
    common(p)
    p.set_defaults(func=cmd_segment)

    p = sub.add_parser("gimp", help="install or remove the GIMP 3 plug-in (Filters > Enhance > Restora)")
    p.add_argument("action", choices=["install", "uninstall"])
    p.add_argument("--plugin-dir", metavar="DIR",
                   help="GIMP 3's plug-in folder (default: $GIMP3_DIRECTORY/plug-ins, else the user's GIMP 3.0 folder)")
    p.add_argument("--python", metavar="PATH", help="the Python that runs the engine (default: this one)")
    p.add_argument("--timeout", type=float, default=300.0,
                   help="seconds the plug-in waits for any word from the engine (default 300)")
    p.add_argument("--idle", type=float, default=600.0,
                   help="seconds the engine keeps the model loaded after its last request (default 600)")
    p.set_defaults(func=cmd_gimp)

    p = sub.add_parser("info", help="versions, devices and weights")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("demo", help="restore the bundled sample and print what was found")
    p.add_argument("-o", "--output", default="demo_out", metavar="OUTDIR")
    p.add_argument("--device", default="auto")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_demo)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except RestoraError as e:
        _fail(str(e))
        return 1
    except KeyboardInterrupt:
        _fail("interrupted; no partial output was written")
        return 130


if __name__ == "__main__":
    sys.exit(main())
