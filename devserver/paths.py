"""Confining client-supplied paths to the workspace.

Every ``path`` the API accepts is a relative POSIX path inside the workspace. Lexical checks
refuse absolute paths, ``..`` and NUL bytes; resolution checks refuse anything whose real
location (after following symlinks in existing components) is outside the workspace. Writes go
through a directory file descriptor of the verified parent, so the final component is never
followed: a symlink there is replaced, not written through.
"""

from __future__ import annotations

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
