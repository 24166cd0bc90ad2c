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
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest

from control.client.forward import Forwarder, ForwardEvent, LocalPortTaken, PortSpec
from tests.compose.devserver_helpers import start_and_wait, wait_for_state
from tests.compose.forward_helpers import (
    Env,
    Target,
    devserver_pid,
    established,
    forward_env,
    peers,
    target_in_devserver,
    tcp_sockets,
    threads,
)
from tests.tui.test_cli import YARD, assert_one_sentence_error
from tests.waiting import wait_until


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    with forward_env(tmp_path_factory.mktemp("forward")) as running:
        yield running


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

    async def _shutdown(self) -> None:
        await self.forwarder.close()
        # Connections closed just now finish closing on the next turns of the loop.
        others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)

    def listen(self, remote: int, local: int = 0) -> int:
        bound = self.call(self.forwarder.listen(PortSpec(local, remote)))
        assert isinstance(bound, PortSpec)
        return bound.local

    def close(self) -> None:
        self.call(self._shutdown())
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


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def steady(read: Callable[[], int], polls: int = 20) -> int:
    """Wait until ``read()`` stops changing for ``polls`` polls in a row; return its value."""
    last, same = read(), 0

    def settled() -> bool:
        nonlocal last, same
        now = read()
        same = same + 1 if now == last else 0
        last = now
        return same >= polls

    wait_until(settled, timeout=30, message="the value to settle")
    return last


