"""One small HTTP/1.1 client on the standard library, for the processes whose start is latency:
the run worker (:mod:`control.workerclient`, one process per run) and the CLI's fast paths
(:mod:`tui.cli.quick`: `yard run`, `yard dev exec`, `yard sync`).

``httpx`` costs about 110 ms to import and ``http.client`` about 15 ms (the ``email`` package
parses its headers); this module imports ``socket`` and ``json`` (``ssl`` only for an
``https://`` URL). It keeps one connection alive between requests, sends a body from bytes or
from a file of known length, and reads ``Content-Length``, chunked and read-to-close bodies,
whole or as a stream. A failed connection is worded by :mod:`control.reach`, as in
:mod:`control.client`; an error answer's body is read by :func:`error_of`, for both.
"""

from __future__ import annotations

import json
import socket

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs the fast paths ~2 ms
if TYPE_CHECKING:
    import ssl
    from collections.abc import Iterator
    from typing import Any, BinaryIO

    from control.trust import Trust

DEFAULT_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 5.0
"""Each of a name's addresses gets this long to accept a TCP connection before the next is tried:
an API replica whose host went silent, still in DNS, costs 5 s, not the whole request timeout.
Only the kernel's handshake is under it; the TLS handshake, which waits for an API process to
take the connection, has the request timeout."""

_answered: dict[tuple[str, int], Any] = {}
"""Per (host, port), the address that last accepted a connection in this process. It is tried
first, so a silent address of a name costs one connect timeout per process, not one per new
connection; the others keep the resolver's order."""
SEND_BLOCK = 256 * 1024


class Unreachable(Exception):
    """No connection, a dropped one, no answer in time, or an answer that is not HTTP; the
    message is :func:`control.reach.unreachable`'s. ``sent`` says whether the request may have
    reached the API (False: it certainly did not, so sending it again is safe)."""

    def __init__(self, url: str, cause: BaseException, *, sent: bool) -> None:
        from control.reach import unreachable

        super().__init__(unreachable(url, cause))
        self.sent = sent


class RemoteProtocolError(Exception):
    """The connection closed before an answer, or what came is not HTTP/1.x."""


def error_of(status: int, body: bytes) -> tuple[str, str, Any]:
    """``(code, message, details)`` of an error answer: the API's ``{"error": {...}}`` body, or
    a plain sentence when the body is not one (a proxy's page)."""
    code, message, details = "http_error", f"The API answered {status}.", None
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        code = str(error.get("code", code))
        message = str(error.get("message", message))
        details = error.get("details")
    return code, message, details


def refusal(status: int, body: bytes, token_from_environment: bool | None = None) -> tuple[str, str, Any]:
    """:func:`error_of` for a person at a terminal: a refused token says where to fix it
    (:func:`control.reach.refused_token`). ``token_from_environment`` None: as
    :func:`control.profiles.resolve` would choose, with no profile named."""
    from control import reach

    code, message, details = error_of(status, body)
    if status == 401 and code in ("unauthenticated", "token_expired"):  # a disabled user has a code of its own
        if token_from_environment is None:
            token_from_environment = reach.token_from_environment(None)
        message = reach.refused_token(message, token_from_environment)
    return code, message, details


