"""Shared steps for develop server tests: wait for a state, exec through the gateway."""

from __future__ import annotations

import time
from typing import Any

from control.client import ControlClient
from control.wire.devservers import DevServerOut
from control.wire.frames import FrameDecoder


def wait_for_state(client: ControlClient, server_id: int, *states: str, timeout: float = 30) -> DevServerOut:
    deadline = time.monotonic() + timeout
    while True:
        server = client.get_devserver(server_id)
        if server.state in states:
            return server
        if time.monotonic() > deadline:
            raise AssertionError(f"develop server {server_id} still {server.state} after {timeout} s: {server}")
        time.sleep(0.05)


def start_and_wait(client: ControlClient, project: str, timeout: float = 30, **options: Any) -> DevServerOut:
    server = client.start_devserver(project, **options)
    return wait_for_state(client, server.id, "running", timeout=timeout)


def gateway_exec(
    client: ControlClient, server_id: int, argv: list[str], **options: Any
) -> tuple[int | None, bytes, bytes]:
    """Run a command through the gateway: (exit code or None if the stream broke, stdout, stderr)."""
    decoder = FrameDecoder()
    out, err, code = bytearray(), bytearray(), None
    for piece in client.devserver_stream(server_id, "POST", "/exec", json={"argv": argv, **options}):
        for frame in decoder.feed(piece):
            kind, payload = frame.kind, frame.payload
            if kind == b"o":
                out += payload
            elif kind == b"e":
                err += payload
            elif kind == b"x":
                code = int(payload)
    return code, bytes(out), bytes(err)


def pid_of(handle: str) -> int:
    return int(handle.split(":")[0])
