"""Forwarding local TCP ports to ports inside a develop server (`yard dev forward`, the TUI).

Each accepted local connection gets its own WebSocket to the control API
(``/devservers/{id}/tunnel/{port}``, the caller's token) speaking :mod:`control.wire.ports`'
protocol: bytes both ways, ``EOF`` for a half-close. A connection is its own tunnel, so there is
nothing to reconnect: when the API or the develop server restarts, connections open at that
moment break (the local program sees a reset, never a clean end of a cut-short stream), and the
next connection waits, retrying, until the API and the server answer again (up to ``retry_s``).

Flow control is TCP's all the way: a local program that reads slowly stops this side reading the
WebSocket (``drain``), which stops the API, which stops the develop server reading the port.
Core logic: nothing is printed; what happens is reported to ``notify`` as :class:`ForwardEvent`.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from control.tcpreset import reset
from control.wire.errors import DevyardError, parse_error
from control.wire.ports import EOF, MAX_PORT, MIN_PORT, PORT_NOT_LISTENING, port_problem

if TYPE_CHECKING:
    from websockets.asyncio.client import ClientConnection

READ_SIZE = 256 * 1024
RETRY_S = 30.0
# Codes after which trying again cannot help (the token, the role or the server id is wrong).
FATAL_STATUSES = frozenset({400, 401, 403, 404})

EventKind = Literal[
    "refused", "not_listening", "waiting", "recovered", "broken", "fatal", "forwarding", "stopped", "local_taken"
]
AUTO_POLL_S = 1.0


class LocalPortTaken(DevyardError):
    """The local port is in use by another program (or not ours to bind)."""


@dataclass(frozen=True)
class PortSpec:
    """``LOCAL:REMOTE``: listen on 127.0.0.1:LOCAL, connect to REMOTE inside the develop server."""

    local: int
    remote: int

    @classmethod
    def parse(cls, text: str) -> PortSpec:
        """``8080`` (the same both sides) or ``8081:8080``; ValueError with one sentence otherwise."""
        local_text, _, remote_text = text.strip().partition(":")
        remote_text = remote_text or local_text
        for part in (local_text, remote_text):
            problem = port_problem(part)
            if problem and not (part is local_text and part.strip() == "0"):
                raise ValueError(f"{problem} (in {text!r}; the form is LOCAL[:REMOTE], e.g. 8080 or 8081:8080)")
        return cls(int(local_text), int(remote_text))

    def __str__(self) -> str:
        return f"{self.local}:{self.remote}"


@dataclass(frozen=True)
class ForwardEvent:
    """Something a person forwarding ports should know; ``message`` is one sentence."""

    kind: EventKind
    remote: int
    message: str


@dataclass
class _Listener:
    spec: PortSpec
    server: asyncio.Server


@dataclass
class Forwarder:
    """Listens on local ports and tunnels each connection to a port of one develop server."""

    websocket_url: Callable[[str], str]
    """The ``ws://`` URL of an API path (``ControlClient.websocket_url``)."""
    headers: dict[str, str]
    server_id: int
    notify: Callable[[ForwardEvent], None] = lambda event: None
    retry_s: float = RETRY_S
    ssl_context: ssl.SSLContext | None = None
    """For a ``wss://`` API: the client's context (its pinned certificate or CA file)."""
    host: str = "127.0.0.1"
    listeners: dict[int, _Listener] = field(default_factory=dict)  # by remote port
    connections: set[asyncio.Task[None]] = field(default_factory=set)
    _waiting: bool = False

    async def listen(self, spec: PortSpec) -> PortSpec:
        """Start forwarding ``spec`` (local port 0: any free one); returns the spec as bound."""
        try:
            server = await asyncio.start_server(
                lambda r, w: self._accept(spec.remote, r, w), self.host, spec.local, limit=READ_SIZE
            )
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise LocalPortTaken(
                    f"Local port {spec.local} is already in use by another program;"
                    f" forward from a free one instead, e.g. `yard dev forward {_free_hint(spec.local)}:{spec.remote}`."
                ) from None
            raise LocalPortTaken(f"Cannot listen on local port {spec.local}: {exc.strerror or exc}.") from None
        bound = PortSpec(server.sockets[0].getsockname()[1], spec.remote)
        self.listeners[spec.remote] = _Listener(bound, server)
        return bound

    async def stop(self, remote: int) -> None:
        """Stop listening for ``remote`` (connections already open go on until they end)."""
        listener = self.listeners.pop(remote, None)
        if listener is not None:
            listener.server.close()

    async def close(self) -> None:
        """Stop every listener and break every open connection."""
        for remote in list(self.listeners):
            await self.stop(remote)
        for task in list(self.connections):
            task.cancel()
        await asyncio.gather(*self.connections, return_exceptions=True)

    def _accept(self, remote: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        task = asyncio.ensure_future(self._serve(remote, reader, writer))
        self.connections.add(task)
        task.add_done_callback(self.connections.discard)

    async def _serve(self, remote: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        clean = False
        try:
            ws = await self._open(remote)
            if ws is not None:
                clean = await _relay(reader, writer, ws)
        except Exception as exc:  # one connection's failure must not end the forward
            self.notify(ForwardEvent("broken", remote, f"A connection to port {remote} failed: {exc}."))
        finally:
            if clean:
                writer.close()
            else:
                reset(writer)  # the local program must not take a cut-short stream for a whole one

    async def _open(self, remote: int) -> ClientConnection | None:
        """A tunnel to ``remote``, retrying while the API or the server is away; None: refused."""
        from websockets.asyncio.client import connect
        from websockets.exceptions import InvalidHandshake, InvalidStatus

        url = self.websocket_url(f"/devservers/{self.server_id}/tunnel/{remote}")
        tls: dict[str, Any] = {"ssl": self.ssl_context} if url.startswith("wss://") and self.ssl_context else {}
        deadline = time.monotonic() + self.retry_s
        delay = 0.1
        while True:
            try:
                ws = await connect(
                    url,
                    additional_headers=self.headers,
                    compression=None,
                    max_size=1024 * 1024,
                    max_queue=4,
                    open_timeout=10,
                    close_timeout=2,
                    **tls,
                )
            except InvalidStatus as exc:
                status = exc.response.status_code
                code, message = _error(status, exc.response.body)
                if code == PORT_NOT_LISTENING:
                    self.notify(ForwardEvent("not_listening", remote, message))
                    return None
                if status in FATAL_STATUSES:
                    self.notify(ForwardEvent("fatal", remote, message))
                    return None
                why = message
            except (OSError, InvalidHandshake, TimeoutError) as exc:
                why = f"The devyard API cannot be reached ({exc})."
            else:
                if self._waiting:
                    self._waiting = False
                    self.notify(ForwardEvent("recovered", remote, f"Port {remote} is reachable again."))
                return ws
            if time.monotonic() + delay > deadline:
                self.notify(ForwardEvent("refused", remote, f"{why} A connection to port {remote} was closed."))
                return None
            if not self._waiting:
                self._waiting = True
                self.notify(ForwardEvent("waiting", remote, f"{why} Retrying for up to {self.retry_s:g} s."))
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)


async def _relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, ws: ClientConnection) -> bool:
    """Relay one connection; True when both sides ended cleanly (EOF both ways)."""
    from websockets.exceptions import ConnectionClosed

    local_done = asyncio.Event()
    remote_done = asyncio.Event()

    async def up() -> None:
        while True:
            data = await reader.read(READ_SIZE)
            if not data:
                await ws.send(EOF)
                local_done.set()
                return
            await ws.send(data)

    async def down() -> None:
        async for message in ws:
            if isinstance(message, bytes):
                writer.write(message)
                await writer.drain()
            elif message == EOF and not remote_done.is_set():
                if writer.can_write_eof():
                    writer.write_eof()
                remote_done.set()

    sending = asyncio.ensure_future(up())
    receiving = asyncio.ensure_future(down())
    both = asyncio.ensure_future(_both(local_done, remote_done))
    waiting: set[asyncio.Future[None]] = {sending, receiving, both}
    try:
        # Until both directions ended, or the tunnel closed or failed first.
        while both in waiting:
            done, waiting = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if receiving in done or (sending in done and sending.exception() is not None):
                break
    finally:
        clean = local_done.is_set() and remote_done.is_set()
        for task in (sending, receiving, both):
            task.cancel()
        await asyncio.gather(sending, receiving, both, return_exceptions=True)
        with contextlib.suppress(ConnectionClosed, OSError):
            await ws.close(code=1000 if clean else 4000)
    return clean


