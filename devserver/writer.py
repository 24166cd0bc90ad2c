"""Applying batch entries to the workspace, atomically and without following symlinks.

A file's bytes go to an unnamed file (``O_TMPFILE``) in its verified parent directory, which is
linked in under its name only when complete, with mode and mtime already set: nobody ever sees
half a file, and a crash leaves nothing behind. A file that replaces an existing one is linked
under a temporary name first and renamed over it, so a symlink at the target is replaced rather
than written through. Where ``O_TMPFILE`` is not available the file is written under a
temporary name from the start. Temporary names carry this process's instance tag, so one left
by a server that was killed can be told from one being written (:func:`remove_stale_temporaries`).

Every file is hashed as it is written and its digest goes into the manifest's hash cache, so
the first manifest after an upload does not read the files again.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import secrets
import shutil
import stat
from pathlib import Path

from control.wire.batch import BatchDecoder, BatchEvent, Delete, EntryEnd, PutDir, PutFile, PutSymlink
from control.wire.manifest import GIT_DIR, HashCache
from devserver.paths import Directories, Workspace

TEMP_PREFIX = ".devyard-tmp-"
INSTANCE = secrets.token_hex(4)  # this server process's temporary names start with TEMP_PREFIX + INSTANCE
MODE_MASK = 0o777  # permission bits only: never setuid/setgid/sticky from a client
_PROC_FD = "/proc/self/fd"
# Linking an O_TMPFILE file in needs /proc; a file system without O_TMPFILE says so when asked.
_TMPFILE_UNSUPPORTED = frozenset({errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOENT})


def temp_name() -> str:
    """A fresh temporary name of this server process."""
    return f"{TEMP_PREFIX}{INSTANCE}-{secrets.token_hex(6)}"


class WriteRefused(Exception):
    """An entry that could not be applied."""

    def __init__(self, code: str, message: str, path: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.path = path


class WorkspaceWriter:
    """Applies the events of one batch in order; counts what it did. :meth:`close` when done."""

    def __init__(self, workspace: Workspace, hashes: HashCache | None = None) -> None:
        self.workspace = workspace
        self.hashes = hashes
        self.directories = Directories(workspace)
        self.written = 0
        self.deleted = 0
        self.bytes = 0
        self.applied = 0
        self._op: PutFile | PutSymlink | PutDir | Delete | None = None
        self._file: _IncomingFile | None = None

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
                self._file = _IncomingFile(self.directories, event)

    def abort(self) -> None:
        """Drop a half-received file (nothing of it is left)."""
        if self._file is not None:
            self._file.discard()
            self._file = None
        self._op = None

    def close(self) -> None:
        """Drop a half-received file and release the batch's directory descriptors."""
        self.abort()
        self.directories.close()

    def _finish(self) -> None:
        op = self._op
        assert op is not None
        try:
            if isinstance(op, PutFile):
                assert self._file is not None
                incoming, self._file = self._file, None
                incoming.commit(self.hashes)
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
        opened = self.directories.parent(op.path, create=True)
        assert opened is not None
        parent, name, _ = opened
        temp = temp_name()
        os.symlink(op.target, temp, dir_fd=parent)
        _replace(parent, temp, name)

    def _put_dir(self, op: PutDir) -> None:
        opened = self.directories.parent(op.path, create=True)
        assert opened is not None
        parent, name, _ = opened
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

    def _delete(self, op: Delete) -> None:
        opened = self.directories.parent(op.path, create=False)
        if opened is None:
            return  # the parent is gone, so the path is too
        parent, name, _ = opened
        existing = _lstat(parent, name)
        if existing is None:
            return
        if stat.S_ISDIR(existing.st_mode):
            shutil.rmtree(name, dir_fd=parent)
        else:
            os.unlink(name, dir_fd=parent)


