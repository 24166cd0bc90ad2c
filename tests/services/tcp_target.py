"""A TCP server to forward to, run inside a develop server: ``python tcp_target.py MODE STATE_DIR``.

It binds 127.0.0.1 on a free port and writes ``{"port", "pid"}`` to ``STATE_DIR/ready.json``.
Modes, per connection:
- ``echo``: sends back what it reads; after the client's half-close it sends ``bye <n>`` (n bytes
  read) and closes, so a test sees half-close work both ways.
- ``source``: writes a repeating pattern as fast as the peer takes it and records the bytes
  written so far in ``STATE_DIR/sent`` (a test of flow control reads it).
A thread per connection keeps it plain and independent of what it tests.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import threading
from pathlib import Path

CHUNK = 64 * 1024


def echo(conn: socket.socket, state: Path) -> None:
    total = 0
    while data := conn.recv(CHUNK):
        total += len(data)
        conn.sendall(data)
    conn.sendall(f"bye {total}".encode())


def source(conn: socket.socket, state: Path) -> None:
    block = bytes(range(256)) * (CHUNK // 256)
    sent = 0
    temp = state / f"sent.{threading.get_ident()}.tmp"
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
    while True:
        sent += conn.send(block)  # an error (the peer gone) ends the connection
        temp.write_text(str(sent))
        os.replace(temp, state / "sent")  # the last connection's count (tests use one at a time)


MODES = {"echo": echo, "source": source}


def main() -> None:
    mode, state = MODES[sys.argv[1]], Path(sys.argv[2])
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    (state / "ready.tmp").write_text(json.dumps({"port": server.getsockname()[1], "pid": os.getpid()}))
    os.replace(state / "ready.tmp", state / "ready.json")

    def serve(conn: socket.socket) -> None:  # one thread per connection
        with conn, contextlib.suppress(OSError):
            mode(conn, state)

    while True:
        conn, _ = server.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