class Connection:
    """Requests to one API, one at a time, over one kept-alive connection (made again after a
    failure or a stream left unread)."""

    def __init__(
        self,
        url: str,
        token: str | None,
        *,
        timeout: float | None = None,
        agent: str = "devyard-client",
        trust: Trust | None = None,
    ) -> None:
        """``trust``: which certificate an ``https://`` API may present (see :mod:`control.trust`).
        Raises :class:`control.trust.TrustProblem` for a token that would travel over plain HTTP
        to another machine without ``trust.insecure_http``."""
        self.url = url.rstrip("/")
        scheme, _, rest = self.url.partition("://")
        if scheme not in ("http", "https") or not rest:
            raise ValueError(f"not an http:// or https:// URL: {url}")
        netloc, slash, path = rest.partition("/")
        netloc = netloc.rpartition("@")[2]
        if netloc.startswith("["):
            host, _, port = netloc[1:].partition("]")
            port = port.removeprefix(":")
        else:
            host, _, port = netloc.partition(":")
        self.https = scheme == "https"
        self.host = host or "127.0.0.1"
        self.port = int(port) if port else (443 if self.https else 80)
        self.netloc = netloc
        self.base = (slash + path).rstrip("/")
        self.timeout = timeout if timeout is not None else DEFAULT_TIMEOUT_S  # connect, send, each answer
        self.token = token
        self.trust = trust
        if not self.https:
            from control.trust import check_plain_http

            check_plain_http(self.url, token, trust)
        self._ssl: ssl.SSLContext | None = None  # built at the first connection, then reused
        self._head = [f"User-Agent: {agent}", "Accept: */*", "Accept-Encoding: identity"]
        if token:
            self._head.append(f"Authorization: Bearer {token}")
        self._sock: socket.socket | None = None
        self._reader: BinaryIO | None = None

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def call(
        self,
        method: str,
        path: str,
        body: bytes | BinaryIO | None = None,
        *,
        content_type: str | None = None,
        length: int | None = None,
    ) -> tuple[int, bytes]:
        """Send one request and read the whole answer: ``(status, body)``."""
        status, headers = self._exchange(method, path, body, content_type, length, self.timeout)
        return status, self._whole_body(headers)

    def send(self, method: str, path: str, *, last: bool = False) -> None:
        """Send a request without a body and leave its answer in the socket for :meth:`receive`
        (the caller does other work meanwhile). ``last``: the server may close after answering."""
        self._request(method, path, None, None, None, last=last)

    def receive(self) -> tuple[int, bytes]:
        """The answer to what :meth:`send` sent: ``(status, body)``."""
        status, headers = self._answer(self.timeout)
        return status, self._whole_body(headers)

    def _whole_body(self, headers: dict[str, str]) -> bytes:
        try:
            assert self._reader is not None
            data = b"".join(_body(self._reader, headers))
        except (OSError, ValueError) as exc:
            self.close()
            raise Unreachable(self.url, exc, sent=True) from exc
        if headers.get("connection", "").lower() == "close":
            self.close()
        return data

    def stream(self, method: str, path: str, body: bytes | None = None) -> tuple[int, Iterator[bytes]]:
        """Send one request; the status and the body as it arrives, waiting as long as it takes
        (exec output, log follows). A body that ends early just ends: the caller's own framing
        says whether it was complete. The stream keeps this connection; the next request makes
        a new one."""
        status, headers = self._exchange(method, path, body, "application/json" if body else None, None, None)
        sock, reader = self._sock, self._reader
        self._sock = self._reader = None
        assert sock is not None and reader is not None
        sock.settimeout(None)
        return status, _streamed(sock, reader, headers)

    def _exchange(
        self,
        method: str,
        path: str,
        body: bytes | BinaryIO | None,
        content_type: str | None,
        length: int | None,
        timeout: float | None,
    ) -> tuple[int, dict[str, str]]:
        fresh = self._sock is None
        self._request(method, path, body, content_type, length)
        try:
            return self._answer(timeout)
        except Unreachable as exc:
            closed = isinstance(exc.__cause__, RemoteProtocolError) and "before" in str(exc.__cause__)
            if fresh or not closed or not (body is None or isinstance(body, bytes)):
                raise
        # A kept-alive connection the server had closed meanwhile: once more, on a new one.
        self._request(method, path, body, content_type, length)
        return self._answer(timeout)

    def _request(
        self,
        method: str,
        path: str,
        body: bytes | BinaryIO | None,
        content_type: str | None,
        length: int | None,
        *,
        last: bool = False,
    ) -> None:
        head = [f"{method} {self.base}{path} HTTP/1.1", f"Host: {self.netloc}", *self._head]
        if last:
            head.append("Connection: close")
        if content_type:
            head.append(f"Content-Type: {content_type}")
        if isinstance(body, bytes):
            length = len(body)
        if body is not None or method in ("POST", "PUT", "PATCH"):
            head.append(f"Content-Length: {length or 0}")
        request = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
        try:
            sock = self._connect()
        except OSError as exc:
            self.close()
            raise Unreachable(self.url, exc, sent=False) from exc
        try:
            sock.settimeout(self.timeout)
            self._send(sock, request, body)
        except OSError as exc:
            self.close()
            raise Unreachable(self.url, exc, sent=False) from exc

    def _answer(self, timeout: float | None) -> tuple[int, dict[str, str]]:
        """The status and headers of the next answer (``timeout``: for the status line)."""
        try:
            assert self._sock is not None and self._reader is not None
            self._sock.settimeout(timeout)
            status_line = self._reader.readline(65536)
            parts = status_line.split()
            if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
                problem = "the answer is not HTTP/1.x" if status_line else "closed before an answer"
                cause = RemoteProtocolError(problem)
                raise Unreachable(self.url, cause, sent=True) from cause
            headers: dict[str, str] = {}
            while (line := self._reader.readline(65536)) not in (b"\r\n", b"\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            self._sock.settimeout(self.timeout)
            return int(parts[1]), headers
        except Unreachable:
            self.close()
            raise
        except OSError as exc:
            self.close()
            raise Unreachable(self.url, exc, sent=True) from exc

    def _connect(self) -> socket.socket:
        if self._sock is None:
            sock = _open(self.host, self.port, min(self.timeout, CONNECT_TIMEOUT_S))
            sock.settimeout(self.timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.https:
                if self._ssl is None:
                    from control.trust import client_context

                    self._ssl = client_context(self.trust, system=False)
                try:
                    sock = self._ssl.wrap_socket(sock, server_hostname=self.host)
                except BaseException:
                    sock.close()
                    raise
            self._sock = sock
            self._reader = sock.makefile("rb")
        return self._sock

    @staticmethod
    def _send(sock: socket.socket, request: bytes, body: bytes | BinaryIO | None) -> None:
        if body is None or isinstance(body, bytes):
            sock.sendall(request + (body or b""))
            return
        sock.sendall(request)
        while block := body.read(SEND_BLOCK):
            sock.sendall(block)


def _open(host: str, port: int, timeout: float) -> socket.socket:
    """A TCP connection to the first of ``host``'s addresses that accepts one (the one that last
    did first), as :func:`socket.create_connection` but remembering which answered."""
    key = (host, port)
    candidates = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
    known = _answered.get(key)
    candidates.sort(key=lambda candidate: candidate[4] != known)  # stable: the rest keep their order
    error: OSError | None = None
    for family, kind, proto, _name, address in candidates:
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(timeout)
            sock.connect(address)
        except OSError as exc:
            sock.close()
            error = exc
            continue
        _answered[key] = address
        return sock
    raise error or OSError(f"{host} has no address")


def _streamed(sock: socket.socket, reader: BinaryIO, headers: dict[str, str]) -> Iterator[bytes]:
    try:
        yield from _body(reader, headers)
    except (OSError, ValueError):
        return
    finally:
        reader.close()
        sock.close()


def _body(reader: BinaryIO, headers: dict[str, str]) -> Iterator[bytes]:
    """The body after ``headers``, in pieces as they arrive."""
    if headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size_line = reader.readline(1024)
            if not size_line:
                raise ValueError("the body ended early")
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                while reader.readline(65536) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return
            data = reader.read(size)
            reader.readline(1024)  # the CRLF after the chunk
            yield data
    elif "content-length" in headers:
        length = int(headers["content-length"])
        data = reader.read(length)
        if len(data) != length:
            raise ValueError("the body ended early")
        yield data
    else:  # read to the end: nothing more can follow on this connection
        headers["connection"] = "close"
        while block := reader.read1(65536):  # type: ignore[attr-defined]
            yield block
