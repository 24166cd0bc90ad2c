"""A finished run's own folder (``runs/<id>`` on the volume) is removed, everything in it.

Nobody can reach it once the run is over: its outputs worth keeping were uploaded as artifacts,
its log is in object storage, and develop servers see their workspaces, not run folders. Left
alone, one folder per run piled up on the shared volume forever.

The removal never follows a link out of the folder (every folder is opened with ``O_NOFOLLOW``
and emptied through its descriptor), and folders the run made read-only are made writable first
(Go's module cache, for one, is read-only, and deleting from it fails unless one is root). A
folder that is a container's mount point cannot be removed: it is emptied, and the agent removes
it once the container is gone.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_OWNER_ALL = stat.S_IRWXU


def remove_run_folder(folder: Path) -> str | None:
    """Remove ``folder`` and everything below it; None when it is gone (or never was), else
    why it (or part of it) stays, in one sentence."""
    try:
        fd = os.open(folder, _DIR_FLAGS)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"The run folder {folder} was left in place: {exc.strerror or exc}."
    try:
        _writable(fd)
        _empty(fd)
    except (OSError, RecursionError) as exc:
        return f"The run folder {folder} was not removed completely: {_why(exc)}."
    finally:
        os.close(fd)
    try:
        folder.rmdir()
    except OSError as exc:
        return f"The run folder {folder} was emptied but stays: {exc.strerror or exc}."
    return None


def _empty(dir_fd: int) -> None:
    with os.scandir(dir_fd) as listing:
        entries = [(entry.name, entry.is_dir(follow_symlinks=False)) for entry in listing]
    for name, is_dir in entries:
        if not is_dir:
            os.unlink(name, dir_fd=dir_fd)
            continue
        fd = _open_folder(name, dir_fd)
        try:
            _writable(fd)
            _empty(fd)
        finally:
            os.close(fd)
        os.rmdir(name, dir_fd=dir_fd)


def _open_folder(name: str, dir_fd: int) -> int:
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except PermissionError:
        # Not readable: grant ourselves access through a descriptor that needs no permission on
        # the folder itself and cannot be a link (O_PATH with O_NOFOLLOW and O_DIRECTORY).
        handle = os.open(name, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
        try:
            os.chmod(f"/proc/self/fd/{handle}", _OWNER_ALL)
        finally:
            os.close(handle)
        return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)


def _writable(fd: int) -> None:
    """Entries can be removed from the folder: write and search permission for its owner."""
    mode = os.fstat(fd).st_mode
    if mode & (stat.S_IWUSR | stat.S_IXUSR) != stat.S_IWUSR | stat.S_IXUSR:
        os.fchmod(fd, stat.S_IMODE(mode) | _OWNER_ALL)


def _why(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "it is nested too deeply"
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    return str(exc)
