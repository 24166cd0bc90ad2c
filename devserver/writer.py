"""Applying batch entries to the workspace, atomically and without following symlinks.

A file's bytes go to a temporary file in its (verified) parent directory and are renamed over
the target only when complete, with mode and mtime already set, so nobody ever sees half a file
and a symlink at the target is replaced rather than written through.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import shutil
import stat

from devserver.batch import BatchDecoder, BatchEvent, Delete, EntryEnd, PutDir, PutFile, PutSymlink
from devserver.paths import Workspace

TEMP_PREFIX = ".devyard-tmp-"
MODE_MASK = 0o777  # permission bits only: never setuid/setgid/sticky from a client


class WriteRefused(Exception):
    """An entry that could not be applied."""

    def __init__(self, code: str, message: str, path: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.path = path


class WorkspaceWriter:
    """Applies the events of one batch in order; counts what it did."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self.written = 0
        self.deleted = 0
        self.bytes = 0
        self.applied = 0
        self._op: PutFile | PutSymlink | PutDir | Delete | None = None
        self._file: _TempFile | None = None

    @property
    def current_path(self) -> str | None:
        """The path of the entry being applied, if any."""
        return self._op.path if self._op is not None else None

    def feed(self, decoder: BatchDecoder, chunk: bytes) -> None:
        """Decode ``chunk`` and apply every event in it (runs in a worker thread)."""
        for event in decoder.feed(chunk):
            self.handle(event)

    def handle(self, event: BatchEvent) -> None:
        """Apply one decoded event."""
        if isinstance(event, bytes):
            assert self._file is not None
            self._file.write(event)
            self.bytes += len(event)
        elif isinstance(event, EntryEnd):
            self._finish()
        else:
            self._op = event
            if isinstance(event, PutFile):
                self._file = _TempFile(self.workspace, event)

    def abort(self) -> None:
        """Drop a half-received file (its temporary file is removed)."""
        if self._file is not None:
            self._file.discard()
            self._file = None
        self._op = None

    def _finish(self) -> None:
        op = self._op
        assert op is not None
        try:
            if isinstance(op, PutFile):
                assert self._file is not None
                self._file.commit()
                self._file = None
                self.written += 1
            elif isinstance(op, PutSymlink):
                self._put_symlink(op)
            elif isinstance(op, PutDir):
                self._put_dir(op)
            else:
                self._delete(op)
                self.deleted += 1
        except OSError as exc:
            raise WriteRefused(
                "write_failed", f"Could not apply {op.path!r}: {exc.strerror or exc}.", op.path
            ) from None
        self._op = None
        self.applied += 1

    def _put_symlink(self, op: PutSymlink) -> None:
        opened = self.workspace.open_parent(op.path, create=True)
        assert opened is not None
        parent, name = opened
        try:
            temp = TEMP_PREFIX + secrets.token_hex(8)
            os.symlink(op.target, temp, dir_fd=parent)
            _replace(parent, temp, name)
        finally:
            os.close(parent)

    def _put_dir(self, op: PutDir) -> None:
        opened = self.workspace.open_parent(op.path, create=True)
        assert opened is not None
        parent, name = opened
        try:
            existing = _lstat(parent, name)
            if existing is not None and not stat.S_ISDIR(existing.st_mode):
                os.unlink(name, dir_fd=parent)  # local is the source of truth: a dir replaces a file
                existing = None
            if existing is None:
                os.mkdir(name, 0o700, dir_fd=parent)
            directory = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
            try:
                os.fchmod(directory, op.mode & MODE_MASK)
            finally:
                os.close(directory)
        finally:
            os.close(parent)

    def _delete(self, op: Delete) -> None:
        opened = self.workspace.open_parent(op.path, create=False)
        if opened is None:
            return  # the parent is gone, so the path is too
        parent, name = opened
        try:
            existing = _lstat(parent, name)
            if existing is None:
                return
            if stat.S_ISDIR(existing.st_mode):
                shutil.rmtree(name, dir_fd=parent)
            else:
                os.unlink(name, dir_fd=parent)
        finally:
            os.close(parent)


class _TempFile:
    """A file being received: written next to its target, renamed over it when complete."""

    def __init__(self, workspace: Workspace, op: PutFile) -> None:
        self.op = op
        opened = workspace.open_parent(op.path, create=True)
        assert opened is not None
        self.parent: int | None = opened[0]
        self.name = opened[1]
        self.temp = TEMP_PREFIX + secrets.token_hex(8)
        self.hasher = hashlib.sha256() if op.sha256 is not None else None
        self.fd: int | None = None
        try:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            self.fd = os.open(self.temp, flags, 0o600, dir_fd=opened[0])
        except OSError as exc:
            self.discard()
            raise WriteRefused(
                "write_failed", f"Could not create {op.path!r}: {exc.strerror or exc}.", op.path
            ) from None

    def write(self, data: bytes) -> None:
        """Append content bytes."""
        assert self.fd is not None
        if self.hasher is not None:
            self.hasher.update(data)
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self.fd, view) :]
        except OSError as exc:
            self.discard()
            raise WriteRefused(
                "write_failed", f"Could not write {self.op.path!r}: {exc.strerror or exc}.", self.op.path
            ) from None

    def commit(self) -> None:
        """Verify, set mode and mtime, and rename over the target."""
        assert self.fd is not None and self.parent is not None
        if self.hasher is not None and self.hasher.hexdigest() != self.op.sha256:
            self.discard()
            raise WriteRefused(
                "sha256_mismatch", f"The content of {self.op.path!r} does not match its sha256.", self.op.path
            )
        try:
            os.fchmod(self.fd, self.op.mode & MODE_MASK)
            os.utime(self.fd, ns=(self.op.mtime_ns, self.op.mtime_ns))
            os.close(self.fd)
            self.fd = None
            _replace(self.parent, self.temp, self.name)
        except OSError:
            self.discard()
            raise
        os.close(self.parent)
        self.parent = None

    def discard(self) -> None:
        """Remove the temporary file and release the descriptors (safe to call twice)."""
        # Descriptors are forgotten once closed: closing a number twice could close a file
        # another thread has opened since.
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        if self.parent is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.temp, dir_fd=self.parent)
            os.close(self.parent)
            self.parent = None


def _lstat(parent: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _replace(parent: int, temp: str, name: str) -> None:
    """Rename ``temp`` over ``name``; a directory in the way is removed first (local wins)."""
    try:
        os.replace(temp, name, src_dir_fd=parent, dst_dir_fd=parent)
    except (IsADirectoryError, OSError) as exc:
        existing = _lstat(parent, name)
        if existing is None or not stat.S_ISDIR(existing.st_mode):
            with contextlib.suppress(OSError):
                os.unlink(temp, dir_fd=parent)
            raise exc from None
        shutil.rmtree(name, dir_fd=parent)
        os.replace(temp, name, src_dir_fd=parent, dst_dir_fd=parent)