class _IncomingFile:
    """A file being received: unnamed (or under a temporary name) until it is complete."""

    use_tmpfile = os.path.isdir(_PROC_FD) and hasattr(os, "O_TMPFILE")

    def __init__(self, directories: Directories, op: PutFile) -> None:
        self.op = op
        opened = directories.parent(op.path, create=True)
        assert opened is not None
        self.parent, self.name, self.canonical = opened
        self.temp: str | None = None  # the temporary name, when the file has one
        self.mode = op.mode & MODE_MASK
        self.hasher = hashlib.sha256()
        self.fd: int | None = None
        try:
            self.fd = self._create()
        except OSError as exc:
            raise WriteRefused(
                "write_failed", f"Could not create {op.path!r}: {exc.strerror or exc}.", op.path
            ) from None

    def _create(self) -> int:
        # An unnamed file is created with its final mode (nobody can open it meanwhile), which
        # usually saves the chmod; a named temporary file stays private until it is complete.
        if _IncomingFile.use_tmpfile:
            try:
                return os.open(".", os.O_WRONLY | os.O_TMPFILE | os.O_CLOEXEC, self.mode, dir_fd=self.parent)
            except OSError as exc:
                if exc.errno not in _TMPFILE_UNSUPPORTED:
                    raise
                _IncomingFile.use_tmpfile = False  # this file system cannot: named files from now on
        self.temp = temp_name()
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        return os.open(self.temp, flags, 0o600, dir_fd=self.parent)

    def write(self, data: bytes) -> None:
        """Append content bytes."""
        assert self.fd is not None
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

    def commit(self, hashes: HashCache | None) -> None:
        """Verify, set mode and mtime, put the file in place and remember its digest."""
        assert self.fd is not None
        digest = self.hasher.hexdigest()
        if self.op.sha256 is not None and digest != self.op.sha256:
            self.discard()
            raise WriteRefused(
                "sha256_mismatch", f"The content of {self.op.path!r} does not match its sha256.", self.op.path
            )
        try:
            os.utime(self.fd, ns=(self.op.mtime_ns, self.op.mtime_ns))
            written = os.fstat(self.fd)
            if stat.S_IMODE(written.st_mode) != self.mode:
                # The umask or a default ACL took bits away (or it is a private temporary
                # file): checking costs less than a chmod of every file (a twentieth of the
                # writer's time on a tree of small files). The hash cache keys on size, mtime
                # and inode, which a chmod leaves alone.
                os.fchmod(self.fd, self.mode)
            if self.temp is None:
                self._link()
            os.close(self.fd)
            self.fd = None
            assert self.temp is not None
            _replace(self.parent, self.temp, self.name)
            self.temp = None
        except OSError:
            self.discard()
            raise
        if hashes is not None and self.canonical is not None:
            hashes.seed(self.canonical, written, digest)

    def _link(self) -> None:
        """Give the unnamed file its name: directly when the name is free, else a temporary one."""
        source = f"{_PROC_FD}/{self.fd}"
        try:
            os.link(source, self.name, dst_dir_fd=self.parent)
        except FileExistsError:
            pass  # something is there (a file, a link, a folder): replaced below
        else:
            self.temp = self.name  # already in place; the rename below is a no-op
            return
        temp = temp_name()
        os.link(source, temp, dst_dir_fd=self.parent)
        self.temp = temp

    def discard(self) -> None:
        """Drop the file: close it, remove its temporary name (safe to call twice)."""
        # Descriptors are forgotten once closed: closing a number twice could close a file
        # another thread has opened since.
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        if self.temp is not None and self.temp != self.name:
            with contextlib.suppress(OSError):
                os.unlink(self.temp, dir_fd=self.parent)
        self.temp = None


def remove_stale_temporaries(root: Path) -> int:
    """Remove the temporary files other server processes left in the workspace (a ``kill -9``
    mid-write); this process's own are never touched. How many were removed."""
    own = TEMP_PREFIX + INSTANCE + "-"
    removed = 0
    pending = [os.fspath(root)]
    while pending:
        directory = pending.pop()
        try:
            with os.scandir(directory) as listing:
                for item in listing:
                    if item.is_dir(follow_symlinks=False):
                        if not (directory == os.fspath(root) and item.name == GIT_DIR):
                            pending.append(item.path)
                    elif item.name.startswith(TEMP_PREFIX) and not item.name.startswith(own):
                        with contextlib.suppress(OSError):
                            os.unlink(item.path)
                            removed += 1
        except OSError:
            continue
    return removed


def _lstat(parent: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _replace(parent: int, temp: str, name: str) -> None:
    """Rename ``temp`` over ``name``; a directory in the way is removed first (local wins)."""
    if temp == name:
        return
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
