"""A real ComfyUI server for the node pack's end-to-end tests, and a small client for it.

Only the standard library: the tests run in Restora's own virtualenv while ComfyUI runs in
its own Python (``COMFYUI_PYTHON``), so neither needs the other's packages.
"""

from __future__ import annotations

import base64
import json
import os
import queue
import socket
import struct
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class ComfyServer:
    """A ComfyUI process started by the tests on a loopback port, with its base directory."""

    process: subprocess.Popen
    port: int
    base: Path
    log: Path
    client_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- HTTP -----------------------------------------------------------------------------
    def get(self, path: str, timeout: float = 30) -> object:
        with urllib.request.urlopen(self.url + path, timeout=timeout) as r:
            return json.load(r)

    def post(self, path: str, body: dict | None = None, timeout: float = 30) -> tuple[int, object]:
        """POST JSON; returns (status, parsed body) for success and HTTP errors alike."""
        data = json.dumps(body or {}).encode()
        req = urllib.request.Request(self.url + path, data=data, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                raw = r.read()
                return r.status, (json.loads(raw) if raw.strip() else None)
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                return e.code, json.loads(raw)
            except json.JSONDecodeError:
                return e.code, raw.decode(errors="replace")

    def queue_prompt(self, prompt: dict) -> str:
        status, body = self.post("/prompt", {"prompt": prompt, "client_id": self.client_id})
        assert status == 200, f"/prompt refused the workflow ({status}): {body}"
        return body["prompt_id"]

    def wait(self, prompt_id: str, timeout: float = 300) -> dict:
        """Poll /history until the prompt has finished (successfully or not); return its entry."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self.check_alive()
            entry = self.get(f"/history/{prompt_id}").get(prompt_id)
            if entry and entry.get("status", {}).get("status_str") in ("success", "error"):
                return entry
            time.sleep(0.2)
        raise TimeoutError(f"prompt {prompt_id} did not finish in {timeout} s; log: {self.log}")

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"ComfyUI exited with {self.process.returncode}; log:\n{self.log.read_text()[-4000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def start_comfyui(comfy_dir: Path, python: str, base: Path, extra_args: list[str] = (), timeout: float = 180) -> ComfyServer:
    """Start ``main.py --cpu --base-directory BASE --database-url sqlite:///:memory:`` and wait
    until /object_info answers."""
    port = free_port()
    log = base / "comfyui.log"
    cmd = [python, "main.py", "--cpu", "--base-directory", str(base), "--database-url", "sqlite:///:memory:",
           "--listen", "127.0.0.1", "--port", str(port), "--disable-auto-launch", *extra_args]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(log, "wb") as out:
        process = subprocess.Popen(cmd, cwd=comfy_dir, stdout=out, stderr=subprocess.STDOUT, env=env)
    server = ComfyServer(process, port, base, log)
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        server.check_alive()
        try:
            server.get("/object_info", timeout=10)
            return server
        except (urllib.error.URLError, ConnectionError, OSError):
            time.sleep(0.5)
    server.stop()
    raise TimeoutError(f"ComfyUI did not answer within {timeout} s; log:\n{log.read_text()[-4000:]}")


class WebSocketListener:
    """Collects ComfyUI's JSON messages from ``/ws?clientId=...`` on a thread (text frames only;
    binary preview frames are skipped). Enough of RFC 6455 for a loopback test client."""

    def __init__(self, port: int, client_id: str) -> None:
        self.messages: queue.Queue = queue.Queue()
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET /ws?clientId={client_id} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                           f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        header = b""
        while b"\r\n\r\n" not in header:
            chunk = self.sock.recv(1)
            if not chunk:
                raise ConnectionError("websocket handshake: connection closed")
            header += chunk
        if b" 101 " not in header.split(b"\r\n", 1)[0]:
            raise ConnectionError(f"websocket handshake refused: {header!r}")
        self.sock.settimeout(None)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _read(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("closed")
            buf += chunk
        return buf

    def _run(self) -> None:
        try:
            while True:
                b0, b1 = self._read(2)
                opcode, n = b0 & 0x0F, b1 & 0x7F
                if n == 126:
                    n = struct.unpack(">H", self._read(2))[0]
                elif n == 127:
                    n = struct.unpack(">Q", self._read(8))[0]
                mask = self._read(4) if b1 & 0x80 else None
                payload = self._read(n)
                if mask:
                    payload = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
                if opcode == 8:
                    return
                if opcode == 1:
                    self.messages.put(json.loads(payload))
        except (OSError, ConnectionError, ValueError):
            return

    def next(self, predicate, timeout: float = 60) -> dict:
        """The next message for which ``predicate(message)`` is true (others are dropped)."""
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise TimeoutError("no matching websocket message")
            try:
                msg = self.messages.get(timeout=left)
            except queue.Empty:
                raise TimeoutError("no matching websocket message") from None
            if predicate(msg):
                return msg

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}


def ui_to_api(workflow: dict, object_info: dict) -> dict:
    """Convert a UI-format workflow to the API format as the frontend does for these nodes:
    links become [node, slot], widget values are taken in input order (skipping the extra
    values of upload buttons and control_after_generate)."""
    links = {l[0]: l for l in workflow["links"]}
    prompt = {}
    for node in workflow["nodes"]:
        if node.get("mode", 0) != 0:
            continue
        info = object_info[node["type"]]
        linked = {i["name"]: links[i["link"]] for i in node.get("inputs", []) if i.get("link") is not None}
        values = list(node.get("widgets_values") or [])
        inputs = {}
        for section in ("required", "optional"):
            for name in info["input_order"].get(section, []):
                spec = info["input"][section][name]
                kind, opts = spec[0], (spec[1] if len(spec) > 1 else {})
                is_widget = isinstance(kind, list) or kind in WIDGET_TYPES
                if name in linked:
                    l = linked[name]
                    inputs[name] = [str(l[1]), l[2]]
                    if is_widget and values:
                        values.pop(0)  # a widget converted to an input keeps its slot
                elif is_widget:
                    if not values:
                        raise ValueError(f"node {node['id']} ({node['type']}): no widget value for {name!r}")
                    inputs[name] = values.pop(0)
                    if opts.get("image_upload") or opts.get("control_after_generate"):
                        values.pop(0)
        if values:
            raise ValueError(f"node {node['id']} ({node['type']}): {len(values)} widget value(s) left over: {values}")
        prompt[str(node["id"])] = {"class_type": node["type"], "inputs": inputs}
    return prompt
