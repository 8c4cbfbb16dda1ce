"""The GIMP plug-in's wire protocol and its client: standard library only.

GIMP's Python has no torch, so the plug-in sends pixels to an engine process that runs in the
Python where Restora is installed (`restora.gimp.server`). This one module is the protocol's
only definition: the server imports it as ``restora.gimp.protocol`` and ``restora gimp install``
copies it beside the plug-in as ``restora_protocol.py``. It must therefore import nothing but
the standard library (a test checks this).

Messages
--------
Each message is a frame::

    b"RSTR" | header length (uint32, big-endian) | payload length (uint64, big-endian)
    | header (UTF-8 JSON object with an "op" key) | payload (raw bytes)

Pixels travel as the payload: rows top to bottom, pixels left to right, channels interleaved,
native byte order of ``"dtype"`` (uint8, uint16 or float32), described in the header by
``width``, ``height``, ``channels`` and ``dtype``.

A connection starts with a handshake: the client sends ``{"op": "hello", "protocol": N}`` and the
engine answers ``{"op": "hello", "protocol": N, ...capabilities}`` (ops, dtypes, channels,
degradations, restora version, device, pid). A client refuses an engine whose protocol differs.
A request (``restore``, ``assess``, ``segment``) is answered by zero or more
``{"op": "progress", "done": d, "total": t}`` and then one ``{"op": "result", ...}`` (with pixels
for restore and segment) or ``{"op": "error", "kind": ..., "message": ...}``. ``shutdown`` asks
the engine to exit.

Transport
---------
A Unix socket in a private per-user folder. The client starts the engine when nothing listens
there (detached, with a clean environment, logging to a file beside the socket); the engine keeps
its weights loaded between calls and exits after ``idle`` seconds without a request.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time

PROTOCOL_VERSION = 1
MAGIC = b"RSTR"
_PREFIX = struct.Struct(">4sIQ")
MAX_HEADER_BYTES = 1 << 20
MAX_PAYLOAD_BYTES = 1 << 34  # 16 GiB: a guard against garbage lengths, not a real limit
DTYPE_SIZES = {"uint8": 1, "uint16": 2, "float32": 4}
OPS = ("restore", "assess", "segment")

DEFAULT_TIMEOUT = 300.0  # seconds without any message from the engine (it reports each tile)
DEFAULT_IDLE = 600.0  # seconds the engine waits for the next request before it exits
DEFAULT_STARTUP = 120.0  # seconds for a new engine to import torch, load weights and listen
# Variables passed to the engine; everything else (PYTHONPATH, LD_LIBRARY_PATH, GI_* from GIMP
# or an AppImage/Flatpak) could break or hijack the engine's Python.
_KEEP_ENV = ("HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "TEMP", "TMP",
             "XDG_RUNTIME_DIR", "XDG_CACHE_HOME", "SYSTEMROOT", "CUDA_VISIBLE_DEVICES")


class ProtocolError(Exception):
    """A malformed frame, a protocol mismatch, or an engine that vanished mid-message."""


class EngineError(Exception):
    """The engine could not do what was asked. ``str(e)`` is a message for people.

    ``kind`` is "missing" (no engine Python), "start" (it did not start), "timeout", "crash"
    (it stopped mid-request), "protocol" (versions differ), "input" (the engine refused the
    image or options) or "internal" (the engine failed; see its log).
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


# -- frames -----------------------------------------------------------------------------------

def encode_header(header: dict, payload_length: int) -> bytes:
    """A frame's prefix and JSON header, for a payload of ``payload_length`` bytes."""
    if not isinstance(header.get("op"), str):
        raise ProtocolError(f"a message header needs a string 'op', got keys {sorted(header)}")
    head = json.dumps(header, separators=(",", ":")).encode("utf-8")
    if len(head) > MAX_HEADER_BYTES:
        raise ProtocolError(f"header of {len(head)} bytes is over the {MAX_HEADER_BYTES}-byte limit")
    return _PREFIX.pack(MAGIC, len(head), payload_length) + head


