"""The git endpoints: request parsing, one operation at a time in a worker thread, timing logs."""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from devserver import gitops
from devserver.paths import GIT_DIR
from devserver.payload import bad_request, flag, json_object, query_flag, query_int, required_text, text, text_list
from devserver.responses import json_response
from devserver.state import ServerState

log = logging.getLogger("devyard.devserver")

MAX_LOG = 10_000
MAX_HAS = 100_000
PACK_WRITE = 1024 * 1024  # bytes of a received pack written (and hashed) at a time
CHECKSUM_SIZE = 20


class GitApi:
    """``/git/*``."""

    def __init__(self, state: ServerState) -> None:
        self.state = state

    def routes(self) -> list[BaseRoute]:
        """The routes of this API."""
        return [
            Route("/git/status", self.status, methods=["GET"]),
            Route("/git/log", self.log, methods=["GET"]),
            Route("/git/diff", self.diff, methods=["GET"]),
            Route("/git/refs", self.refs, methods=["GET"]),
            Route("/git/init", self.init, methods=["POST"]),
            Route("/git/checkout", self.checkout, methods=["POST"]),
            Route("/git/commit", self.commit, methods=["POST"]),
            Route("/git/has", self.has, methods=["POST"]),
            Route("/git/objects", self.objects, methods=["POST"]),
            Route("/git/ref", self.ref, methods=["POST"]),
        ]

    async def _run(self, name: str, operation: Callable[..., dict[str, Any]], *args: Any) -> Response:
        def locked() -> dict[str, Any]:
            with self.state.git_lock:
                return operation(self.state.root, *args)

        started = time.perf_counter()
        try:
            result = await run_in_threadpool(locked)
        finally:
            log.info("git %s in %.1f ms", name, (time.perf_counter() - started) * 1000)
        return json_response(result)

    async def status(self, request: Request) -> Response:
        """Branch, HEAD and changed files; ``initialized: false`` without a repository."""
        return await self._run("status", gitops.status)

    async def log(self, request: Request) -> Response:
        """Commits reachable from ``ref`` (default HEAD), newest first."""
        limit = query_int(request, "limit", 50, 1, MAX_LOG)
        ref = request.query_params.get("ref") or "HEAD"
        return await self._run("log", gitops.log, ref, limit)

    async def diff(self, request: Request) -> Response:
        """The unstaged patch, or the staged one with ``cached=true``."""
        return await self._run("diff", gitops.diff, query_flag(request, "cached"))

    async def refs(self, request: Request) -> Response:
        """Every ref and HEAD."""
        return await self._run("refs", gitops.refs)

    async def init(self, request: Request) -> Response:
        """Create the repository if missing."""
        body = await json_object(request)
        return await self._run("init", gitops.init, text(body, "branch") or "main")

    async def checkout(self, request: Request) -> Response:
        """Switch branch or detach; 409 when local changes are in the way unless ``force``."""
        body = await json_object(request)
        ref = required_text(body, "ref")
        return await self._run("checkout", gitops.checkout, ref, flag(body, "create"), flag(body, "force"))

    async def commit(self, request: Request) -> Response:
        """Commit staged changes (plus ``paths`` and, with ``all``, every tracked change)."""
        body = await json_object(request)
        message = required_text(body, "message")
        return await self._run(
            "commit",
            gitops.commit,
            message,
            flag(body, "all"),
            text_list(body, "paths"),
            text(body, "author_name"),
            text(body, "author_email"),
        )

    async def has(self, request: Request) -> Response:
        """Which of the given object ids are missing."""
        body = await json_object(request)
        oids = text_list(body, "oids") or []
        if len(oids) > MAX_HAS:
            raise bad_request(f"Ask about at most {MAX_HAS} objects at a time.")
        return await self._run("has", gitops.has, oids)

    async def ref(self, request: Request) -> Response:
        """Create or move a ref (or detach HEAD), optionally making it HEAD, checking it out or resetting the index."""
        body = await json_object(request)
        return await self._run(
            "ref",
            gitops.set_ref,
            required_text(body, "name"),
            required_text(body, "target"),
            flag(body, "set_head"),
            text(body, "checkout") or "none",
            flag(body, "reset_index"),
        )

    async def objects(self, request: Request) -> Response:
        """Receive a packfile (streamed to disk, never held in memory) and add its objects."""
        gitops.open_repo(self.state.root)  # refuse before reading the upload
        pack = self.state.root / GIT_DIR / "objects" / "pack" / f"tmp_devyard_{secrets.token_hex(8)}.pack"
        pack.parent.mkdir(parents=True, exist_ok=True)
        try:
            body_sha1 = await _receive_pack(request, pack)
        except BaseException:  # a client that went away, a full disk: leave no partial pack behind
            pack.unlink(missing_ok=True)
            raise
        return await self._run("objects", gitops.receive_pack, pack, body_sha1)


async def _receive_pack(request: Request, path: Path) -> bytes:
    """Write the upload to ``path``; the SHA-1 of all of it but its last 20 bytes (a pack's
    checksum covers everything before the checksum itself).

    Hashed as it arrives, in the thread that writes it, rather than read back afterwards (a
    fifth of the time to index a 210 MB pack), and written :data:`PACK_WRITE` bytes at a time
    rather than a thread round trip per received chunk.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    digest = hashlib.sha1()
    pending = bytearray()
    try:
        async for chunk in request.stream():
            pending += chunk
            if len(pending) >= PACK_WRITE + CHECKSUM_SIZE:
                block = bytes(pending[:-CHECKSUM_SIZE])  # the last 20 bytes may be the checksum
                del pending[:-CHECKSUM_SIZE]
                await run_in_threadpool(_write_hashed, fd, block, digest)
        body = bytes(pending[:-CHECKSUM_SIZE])
        await run_in_threadpool(_write_hashed, fd, body, digest)
        await run_in_threadpool(_write_all, fd, bytes(pending[len(body) :]))
    finally:
        os.close(fd)
    return digest.digest()


def _write_hashed(fd: int, data: bytes, digest: Any) -> None:
    digest.update(data)
    _write_all(fd, data)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
