"""`yard dev exec` without Typer, Rich or httpx: a command round trip should cost a round trip.

The full CLI spends ~0.3 s importing itself before it sends anything; this path uses the standard
library only (one socket, HTTP/1.1, the frame decoder) and covers the plain form
``yard dev exec [-p P] [--cwd D] [--timeout S] -- CMD...`` over ``http://``. Anything else
(``--help``, an ``https://`` profile, an option it does not know) returns None and the full CLI
handles it, so both paths behave the same to the user.
"""

from __future__ import annotations

import json
import socket
import sys
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlsplit

CONNECTION_LOST = 255
OPTIONS = {"-p": "project", "--project": "project", "--cwd": "cwd", "--timeout": "timeout"}


class Refused(Exception):
    """One sentence for stderr, and the exit code."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def parse(args: list[str]) -> tuple[dict[str, str], list[str]] | None:
    """Options and the command, or None when this is not the plain form."""
    options: dict[str, str] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            return options, args[i + 1 :]
        name, eq, value = arg.partition("=")
        if name not in OPTIONS:
            return None
        if not eq:
            if i + 1 >= len(args):
                return None
            value = args[i + 1]
            i += 1
        options[OPTIONS[name]] = value
        i += 1
    return None


class Http:
    """Just enough HTTP/1.1 over one keep-alive socket for two requests."""

    def __init__(self, url: str, token: str) -> None:
        parts = urlsplit(url)
        self.base, self.host, self.port = url, parts.hostname or "127.0.0.1", parts.port or 80
        self.token = token
        try:
            self.sock = socket.create_connection((self.host, self.port), timeout=10)
        except OSError as exc:
            local = self.host in ("127.0.0.1", "localhost", "::1")
            hint = "is it running (`yard up`)?" if local else "check the URL and your network."
            raise Refused(f"Cannot reach the devyard API at {url} ({type(exc).__name__}); {hint}") from exc
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = self.sock.makefile("rb")

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, Iterator[bytes]]:
        head = [
            f"{method} /api/v1{path} HTTP/1.1",
            f"Host: {self.host}:{self.port}",
            f"Authorization: Bearer {self.token}",
        ]
        head += ["User-Agent: devyard-client", "Accept: */*"]
        if body is not None:
            head += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
        self.sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + (body or b""))
        self.sock.settimeout(None)  # exec output may pause for as long as the command likes
        status_line = self.reader.readline()
        if not status_line:
            raise Refused("The devyard API closed the connection.", CONNECTION_LOST)
        status = int(status_line.split()[1])
        headers: dict[str, str] = {}
        while (line := self.reader.readline()) not in (b"\r\n", b"\n", b""):
            key, _, value = line.decode("latin-1").partition(":")
            headers[key.strip().lower()] = value.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            return status, self._chunks()
        return status, iter([self.reader.read(int(headers.get("content-length", "0")))])

    def _chunks(self) -> Iterator[bytes]:
        while True:
            size_line = self.reader.readline()
            if not size_line:
                return  # cut short: the caller notices the missing exit frame
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                self.reader.readline()
                return
            data = self.reader.read(size)
            self.reader.readline()
            yield data


def _json(status: int, body: Iterator[bytes]) -> Any:
    data = json.loads(b"".join(body) or b"null")
    if status >= 400:
        message = data.get("error", {}).get("message") if isinstance(data, dict) else None
        if status == 401 and message:
            message = f"{message.rstrip('.')}; check the token of your profile (`yard login` replaces it)."
        raise Refused(message or f"The API answered {status}.")
    return data


def run(args: list[str]) -> int | None:
    parsed = parse(args)
    if parsed is None:
        return None
    options, command = parsed
    from control.profiles import ProfileProblem, resolve

    try:
        profile = resolve(None)
    except ProfileProblem:
        return None  # the full CLI explains profile problems
    if not profile.url.startswith("http://"):
        return None
    if not command or not command[0].strip():
        return None
    from devserver.frames import FrameDecoder
    from tui.cli.project_name import default_project

    project = options.get("project") or default_project()
    http = Http(profile.url, profile.token)
    servers = _json(*http.request("GET", f"/devservers?project={quote(project)}"))
    server = servers[0] if servers else None
    if server is None or server.get("state") != "running":
        state_text = f"is {server['state']}" if server else "does not exist"
        raise Refused(
            f"Your develop server for project {project} {state_text}; start it with `yard dev start -p {project}`."
        )
    body: dict[str, Any] = {"argv": command, "cwd": options.get("cwd")}
    if "timeout" in options:
        try:
            body["timeout_s"] = float(options["timeout"])
        except ValueError:
            return None
    status, stream = http.request("POST", f"/devservers/{server['id']}/exec", json.dumps(body).encode())
    if status >= 400:
        _json(status, stream)
    decoder = FrameDecoder()
    out, err = sys.stdout.buffer, sys.stderr.buffer
    for piece in stream:
        for frame in decoder.feed(piece):
            if frame.kind == b"o":
                out.write(frame.payload)
                out.flush()
            elif frame.kind == b"e":
                err.write(frame.payload)
                err.flush()
            elif frame.kind == b"!":
                err.write(b"error: " + frame.payload + b"\n")
                err.flush()
    if decoder.exit_code is None:
        raise Refused("The connection to the develop server was lost before the command finished.", CONNECTION_LOST)
    return decoder.exit_code


def main(args: list[str]) -> int | None:
    """Exit code of the command, or None to let the full CLI handle these arguments."""
    try:
        return run(args)
    except Refused as exc:
        sys.stderr.write(f"error: {exc}\n")
        return exc.code
    except KeyboardInterrupt:
        return 130
