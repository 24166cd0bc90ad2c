"""sync.probe.Question over http:// (a plain socket, the reply read by hand): every way an
HTTP/1.1 server may frame its reply, and the replies that must read as "no usable answer".

The real develop server answers with Content-Length (the sync tests use it); the other framings
come from a socket server that sends canned bytes."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator

import pytest

from sync.probe import Question

BODY = json.dumps({"unchanged": True, "token": "t1"}).encode()


class Canned:
    """A server on 127.0.0.1 answering one connection per question with a canned reply."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.requests: list[bytes] = []

    def _serve(self, reply: bytes) -> None:
        conn, _ = self.listener.accept()
        with conn:
            request = b""
            while b"\r\n\r\n" not in request:
                request += conn.recv(4096)
            self.requests.append(request)
            conn.sendall(reply)

    def ask(self, reply: bytes) -> tuple[int, object] | None:
        server = threading.Thread(target=self._serve, args=(reply,))
        server.start()
        try:
            return Question(self.url + "/", "secret", 7, "/files/manifest", {"since": "a b"}).answer()
        finally:
            server.join(10)  # no thread left behind (tests/sync/test_snapshot.py forks)


@pytest.fixture
def canned() -> Iterator[Canned]:
    server = Canned()
    yield server
    server.listener.close()


def test_each_framing_of_a_reply(canned: Canned) -> None:
    length = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), BODY)
    assert canned.ask(length) == (200, {"unchanged": True, "token": "t1"})
    request = canned.requests[-1].decode()
    assert request.startswith("GET /api/v1/devservers/7/files/manifest?since=a+b HTTP/1.1\r\n")
    assert "Authorization: Bearer secret\r\n" in request and "Connection: close\r\n" in request
    assert f"Host: {canned.url.removeprefix('http://')}\r\n" in request

    half = len(BODY) // 2
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x;ext=1\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (
        half,
        BODY[:half],
        len(BODY) - half,
        BODY[half:],
    )
    assert canned.ask(chunked) == (200, {"unchanged": True, "token": "t1"})
    assert canned.ask(b"HTTP/1.0 200 OK\r\n\r\n" + BODY) == (200, {"unchanged": True, "token": "t1"})
    assert canned.ask(b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\n{}") == (404, {})


def test_replies_that_are_no_answer(canned: Canned) -> None:
    assert canned.ask(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + BODY) is None  # cut short
    assert canned.ask(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc") is None  # not JSON
    assert canned.ask(b"SSH-2.0-OpenSSH\r\n\r\n") is None
    assert canned.ask(b"") is None  # closed without a word


def test_no_server() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
    question = Question(f"http://127.0.0.1:{port}", "secret", 7, "/git/refs", None)
    assert question.answer() is None
    question.close()
