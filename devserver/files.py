"""The files API: manifest, streamed batch upload and file reads."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import stat
import time
from collections.abc import AsyncIterator

from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from control.wire.batch import MEDIA_TYPE, BatchDecoder, BatchFormatError
from control.wire.manifest import Entry, scan
from devserver.applier import BatchApplier
from devserver.paths import BadPath
from devserver.responses import ApiError, error_response, json_response, wait_for_disconnect
from devserver.state import ServerState
from devserver.writer import TEMP_PREFIX, WorkspaceWriter, WriteRefused

log = logging.getLogger("devyard.devserver")

READ_CHUNK = 1024 * 1024
# After refusing an entry, read (and drop) this much of the rest of the upload so the client
# (or the gateway relaying it) gets to see the 400 instead of a broken pipe.
DRAIN_LIMIT = 64 * 1024 * 1024
ACCEPTED_TYPES = ("", MEDIA_TYPE, "application/octet-stream")
# Uploads received at once, at most: each has a writer thread (and they write one at a time
# anyway, see devserver.applier). The sync client keeps two on the wire.
MAX_BATCH_UPLOADS = 8


def _is_temporary(path: str) -> bool:
    """A batch's temporary file (never listed: it is not workspace content)."""
    return path.rsplit("/", 1)[-1].startswith(TEMP_PREFIX)


class FilesApi:
    """``/files/manifest``, ``/files/batch`` and ``/files/read``."""

    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.uploads = 0  # batch uploads being received (changed on the event loop only)

    def routes(self) -> list[BaseRoute]:
        """The routes of this API."""
        return [
            Route("/files/manifest", self.manifest, methods=["GET"]),
            Route("/files/batch", self.batch, methods=["POST"]),
            Route("/files/read", self.read, methods=["GET"]),
        ]

    async def manifest(self, request: Request) -> Response:
        """Every entry in the workspace except ``.git``, sorted by path, with cached hashes, and
        the token naming this state (null if none can be given; see :mod:`devserver.changes`).

        With ``?since=<token>``: just ``{"unchanged": true, "token": ...}`` when nothing changed
        since that manifest.
        """
        since = request.query_params.get("since") or None
        changes = self.state.changes
        if since is not None and changes.unchanged_since(since):
            return json_response({"unchanged": True, "token": since})
        entries, token = await run_in_threadpool(self._scan)
        return json_response({"entries": [entry.to_json() for entry in entries], "token": token})

    def _scan(self) -> tuple[list[Entry], str | None]:
        changes = self.state.changes
        with self.state.manifest_lock:
            started = time.perf_counter()
            generation = changes.begin_scan()
            on_dir = changes.watch if changes.usable else None
            entries = scan(self.state.root, self.state.hash_cache, skip=_is_temporary, on_dir=on_dir)
            token = changes.end_scan(generation)
            log.info("manifest: %d entries in %.1f ms", len(entries), (time.perf_counter() - started) * 1000)
            return entries, token

    async def batch(self, request: Request) -> Response:
        """Apply a streamed batch of puts and deletes, stopping at the first refused entry."""
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type not in ACCEPTED_TYPES:
            raise ApiError(415, "unsupported_media_type", f"Send the batch as {MEDIA_TYPE}, not {media_type}.")
        if self.uploads >= MAX_BATCH_UPLOADS:
            raise ApiError(
                429,
                "too_many_uploads",
                f"The develop server is already receiving {MAX_BATCH_UPLOADS} uploads; send this one when one ends.",
            )
        self.uploads += 1
        try:
            return await self._batch(request)
        finally:
            self.uploads -= 1

    async def _batch(self, request: Request) -> Response:
        started = time.perf_counter()
        decoder = BatchDecoder()
        writer = WorkspaceWriter(self.state.workspace, self.state.hash_cache)
        stream = request.stream()
        try:
            applier = BatchApplier(writer, decoder, turn=self.state.write_turn)
        except BaseException:  # no thread to be had: the writer's folder descriptors go now
            writer.close()
            raise
        self.state.changes.bump()
        try:
            async for chunk in stream:
                await applier.put(chunk)
                if applier.error is not None:
                    break
            await applier.finish()
        except (BatchFormatError, BadPath, WriteRefused) as exc:
            path = exc.path if exc.path is not None else writer.current_path
            await applier.aclose()
            with contextlib.suppress(ClientDisconnect):
                await _drain(stream)
            log.info("batch refused after %d entries: %s (%s)", writer.applied, exc.code, path)
            status = exc.status if isinstance(exc, BadPath) else 400
            return error_response(status, exc.code, exc.message, path=path, applied=writer.applied)
        except (ClientDisconnect, asyncio.CancelledError):
            log.info("batch abandoned by the client after %d entries", writer.applied)
            raise
        finally:
            await applier.aclose()
            self.state.changes.bump()
        log.info(
            "batch: %d entries, %d files, %d deleted, %d bytes in %.1f ms",
            writer.applied,
            writer.written,
            writer.deleted,
            writer.bytes,
            (time.perf_counter() - started) * 1000,
        )
        return json_response(
            {"written": writer.written, "deleted": writer.deleted, "bytes": writer.bytes, "applied": writer.applied}
        )

    async def read(self, request: Request) -> Response:
        """A file's bytes, streamed."""
        path = request.query_params.get("path", "")
        real = self.state.workspace.resolve(path)
        try:
            # O_NONBLOCK: opening a FIFO must not wait for a writer (and stall the server).
            fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            raise ApiError(404, "not_found", f"There is no file at {path!r}.", path=path) from None
        except PermissionError:
            raise ApiError(403, "forbidden", f"The file {path!r} is not readable.", path=path) from None
        except OSError as exc:
            raise _read_refusal(path, exc) from None
        try:
            self.state.workspace.check_open(fd, path)
        except BadPath:
            os.close(fd)
            raise
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            os.close(fd)
            kind = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
            raise ApiError(400, "not_a_file", f"The path {path!r} is {kind}.", path=path)
        return DescriptorResponse(fd, info.st_size)