def test_a_slow_reader_does_not_make_the_develop_server_buffer(env: Env, tmp_path: Path) -> None:
    """The laptop side reads nothing: the target in the develop server must be held up after a
    bounded amount (socket buffers and a few queued messages per hop), and no process grows."""
    pid = devserver_pid(env, env.server_id)
    with (
        env.stack.client(env.token) as client,
        target_in_devserver(client, env.server_id, "source", tmp_path) as source,
        forwarding(env) as running,
    ):
        local = running.listen(source.port)
        rss_before = rss_kib(pid)
        with socket.create_connection(("127.0.0.1", local), timeout=30) as conn:
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
            wait_until(lambda: source.sent() > 0, message="the source to start sending")
            held = steady(source.sent)
            grown_kib = rss_kib(pid) - rss_before
            # Whatever was sent is still delivered, in order, once the reader reads.
            pattern = bytes(range(256)) * 256
            received = 0
            while received < held + 8 * 1024 * 1024:
                chunk = conn.recv(1 << 20)
                assert chunk, "the stream ended early"
                offset = received % len(pattern)
                expected = (pattern * (len(chunk) // len(pattern) + 2))[offset : offset + len(chunk)]
                assert chunk == expected, f"bytes out of order at {received}"
                received += len(chunk)
    assert held < 64 * 1024 * 1024, f"{held} bytes left the target while nobody read"
    assert grown_kib < 16 * 1024, f"the develop server grew by {grown_kib} KiB"


def read_some(conn: socket.socket, amount: int) -> None:
    got = 0
    while got < amount:
        chunk = conn.recv(1 << 20)
        assert chunk, "the stream ended early"
        got += len(chunk)


def test_killing_the_client_mid_transfer_leaks_nothing_on_either_side(env: Env, tmp_path: Path) -> None:
    pid = devserver_pid(env, env.server_id)
    api_port = int(env.stack.url.rsplit(":", 1)[1])
    cli_env = {**os.environ, "DEVYARD_URL": env.stack.url, "DEVYARD_TOKEN": env.token, "DEVYARD_PROJECT": "demo"}
    with (
        env.stack.client(env.token) as client,
        target_in_devserver(client, env.server_id, "source", tmp_path) as source,
    ):
        sockets_before, threads_before = tcp_sockets(pid), threads(pid)
        api_before = set(peers(local_port=api_port))
        target_threads = threads(source.pid)
        child = subprocess.Popen(
            [YARD, "dev", "forward", f"0:{source.port}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            env=cli_env,
            text=True,
        )
        try:
            assert child.stdout is not None
            local = int(child.stdout.readline().split("127.0.0.1:")[1].split()[0])
            conns = [socket.create_connection(("127.0.0.1", local), timeout=30) for _ in range(4)]
            for conn in conns:
                read_some(conn, 4 * 1024 * 1024)
            assert established(remote_port=source.port) == 4  # the develop server's ends
            tunnels = set(peers(local_port=api_port)) - api_before  # the yard process's, at the API
            assert len(tunnels) >= 4
            child.kill()
            child.wait(10)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        wait_until(lambda: established(remote_port=source.port) == 0, message="the develop server to let go")
        # At most as many as before: a kept-alive gateway connection may have closed meanwhile.
        wait_until(lambda: tcp_sockets(pid) <= sockets_before, message="the develop server's sockets to close")
        wait_until(lambda: threads(pid) <= threads_before, message="the develop server's threads to end")
        wait_until(lambda: threads(source.pid) == target_threads, message="the target to see its peers go")
        wait_until(lambda: not tunnels & set(peers(local_port=api_port)), message="the API's tunnels to close")
        for conn in conns:
            conn.close()


def test_the_develop_server_stopped_mid_transfer_then_back(env: Env, tmp_path: Path) -> None:
    """Stopping the server cuts a transfer with a reset (never a clean end); a connection made
    while it is down waits, and goes through once it is back, with the same forward."""
    carol = env.stack.user("carol", "developer")
    with env.stack.client(carol) as client:
        server = start_and_wait(client, "demo")
        with (
            target_in_devserver(client, server.id, "source", tmp_path) as source,
            forwarding(env, token=carol, server_id=server.id, retry_s=60) as running,
        ):
            local = running.listen(source.port)
            with socket.create_connection(("127.0.0.1", local), timeout=30) as conn:
                read_some(conn, 2 * 1024 * 1024)
                client.stop_devserver(server.id)
                with pytest.raises(ConnectionResetError):
                    while conn.recv(1 << 20):
                        pass
            wait_for_state(client, server.id, "stopped")
            later = socket.create_connection(("127.0.0.1", local), timeout=30)
            wait_until(lambda: any(e.kind == "waiting" for e in running.events), message="the forward to wait")
            client.start_devserver("demo")
            with later:
                read_some(later, 2 * 1024 * 1024)
            assert [e.kind for e in running.events] == ["waiting", "recovered"]
            client.stop_devserver(server.id)
            wait_for_state(client, server.id, "stopped")


def test_ports_lists_what_the_develop_servers_programs_listen_on(env: Env, echo: Target) -> None:
    import datetime as dt
    import json

    with socket.socket() as outsider:  # listens on this host, but is not the develop server's
        outsider.bind(("127.0.0.1", 0))
        outsider.listen()
        with env.stack.client(env.token) as client:
            listed = client.list_ports(env.server_id)
        mine = [p for p in listed if p.port == echo.port]
        assert [(p.address, p.pid) for p in mine] == [("127.0.0.1", echo.pid)]
        assert mine[0].process is not None and "tcp_target.py echo" in mine[0].process
        assert mine[0].since is not None
        assert dt.timedelta(0) <= dt.datetime.now(dt.UTC) - mine[0].since < dt.timedelta(minutes=5)
        ports = {p.port for p in listed}
        assert outsider.getsockname()[1] not in ports
        own = devserver_pid(env, env.server_id)
        assert all(p.pid != own for p in listed), "the develop server's own port is not the user's"
    cli_env = {"DEVYARD_URL": env.stack.url, "DEVYARD_TOKEN": env.token, "DEVYARD_PROJECT": "demo"}
    shown = subprocess.run(
        [YARD, "dev", "ports", "--json"], capture_output=True, text=True, env={**os.environ, **cli_env}, timeout=60
    )
    assert shown.returncode == 0, shown.stderr
    assert echo.port in [p["port"] for p in json.loads(shown.stdout)]
    human = subprocess.run([YARD, "dev", "ports"], capture_output=True, text=True, env={**os.environ, **cli_env})
    assert str(echo.port) in human.stdout and "tcp_target.py" in human.stdout


def test_auto_forwards_ports_as_they_appear_and_stops_when_they_go(env: Env, tmp_path: Path) -> None:
    cli_env = {**os.environ, "DEVYARD_URL": env.stack.url, "DEVYARD_TOKEN": env.token, "DEVYARD_PROJECT": "demo"}
    child = subprocess.Popen(
        [YARD, "dev", "forward", "--auto"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=cli_env,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(child.stdout.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()

    def said(fragment: str) -> str | None:
        return next((line for line in list(lines) if fragment in line), None)

    try:
        wait_until(lambda: said("Press Ctrl-C"), message="the forward to start")
        with env.stack.client(env.token) as client, target_in_devserver(client, env.server_id, "echo", tmp_path) as t:
            # On the local substrate the port is this machine's own, so the same number is taken.
            taken = wait_until(lambda: said(f"Local port {t.port} is taken; using "), message="the port to be seen")
            local = int(taken.split("using ")[1].split()[0])
            assert said(f"Forwarding 127.0.0.1:{local} -> port {t.port}.")
            assert exchange(local, b"auto") == b"autobye 4"
        wait_until(lambda: said(f"Port {t.port} stopped listening; no longer forwarded."), message="the stop")
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", local), timeout=5)
        child.send_signal(signal.SIGTERM)
        assert child.wait(10) == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