async def follow_ports(
    forwarder: Forwarder,
    listening: Callable[[], Awaitable[Iterable[int]]],
    interval_s: float = AUTO_POLL_S,
    exclude: frozenset[int] = frozenset(),
) -> None:
    """Forward each port that starts listening in the develop server, from the same local port
    when it is free (else any free one), and stop when it goes away; runs until cancelled.

    ``listening()`` answers the remote ports (``list_ports`` through the API); a failure of it
    (the API restarting) only skips a turn. Ports in ``exclude`` are left alone (forwarded
    explicitly by the caller)."""
    auto: set[int] = set()
    failing = False
    while True:
        try:
            now = set(await listening()) - exclude
        except DevyardError as exc:
            if not failing:
                forwarder.notify(ForwardEvent("waiting", 0, f"Cannot list the ports ({exc}); trying again."))
            failing = True
            await asyncio.sleep(interval_s)
            continue
        if failing:
            failing = False
            forwarder.notify(ForwardEvent("recovered", 0, "Listing the ports works again."))
        for remote in sorted(now - auto):
            try:
                bound = await forwarder.listen(PortSpec(remote, remote))
            except LocalPortTaken:
                bound = await forwarder.listen(PortSpec(0, remote))
                forwarder.notify(
                    ForwardEvent("local_taken", remote, f"Local port {remote} is taken; using {bound.local} instead.")
                )
            auto.add(remote)
            forwarder.notify(
                ForwardEvent("forwarding", remote, f"Forwarding 127.0.0.1:{bound.local} -> port {remote}.")
            )
        for remote in sorted(auto - now):
            await forwarder.stop(remote)
            auto.discard(remote)
            forwarder.notify(ForwardEvent("stopped", remote, f"Port {remote} stopped listening; no longer forwarded."))
        await asyncio.sleep(interval_s)


async def _both(first: asyncio.Event, second: asyncio.Event) -> None:
    await first.wait()
    await second.wait()


def _error(status: int, body: bytes | bytearray | None) -> tuple[str, str]:
    try:
        parsed = parse_error(json.loads(body or b"{}"))
    except ValueError:
        parsed = None
    if parsed is None:
        return "http_error", f"The devyard API answered {status}."
    return parsed[0], parsed[1]


def _free_hint(taken: int) -> int:
    """A nearby port number to suggest (not reserved: only a hint in a sentence)."""
    return taken + 1 if taken < MAX_PORT else MIN_PORT + 1023
