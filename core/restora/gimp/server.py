"""The engine side of the GIMP plug-in protocol (see `restora.gimp.protocol`).

Run as ``python -m restora.gimp.server --socket PATH [--idle SECONDS]``; the plug-in starts it
when nothing listens on its socket. It serves one connection at a time, keeps the model loaded
between requests (the core caches it per weights and device), and exits after ``--idle``
seconds without a connection. A lock file beside the socket makes a second engine started in
a race exit quietly instead of stealing the socket.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time
import traceback
from typing import Callable

import numpy as np

from .. import __version__
from .._checks import RestoraError
from .._names import DEGRADATIONS, SEGMENT_CLASSES
from .protocol import (DTYPE_SIZES, OPS, PROTOCOL_VERSION, ProtocolError, check_pixels, recv_message,
                       send_message)

_NUMPY_DTYPES = {"uint8": np.uint8, "uint16": np.uint16, "float32": np.float32}
GREY_LEVELS = tuple(round(i * 255 / (len(SEGMENT_CLASSES) - 1)) for i in range(len(SEGMENT_CLASSES)))
"""Grey value of each segmentation class, for maps in grey images (which cannot hold colour)."""


def _hello(device: str) -> dict:
    return {"op": "hello", "protocol": PROTOCOL_VERSION, "restora": __version__, "ops": list(OPS),
            "dtypes": list(DTYPE_SIZES), "channels": [1, 2, 3, 4], "degradations": list(DEGRADATIONS),
            "classes": list(SEGMENT_CLASSES), "device": device, "pid": os.getpid(),
            "python": sys.version.split()[0]}


def _pixels(header: dict, payload) -> np.ndarray:
    """The request's pixels as an (H, W, C) array (C = 1 to 4), checked against the header."""
    try:
        check_pixels(header, payload)
    except ProtocolError as e:
        raise RestoraError(str(e)) from None
    c = header["channels"]
    if c not in (1, 2, 3, 4):
        raise RestoraError(f"{c} channels; the plug-in sends 1 to 4 (grey, grey+alpha, RGB, RGBA)")
    a = np.frombuffer(payload, dtype=_NUMPY_DTYPES[header["dtype"]])
    return a.reshape(header["height"], header["width"], c)


