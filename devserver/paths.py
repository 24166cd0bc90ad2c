"""Confining client-supplied paths to the workspace.

Every ``path`` the API accepts is a relative POSIX path inside the workspace. Lexical checks
refuse absolute paths, ``..`` and NUL bytes; resolution checks refuse anything whose real
location (after following symlinks in existing components) is outside the workspace. Writes go
through a directory file descriptor of the verified parent, so the final component is never
followed: a symlink there is replaced, not written through.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

GIT_DIR = ".git"


class BadPath(ValueError):
    """A path the API refuses; ``code`` is the error code for the response."""

    def __init__(self, path: str, message: str, code: str = "bad_path") -> None:
        super().__init__(message)
        self.path = path
        self.message = message
        self.code = code


def split(path: str, *, allow_root: bool = False) -> list[str]:
    """The components of a relative path, with empty and ``.`` components dropped."""
    if "\x00" in path:
        raise BadPath(path, "The path contains a NUL byte.")
    if path.startswith("/"):
        raise BadPath(path, f"The path {path!r} is absolute; give a path relative to the workspace.")
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise BadPath(path, f"The path {path!r} contains '..'; paths must stay inside the workspace.")
    if not parts and not allow_root:
        raise BadPath(path, "The path is empty; name a file inside the workspace.")
    return parts


class Workspace:
    """The workspace root and the checks that keep API paths inside it."""

    def __init__(self, root: Path) -> None:
        self.root = os.path.realpath(root)

    def contains(self, real: str) -> bool:
        """Whether the already-resolved path ``real`` is the root or below it."""
        return real == self.root or real.startswith(self.root + os.sep)

    def relative(self, real: str) -> str:
        """``real`` (inside the workspace) relative to the root, ``""`` for the root itself."""
        return "" if real == self.root else real[len(self.root) + 1 :]

    def resolve(self, path: str, *, allow_root: bool = False) -> str:
        """The real path of ``path`` for reading (symlinks followed), refused if it leaves the workspace."""
        parts = split(path, allow_root=allow_root)
        real = os.path.realpath(os.path.join(self.root, *parts))
        if not self.contains(real):
            raise BadPath(path, f"The path {path!r} resolves outside the workspace.")
        return real

    def check_open(self, fd: int, path: str) -> None:
        """Refuse an fd opened for ``path`` if it ended up outside (a symlink swapped in meanwhile)."""
        where = _fd_path(fd)
        if where is not None and not self.contains(where):
            raise BadPath(path, f"The path {path!r} resolves outside the workspace.")

    def open_parent(self, path: str, *, create: bool) -> tuple[int, str] | None:
        """A directory fd for the parent of ``path`` and the final name, for writes and deletes.

        The parent is resolved (symlinks in it followed, then checked); missing parents are
        created when ``create`` is set, otherwise ``None`` is returned. Refuses paths in ``.git``:
        git state changes go through the git endpoints. The caller closes the fd.
        """
        parts = split(path)
        if parts[0] == GIT_DIR:
            raise BadPath(path, "Files under .git cannot be changed through the files API; use the git endpoints.")
        real_parent = os.path.realpath(os.path.join(self.root, *parts[:-1]))
        self._check_writable_dir(path, real_parent)
        if create:
            try:
                os.makedirs(real_parent, exist_ok=True)
            except (FileExistsError, NotADirectoryError):
                raise BadPath(path, f"A parent of {path!r} exists and is not a directory.", "not_a_directory") from None
        try:
            fd = os.open(real_parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        except NotADirectoryError:
            raise BadPath(path, f"A parent of {path!r} exists and is not a directory.", "not_a_directory") from None
        try:
            # The directory could have been swapped for a symlink between the check and the open:
            # check where the descriptor really points.
            self._check_writable_dir(path, _fd_path(fd) or real_parent)
        except BadPath:
            os.close(fd)
            raise
        return fd, parts[-1]

    def _check_writable_dir(self, path: str, real_parent: str) -> None:
        if not self.contains(real_parent):
            raise BadPath(path, f"The path {path!r} resolves outside the workspace.")
        relative = self.relative(real_parent)
        if relative == GIT_DIR or relative.startswith(GIT_DIR + os.sep):
            raise BadPath(path, "Files under .git cannot be changed through the files API; use the git endpoints.")


def _fd_path(fd: int) -> str | None:
    """Where an open directory fd points now (Linux ``/proc``), or ``None`` if unknown."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class Directories:
    """The verified parent directories of one batch, kept open so each is checked once.

    A parent is reached from the workspace root one component at a time, each opened relative
    to the last with ``O_NOFOLLOW``: no symlink is ever followed, so the descriptor is inside the
    workspace by construction, with no ``realpath`` and no ``/proc`` lookup per file. A path
    whose parents include a symlink (or anything unusual) takes :meth:`Workspace.open_parent`,
    which follows links that stay inside and refuses the rest. Descriptors live for one batch
    (a folder swapped for a symlink between batches is seen by the next one); at most
    :data:`LIMIT` are open at a time. Not thread-safe: one per batch.
    """

    LIMIT = 64

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self._fds: dict[tuple[str, ...], int] = {}
        self._spare: list[int] = []  # the last slow-path descriptor

    def parent(self, path: str, *, create: bool) -> tuple[int, str, str | None] | None:
        """A directory fd for the parent of ``path``, the final name, and the canonical relative
        path when the parent was reached without following a link.

        The fd belongs to this object and stays valid until the next call or :meth:`close`.
        ``None`` when a parent is missing and ``create`` is not set. Raises :class:`BadPath`
        like :meth:`Workspace.open_parent`.
        """
        for spare in self._spare:
            os.close(spare)
        self._spare.clear()
        parts = split(path)
        if parts[0] == GIT_DIR:
            raise BadPath(path, "Files under .git cannot be changed through the files API; use the git endpoints.")
        key = tuple(parts[:-1])
        fd = self._fds.get(key)
        if fd is None:
            try:
                walked = self._walk(key, create)
            except _Unusual:
                opened = self.workspace.open_parent(path, create=create)
                if opened is None:
                    return None
                self._spare.append(opened[0])
                return opened[0], opened[1], None
            if walked is None:
                return None
            fd = walked
        return fd, parts[-1], "/".join(parts)

    def _walk(self, key: tuple[str, ...], create: bool) -> int | None:
        if () not in self._fds:
            self._fds[()] = os.open(self.workspace.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        depth = len(key)
        while depth and key[:depth] not in self._fds:
            depth -= 1
        fd = self._fds[key[:depth]]
        for index in range(depth, len(key)):
            name = key[index]
            try:
                child = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    return None
                with contextlib.suppress(FileExistsError):
                    os.mkdir(name, 0o777, dir_fd=fd)
                try:
                    child = os.open(name, _DIR_FLAGS, dir_fd=fd)
                except OSError:
                    raise _Unusual from None
            except OSError:
                raise _Unusual from None  # a symlink, a file, no permission: the careful path decides
            fd = self._remember(key[: index + 1], child)
        return fd

    def _remember(self, key: tuple[str, ...], fd: int) -> int:
        if len(self._fds) >= self.LIMIT:
            # Paths arrive sorted, so the oldest entries are the ones least likely to be needed;
            # the root and the ancestors of ``key`` (still in use by the walk) stay.
            stale = [k for k in self._fds if k and k != key[: len(k)]]
            for old in stale[: self.LIMIT // 2]:
                os.close(self._fds.pop(old))
        self._fds[key] = fd
        return fd

    def close(self) -> None:
        """Close every descriptor (safe to call twice)."""
        for fd in [*self._fds.values(), *self._spare]:
            os.close(fd)
        self._fds.clear()
        self._spare.clear()


class _Unusual(Exception):
    """A parent component is not a plain directory reachable without following a link."""
