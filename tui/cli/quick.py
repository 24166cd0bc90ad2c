"""The standard-library fast paths of the CLI (`yard dev exec`, `yard run`): shared pieces.

The full CLI spends ~0.3 s importing Typer, Rich and httpx before it sends anything. For the
plain, common forms of a few commands that is most of their run time, so they speak HTTP/1.1 over
one socket with the standard library only. Whatever they do not cover exactly (``--help``,
``https://`` profiles, options they do not know, unusual profiles) returns None and the full
CLI handles it, so both paths behave the same to the user.
"""

from __future__ import annotations

import json
import os
import socket

from control import reach

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs ~2 ms of every call
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

CONNECTION_LOST = 255
ANSWER_TIMEOUT_S = 30.0  # a JSON answer; streams (exec output, log follows) may pause for as long as they like


class CommandFailed(Exception):
    """One sentence for stderr, and the exit code."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class Unreachable(CommandFailed):
    """The API could not be reached or dropped the connection (worth retrying while following)."""


def parse(
    args: list[str], known: dict[str, str], flags: dict[str, str] | None = None
) -> tuple[dict[str, str], list[str]] | None:
    """Options (``known`` take a value, ``flags`` do not) and the command after ``--``, or None
    when this is not the plain form."""
    flags = flags or {}
    options: dict[str, str] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            return options, args[i + 1 :]
        if arg in flags:
            options[flags[arg]] = arg
            i += 1
            continue
        name, eq, value = arg.partition("=")
        if name not in known:
            return None
        if not eq:
            if i + 1 >= len(args):
                return None
            value = args[i + 1]
            i += 1
        options[known[name]] = value
        i += 1
    return None


class Http:
    """Just enough HTTP/1.1 over one keep-alive socket for two requests."""

    def __init__(self, url: str, token: str) -> None:
        netloc = url.removeprefix("http://").split("/", 1)[0]
        host, _, port = netloc.rpartition(":") if netloc.count(":") == 1 or "]:" in netloc else (netloc, "", "")
        self.host, self.port = host.strip("[]") or "127.0.0.1", int(port or 80)
        self.token = token
        try:
            self.sock = socket.create_connection((self.host, self.port), timeout=10)
        except OSError as exc:
            raise Unreachable(reach.unreachable(url, exc)) from exc
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = self.sock.makefile("rb")

    def request(
        self, method: str, path: str, body: bytes | None = None, *, stream: bool = False
    ) -> tuple[int, Iterator[bytes]]:
        """Send one request; the status and the body. Unless ``stream``, an API that does not
        answer within :data:`ANSWER_TIMEOUT_S` is :class:`Unreachable` (a hung API must not hang
        the command)."""
        head = [
            f"{method} /api/v1{path} HTTP/1.1",
            f"Host: {self.host}:{self.port}",
            f"Authorization: Bearer {self.token}",
        ]
        head += ["User-Agent: devyard-client", "Accept: */*"]
        if body is not None:
            head += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
        self.sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + (body or b""))
        self.sock.settimeout(None if stream else ANSWER_TIMEOUT_S)
        try:
            return self._response(stream)
        except TimeoutError:
            raise Unreachable(
                f"The devyard API did not answer within {ANSWER_TIMEOUT_S:.0f} s; check it with `yard status`."
            ) from None

    def _response(self, stream: bool) -> tuple[int, Iterator[bytes]]:
        status_line = self.reader.readline()
        if not status_line:
            raise Unreachable("The devyard API closed the connection.", CONNECTION_LOST)
        parts = status_line.split()
        if len(parts) < 2 or not parts[1].isdigit():
            raise Unreachable("The devyard API answered something that is not HTTP.", CONNECTION_LOST)
        status = int(parts[1])
        headers: dict[str, str] = {}
        while (line := self.reader.readline()) not in (b"\r\n", b"\n", b""):
            key, _, value = line.decode("latin-1").partition(":")
            headers[key.strip().lower()] = value.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            return status, self._chunks() if stream else iter([b"".join(self._chunks())])
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


def profile() -> tuple[str, str] | None:
    """(url, token) as `control.profiles.resolve` would choose them, or None when anything is
    unusual (the full CLI then explains it). Reads the TOML itself to skip that module's imports."""
    url, token = os.environ.get("DEVYARD_URL"), os.environ.get("DEVYARD_TOKEN")
    if url and token:
        return url, token
    if url or token:
        return None
    import tomllib

    config_home = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    try:
        with open(os.path.join(config_home, "devyard", "config.toml"), "rb") as file:
            data = tomllib.load(file)
    except (OSError, tomllib.TOMLDecodeError):
        return None
    profiles = data.get("profiles")
    name = os.environ.get("DEVYARD_PROFILE") or data.get("default") or "local"
    entry = profiles.get(name) if isinstance(profiles, dict) else None
    if not isinstance(entry, dict) or not isinstance(entry.get("url"), str) or not isinstance(entry.get("token"), str):
        return None
    return entry["url"], entry["token"]


def read_json(status: int, body: Iterator[bytes]) -> Any:
    data = json.loads(b"".join(body) or b"null")
    if status >= 400:
        message = data.get("error", {}).get("message") if isinstance(data, dict) else None
        if status == 401 and message:
            message = reach.refused_token(message, reach.token_from_environment(None))
        raise CommandFailed(message or f"The API answered {status}.")
    return data
