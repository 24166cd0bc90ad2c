"""A finished run's own folder (``runs/<id>`` on the volume) is removed, everything in it.

Nobody can reach it once the run is over: its outputs worth keeping were uploaded as artifacts,
its log is in object storage, and develop servers see their workspaces, not run folders. Left
alone, one folder per run piled up on the shared volume forever.

The removal never leaves the folder: every folder is opened with ``O_NOFOLLOW`` and emptied
through its descriptor, so a link is removed, never followed, and a folder that is another file
system or a mount point (a bind mount a root run left behind, say) is left alone, as
``rm --one-file-system`` would. Folders the run made read-only are made writable first (Go's
module cache, for one, is read-only, and deleting from it fails unless one is root). When the
run folder itself is a mount point (a container's), it is emptied and stays; the agent removes it
once the container is gone.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_OWNER_ALL = stat.S_IRWXU
MOUNTINFO = Path("/proc/self/mountinfo")
_OCTAL = re.compile(rb"\\([0-7]{3})")


@dataclass
class _Removal:
    device: int
    mounts: set[str]  # mount points below the folder, relative to it
    kept: list[str] = field(default_factory=list)  # relative paths left alone


def remove_run_folder(folder: Path) -> str | None:
    """Remove ``folder`` and everything below it; None when it is gone (or never was, or is a
    mount point now empty), else why it (or part of it) stays, in one sentence."""
    try:
        fd = os.open(folder, _DIR_FLAGS)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"The run folder {folder} was left in place: {exc.strerror or exc}."
    try:
        removal = _Removal(os.fstat(fd).st_dev, mounts_below(Path(os.path.realpath(folder))))
        _writable(fd)
        _empty(fd, "", removal)
    except (OSError, RecursionError) as exc:
        return f"The run folder {folder} was not removed completely: {_why(exc)}."
    finally:
        os.close(fd)
    if removal.kept:
        shown = ", ".join(repr(rel)[1:-1] for rel in removal.kept[:3]) + (", ..." if len(removal.kept) > 3 else "")
        return f"The run folder {folder} was not removed completely: {shown} is another file system or a mount point."
    try:
        folder.rmdir()
    except OSError as exc:
        if exc.errno == errno.EBUSY:  # the folder is a mount point (a container's): emptied is all
            return None
        return f"The run folder {folder} was emptied but stays: {exc.strerror or exc}."
    return None


def mounts_below(folder: Path) -> set[str]:
    """Mount points strictly below ``folder`` in this process's mount namespace, relative to it
    (a bind mount of the same file system has the same device number, so ``st_dev`` alone does
    not show it)."""
    try:
        lines = MOUNTINFO.read_bytes().splitlines()
    except OSError:
        return set()
    prefix = os.fsencode(folder).rstrip(b"/") + b"/"
    found = set()
    for line in lines:
        fields = line.split(b" ")
        if len(fields) > 4:
            point = _unescape(fields[4])
            if point.startswith(prefix):
                found.add(os.fsdecode(point[len(prefix) :]))
    return found


def _unescape(field: bytes) -> bytes:
    # The kernel writes space, tab, newline and backslash as \040, \011, \012 and \134; other
    # bytes (a name that is not UTF-8) come as they are.
    return _OCTAL.sub(lambda match: bytes([int(match[1], 8)]), field)


def _empty(dir_fd: int, prefix: str, removal: _Removal) -> bool:
    """Remove everything in the folder ``dir_fd``; whether it is empty now."""
    with os.scandir(dir_fd) as listing:
        entries = [(entry.name, entry.is_dir(follow_symlinks=False)) for entry in listing]
    emptied = True
    for name, is_dir in entries:
        rel = prefix + name
        if rel in removal.mounts:  # a folder or a file mounted here: someone else's
            removal.kept.append(rel)
            emptied = False
            continue
        if not is_dir:
            os.unlink(name, dir_fd=dir_fd)
            continue
        fd = _open_folder(name, dir_fd, removal.device)
        if fd is None:
            removal.kept.append(rel)
            emptied = False
            continue
        try:
            _writable(fd)
            inner = _empty(fd, rel + "/", removal)
        finally:
            os.close(fd)
        if inner:
            os.rmdir(name, dir_fd=dir_fd)
        else:
            emptied = False
    return emptied


def _open_folder(name: str, dir_fd: int, device: int) -> int | None:
    """A descriptor of the folder ``name``; None if it is on another file system."""
    try:
        fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except PermissionError:
        # Not readable: grant ourselves access through a descriptor that needs no permission on
        # the folder itself and cannot be a link (O_PATH with O_NOFOLLOW and O_DIRECTORY).
        handle = os.open(name, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
        try:
            if os.fstat(handle).st_dev != device:
                return None
            os.chmod(f"/proc/self/fd/{handle}", _OWNER_ALL)
        finally:
            os.close(handle)
        fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    if os.fstat(fd).st_dev != device:
        os.close(fd)
        return None
    return fd


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