def _read_refusal(path: str, exc: OSError) -> ApiError:
    """A 4xx for what the kernel said about ``path`` (a client's name, never a server fault)."""
    shown = path if len(path) <= 200 else path[:200] + "..."
    if exc.errno == errno.ENAMETOOLONG:
        return ApiError(400, "name_too_long", f"The path {shown!r} is longer than the file system allows.", path=shown)
    if exc.errno == errno.ENOTDIR:
        return ApiError(404, "not_found", f"There is no file at {shown!r}: a parent is not a folder.", path=shown)
    if exc.errno == errno.ELOOP:
        return ApiError(400, "bad_path", f"The path {shown!r} goes through too many symlinks.", path=shown)
    return ApiError(400, "read_failed", f"The file {shown!r} cannot be read: {exc.strerror or exc}.", path=shown)


async def _drain(stream: AsyncIterator[bytes]) -> None:
    drained = 0
    async for chunk in stream:
        drained += len(chunk)
        if drained > DRAIN_LIMIT:
            return


class DescriptorResponse(Response):
    """Streams an already-open file descriptor (opened after the path checks, so no race) and closes it."""

    media_type = "application/octet-stream"

    def __init__(self, fd: int, size: int) -> None:
        self.fd = fd
        self.size = size
        self.status_code = 200
        self.background = None
        self.init_headers({"content-length": str(size)})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gone = asyncio.ensure_future(wait_for_disconnect(receive))
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            remaining = self.size  # a file growing meanwhile must not overrun content-length
            while remaining and not gone.done():
                chunk = await run_in_threadpool(os.read, self.fd, min(READ_CHUNK, remaining))
                if not chunk:
                    break  # it shrank: the client sees a short body
                remaining -= len(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            gone.cancel()
            os.close(self.fd)