def _colour_and_alpha(image: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Split off alpha: grey+alpha becomes (H, W) grey and its alpha; RGBA stays whole (the core
    passes its alpha through)."""
    if image.shape[2] == 2:
        return image[..., 0], image[..., 1:]
    if image.shape[2] == 1:
        return image[..., 0], None
    return image, None


def _float_span(image: np.ndarray) -> tuple[float, float]:
    """The value range to map to [0, 1]: (0, 1) for integers and in-range floats; for floats
    beyond it (GIMP's high-bit-depth HDR or out-of-gamut values) a range covering the data, so
    those values survive the round trip instead of being clipped."""
    if image.dtype.kind != "f":
        return 0.0, 1.0
    if not np.isfinite(image).all():
        raise RestoraError("the layer has NaN or infinite values; fix them (e.g. Colors > Curves) and try again")
    return min(0.0, float(image.min())), max(1.0, float(image.max()))


def _options(options: dict) -> dict:
    """Check the request's options; say which one is wrong and what it should be."""
    known = {"degradations", "strength", "max_iterations", "refine", "map"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise RestoraError(f"unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    out = dict(options)
    try:
        out["strength"] = float(options.get("strength", 1.0))
        out["max_iterations"] = int(options.get("max_iterations", 3))
    except (TypeError, ValueError):
        raise RestoraError(f"strength must be a number in [0, 1] and max_iterations an integer, got "
                           f"{options.get('strength')!r} and {options.get('max_iterations')!r}") from None
    if not 0 <= out["strength"] <= 1 or not 1 <= out["max_iterations"] <= 100:
        raise RestoraError(f"strength {out['strength']} must lie in [0, 1] and max_iterations "
                           f"{out['max_iterations']} in 1..100")
    refine = options.get("refine", True)
    if not isinstance(refine, bool):
        raise RestoraError(f"refine must be true or false, got {refine!r}")
    out["refine"] = refine
    out["degradations"] = options.get("degradations", "auto")
    return out


def handle(header: dict, payload, device: str, progress: Callable[[int, int], None]) -> tuple[dict, bytes]:
    """Answer one request: the result header and its pixels (``RestoraError`` for bad input)."""
    from ..engine.api import assess, restore, segment
    from ..palette import colourize

    op = header["op"]
    options = _options(dict(header.get("options") or {}))
    image = _pixels(header, payload)
    colour, alpha = _colour_and_alpha(image)
    lo, hi = _float_span(colour)
    if (lo, hi) != (0.0, 1.0):
        colour = ((colour - lo) / (hi - lo)).astype(np.float32)
    h, w = image.shape[:2]
    if op == "restore":
        r = restore(colour, options["degradations"], options["max_iterations"], device,
                    progress=progress, strength=options["strength"], refine=options["refine"])
        out = r.image if r.image.ndim == 3 else r.image[..., None]
        if (lo, hi) != (0.0, 1.0):
            out = out * np.float32(hi - lo) + np.float32(lo)
        if alpha is not None:
            out = np.concatenate([out, alpha], axis=2)
        report = {"quality_before": r.quality_before, "quality_after": r.quality_after,
                  "degradations": r.degradations, "found": [k for k, v in r.degradations.items() if v >= 0.5],
                  "iterations": r.iterations, "history": r.history, "refined": r.refined,
                  "seconds": round(r.seconds, 3)}
        result = {"op": "result", "width": w, "height": h, "channels": image.shape[2], "dtype": header["dtype"],
                  "report": report}
        return result, np.ascontiguousarray(out, dtype=image.dtype).tobytes()
    if op == "assess":
        q = assess(colour, device, progress=progress)
        return {"op": "result", "report": {"score": q.score, "degradations": q.degradations, "found": q.found()}}, b""
    if op == "segment":
        s = segment(colour, device, progress=progress)
        kind = options.get("map", "rgb")
        if kind == "rgb":
            out = colourize(s.labels)
        elif kind == "grey":
            out = np.asarray(GREY_LEVELS, np.uint8)[s.labels][..., None]
        elif kind == "labels":
            out = s.labels[..., None]
        else:
            raise RestoraError(f"map {kind!r} is not one of rgb, grey, labels")
        counts = np.bincount(s.labels.ravel(), minlength=len(SEGMENT_CLASSES))
        report = {"classes": list(s.classes), "fractions": {c: round(float(n) / s.labels.size, 4)
                                                            for c, n in zip(s.classes, counts)}}
        if kind == "grey":
            report["grey_levels"] = dict(zip(s.classes, GREY_LEVELS))
        return ({"op": "result", "width": w, "height": h, "channels": out.shape[2], "dtype": "uint8",
                 "report": report}, np.ascontiguousarray(out).tobytes())
    raise RestoraError(f"unknown operation {op!r}; expected one of {', '.join(OPS)}")


def serve_connection(conn: socket.socket, device: str, log=print) -> bool:
    """Serve requests on one connection until it closes; False if asked to shut down."""
    while True:
        try:
            msg = recv_message(conn)
        except (ProtocolError, OSError) as e:
            log(f"dropped a connection: {e}")
            return True
        if msg is None:
            return True
        header, payload = msg
        op = header["op"]
        try:
            if op == "hello":
                send_message(conn, _hello(device))
                continue
            if op == "shutdown":
                send_message(conn, {"op": "bye"})
                return False
            t0 = time.perf_counter()

            def progress(done: int, total: int) -> None:
                send_message(conn, {"op": "progress", "done": done, "total": total})

            try:
                result, pixels = handle(header, payload, device, progress)
            except RestoraError as e:
                send_message(conn, {"op": "error", "kind": "input", "message": str(e)})
                continue
            except (OSError, ProtocolError):
                raise
            except Exception as e:  # the engine failed: say so, log the traceback, keep serving
                log(traceback.format_exc())
                send_message(conn, {"op": "error", "kind": "internal",
                                    "message": f"Restora's engine failed: {type(e).__name__}: {e}"})
                continue
            send_message(conn, result, pixels)
            log(f"{op} {header.get('width')}x{header.get('height')}x{header.get('channels')} "
                f"{header.get('dtype')} in {time.perf_counter() - t0:.2f} s")
        except OSError as e:  # the client went away mid-reply (e.g. it timed out)
            log(f"client went away during {op}: {e}")
            return True


def _lock(path: str):
    """Hold an exclusive lock for the engine's lifetime; None if another engine holds it."""
    import fcntl

    f = open(path, "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.close()
        return None
    return f


def serve(socket_path: str, idle: float, device: str = "auto") -> int:
    """Listen on ``socket_path`` until ``idle`` seconds pass without a connection."""
    def log(msg: str) -> None:
        print(f"[restora-engine {os.getpid()} {time.strftime('%H:%M:%S')}] {msg}", flush=True)

    lock = _lock(socket_path + ".lock")
    if lock is None:
        log("another engine serves this socket; exiting")
        return 0
    from ..engine.device import resolve_device
    from ..engine.weights import load_model

    dev = str(resolve_device(device))
    load_model("default", dev)  # load now, so the first request does not pay for it
    if os.path.exists(socket_path):
        os.unlink(socket_path)  # stale: we hold the lock, so no engine is listening there
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        old = os.umask(0o177)  # the socket is for this user only
        try:
            server.bind(socket_path)
        finally:
            os.umask(old)
        server.listen(4)
        server.settimeout(idle)
        log(f"restora {__version__} serving {socket_path} on {dev}; exits after {idle:.0f} s idle")
        while True:
            try:
                conn, _ = server.accept()
            except socket.timeout:
                log("idle; exiting")
                return 0
            with conn:
                conn.settimeout(idle)  # a client silent this long is dropped
                if not serve_connection(conn, dev, log):
                    log("asked to shut down")
                    return 0
    finally:
        server.close()
        try:
            os.unlink(socket_path)
        except OSError:
            pass
        lock.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m restora.gimp.server", description=__doc__.splitlines()[0])
    ap.add_argument("--socket", required=True, help="Unix socket path to listen on")
    ap.add_argument("--idle", type=float, default=600.0, help="exit after this many seconds without a request")
    ap.add_argument("--device", default="auto")
    args = ap.parse_args(argv)
    return serve(args.socket, args.idle, args.device)


if __name__ == "__main__":
    sys.exit(main())
