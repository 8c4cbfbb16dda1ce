"""The GIMP plug-in's protocol, client and engine server, without GIMP (fast).

The engine tests start the real engine (``python -m restora.gimp.server``) in a subprocess, as
the plug-in does, and talk to it through the same client the plug-in uses.
"""

from __future__ import annotations

import ast
import os
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from helpers import smooth_image
from restora.gimp import protocol as rp
from restora.gimp.server import GREY_LEVELS

PROTOCOL_FILE = Path(rp.__file__)


@pytest.fixture
def runtime(monkeypatch):
    """A short, private XDG_RUNTIME_DIR (socket paths are limited to about 104 bytes)."""
    folder = tempfile.mkdtemp(prefix="rg")
    monkeypatch.setenv("XDG_RUNTIME_DIR", folder)
    yield folder


@pytest.fixture(scope="module")
def engine():
    """One real engine for the module's tests; shut down at the end."""
    folder = tempfile.mkdtemp(prefix="rg")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_RUNTIME_DIR", folder)
        client = rp.EngineClient(sys.executable, timeout=120, idle=120)
        client.connect()
        yield client
        client.shutdown()
        client.close()


def _pair():
    a, b = socket.socketpair()
    a.settimeout(5)
    b.settimeout(5)
    return a, b


# -- frames -------------------------------------------------------------------------------

