"""A local HTTP receiver for outbound webhooks (Slack incoming webhooks, signed webhooks, commit
status APIs): a real HTTP server on a free loopback port that records every request and answers
as a test tells it (a status per request, a delay)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


Responder = Callable[[Request], tuple[int, bytes]]


@dataclass
class Receiver:
    url: str
    requests: list[Request] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    """Statuses for the next requests, in order; when empty, ``default_status``."""
    default_status: int = 200
    delay_s: float = 0.0
    """Wait this long before answering (a slow receiver); the wait ends early when the test ends."""
    respond: Responder | None = None
    """Answers a request itself (a status API checking shapes)."""
    closing: threading.Event = field(default_factory=threading.Event)


@contextmanager
def http_receiver() -> Iterator[Receiver]:
    receiver = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            request = Request(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            receiver.requests.append(request)
            if receiver.delay_s:
                receiver.closing.wait(receiver.delay_s)
            if receiver.respond is not None:
                status, answer = receiver.respond(request)
            else:
                status = receiver.statuses.pop(0) if receiver.statuses else receiver.default_status
                answer = b"ok" if status < 400 else b"receiver says no"
            try:
                self.send_response(status)
                kind = "application/json" if answer.startswith(b"{") else "text/plain"
                self.send_header("content-type", kind)
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)
            except OSError:
                pass  # the client gave up (timed out) first

        do_POST = do_PUT = do_GET = _handle

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.closing.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


def wait_for_requests(receiver: Receiver, count: int, timeout: float = 15.0) -> list[Request]:
    deadline = time.monotonic() + timeout
    while len(receiver.requests) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"the receiver got {len(receiver.requests)} requests, not {count}, within {timeout} s")
        time.sleep(0.01)
    return receiver.requests
