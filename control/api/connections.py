"""Connection-level defences of the API server, below the ASGI app.

uvicorn bounds the time between requests on a kept-alive connection, but not the time a client
takes to send a request's headers, nor how many connections one address holds: an audit kept
2,100 connections open by trickling one header line at a time, without a token, and every
health probe answered 503 (uvicorn's ``limit_concurrency`` counts open connections). Here each
connection has :attr:`header_timeout_s` from its first byte (or from connecting) to the end of
its headers, and one client address holds at most :attr:`max_per_client` connections per
process. Requests the HTTP parser refuses (``Content-Length: abc``) and requests past uvicorn's
concurrency limit get the API's JSON error body instead of uvicorn's plain text.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

log = logging.getLogger("devyard.api")


def error_response(status: int, code: str, message: str, default_headers: list[tuple[bytes, bytes]]) -> bytes:
    """A complete HTTP/1.1 response with the API's JSON error body; the connection closes after it."""
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    head = [STATUS_LINE[status]]
    for name, value in default_headers:
        head += [name, b": ", value, b"\r\n"]
    head += [
        b"content-type: application/json\r\n",
        b"content-length: " + str(len(body)).encode() + b"\r\n",
        b"connection: close\r\n\r\n",
    ]
    return b"".join(head) + body


async def _too_busy(scope: Any, receive: Any, send: Any) -> None:
    """The answer past uvicorn's concurrency limit, with the API's JSON error body."""
    message = "The API has as many connections and requests as it serves at once; retry in a moment."
    body = json.dumps({"error": {"code": "too_busy", "message": message}}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"retry-after", b"1"),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def protected_protocol(header_timeout_s: float, max_per_client: int) -> type[asyncio.Protocol]:
    """uvicorn's httptools protocol with the defences above; one class (and one count of
    connections per address) per server."""
    open_by_client: dict[str, int] = {}  # only touched on the server's event loop

    class ProtectedHttpProtocol(HttpToolsProtocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._header_timer: asyncio.TimerHandle | None = None
            self._counted: str | None = None  # the address this connection is counted under
            # uvicorn's own check answers plain text: this class applies the same limit itself.
            self._concurrency, self.limit_concurrency = self.limit_concurrency, None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            address = self.client[0] if self.client else None
            if address is not None and max_per_client:
                if open_by_client.get(address, 0) >= max_per_client:
                    log.warning("refused a connection from %s: %d already open", address, max_per_client)
                    self._close_with(
                        429,
                        "too_many_connections",
                        f"This address already holds {max_per_client} connections to the API; close some first.",
                    )
                    return
                open_by_client[address] = open_by_client.get(address, 0) + 1
                self._counted = address
            self._arm_header_timer()

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_header_timer()
            self._release()
            super().connection_lost(exc)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            if self._header_timer is None:  # a connection's first request keeps its first deadline
                self._arm_header_timer()

        def on_headers_complete(self) -> None:
            self._cancel_header_timer()
            limit = self._concurrency
            if limit is None or (len(self.connections) < limit and len(self.tasks) < limit):
                super().on_headers_complete()
                return
            log.warning(
                "answered 503: %d connections and %d requests in flight", len(self.connections), len(self.tasks)
            )
            app, self.app = self.app, _too_busy
            try:
                super().on_headers_complete()  # the request is answered by _too_busy
            finally:
                self.app = app

        def handle_websocket_upgrade(self) -> None:
            # The WebSocket protocol takes the transport over (and sees connection_lost): this
            # one stops counting it now. Terminals have limits of their own.
            self._cancel_header_timer()
            self._release()
            super().handle_websocket_upgrade()

        def send_400_response(self, msg: str) -> None:
            self._cancel_header_timer()
            self._close_with(400, "bad_request", "The request is not valid HTTP/1.1 (a malformed line or header).")

        def _arm_header_timer(self) -> None:
            self._header_timer = self.loop.call_later(header_timeout_s, self._headers_too_slow)

        def _cancel_header_timer(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_too_slow(self) -> None:
            self._header_timer = None
            if self.transport.is_closing():
                return
            if self.cycle is not None and not self.cycle.response_complete:
                self.transport.close()  # a response is on its way: no room for another one
                return
            self._close_with(
                408, "request_timeout", f"The request headers did not arrive within {header_timeout_s:g} s."
            )

        def _close_with(self, status: int, code: str, message: str) -> None:
            self.transport.write(error_response(status, code, message, self.server_state.default_headers))
            self.transport.close()

        def _release(self) -> None:
            if self._counted is not None:
                left = open_by_client[self._counted] - 1
                if left:
                    open_by_client[self._counted] = left
                else:
                    del open_by_client[self._counted]
                self._counted = None

    return ProtectedHttpProtocol
