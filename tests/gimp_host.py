"""A real GIMP 3 for the tests: a Debian trixie chroot made by mmdebstrap, run through bwrap.

The chroot is built once (about 1-3 minutes) and cached under ``$RESTORA_GIMP_CACHE`` (default
``/var/cache/restora-gimp``) in a folder named by a hash of the suite and package list, so a
changed package list builds a new one. It is mounted read-only; each GIMP run gets its own
``/tmp`` and the folders a test passes (read-write), and Restora's environment (the venv, the
Python it was made from, and the source tree for an editable install) is bind-mounted read-only
at the same paths, so the plug-in's engine subprocess runs inside the chroot exactly as
``restora gimp install`` recorded it. bwrap's mounts live in a private mount namespace, so they
vanish with the process: nothing is left mounted on the host, whatever happens.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

SUITE = "trixie"
PACKAGES = ("gimp", "python3-gi", "python3-numpy", "gir1.2-gegl-0.4")
CACHE = Path(os.environ.get("RESTORA_GIMP_CACHE", "/var/cache/restora-gimp"))
GIMP = "gimp-console-3.0"
REPO = Path(__file__).resolve().parents[1]


class Unavailable(Exception):
    """No real GIMP can be had here; the message says why."""


def debian_mirror() -> str:
    """The Debian mirror apt already uses on this machine (from its sources lists)."""
    texts = []
    for path in ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*"))]:
        with contextlib.suppress(OSError):
            texts.append((path, Path(path).read_text()))
    for path, text in texts:
        if path.endswith(".sources"):  # deb822: URIs and Suites in one stanza
            for stanza in text.split("\n\n"):
                fields = dict(line.split(":", 1) for line in stanza.splitlines()
                              if ":" in line and not line.startswith(("#", " ")))
                uris, suites = fields.get("URIs", "").split(), fields.get("Suites", "").split()
                if "deb" in fields.get("Types", "") and uris and suites and not any("security" in s for s in suites):
                    if uris[0].rstrip("/").endswith("/debian"):
                        return uris[0]
        else:
            for line in text.splitlines():
                parts = line.split()
                if len(parts) >= 3 and parts[0] == "deb":
                    uri = next(p for p in parts[1:] if not p.startswith("["))
                    if uri.rstrip("/").endswith("/debian") and "security" not in line:
                        return uri
    raise Unavailable("no Debian mirror found in /etc/apt/sources.list(.d); this host is not Debian-based")


def chroot_key() -> str:
    return hashlib.sha256(json.dumps([SUITE, sorted(PACKAGES), 1]).encode()).hexdigest()[:12]


def ensure_chroot(log=print) -> Path:
    """The cached chroot, built first if missing; raises `Unavailable` if it cannot be built."""
    root = CACHE / f"{SUITE}-gimp-{chroot_key()}"
    done = root / ".restora-chroot-complete"
    if done.exists():
        return root
    if os.geteuid() != 0:
        raise Unavailable("building the GIMP chroot needs root (mmdebstrap and bwrap as root)")
    if shutil.which("mmdebstrap") is None:
        raise Unavailable("mmdebstrap is not installed (apt-get install mmdebstrap; .ci/setup.d/gimp.sh does it)")
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f".{root.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time; others wait and reuse it
        if done.exists():
            return root
        shutil.rmtree(root, ignore_errors=True)
        building = CACHE / f".building-{root.name}"
        shutil.rmtree(building, ignore_errors=True)
        mirror = debian_mirror()
        cmd = ["mmdebstrap", "--variant=apt", "--include=" + ",".join(PACKAGES), SUITE, str(building), mirror]
        log(f"building the GIMP chroot: {' '.join(cmd)}")
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
        if proc.returncode != 0:
            shutil.rmtree(building, ignore_errors=True)
            raise RuntimeError(f"mmdebstrap failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        (building / ".restora-chroot-complete").write_text(
            json.dumps({"suite": SUITE, "packages": PACKAGES, "mirror": mirror,
                        "seconds": round(time.perf_counter() - t0, 1)}) + "\n")
        os.rename(building, root)
    return root


def engine_paths() -> list[Path]:
    """Host folders the engine needs inside the chroot: the venv, its base Python, the source."""
    paths = {Path(sys.prefix), REPO}
    base = Path(sys.base_prefix)
    if base != Path(sys.prefix):
        if base in (Path("/usr"), Path("/")):
            raise Unavailable(f"the test Python's base {base} would hide the chroot's own /usr; "
                              "use a venv made from a Python outside /usr (e.g. pyenv)")
        paths.add(base)
    return sorted(p.resolve() for p in paths)


def run_gimp(root: Path, batch: str, *, rw: list[Path], env: dict[str, str] | None = None,
             timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``gimp-console-3.0 -idf --batch-interpreter=python-fu-eval -b BATCH --quit`` in the chroot.

    ``rw`` folders are bind-mounted read-write at their own paths; ``env`` is the whole
    environment besides PATH, HOME and LANG (bwrap clears the host's).
    """
    if shutil.which("bwrap") is None:
        raise Unavailable("bwrap is not installed (apt-get install bubblewrap; .ci/setup.d/gimp.sh does it)")
    args = ["bwrap", "--ro-bind", str(root), "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp",
            "--tmpfs", "/run", "--unshare-pid", "--unshare-ipc", "--unshare-net", "--die-with-parent",
            "--clearenv", "--setenv", "PATH", "/usr/local/bin:/usr/bin:/bin", "--setenv", "HOME", "/tmp/home",
            "--setenv", "LANG", "C.UTF-8"]
    binds = [("--ro-bind", p) for p in engine_paths()] + [("--bind", Path(p).resolve()) for p in rw]
    for flag, path in binds:
        if not str(path).startswith("/tmp/"):  # /tmp is a fresh tmpfs; elsewhere the read-only
            (root / str(path).lstrip("/")).mkdir(parents=True, exist_ok=True)  # root needs a mount point
        args += [flag, str(path), str(path)]
    for key, value in (env or {}).items():
        args += ["--setenv", key, value]
    args += [GIMP, "-idf", "--batch-interpreter=python-fu-eval", "-b", batch, "--quit"]
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout)
