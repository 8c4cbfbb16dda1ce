"""``restora gimp install`` and ``uninstall``: put the plug-in in GIMP 3's plug-in folder.

The installed folder ``plug-ins/restora/`` holds the plug-in (``restora.py``, from the
repository's ``gimp_plugin/restora/``), the protocol module it shares with the engine
(``restora_protocol.py``, a copy of `restora.gimp.protocol`) and ``restora-gimp.json``, which
records the Python that runs the engine and the timeouts.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from .. import __version__
from .._checks import RestoraError
from . import protocol

PLUGIN_NAME = "restora"
CONFIG_NAME = "restora-gimp.json"
PROTOCOL_NAME = "restora_protocol.py"
INSTALLED_FILES = (f"{PLUGIN_NAME}.py", PROTOCOL_NAME, CONFIG_NAME)


def gimp_plugin_root() -> Path:
    """GIMP 3's per-user plug-in folder (``$GIMP3_DIRECTORY/plug-ins`` when that is set)."""
    if os.environ.get("GIMP3_DIRECTORY"):
        return Path(os.environ["GIMP3_DIRECTORY"]).expanduser() / "plug-ins"
    if sys.platform == "win32":
        base = Path(os.environ.get("APPDATA", Path.home() / "AppData" / "Roaming"))
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "GIMP" / "3.0" / "plug-ins"


def plugin_source() -> Path:
    """The plug-in script shipped with this Restora: in the package (wheel) or the checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "_plugin" / f"{PLUGIN_NAME}.py",
                      here.parents[2] / "gimp_plugin" / PLUGIN_NAME / f"{PLUGIN_NAME}.py"):
        if candidate.is_file():
            return candidate
    raise RestoraError(f"the GIMP plug-in files are not in this Restora installation ({here}); "
                       "reinstall restora from its source or wheel")


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            os.remove(tmp)


def check_engine_python(python: str) -> None:
    """Raise unless ``python`` can import Restora's engine server (as the plug-in will run it)."""
    if not Path(python).is_file():
        raise RestoraError(f"{python} does not exist; pass the Python of the environment where Restora is installed")
    try:
        subprocess.run([python, "-I", "-c", "import restora.gimp.server"], env=protocol.clean_env(python),
                       check=True, capture_output=True, timeout=120)
    except subprocess.CalledProcessError as e:
        last = (e.stderr.decode("utf-8", "replace").strip().splitlines() or ["no output"])[-1]
        raise RestoraError(f"{python} cannot import restora's engine ({last}); install restora in that environment")
    except (OSError, subprocess.TimeoutExpired) as e:
        raise RestoraError(f"cannot run {python} ({e})") from None


def install(plugin_root: str | os.PathLike | None = None, python: str | None = None,
            timeout: float = protocol.DEFAULT_TIMEOUT, idle: float = protocol.DEFAULT_IDLE) -> Path:
    """Install (or update) the plug-in; return its folder.

    Parameters
    ----------
    plugin_root : path, optional
        GIMP's plug-in folder; default `gimp_plugin_root`.
    python : str, optional
        The Python that runs the engine; default this one (``sys.executable``).
    timeout : float
        Seconds the plug-in waits for any word from the engine.
    idle : float
        Seconds the engine stays loaded after its last request.
    """
    root = Path(plugin_root) if plugin_root is not None else gimp_plugin_root()
    python = os.path.abspath(python or sys.executable)  # keep a venv's own path: not resolved
    if python != os.path.abspath(sys.executable):
        check_engine_python(python)
    if timeout <= 0 or idle <= 0:
        raise RestoraError(f"timeout ({timeout}) and idle ({idle}) must be positive seconds")
    source = plugin_source()
    dest = root / PLUGIN_NAME
    try:
        dest.mkdir(parents=True, exist_ok=True)
        _write_atomic(dest / PROTOCOL_NAME, Path(protocol.__file__).read_bytes(), 0o644)
        settings = {"python": python, "restora": __version__, "protocol": protocol.PROTOCOL_VERSION,
                    "timeout": float(timeout), "idle": float(idle)}
        _write_atomic(dest / CONFIG_NAME, (json.dumps(settings, indent=2) + "\n").encode(), 0o644)
        _write_atomic(dest / f"{PLUGIN_NAME}.py", source.read_bytes(), 0o755)  # GIMP runs it: executable
    except OSError as e:
        raise RestoraError(f"cannot write the plug-in into {dest} ({e.strerror or e}); check the folder") from None
    return dest


def stop_engine(python: str) -> bool:
    """Ask a running engine of ``python`` to exit; False if none was running."""
    sock_path, _ = protocol.engine_paths(python)
    if not hasattr(socket, "AF_UNIX") or not os.path.exists(sock_path):
        return False
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    try:
        s.connect(sock_path)
        protocol.send_message(s, {"op": "shutdown"})
        protocol.recv_message(s)
        return True
    except (OSError, protocol.ProtocolError):
        return False
    finally:
        s.close()


def uninstall(plugin_root: str | os.PathLike | None = None) -> Path | None:
    """Remove the plug-in's files (and its folder when nothing else is in it); stop its engine.

    Returns the folder it removed from, or None when the plug-in was not installed there.
    """
    root = Path(plugin_root) if plugin_root is not None else gimp_plugin_root()
    dest = root / PLUGIN_NAME
    if not (dest / f"{PLUGIN_NAME}.py").exists() and not (dest / CONFIG_NAME).exists():
        return None
    with contextlib.suppress(OSError, ValueError):
        stop_engine(json.loads((dest / CONFIG_NAME).read_text())["python"])
    try:
        for name in INSTALLED_FILES:
            with contextlib.suppress(FileNotFoundError):
                (dest / name).unlink()
        shutil.rmtree(dest / "__pycache__", ignore_errors=True)
        if not any(dest.iterdir()):
            dest.rmdir()
    except OSError as e:
        raise RestoraError(f"cannot remove the plug-in from {dest} ({e.strerror or e})") from None
    return dest
