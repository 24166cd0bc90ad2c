"""Questions to the develop server sent before the local walk, answers read after it.

A no-change re-sync asks the develop server two things (has the workspace changed since this
manifest token? where are its git refs?) while it walks the local tree. Asked from threads, the
questions cost more than their answers: starting the threads, and above all the HTTP client's
Python work competing for the GIL with a walk that gives the GIL up at every ``lstat``, made the
walk 10-20 % slower. Here each question is written to its own connection up front, the server
answers while the walk runs (the reply waits in the socket), and the answers are read
afterwards: no thread, no GIL contention, and the round trips overlap the walk all the same.

Over ``http://`` a question is one HTTP/1.1 GET on a plain socket (``Connection: close``) and
its reply is read by hand: this module is imported by ``yard sync``'s fast start
(:mod:`tui.cli.quick_sync`), and ``http.client`` alone would cost it ~15 ms of imports (the
``email`` package parses its headers), more than both round trips. ``https://`` goes through
``http.client``, imported only then.

Anything but a clean answer (no connection, an error status, a body that is not JSON) is
reported as ``None``: the caller then runs the full sync, which reports errors properly.
"""

from __future__ import annotations

import json
import socket
from urllib.parse import urlencode, urlsplit

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: the fast start does without importing typing
if TYPE_CHECKING:
    import http.client
    from typing import Any, BinaryIO

TIMEOUT_S = 30.0


class Question:
    """One GET sent to a develop server through the gateway; :meth:`answer` reads its reply."""

    def __init__(self, api_url: str, token: str, server_id: int, path: str, params: dict[str, str] | None) -> None:
        # Where the reply comes from; both None: the question could not be sent.
        self._sock: socket.socket | None = None
        self._tls: http.client.HTTPSConnection | None = None
        url = urlsplit(api_url)
        target = f"{url.path.rstrip('/')}/api/v1/devservers/{server_id}/{path.lstrip('/')}"
        if params:
            target += "?" + urlencode(params)
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        try:
            if url.scheme == "https":
                self._tls = _ask_tls(url.hostname or "127.0.0.1", url.port, target, headers)
                return
            host = url.netloc.rpartition("@")[2]
            sock = socket.create_connection((url.hostname or "127.0.0.1", url.port or 80), timeout=TIMEOUT_S)
        except (OSError, ValueError):  # ValueError: a port that is not a number
            return
        lines = [f"GET {target} HTTP/1.1", f"Host: {host}", "Accept-Encoding: identity", "Connection: close"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        try:
            sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        except (OSError, UnicodeEncodeError):
            sock.close()
            return
        self._sock = sock

    def answer(self) -> tuple[int, Any] | None:
        """``(status, JSON body)``, or None if there was no usable answer."""
        if self._tls is not None:
            connection, self._tls = self._tls, None
            return _answer_tls(connection)
        sock = self._sock
        if sock is None:
            return None
        try:
            with sock.makefile("rb") as reader:
                reply = _read_reply(reader)
            return None if reply is None else (reply[0], json.loads(reply[1]))
        except (OSError, ValueError):
            return None
        finally:
            self.close()

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._tls is not None:
            self._tls.close()
            self._tls = None


def _read_reply(reader: BinaryIO) -> tuple[int, bytes] | None:
    """The status and body of the HTTP/1.1 reply in ``reader`` (the server closes after it)."""
    parts = reader.readline(1024).split()
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        return None
    status = int(parts[1])
    headers: dict[bytes, bytes] = {}
    while (line := reader.readline(65536)).strip():
        name, colon, value = line.partition(b":")
        if not colon:
            return None
        headers[name.strip().lower()] = value.strip()
    if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        body = b""
        while size := int(reader.readline(1024).split(b";")[0], 16):
            body += reader.read(size)
            reader.readline(1024)  # the CRLF after the chunk
        return status, body
    if b"content-length" in headers:
        length = int(headers[b"content-length"])
        body = reader.read(length)
        return (status, body) if len(body) == length else None
    return status, reader.read()


def _ask_tls(host: str, port: int | None, target: str, headers: dict[str, str]) -> http.client.HTTPSConnection:
    import http.client

    connection = http.client.HTTPSConnection(host, port, timeout=TIMEOUT_S)
    try:
        connection.request("GET", target, headers=headers)
    except http.client.HTTPException as exc:
        connection.close()
        raise OSError(str(exc)) from exc
    except OSError:
        connection.close()
        raise
    return connection


def _answer_tls(connection: http.client.HTTPSConnection) -> tuple[int, Any] | None:
    import http.client

    try:
        response = connection.getresponse()
        body = response.read()
        return response.status, json.loads(body)
    except (OSError, http.client.HTTPException, ValueError):
        return None
    finally:
        connection.close()
