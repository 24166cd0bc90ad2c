"""Connection-level defences of the real API process: slowloris (issue 15 item 5), bounded and on
loopback only, and requests the HTTP parser refuses (item 13).

An attacker at 127.0.0.2 opens more connections than uvicorn's concurrency limit and trickles
one header line at a time on each, never finishing a request. Health probes from 127.0.0.1 must
keep answering 200, connections over the per-address limit are refused with 429, and a
connection still sending its headers is closed once the header timeout has passed, however
steadily it trickles.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from control.api.app import MAX_CONCURRENT_REQUESTS
from tests.e2e.processes import Server

HEADER_TIMEOUT_S = 2.0
PER_CLIENT = 100
ATTACK_CONNECTIONS = MAX_CONCURRENT_REQUESTS + 100  # more than uvicorn's own limit: it answered 503
ATTACKER = "127.0.0.2"  # still loopback (all of 127/8 is), but another address than the probes'
TRICKLE_EVERY_S = 0.25


def api_server(tmp_path: Path, per_client: int) -> Iterator[Server]:
    env = {
        "DEVYARD_DATABASE_URL": f"sqlite:///{tmp_path / 'devyard.db'}",
        "DEVYARD_AGENT": "false",
        "DEVYARD_SCHEDULER": "false",
        "DEVYARD_API_WORKERS": "1",  # the per-address count is per process
        "DEVYARD_HEADER_TIMEOUT_S": str(HEADER_TIMEOUT_S),
        "DEVYARD_MAX_CONNECTIONS_PER_CLIENT": str(per_client),
    }
    running = Server(tmp_path / "data", env)
    running.start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from api_server(tmp_path_factory.mktemp("api"), PER_CLIENT)


@pytest.fixture(scope="module")
def unlimited_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """No per-address limit: what many attacking addresses amount to."""
    yield from api_server(tmp_path_factory.mktemp("api-unlimited"), 0)


class Slowloris:
    """Attack connections, each sending an unfinished request and then a header line per round."""

    def __init__(self, port: int, count: int) -> None:
        self.sockets: list[socket.socket] = []
        self.received: dict[int, bytes] = {}  # index -> what the server sent before closing
        self.closed: set[int] = set()
        self._stop = threading.Event()
        for index in range(count):
            sock = socket.socket()
            sock.bind((ATTACKER, 0))
            sock.connect(("127.0.0.1", port))
            try:
                sock.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n")
            except OSError:  # refused and closed already
                self.closed.add(index)
            sock.setblocking(False)
            self.sockets.append(sock)
        self._thread = threading.Thread(target=self._trickle, daemon=True)
        self._thread.start()

    def _trickle(self) -> None:
        while not self._stop.wait(TRICKLE_EVERY_S):
            for index, sock in enumerate(self.sockets):
                if index in self.closed:
                    continue
                self._read(index, sock)
                if index not in self.closed:
                    with contextlib.suppress(BlockingIOError):
                        try:
                            sock.send(b"X-Trickle: still-here\r\n")
                        except OSError:
                            self.closed.add(index)

    def _read(self, index: int, sock: socket.socket) -> None:
        while True:
            try:
                data = sock.recv(65536)
            except BlockingIOError:
                return
            except OSError:
                self.closed.add(index)
                return
            if not data:
                self.closed.add(index)
                return
            self.received[index] = self.received.get(index, b"") + data

    def open_count(self) -> int:
        return len(self.sockets) - len(self.closed)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        for sock in self.sockets:
            sock.close()


def wait_until(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.02)


def test_the_api_answers_health_probes_under_slowloris(server: Server) -> None:
    attack = Slowloris(server.port, ATTACK_CONNECTIONS)
    try:
        # Everything over the per-address limit is refused at once, with the JSON error body.
        wait_until(lambda: attack.open_count() <= PER_CLIENT, 15, f"at most {PER_CLIENT} attack connections open")
        refused = [data for data in attack.received.values() if data]
        assert refused and all(data.startswith(b"HTTP/1.1 429 ") for data in refused), refused[:3]
        assert b'"too_many_connections"' in refused[0]
        # With the survivors still trickling, the API answers its health probes.
        with httpx.Client(base_url=server.url, timeout=5) as probe:
            for _ in range(20):
                response = probe.get("/api/v1/health")
                assert response.status_code == 200, response.text
        # A connection still trickling header lines is closed once its headers are overdue.
        wait_until(lambda: attack.open_count() == 0, HEADER_TIMEOUT_S * 3 + 5, "every trickling connection closed")
        timed_out = [data for data in attack.received.values() if data.startswith(b"HTTP/1.1 408 ")]
        assert len(timed_out) >= 1 and b'"request_timeout"' in timed_out[0]
    finally:
        attack.stop()


def test_a_half_sent_request_is_closed_after_the_header_timeout(server: Server) -> None:
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(b"POST /api/v1/projects HTTP/1.1\r\nHost: x\r\n")
        received = b""
        deadline = started + HEADER_TIMEOUT_S * 3 + 5
        while time.monotonic() < deadline:
            ready, _, _ = select.select([sock], [], [], TRICKLE_EVERY_S)
            if ready:
                data = sock.recv(65536)
                if not data:
                    break
                received += data
            else:
                sock.sendall(b"X-Trickle: still-here\r\n")
        closed_after = time.monotonic() - started
    assert received.startswith(b"HTTP/1.1 408 "), received
    assert HEADER_TIMEOUT_S - 0.1 <= closed_after < HEADER_TIMEOUT_S * 3 + 5


def test_a_silent_connection_is_closed_too(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.settimeout(HEADER_TIMEOUT_S * 3 + 5)
        received = b""
        while data := sock.recv(65536):
            received += data
    assert received.startswith(b"HTTP/1.1 408 "), received


def test_a_malformed_content_length_gets_the_json_error_body(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.settimeout(10)
        sock.sendall(b"POST /api/v1/projects HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n{}")
        received = b""
        while data := sock.recv(65536):
            received += data
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 "), received
    assert b"content-type: application/json" in head.lower()
    assert httpx.Response(400, content=body).json()["error"]["code"] == "bad_request"


def test_past_the_concurrency_limit_the_answer_is_json_and_the_api_recovers(unlimited_server: Server) -> None:
    attack = Slowloris(unlimited_server.port, ATTACK_CONNECTIONS)
    answers: list[httpx.Response] = []

    def probe() -> httpx.Response:
        with httpx.Client(base_url=unlimited_server.url, timeout=5) as client:
            answers.append(client.get("/api/v1/health"))
        return answers[-1]

    try:
        wait_until(lambda: probe().status_code == 503, 15, "the API refuses past its concurrency limit")
        busy = answers[-1]
        assert busy.headers["content-type"] == "application/json" and busy.headers["retry-after"] == "1"
        assert busy.json()["error"]["code"] == "too_busy"
        # Once the trickling connections are past their header timeout, the API answers again.
        wait_until(lambda: probe().status_code == 200, HEADER_TIMEOUT_S * 3 + 5, "the API answers again")
    finally:
        attack.stop()