def encode_message(header: dict, payload: bytes = b"") -> bytes:
    """One whole frame: prefix, JSON header, payload."""
    return encode_header(header, len(payload)) + bytes(payload)


def send_message(sock: socket.socket, header: dict, payload: bytes = b"") -> None:
    """Send one frame on a connected socket (a large payload is sent without copying it)."""
    sock.sendall(encode_header(header, len(payload)))
    if payload:
        sock.sendall(payload)


def _recv_exact(sock: socket.socket, n: int, what: str) -> bytearray:
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = sock.recv_into(view[got:], min(n - got, 1 << 22))
        if k == 0:
            raise ProtocolError(f"connection closed after {got} of {n} bytes of the {what}")
        got += k
    return buf


def recv_message(sock: socket.socket) -> tuple[dict, bytearray] | None:
    """Receive one frame; None if the peer closed the connection cleanly between frames."""
    first = sock.recv(_PREFIX.size)
    if not first:
        return None
    prefix = bytes(first) + (bytes(_recv_exact(sock, _PREFIX.size - len(first), "frame prefix"))
                             if len(first) < _PREFIX.size else b"")
    return decode_prefixed(prefix, lambda n, what: _recv_exact(sock, n, what))


def decode_prefixed(prefix: bytes, read) -> tuple[dict, bytearray]:
    """Check a frame prefix, then read and parse the header and payload with ``read(n, what)``."""
    magic, nhead, npay = _PREFIX.unpack(prefix)
    if magic != MAGIC:
        raise ProtocolError(f"not a Restora frame (starts with {magic!r}, expected {MAGIC!r})")
    if nhead > MAX_HEADER_BYTES or npay > MAX_PAYLOAD_BYTES:
        raise ProtocolError(f"frame lengths {nhead}/{npay} are over the limits; the peer is not speaking this protocol")
    try:
        header = json.loads(bytes(read(nhead, "header")).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ProtocolError(f"frame header is not UTF-8 JSON ({e})") from None
    if not isinstance(header, dict) or not isinstance(header.get("op"), str):
        raise ProtocolError("frame header must be a JSON object with a string 'op'")
    payload = read(npay, "payload") if npay else bytearray()
    return header, payload


def pixel_bytes(width: int, height: int, channels: int, dtype: str) -> int:
    """Bytes that ``width`` x ``height`` pixels of ``channels`` x ``dtype`` take."""
    if dtype not in DTYPE_SIZES:
        raise ProtocolError(f"unknown pixel dtype {dtype!r}; expected one of {', '.join(DTYPE_SIZES)}")
    for name, v in (("width", width), ("height", height), ("channels", channels)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ProtocolError(f"{name} must be a positive integer, got {v!r}")
    return width * height * channels * DTYPE_SIZES[dtype]


def check_pixels(header: dict, payload) -> None:
    """Raise `ProtocolError` unless ``payload`` has exactly the size the header describes."""
    need = pixel_bytes(header.get("width"), header.get("height"), header.get("channels"), header.get("dtype"))
    if len(payload) != need:
        raise ProtocolError(
            f"{header['width']}x{header['height']}x{header['channels']} {header['dtype']} pixels need {need} bytes, "
            f"got {len(payload)}"
        )


# -- where the engine listens ---------------------------------------------------------------------

def runtime_dir(base: str | None = None) -> str:
    """A private per-user folder for the engine's socket and log (created 0700, checked), in
    ``base``, else ``$XDG_RUNTIME_DIR``, else the temporary folder."""
    if base is None:
        base = os.environ.get("XDG_RUNTIME_DIR")
        if not base or not os.path.isdir(base):
            base = tempfile.gettempdir()
    uid = os.getuid() if hasattr(os, "getuid") else 0
    folder = os.path.join(base, f"restora-gimp-{uid}")
    os.makedirs(folder, mode=0o700, exist_ok=True)
    st = os.stat(folder)
    if hasattr(os, "getuid") and (st.st_uid != uid or st.st_mode & 0o077):
        raise EngineError("start", f"{folder} is not a private folder of this user; remove it and try again")
    return folder


def engine_paths(python: str) -> tuple[str, str]:
    """(socket path, log path) of the engine run by ``python``: one engine per Python."""
    key = hashlib.sha1(os.path.abspath(python).encode("utf-8")).hexdigest()[:12]
    name = f"engine-{key}"
    folder = runtime_dir()
    if len(os.path.join(folder, name + ".sock").encode()) > 100:  # Unix socket paths: about 104-108 bytes
        folder = runtime_dir(tempfile.gettempdir())
    sock = os.path.join(folder, name + ".sock")
    if len(sock.encode()) > 100:
        raise EngineError("start", f"the socket path {sock} is too long; set XDG_RUNTIME_DIR or TMPDIR to a short folder")
    return sock, os.path.join(folder, name + ".log")


def clean_env(python: str) -> dict:
    """The engine's environment: a few user variables, a PATH led by the Python's folder."""
    env = {k: v for k, v in os.environ.items() if k in _KEEP_ENV or k.startswith("RESTORA_")}
    env["PATH"] = os.pathsep.join([os.path.dirname(os.path.abspath(python)), os.defpath])
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _see_log(path: str) -> str:
    """"see LOG: last lines" (or just "see LOG"), for error messages."""
    tail = log_tail(path)
    return f"see {path}: {tail}" if tail else f"see {path}"


def log_tail(path: str, lines: int = 3) -> str:
    """The last lines of the engine's log, for error messages."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 4000))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:])


# -- the client -------------------------------------------------------------------------------------

class EngineClient:
    """Talks to (and if needed starts) the engine run by ``python``.

    Parameters
    ----------
    python : str
        The Python of the environment where Restora is installed.
    timeout : float
        Seconds to wait for any message from the engine before giving up.
    idle : float
        Seconds a started engine waits for the next request before it exits.
    startup : float
        Seconds a new engine may take to start listening.
    """

    def __init__(self, python: str, timeout: float = DEFAULT_TIMEOUT, idle: float = DEFAULT_IDLE,
                 startup: float = DEFAULT_STARTUP) -> None:
        self.python, self.timeout, self.idle, self.startup = python, float(timeout), float(idle), float(startup)
        self.socket_path, self.log_path = engine_paths(python)
        self.sock: socket.socket | None = None
        self.capabilities: dict = {}

    # context manager: one connection for the plug-in's call
    def __enter__(self) -> "EngineClient":
        self.connect()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None

    def _try_connect(self) -> socket.socket | None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        try:
            s.connect(self.socket_path)
            return s
        except (FileNotFoundError, ConnectionRefusedError):
            s.close()
            return None

    def _start_engine(self) -> subprocess.Popen:
        if not self.python or not os.path.isfile(self.python):
            raise EngineError(
                "missing",
                f"Restora's engine Python {self.python or '(none recorded)'} does not exist. In the environment where "
                "Restora is installed, run: restora gimp install",
            )
        cmd = [self.python, "-I", "-m", "restora.gimp.server", "--socket", self.socket_path,
               "--idle", str(self.idle)]
        log = open(self.log_path, "ab")
        try:
            return subprocess.Popen(cmd, env=clean_env(self.python), stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, cwd=os.path.dirname(self.log_path),
                                    close_fds=True, start_new_session=True)
        except OSError as e:
            raise EngineError("missing", f"cannot run Restora's engine {self.python} ({e.strerror or e}); "
                                         "run `restora gimp install` again") from None
        finally:
            log.close()

    def _start_and_connect(self) -> socket.socket:
        proc = self._start_engine()
        deadline = time.monotonic() + self.startup
        while True:
            code = proc.poll()
            if code is not None and code != 0:
                raise EngineError("start", f"Restora's engine ({self.python}) exited with status {code} while "
                                           f"starting: {log_tail(self.log_path) or 'no log'}. Is Restora installed "
                                           "in that Python? Run `restora gimp install` from its environment.")
            if time.monotonic() > deadline:
                raise EngineError("timeout", f"Restora's engine did not start within {self.startup:.0f} s; "
                                             f"see {self.log_path}")
            time.sleep(0.1)
            sock = self._try_connect()
            if sock is not None:
                return sock

    def connect(self) -> dict:
        """Connect (starting the engine if none listens), shake hands; return its capabilities."""
        if not hasattr(socket, "AF_UNIX"):
            raise EngineError("start", "this platform has no Unix sockets; the Restora plug-in needs them")
        for attempt in range(2):
            sock = self._try_connect()
            started = sock is None
            self.sock = sock if sock is not None else self._start_and_connect()
            try:
                reply, _ = self._request({"op": "hello", "protocol": PROTOCOL_VERSION,
                                          "client": f"python {sys.version.split()[0]}"})
            except EngineError as e:
                if e.kind == "crash" and not started and attempt == 0:
                    continue  # an idle engine exited just as we connected: start a fresh one
                raise
            break
        if reply.get("protocol") != PROTOCOL_VERSION:
            self.close()
            raise EngineError("protocol", f"the engine speaks protocol {reply.get('protocol')} and the plug-in "
                                          f"{PROTOCOL_VERSION}; run `restora gimp install` again to update the plug-in")
        self.capabilities = reply
        return reply

    def _receive(self) -> tuple[dict, bytearray]:
        try:
            msg = recv_message(self.sock)
        except socket.timeout:
            self.close()
            raise EngineError("timeout", f"Restora's engine sent nothing for {self.timeout:.0f} s and was abandoned; "
                                         f"try a smaller selection or see {self.log_path}") from None
        except (ProtocolError, OSError) as e:
            self.close()
            raise EngineError("crash", f"Restora's engine stopped unexpectedly ({e}); {_see_log(self.log_path)}") from None
        if msg is None:
            self.close()
            raise EngineError("crash", f"Restora's engine closed the connection; {_see_log(self.log_path)}")
        return msg

    def _request(self, header: dict, payload: bytes = b"", progress=None) -> tuple[dict, bytearray]:
        if self.sock is None:
            raise EngineError("crash", "not connected to Restora's engine")
        try:
            send_message(self.sock, header, payload)
        except OSError as e:
            self.close()
            raise EngineError("crash", f"cannot send to Restora's engine ({e}); see {self.log_path}") from None
        while True:
            reply, data = self._receive()
            op = reply.get("op")
            if op == "progress":
                if progress is not None:
                    progress(int(reply.get("done", 0)), int(reply.get("total", 1)))
                continue
            if op == "error":
                raise EngineError(str(reply.get("kind", "internal")), str(reply.get("message", "unknown error")))
            if op not in ("result", "hello", "bye"):
                self.close()
                raise EngineError("protocol", f"unexpected message {op!r} from Restora's engine")
            return reply, data

    def call(self, op: str, pixels: bytes, width: int, height: int, channels: int, dtype: str,
             options: dict | None = None, progress=None) -> tuple[dict, bytearray]:
        """Run ``op`` on the pixels; return the result header (with ``report``) and its pixels.

        ``progress(done, total)`` is called as the engine reports tiles. The returned pixels are
        checked against the header, so a caller can write them without further checks.
        """
        if op not in OPS:
            raise EngineError("input", f"unknown operation {op!r}; expected one of {', '.join(OPS)}")
        header = {"op": op, "width": width, "height": height, "channels": channels, "dtype": dtype,
                  "options": options or {}}
        try:
            check_pixels(header, pixels)
        except ProtocolError as e:
            raise EngineError("input", str(e)) from None
        reply, data = self._request(header, pixels, progress)
        if data or "dtype" in reply:
            try:
                check_pixels(reply, data)
            except ProtocolError as e:
                self.close()
                raise EngineError("protocol", f"Restora's engine returned bad pixels: {e}") from None
        return reply, data

    def shutdown(self) -> None:
        """Ask the engine to exit (it finishes the current connection first)."""
        self._request({"op": "shutdown"})