def test_protocol_module_is_standard_library_only():
    """GIMP's Python has only the standard library (and gi): the shared module must import nothing else."""
    tree = ast.parse(PROTOCOL_FILE.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "relative imports would break the copy installed beside the plug-in"
            names.add(node.module.split(".")[0])
    stdlib = set(sys.stdlib_module_names)
    assert names and names <= stdlib, f"non-standard imports: {names - stdlib}"


def test_frame_round_trip_with_large_payload():
    a, b = _pair()
    payload = os.urandom(3 << 20)
    t = threading.Thread(target=rp.send_message, args=(a, {"op": "restore", "width": 7, "x": "é"}, payload))
    t.start()
    header, data = rp.recv_message(b)
    t.join()
    assert header == {"op": "restore", "width": 7, "x": "é"}
    assert bytes(data) == payload
    a.close()
    assert rp.recv_message(b) is None  # a clean close between frames
    b.close()


@pytest.mark.parametrize("frame, match", [
    (b"XXXX" + b"\0" * 12, "not a Restora frame"),
    (rp._PREFIX.pack(rp.MAGIC, rp.MAX_HEADER_BYTES + 1, 0), "over the limits"),
    (rp._PREFIX.pack(rp.MAGIC, 4, 0) + b"[1] ", "JSON object"),
    (rp._PREFIX.pack(rp.MAGIC, 3, 0) + b"\xff\xfe{", "not UTF-8 JSON"),
    (rp._PREFIX.pack(rp.MAGIC, 2, 10) + b"{}", "string 'op'"),
    (rp._PREFIX.pack(rp.MAGIC, 12, 10) + b'{"op":"x"}  ' + b"abc", "closed after 3 of 10 bytes"),
])
def test_bad_frames_are_refused(frame, match):
    a, b = _pair()
    a.sendall(frame)
    a.close()
    with pytest.raises(rp.ProtocolError, match=match):
        rp.recv_message(b)
    b.close()


def test_encode_refuses_header_without_op():
    with pytest.raises(rp.ProtocolError, match="'op'"):
        rp.encode_message({"width": 1})


def test_check_pixels():
    rp.check_pixels({"width": 3, "height": 2, "channels": 4, "dtype": "uint16"}, b"\0" * 48)
    with pytest.raises(rp.ProtocolError, match="need 48 bytes, got 47"):
        rp.check_pixels({"width": 3, "height": 2, "channels": 4, "dtype": "uint16"}, b"\0" * 47)
    with pytest.raises(rp.ProtocolError, match="unknown pixel dtype"):
        rp.pixel_bytes(1, 1, 1, "int64")
    with pytest.raises(rp.ProtocolError, match="width must be a positive integer"):
        rp.pixel_bytes(0, 1, 1, "uint8")


def test_clean_env_drops_variables_that_could_hijack_the_engine(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", "/evil")
    monkeypatch.setenv("LD_LIBRARY_PATH", "/evil")
    monkeypatch.setenv("RESTORA_CACHE", "/my/cache")
    env = rp.clean_env("/opt/env/bin/python")
    assert "PYTHONPATH" not in env and "LD_LIBRARY_PATH" not in env
    assert env["RESTORA_CACHE"] == "/my/cache"
    assert env["PATH"].split(os.pathsep)[0] == "/opt/env/bin"


def test_runtime_dir_is_private(runtime):
    folder = rp.runtime_dir()
    assert os.stat(folder).st_mode & 0o077 == 0
    os.chmod(folder, 0o755)
    with pytest.raises(rp.EngineError, match="not a private folder"):
        rp.runtime_dir()


# -- client failures, against fake engines -----------------------------------------------------

def _fake_engine(path: str, behaviour):
    """A one-connection server on ``path`` that runs ``behaviour(conn)``."""
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)

    def run():
        conn, _ = srv.accept()
        try:
            behaviour(conn)
        finally:
            conn.close()
            srv.close()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def _hello_then(after):
    def behaviour(conn):
        rp.recv_message(conn)
        rp.send_message(conn, {"op": "hello", "protocol": rp.PROTOCOL_VERSION, "degradations": []})
        rp.recv_message(conn)
        after(conn)
    return behaviour


def test_client_times_out_on_a_silent_engine(runtime):
    client = rp.EngineClient("/nonexistent/python", timeout=0.5)
    done = threading.Event()
    _fake_engine(client.socket_path, _hello_then(lambda conn: done.wait(5)))
    client.connect()
    t0 = time.perf_counter()
    with pytest.raises(rp.EngineError, match="sent nothing for 0 s") as e:
        client.call("assess", b"\0" * 48, 4, 4, 3, "uint8")
    done.set()
    assert e.value.kind == "timeout" and time.perf_counter() - t0 < 3
    assert client.sock is None


def test_client_reports_an_engine_that_dies_mid_reply(runtime):
    client = rp.EngineClient("/nonexistent/python", timeout=5)

    def die(conn):  # a result header promising pixels, then a crash
        conn.sendall(rp.encode_header({"op": "result", "width": 4, "height": 4, "channels": 3, "dtype": "uint8"}, 48))
        conn.sendall(b"\0" * 10)

    _fake_engine(client.socket_path, _hello_then(die))
    client.connect()
    with pytest.raises(rp.EngineError, match="stopped unexpectedly") as e:
        client.call("restore", b"\0" * 48, 4, 4, 3, "uint8")
    assert e.value.kind == "crash"


def test_client_refuses_pixels_of_the_wrong_size(runtime):
    client = rp.EngineClient("/nonexistent/python", timeout=5)
    _fake_engine(client.socket_path, _hello_then(lambda conn: rp.send_message(
        conn, {"op": "result", "width": 4, "height": 4, "channels": 3, "dtype": "uint8"}, b"\0" * 47)))
    client.connect()
    with pytest.raises(rp.EngineError, match="bad pixels") as e:
        client.call("restore", b"\0" * 48, 4, 4, 3, "uint8")
    assert e.value.kind == "protocol"


def test_client_refuses_another_protocol_version(runtime):
    client = rp.EngineClient("/nonexistent/python", timeout=5)
    _fake_engine(client.socket_path, lambda conn: (rp.recv_message(conn),
                                                   rp.send_message(conn, {"op": "hello", "protocol": 99})))
    with pytest.raises(rp.EngineError, match="protocol 99") as e:
        client.connect()
    assert e.value.kind == "protocol"


def test_missing_engine_python_says_what_to_do(runtime):
    with pytest.raises(rp.EngineError, match="does not exist.*restora gimp install") as e:
        rp.EngineClient("/nonexistent/python").connect()
    assert e.value.kind == "missing"


def test_python_without_restora_fails_to_start_with_its_reason(runtime, tmp_path):
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho 'No module named restora' >&2\nexit 1\n")
    fake.chmod(0o755)
    with pytest.raises(rp.EngineError, match="exited with status 1 while starting: No module named restora") as e:
        rp.EngineClient(str(fake), startup=20).connect()
    assert e.value.kind == "start"


def test_client_refuses_bad_requests_before_sending(engine):
    with pytest.raises(rp.EngineError, match="need 48 bytes"):
        engine.call("restore", b"\0" * 10, 4, 4, 3, "uint8")
    with pytest.raises(rp.EngineError, match="unknown operation"):
        engine.call("sharpen", b"\0" * 48, 4, 4, 3, "uint8")


# -- the real engine ----------------------------------------------------------------------------

def _noisy(rng, shape, dtype=np.uint8):
    clean = smooth_image(rng, shape, np.float32)
    noisy = np.clip(clean + rng.normal(0, 25 / 255, clean.shape), 0, 1)
    if np.dtype(dtype).kind == "f":
        return noisy.astype(dtype)
    return np.rint(noisy * np.iinfo(dtype).max).astype(dtype)


def test_handshake_lists_capabilities(engine):
    caps = engine.capabilities
    assert caps["protocol"] == rp.PROTOCOL_VERSION
    assert set(caps["ops"]) == {"restore", "assess", "segment"}
    assert caps["degradations"] == ["noise", "blur", "rain", "haze", "low_light", "jpeg"]
    assert caps["pid"] != os.getpid()


@pytest.mark.parametrize("dtype, channels", [("uint8", 3), ("uint8", 4), ("uint16", 1), ("uint16", 2),
                                             ("float32", 3)])
def test_restore_through_the_engine(engine, rng, dtype, channels):
    shape = (40, 48, channels) if channels > 1 else (40, 48)
    image = _noisy(rng, shape[:2] + ((3,) if channels >= 3 else ()), np.dtype(dtype))
    if channels in (2, 4):  # add an alpha channel the engine must pass through untouched
        alpha = rng.integers(0, np.iinfo(np.uint16).max if dtype == "uint16" else 255, shape[:2])
        image = np.dstack([image.reshape(shape[:2] + (-1,)), alpha.astype(image.dtype)])
    progress = []
    reply, out = engine.call("restore", image.tobytes(), 48, 40, channels, dtype,
                             {"degradations": "auto", "strength": 1.0, "max_iterations": 2},
                             progress=lambda d, t: progress.append((d, t)))
    result = np.frombuffer(out, dtype=dtype).reshape(40, 48, channels)
    assert (reply["width"], reply["height"], reply["channels"], reply["dtype"]) == (48, 40, channels, dtype)
    assert progress and progress[-1][0] == progress[-1][1]
    before = image.reshape(40, 48, channels)
    if channels >= 3:
        assert "noise" in reply["report"]["found"]
        assert reply["report"]["quality_after"] > reply["report"]["quality_before"]
        assert reply["report"]["refined"]
        plain, _ = engine.call("restore", image.tobytes(), 48, 40, channels, dtype,
                               {"degradations": "auto", "max_iterations": 2, "refine": False})
        assert not plain["report"]["refined"]
        assert np.abs(result[..., :3].astype(float) - before[..., :3]).mean() > 0.01 * np.iinfo(np.uint8).max \
            if dtype == "uint8" else not np.array_equal(result[..., :3], before[..., :3])
    # grey: only the round trip is checked here (same shape and dtype, and a report); grey
    # denoising itself is tests/test_quality.py's
    assert set(reply["report"]) >= {"quality_before", "quality_after", "degradations", "iterations"}
    if channels in (2, 4):
        assert np.array_equal(result[..., -1], before[..., -1])


def test_float_values_outside_0_1_keep_their_range(engine, rng):
    image = _noisy(rng, (32, 32, 3), np.float32) * 3 - 1  # HDR-like data in [-1, 2]
    reply, out = engine.call("restore", image.tobytes(), 32, 32, 3, "float32", {})
    result = np.frombuffer(out, np.float32).reshape(image.shape)
    assert result.min() < -0.3 and result.max() > 1.3


def test_assess_and_segment_through_the_engine(engine, rng):
    image = _noisy(rng, (48, 48, 3))
    reply, out = engine.call("assess", image.tobytes(), 48, 48, 3, "uint8")
    assert len(out) == 0
    assert 0 <= reply["report"]["score"] <= 1 and reply["report"]["found"] == ["noise"]
    reply, out = engine.call("segment", image.tobytes(), 48, 48, 3, "uint8", {"map": "rgb"})
    rgb = np.frombuffer(out, np.uint8).reshape(48, 48, 3)
    assert reply["report"]["fractions"]["noise"] > 0.5
    assert (rgb == (230, 25, 75)).all(-1).mean() > 0.5  # the palette's noise red
    reply, out = engine.call("segment", image.tobytes(), 48, 48, 3, "uint8", {"map": "grey"})
    assert set(np.unique(np.frombuffer(out, np.uint8))) <= set(GREY_LEVELS)


def test_engine_keeps_weights_loaded_between_connections(engine, rng):
    image = _noisy(rng, (32, 32, 3)).tobytes()
    engine.close()  # the engine serves one connection at a time
    client = rp.EngineClient(sys.executable, timeout=60)
    times = []
    for _ in range(2):
        with client:
            assert client.capabilities["pid"] == engine.capabilities["pid"]  # the same process serves
            t0 = time.perf_counter()
            client.call("assess", image, 32, 32, 3, "uint8")
            times.append(time.perf_counter() - t0)
    engine.connect()
    assert max(times) < 5  # no torch import or weight loading per call


@pytest.mark.parametrize("options, match", [
    ({"degradations": ["smoke"]}, "unknown degradation"),
    ({"colour": 1}, "unknown option"),
    ({"strength": "x"}, "strength must be a number"),
    ({"strength": 2}, r"must lie in \[0, 1\]"),
    ({"refine": "no"}, "refine must be true or false"),
])
def test_engine_refuses_bad_options_and_keeps_serving(engine, options, match):
    with pytest.raises(rp.EngineError, match=match) as e:
        engine.call("restore", b"\x80" * 3 * 16 * 16, 16, 16, 3, "uint8", options)
    assert e.value.kind == "input"
    reply, _ = engine.call("assess", b"\x80" * 3 * 16 * 16, 16, 16, 3, "uint8")  # still serving
    assert "score" in reply["report"]


def test_engine_refuses_too_small_images(engine):
    with pytest.raises(rp.EngineError, match="at least 4x4") as e:
        engine.call("assess", b"\0" * 6, 3, 2, 1, "uint8")
    assert e.value.kind == "input"


def test_engine_exits_when_idle(runtime):
    client = rp.EngineClient(sys.executable, timeout=60, idle=1.5)
    with client:
        pass
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and os.path.exists(client.socket_path):
        time.sleep(0.2)
    assert not os.path.exists(client.socket_path), "the idle engine should exit and remove its socket"
    assert "idle; exiting" in Path(client.log_path).read_text()


def test_long_runtime_dir_falls_back_to_a_short_one(monkeypatch, tmp_path):
    long = tmp_path / ("x" * 90)
    long.mkdir()
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(long))
    sock, log = rp.engine_paths("/some/python")
    assert len(sock) <= 100 and not sock.startswith(str(long)) and os.path.dirname(sock) == os.path.dirname(log)
