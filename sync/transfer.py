"""Sending a plan: batch requests streamed from the local files, hashed as they are read.

Entries go out in the develop server's batch format (``control/wire/batch.py``). Small entries are
packed together into writes of a few hundred kilobytes; a big file goes out in 1 MiB chunks
straight from disk, so nothing is ever held whole in memory. Requests are cut at
:data:`REQUEST_BYTES`, which keeps a refusal cheap to report (the develop server reads the rest
of a refused request before answering) and a broken connection cheap to resume.

A file is opened, checked (still a regular file, not reached through a link) and measured
before its header is written, and hashed while its bytes are sent: what the sync records is
exactly what was sent. A file that changes while it is read is still sent whole (the
develop server writes it atomically) and is simply found changed by the next sync.
"""

from __future__ import annotations

import hashlib
import os
import stat
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from control.wire.batch import Delete, Op, PutDir, PutFile, PutSymlink, encode_header
from sync.remote import EntryRefused, RemoteWorkspace
from sync.state import SYMLINK_MODE, Record, SyncState

CHUNK = 1024 * 1024
FLUSH = 256 * 1024
REQUEST_BYTES = 16 * 1024 * 1024
REQUEST_ENTRIES = 10_000
STREAMS = 2  # file requests in flight at once


class Progress(Protocol):
    """Told what a sync will send, then about every file as it is sent (the CLI draws a bar)."""

    def begin(self, files: int, nbytes: int) -> None: ...

    def advance(self, files: int, nbytes: int) -> None: ...

    def git(self) -> None:
        """The files are all sent; the git state (objects, then refs) is being pushed."""


@dataclass
class Sent:
    """What one upload did."""

    files: int = 0
    bytes: int = 0
    links: int = 0
    dirs: int = 0
    deleted: int = 0
    refused: list[tuple[str, str]] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)


class BatchBody:
    """The streamed body of one batch request; records what each entry really carried."""

    def __init__(self, root: Path, ops: list[Op], state: SyncState, progress: Progress | None) -> None:
        self.root = root
        self.ops = ops
        self.state = state
        self.progress = progress
        # In order: (the op as planned, the op as sent, what it left in the workspace or None).
        self.emitted: list[tuple[Op, Op, Record | None]] = []
        self.unreadable: list[str] = []

    def __iter__(self) -> Iterator[bytes]:
        buffer = bytearray()
        for op in self.ops:
            if isinstance(op, PutFile):
                yield from self._file(op, buffer)
                continue
            buffer += encode_header(op)
            self.emitted.append((op, op, _record(op)))
            if len(buffer) >= FLUSH:
                yield bytes(buffer)
                buffer.clear()
        if buffer:
            yield bytes(buffer)

    def _file(self, op: PutFile, buffer: bytearray) -> Iterator[bytes]:
        full = os.path.join(self.root, op.path)
        try:
            fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            self.unreadable.append(op.path)  # gone, unreadable or now a link: the next sync sees why
            return
        try:
            before = os.fstat(fd)
            if not stat.S_ISREG(before.st_mode):
                self.unreadable.append(op.path)
                return
            size = before.st_size
            header = PutFile(op.path, stat.S_IMODE(before.st_mode), before.st_mtime_ns, size)
            buffer += encode_header(header)
            hasher = hashlib.sha256()
            remaining, intact = size, True
            while remaining:
                chunk = os.read(fd, min(CHUNK, remaining))
                if not chunk:
                    chunk, intact = bytes(min(CHUNK, remaining)), False  # it shrank: keep the framing
                hasher.update(chunk)
                remaining -= len(chunk)
                if len(chunk) >= FLUSH:
                    if buffer:
                        yield bytes(buffer)
                        buffer.clear()
                    yield chunk
                else:
                    buffer += chunk
                    if len(buffer) >= FLUSH:
                        yield bytes(buffer)
                        buffer.clear()
            after = os.fstat(fd)
        finally:
            os.close(fd)
        digest = hasher.hexdigest()
        record = Record("file", digest, header.mode)
        self.emitted.append((op, header, record))
        self.state.expect(op.path, record)
        if intact and (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns):
            self.state.hashes.remember(op.path, before, digest)
        if self.progress is not None:
            self.progress.advance(1, size)


