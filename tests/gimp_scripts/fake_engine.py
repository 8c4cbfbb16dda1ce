"""A misbehaving stand-in for Restora's engine, for the GIMP failure tests (any python3, stdlib).

Run as ``python3 fake_engine.py MODE -I -m restora.gimp.server --socket PATH --idle N`` (the
plug-in's own command line after MODE, through a wrapper script recorded as the "Python"):

- ``silent``: accepts the connection, reads, never answers (the plug-in must time out);
- ``crash``: answers the handshake, then starts a result that promises pixels and dies halfway.
"""

import json
import socket
import struct
import sys
import time

PREFIX = struct.Struct(">4sIQ")


def send(conn, header, payload_length=0, payload=b""):
    head = json.dumps(header).encode()
    conn.sendall(PREFIX.pack(b"RSTR", len(head), payload_length) + head + payload)


def receive(conn):
    prefix = conn.recv(PREFIX.size, socket.MSG_WAITALL)
    _, nhead, npay = PREFIX.unpack(prefix)
    header = json.loads(conn.recv(nhead, socket.MSG_WAITALL))
    remaining = npay
    while remaining:
        remaining -= len(conn.recv(min(remaining, 1 << 20)))
    return header


mode, argv = sys.argv[1], sys.argv[2:]
path = argv[argv.index("--socket") + 1]
server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
server.bind(path)
server.listen(1)
server.settimeout(60)
conn, _ = server.accept()
if mode == "silent":
    time.sleep(60)
elif mode == "crash":
    hello = receive(conn)
    send(conn, {"op": "hello", "protocol": hello["protocol"], "degradations": ["noise", "blur", "rain", "haze",
                                                                           "low_light", "jpeg"]})
    request = receive(conn)
    send(conn, {"op": "progress", "done": 1, "total": 4})
    n = request["width"] * request["height"] * request["channels"]
    send(conn, {"op": "result", "width": request["width"], "height": request["height"],
                "channels": request["channels"], "dtype": "uint8", "report": {}}, n, b"\x00" * (n // 2))
    sys.exit(1)
