"""``GET /ports`` lists what listens in this develop server (:mod:`devserver.listening`);
``WS /tunnel/{port}`` is one TCP connection to a port inside this develop server, over a WebSocket.

The protocol is :mod:`control.wire.ports`': binary messages are the stream's bytes, the text
message ``EOF`` is a half-close, and the WebSocket closes when both directions have ended. The
connection to the port is made before the handshake is accepted, so "nothing listens there" is
an answer (409 ``port_not_listening``) rather than a socket that opens and closes at once.

Memory stays bounded whichever side is slow: the port is read only after the previous piece was
handed to the WebSocket (whose send waits while the transport is full), and a piece from the
client is written, and drained, before the next is received (uvicorn stops reading the socket
while a received message waits).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from control.tcpreset import reset
from control.wire.ports import (
    BAD_PORT,
    CLOSE_TARGET_FAILED,
    EOF,
    PORT_NOT_LISTENING,
    TOO_MANY_TUNNELS,
    port_problem,
)
from devserver.listening import listening_ports
from devserver.responses import error_response, json_response, refuse_websocket
from devserver.state import ServerState

log = logging.getLogger("devyard.devserver")

READ_SIZE = 256 * 1024
# Tunnels one develop server holds at once (each is two sockets); one more is refused with 429.
MAX_TUNNELS = 1024
CONNECT_TIMEOUT_S = 5.0
# Loopback first as IPv4, then IPv6: an app bound to "localhost" may listen on either.
LOOPBACK = ("127.0.0.1", "::1")


async def connect_loopback(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection to ``port`` on this machine's loopback; ConnectionRefusedError when nothing listens."""
    last: OSError = ConnectionRefusedError(f"nothing listens on port {port}")
    for host in LOOPBACK:
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                reader, writer = await asyncio.open_connection(host, port, limit=READ_SIZE)
        except (ConnectionRefusedError, TimeoutError) as exc:
            last = exc if isinstance(exc, OSError) else ConnectionRefusedError(str(exc))
            continue
        except OSError as exc:  # e.g. no IPv6 on this host
            last = exc
            continue
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return reader, writer
    raise ConnectionRefusedError(str(last))


class PortsApi:
    """``GET /ports`` (what listens here) and ``WS /tunnel/{port}``."""

    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.open = 0  # tunnels being served (changed on the event loop only)

    def routes(self) -> list[BaseRoute]:
        """The routes of this API."""
        return [Route("/ports", self.ports, methods=["GET"]), WebSocketRoute("/tunnel/{port}", self.tunnel)]

    async def ports(self, request: Request) -> Response:
        """The TCP ports this server's processes listen on (``ListeningPort`` objects)."""
        return json_response(await run_in_threadpool(listening_ports))

    async def tunnel(self, websocket: WebSocket) -> None:
        """Connect to the port, then relay both ways until both directions have ended."""
        raw = websocket.path_params["port"]
        problem = port_problem(raw)
        if problem:
            await refuse_websocket(websocket, error_response(400, BAD_PORT, problem))
            return
        port = int(raw)
        if self.open >= MAX_TUNNELS:
            message = f"This develop server already has {MAX_TUNNELS} forwarded connections open; close some first."
            await refuse_websocket(websocket, error_response(429, TOO_MANY_TUNNELS, message), 4429)
            return
        self.open += 1
        try:
            try:
                reader, writer = await connect_loopback(port)
            except OSError:
                message = (
                    f"Nothing listens on port {port} in the develop server; start the program that serves it first."
                )
                await refuse_websocket(websocket, error_response(409, PORT_NOT_LISTENING, message, port=port), 4409)
                return
            await websocket.accept()
            await Relay(self.state, websocket, reader, writer).run()
        finally:
            self.open -= 1


class Relay:
    """One accepted tunnel: the port's bytes to the WebSocket and back, with half-closes."""

    def __init__(
        self, state: ServerState, websocket: WebSocket, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.state = state
        self.websocket = websocket
        self.reader = reader
        self.writer = writer
        self.client_eof = asyncio.Event()

    async def run(self) -> None:
        to_client = asyncio.ensure_future(self._port_to_client())
        from_client = asyncio.ensure_future(self._client_to_port())
        client_done = asyncio.ensure_future(self.client_eof.wait())
        close_code, reason = 1000, ""
        try:
            # Done when both directions ended cleanly, or at the first failure of either. After
            # the client's EOF its side is still received, so a vanished client is noticed.
            pending: set[asyncio.Future[Any]] = {to_client, from_client, client_done}
            while to_client in pending or client_done in pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                exc = next((task.exception() for task in done if task.exception() is not None), None)
                if isinstance(exc, WebSocketDisconnect):
                    close_code = -1  # the client is gone: nobody to close to
                    break
                if exc is not None:
                    close_code, reason = CLOSE_TARGET_FAILED, f"The connection to the port broke: {exc}"[:120]
                    break
        finally:
            for task in (to_client, from_client, client_done):
                task.cancel()
            await asyncio.gather(to_client, from_client, client_done, return_exceptions=True)
            if close_code == 1000 or self.client_eof.is_set():
                self.writer.close()  # after what was written is sent
            else:
                reset(self.writer)  # tells the program its peer is gone, not that the stream ended
        if close_code != -1:
            with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
                await self.websocket.close(code=close_code, reason=reason)

    async def _port_to_client(self) -> None:
        while True:
            try:
                data = await self.reader.read(READ_SIZE)
            except OSError as exc:
                raise ConnectionError(exc.strerror or str(exc)) from exc
            try:
                if not data:
                    await self.websocket.send_text(EOF)
                    return
                await self.websocket.send_bytes(data)
            except (RuntimeError, OSError) as exc:
                raise WebSocketDisconnect(1006) from exc
            self.state.touch()

    async def _client_to_port(self) -> None:
        while True:
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                raise WebSocketDisconnect(message.get("code", 1006))
            data = message.get("bytes")
            try:
                if data is not None:
                    self.writer.write(data)
                    await self.writer.drain()
                elif message.get("text") == EOF and not self.client_eof.is_set():
                    if self.writer.can_write_eof():
                        self.writer.write_eof()
                    self.client_eof.set()
            except OSError as exc:
                raise ConnectionError(exc.strerror or str(exc)) from exc
            self.state.touch()
