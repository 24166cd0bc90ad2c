"""`yard dev forward` on the local substrate: real develop server, real API, real TCP programs.

One stack, agent and develop server serve the module (starting them is the slow part); every
test starts its own target program inside the develop server and its own forwarder.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from control.client.forward import Forwarder, ForwardEvent, LocalPortTaken, PortSpec
from tests.compose.devserver_helpers import start_and_wait
from tests.compose.forward_helpers import Target, target_in_devserver
from tests.stack import Stack, running_agent, running_stack
from tests.tui.test_cli import YARD, assert_one_sentence_error
from tests.waiting import wait_until


@dataclass
class Env:
    stack: Stack
    token: str
    server_id: int
    base: Path


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    base = tmp_path_factory.mktemp("forward")
    with (
        running_stack(base / "data", f"sqlite:///{base / 'devyard.db'}") as stack,
        running_agent(stack, base / "agent"),
    ):
        with stack.client() as admin:
            admin.create_project("demo")
        token = stack.user("alice", "developer")
        with stack.client(token) as client:
            server = start_and_wait(client, "demo")
        yield Env(stack, token, server.id, base)


@pytest.fixture
def echo(env: Env, tmp_path: Path) -> Iterator[Target]:
    with env.stack.client(env.token) as client, target_in_devserver(client, env.server_id, "echo", tmp_path) as t:
        yield t


class Running:
    """A :class:`Forwarder` on an event loop of its own thread, driven from the test's thread."""

    def __init__(self, forwarder: Forwarder) -> None:
        self.forwarder = forwarder
        self.events: list[ForwardEvent] = []
        forwarder.notify = self.events.append
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def call(self, coro: object) -> object:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)  # type: ignore[arg-type]

    def listen(self, remote: int, local: int = 0) -> int:
        bound = self.call(self.forwarder.listen(PortSpec(local, remote)))
        assert isinstance(bound, PortSpec)
        return bound.local

    def close(self) -> None:
        self.call(self.forwarder.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@contextmanager
def forwarding(
    env: Env, token: str | None = None, server_id: int | None = None, retry_s: float = 5
) -> Iterator[Running]:
    with env.stack.client(token or env.token) as client:
        forwarder = Forwarder(client.websocket_url, client.auth_headers, server_id or env.server_id, retry_s=retry_s)
    running = Running(forwarder)
    try:
        yield running
    finally:
        running.close()


def exchange(port: int, payload: bytes) -> bytes:
    """Send ``payload``, half-close, and read everything until the other side closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as conn:

        def send() -> None:
            conn.sendall(payload)
            conn.shutdown(socket.SHUT_WR)

        sender = threading.Thread(target=send)
        sender.start()
        received = bytearray()
        while chunk := conn.recv(1 << 16):
            received += chunk
        sender.join()
    return bytes(received)


def test_bytes_pass_both_ways_with_half_close_on_many_connections(env: Env, echo: Target) -> None:
    with forwarding(env) as running:
        local = running.listen(echo.port)
        big = os.urandom(3 * 1024 * 1024)
        assert exchange(local, big) == big + f"bye {len(big)}".encode()
        # Many at once: every connection is its own tunnel and gets its own bytes back.
        payloads = [hashlib.sha256(str(i).encode()).digest() * (i + 1) * 50 for i in range(24)]
        with ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(lambda p: exchange(local, p), payloads))
        assert answers == [p + f"bye {len(p)}".encode() for p in payloads]
        assert running.events == []


def test_several_ports_at_once(env: Env, tmp_path: Path) -> None:
    with (
        env.stack.client(env.token) as client,
        target_in_devserver(client, env.server_id, "echo", tmp_path / "a") as first,
        target_in_devserver(client, env.server_id, "echo", tmp_path / "b") as second,
        forwarding(env) as running,
    ):
        ports = [running.listen(first.port), running.listen(second.port)]
        assert [exchange(p, b"x" * n) for p, n in zip(ports, (3, 5), strict=True)] == [b"xxxbye 3", b"xxxxxbye 5"]


def test_nothing_listening_is_said_and_the_connection_closed(env: Env) -> None:
    with socket.socket() as probe:  # a port certainly free inside the (local) develop server
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    with forwarding(env) as running:
        local = running.listen(free)
        with socket.create_connection(("127.0.0.1", local), timeout=10) as conn, pytest.raises(ConnectionError):
            conn.sendall(b"hello")
            conn.recv(10)
        event = wait_until(lambda: running.events, message="the forwarder to report")[0]
        assert event.kind == "not_listening"
        assert event.message == (
            f"Nothing listens on port {free} in the develop server; start the program that serves it first."
        )


def test_a_taken_local_port_is_one_sentence(env: Env, echo: Target) -> None:
    with socket.socket() as taken, forwarding(env) as running:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(LocalPortTaken) as refused:
            running.listen(echo.port, local=port)
    assert str(refused.value).startswith(f"Local port {port} is already in use by another program;")


def test_another_users_server_and_a_viewer_are_refused(env: Env, echo: Target) -> None:
    bob = env.stack.user("bob", "developer")
    vera = env.stack.user("vera", "viewer")
    for token, sentence in (
        (bob, f"Develop server {env.server_id} "),
        (vera, "Viewers have read-only access."),
        ("dy_nonsense", "The token is not valid."),
    ):
        with forwarding(env, token=token) as running:
            local = running.listen(echo.port)
            with socket.create_connection(("127.0.0.1", local), timeout=10) as conn:
                conn.settimeout(10)
                with pytest.raises(ConnectionResetError):
                    if conn.recv(10) == b"":
                        raise ConnectionResetError
            event = wait_until(lambda r=running: r.events, message="the refusal")[0]  # type: ignore[misc]
            assert event.kind == "fatal" and event.message.startswith(sentence), event


@pytest.mark.parametrize("port", ["0", "65536", "-1", "http"])
def test_ports_outside_the_range_are_refused(env: Env, port: str) -> None:
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    url = env.stack.url.replace("http://", "ws://") + f"/api/v1/devservers/{env.server_id}/tunnel/{port}"
    with pytest.raises(InvalidStatus) as refused:
        connect(url, additional_headers={"Authorization": f"Bearer {env.token}"}, open_timeout=5)
    assert refused.value.response.status_code == 400
    assert b"is not a TCP port; give a number from 1 to 65535" in refused.value.response.body
    with pytest.raises(ValueError, match="is not a TCP port"):
        PortSpec.parse(f"8080:{port}")


def test_yard_dev_forward_end_to_end(env: Env, echo: Target) -> None:
    cli_env = {**os.environ, "DEVYARD_URL": env.stack.url, "DEVYARD_TOKEN": env.token, "DEVYARD_PROJECT": "demo"}
    child = subprocess.Popen(
        [YARD, "dev", "forward", f"0:{echo.port}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=cli_env,
        text=True,
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line.startswith("Forwarding 127.0.0.1:") and f"-> port {echo.port} in develop server" in line, line
        local = int(line.split("127.0.0.1:")[1].split()[0])
        assert exchange(local, b"ping") == b"pingbye 4"
        child.send_signal(signal.SIGINT)
        assert child.wait(10) == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    taken = subprocess.run(
        [YARD, "dev", "forward", "8080:99999"], capture_output=True, text=True, env=cli_env, stdin=subprocess.DEVNULL
    )
    assert_one_sentence_error(taken, "Port 99999 is not a TCP port")
