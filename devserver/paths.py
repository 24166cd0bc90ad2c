"""Confining client-supplied paths to the workspace.

Every ``path`` the API accepts is a relative POSIX path inside the workspace. Lexical checks
refuse absolute paths, ``..`` and NUL bytes; resolution checks refuse anything whose real
location (after following symlinks in existing components) is outside the workspace. Writes go
through a directory file descriptor of the verified parent, so the final component is never
followed: a symlink there is replaced, not written through.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path

GIT_DIR = ".git"
MAX_LINKS = 40  # symlinks followed in one path, at most (the kernel's own limit)
GIT_REFUSAL = "Files under .git cannot be changed through the files API; use the git endpoints."
RACE_RETRIES = 20  # times one walk looks again at a component that changed under it


class BadPath(ValueError):
    """A path the API refuses; ``code`` and ``status`` make the response."""

    def __init__(self, path: str, message: str, code: str = "bad_path", status: int = 400) -> None:
        super().__init__(message)
        self.path = path
        self.message = message
        self.code = code
        self.status = status


def _count_retry(path: str, retries: int) -> int:
    """One more look at a component that changed under the walk; refused past the limit."""
    if retries >= RACE_RETRIES:
        raise BadPath(path, f"A folder of {path!r} kept changing while it was written; try again.", "path_changed", 409)
    return retries + 1


def _refusal(path: str, exc: OSError) -> BadPath:
    """A :class:`BadPath` for an error the kernel gave on a component of ``path``."""
    if exc.errno == errno.ENAMETOOLONG:
        return BadPath(path, f"A name in {path[:80]!r}... is longer than the file system allows.", "name_too_long")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return BadPath(path, f"A folder of {path!r} is not accessible.", "forbidden", 403)
    return BadPath(path, f"A folder of {path!r} cannot be used: {exc.strerror or exc}.", "bad_path")


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

        Symlinks among the parents are followed as long as they stay inside (see
        :meth:`open_directory`); missing parents are created when ``create`` is set, otherwise
        ``None`` is returned. Refuses paths in ``.git``: git state changes go through the git
        endpoints. The caller closes the fd.
        """
        opened = self.open_parent_canonical(path, create=create)
        return None if opened is None else (opened[0], opened[1])

    def open_parent_canonical(self, path: str, *, create: bool) -> tuple[int, str, str] | None:
        """:meth:`open_parent` plus the canonical relative path (links among the parents resolved)."""
        parts = split(path)
        if parts[0] == GIT_DIR:
            raise BadPath(path, GIT_REFUSAL)
        opened = self.open_directory(path, parts[:-1], create=create)
        if opened is None:
            return None
        fd, canonical = opened
        if not canonical and parts[-1] == GIT_DIR:  # a link to the root, then .git
            os.close(fd)
            raise BadPath(path, GIT_REFUSAL)
        return fd, parts[-1], "/".join([*canonical, parts[-1]])

    def open_directory(self, path: str, parts: list[str], *, create: bool) -> tuple[int, list[str]] | None:
        """A descriptor of the directory ``parts`` and its canonical components.

        Every component is opened (or created) relative to the descriptor of the one before
        with ``O_NOFOLLOW``, starting at the root, so whatever is swapped in meanwhile the
        result was reached inside the workspace; no directory is ever created through a
        link. A symlink among the components is resolved (``realpath``, then checked
        inside) and the walk starts again from the root along what it names: the decision
        may be stale, the walk cannot be. A component that changes under the walk more than
        :data:`RACE_RETRIES` times is a :class:`BadPath` with code ``path_changed`` (409).
        ``None`` when a component is missing and ``create`` is not set.
        """
        pending, here = list(parts), list[str]()
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        links = retries = 0
        try:
            while pending:
                name = pending[0]
                try:
                    child = os.open(name, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        return None
                    retries = _count_retry(path, retries)
                    if not here and name == GIT_DIR:
                        raise BadPath(path, GIT_REFUSAL) from None
                    try:
                        os.mkdir(name, 0o777, dir_fd=fd)
                    except (FileExistsError, FileNotFoundError):
                        pass  # made (or its parent removed) meanwhile: the next open decides
                    except OSError as exc:
                        raise _refusal(path, exc) from None
                    continue
                except OSError as exc:
                    if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                        raise _refusal(path, exc) from None
                    target = self._link_target(path, fd, here, name)
                    if target is None:  # not a link after all (or gone): look again
                        retries = _count_retry(path, retries)
                        continue
                    links += 1
                    if links > MAX_LINKS:
                        raise BadPath(path, f"The path {path!r} goes through too many symlinks.") from None
                    pending[:1] = target
                    os.close(fd)
                    fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
                    here = []
                    continue
                os.close(fd)
                fd = child
                here.append(pending.pop(0))
                if here == [GIT_DIR]:
                    raise BadPath(path, GIT_REFUSAL)
        except BaseException:
            os.close(fd)
            raise
        return fd, here

    def _link_target(self, path: str, fd: int, here: list[str], name: str) -> list[str] | None:
        """The components (from the root) of where the symlink ``name`` in ``fd`` leads, or
        ``None`` when ``name`` is not a symlink; refused when it leads outside."""
        try:
            os.readlink(name, dir_fd=fd)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.EINVAL:  # not a link: a file where a folder should be, or a swap
                if _is_folder_or_link(fd, name):
                    return None
                raise BadPath(path, f"A parent of {path!r} exists and is not a directory.", "not_a_directory") from None
            raise _refusal(path, exc) from None
        try:
            real = os.path.realpath(os.path.join(self.root, *here, name))
        except OSError:  # a link along the way changed while realpath read it: look again
            return None
        if not self.contains(real):
            raise BadPath(path, f"The path {path!r} resolves outside the workspace.")
        relative = self.relative(real)
        return relative.split(os.sep) if relative else []


def _is_folder_or_link(fd: int, name: str) -> bool:
    """Whether ``name`` in ``fd`` is (now) a folder or a link: something a walk looks at again."""
    try:
        mode = os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return stat.S_ISDIR(mode) or stat.S_ISLNK(mode)


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
    which follows links that stay inside and refuses the rest, still one descriptor at a time. Descriptors live for one batch
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
        path (links among the parents resolved).

        The fd belongs to this object and stays valid until the next call or :meth:`close`.
        ``None`` when a parent is missing and ``create`` is not set. Raises :class:`BadPath`
        like :meth:`Workspace.open_parent`.
        """
        for spare in self._spare:
            os.close(spare)
        self._spare.clear()
        parts = split(path)
        if parts[0] == GIT_DIR:
            raise BadPath(path, GIT_REFUSAL)
        key = tuple(parts[:-1])
        fd = self._fds.get(key)
        if fd is None:
            try:
                walked = self._walk(key, create)
            except (_Unusual, OSError):  # a link, a file, a race, a long name: the careful path decides
                opened = self.workspace.open_parent_canonical(path, create=create)
                if opened is None:
                    return None
                self._spare.append(opened[0])
                return opened
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
