"""``GET /logs``: the tail of the server's own log file, optionally followed as it grows."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from devserver.payload import query_flag, query_int
from devserver.responses import ApiError
from devserver.state import ServerState

DEFAULT_TAIL = 200
MAX_TAIL = 10_000
BLOCK = 64 * 1024
FOLLOW_POLL_S = 0.25


def tail(path: Path, lines: int) -> tuple[bytes, int]:
    """The last ``lines`` lines of a file and the file size they end at (reads backwards, not the whole file)."""
    with open(path, "rb") as source:
        end = source.seek(0, os.SEEK_END)
        if lines <= 0:
            return b"", end
        position, data = end, b""
        # One newline more than asked for: the text before it is the cut-off line.
        while position > 0 and data.count(b"\n") <= lines:
            step = min(BLOCK, position)
            position -= step
            source.seek(position)
            data = source.read(step) + data
    kept = data.splitlines(keepends=True)[-lines:]
    return b"".join(kept), end


class LogsApi:
    """``GET /logs?tail=N&follow=true``."""

    def __init__(self, state: ServerState) -> None:
        self.state = state

    def routes(self) -> list[BaseRoute]:
        """The routes of this API."""
        return [Route("/logs", self.logs, methods=["GET"])]

    async def logs(self, request: Request) -> Response:
        """The last lines of the log, and with ``follow`` the lines appended after them."""
        lines = query_int(request, "tail", DEFAULT_TAIL, 0, MAX_TAIL)
        follow = query_flag(request, "follow")
        path = self.state.log_file
        if path is None or not path.exists():
            raise ApiError(404, "no_log_file", "This develop server was started without a log file.")
        text, offset = await run_in_threadpool(tail, path, lines)
        if not follow:
            return PlainTextResponse(text)
        return StreamingResponse(_follow(path, text, offset), media_type="text/plain; charset=utf-8")


async def _follow(path: Path, first: bytes, offset: int) -> AsyncIterator[bytes]:
    """``first``, then whatever is appended to the file from ``offset`` on, until the client leaves."""
    if first:
        yield first
    while True:
        size = path.stat().st_size if path.exists() else 0
        if size < offset:
            offset = 0  # truncated or replaced: start over
        if size > offset:
            with open(path, "rb") as source:
                source.seek(offset)
                chunk = source.read(size - offset)
            offset += len(chunk)
            yield chunk
        await asyncio.sleep(FOLLOW_POLL_S)