def _record(op: Op) -> Record | None:
    if isinstance(op, PutDir):
        return Record("dir", None, op.mode)
    if isinstance(op, PutSymlink):
        return Record("symlink", op.target, SYMLINK_MODE)
    return None


def requests(ops: Sequence[Op]) -> Iterator[list[Op]]:
    """``ops`` cut into requests of about :data:`REQUEST_BYTES` (a bigger file goes alone)."""
    group: list[Op] = []
    size = 0
    for op in ops:
        weight = op.size if isinstance(op, PutFile) else 0
        if group and (size + weight > REQUEST_BYTES or len(group) >= REQUEST_ENTRIES):
            yield group
            group, size = [], 0
        group.append(op)
        size += weight
    if group:
        yield group


class Uploader:
    """Sends ops to the workspace, request by request, and keeps the sync state up to date.

    Deletions, folders and links go first, in order. Files then go as :data:`STREAMS`
    requests at a time: while the develop server finishes writing one request, the next is
    already being read and sent, so neither end waits for the other.
    """

    def __init__(self, root: Path, remote: RemoteWorkspace, state: SyncState, progress: Progress | None = None) -> None:
        self.root = root
        self.remote = remote
        self.state = state
        self.progress = progress
        self._lock = threading.Lock()
        self._failed = False  # one stream lost the develop server: the other stops too

    def send(self, ops: list[Op]) -> Sent:
        """Apply ``ops``. A refused entry is reported and skipped; the rest still go.

        Raises :class:`sync.remote.DevserverUnavailable` if the develop server goes away; what
        was sent before is recorded, so the next sync resumes where this one stopped.
        """
        sent = Sent()
        first = [op for op in ops if not isinstance(op, PutFile)]
        files = [op for op in ops if isinstance(op, PutFile)]
        for group in requests(first):
            self._send_group(group, sent)
        queue = list(requests(files))
        if len(queue) <= 1:
            for group in queue:
                self._send_group(group, sent)
            return sent
        with ThreadPoolExecutor(STREAMS, thread_name_prefix="upload") as pool:
            for future in [pool.submit(self._drain, queue, sent) for _ in range(STREAMS)]:
                future.result()  # re-raises DevserverUnavailable (after both streams stopped)
        return sent

    def _drain(self, queue: list[list[Op]], sent: Sent) -> None:
        while True:
            with self._lock:
                if not queue or self._failed:
                    return
                group = queue.pop(0)
            try:
                self._send_group(group, sent)
            except BaseException:
                self._failed = True
                raise

    def _send_group(self, group: list[Op], sent: Sent) -> None:
        """Send one request's ops; a refused entry is skipped and the ops after it sent again."""
        while group:
            body = BatchBody(self.root, group, self.state, self.progress)
            rest: list[Op] = []
            try:
                self.remote.apply(body)
                done = body.emitted
            except EntryRefused as refusal:
                # Entries before the refused one were applied; the ones after it were read and
                # dropped by the develop server, so they go again in a request of their own.
                done = body.emitted[: refusal.applied]
                with self._lock:
                    sent.refused.append((refusal.path, str(refusal)))
                if refusal.applied < len(body.emitted):
                    refused = body.emitted[refusal.applied][0]
                    self.state.pending.pop(refused.path, None)
                    handled = {id(planned) for planned, _, _ in body.emitted[: refusal.applied + 1]}
                    rest = [op for op in group if id(op) not in handled and op.path not in body.unreadable]
            finally:
                with self._lock:
                    sent.unreadable.extend(body.unreadable)
            with self._lock:
                for _, op, record in done:
                    self._confirm(op, record, sent)
            group = rest

    def _confirm(self, op: Op, record: Record | None, sent: Sent) -> None:
        if isinstance(op, Delete):
            self.state.forget_below(op.path)
            sent.deleted += 1
            return
        self.state.confirm(op.path, record)
        if isinstance(op, PutFile):
            sent.files += 1
            sent.bytes += op.size
        elif isinstance(op, PutSymlink):
            sent.links += 1
        else:
            sent.dirs += 1
