"""Knowing cheaply that the workspace has not changed since a manifest was made.

A manifest comes with a token. Asked again with that token, the server answers "unchanged"
without scanning when nothing in the workspace changed since: not through the files API, not
by a command, a shell or a run on the server, not by anything else on this machine.

The changes are counted by inotify: every folder the manifest scan visits is watched (before it
is listed, so nothing created meanwhile is missed), and any event at all moves the count on.
The kernel queues an event before the system call that caused it returns, so reading the queue
when a question arrives sees every change made before it. A token is only handed out for a
scan that no change overlapped, and it names this server process, so a restarted server never
recognises an old one. Batches move the count on as well.

inotify only sees changes made through this machine's kernel, so tokens are only handed out
for a workspace on a local file system (ext4, XFS, btrfs, tmpfs, overlay...). On a network file
system (the ReadWriteMany volume of a cluster, written by runs on other nodes) every manifest
is a full one, as it is when inotify is missing or its watch limit is reached. Writes through a
shared memory mapping raise no inotify event; tools that write that way (some databases) keep
what they write out of the synced tree anyway.
"""

from __future__ import annotations

import ctypes
import logging
import os
import secrets
import threading
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("devyard.devserver")

LOCAL_FILE_SYSTEMS = frozenset(
    {"ext2", "ext3", "ext4", "xfs", "btrfs", "tmpfs", "ramfs", "overlay", "zfs", "f2fs", "bcachefs", "jfs"}
)
_IN_MODIFY, _IN_ATTRIB, _IN_CLOSE_WRITE = 0x2, 0x4, 0x8
_IN_MOVED_FROM, _IN_MOVED_TO, _IN_CREATE, _IN_DELETE = 0x40, 0x80, 0x100, 0x200
_IN_DELETE_SELF, _IN_MOVE_SELF = 0x400, 0x800
_IN_ONLYDIR, _IN_DONT_FOLLOW = 0x01000000, 0x02000000
WATCH_MASK = (
    _IN_MODIFY
    | _IN_ATTRIB
    | _IN_CLOSE_WRITE
    | _IN_MOVED_FROM
    | _IN_MOVED_TO
    | _IN_CREATE
    | _IN_DELETE
    | _IN_DELETE_SELF
    | _IN_MOVE_SELF
    | _IN_ONLYDIR
    | _IN_DONT_FOLLOW
)


class ChangeTracker:
    """A change count for one workspace, and the tokens that name it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.instance = secrets.token_hex(6)
        self.generation = 0
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._add_watch: Callable[[int, bytes, int], int] | None = None
        self._scan_failed = False
        self.usable = file_system_type(root) in LOCAL_FILE_SYSTEMS and self._start()

    def _start(self) -> bool:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        except (OSError, AttributeError):
            return False
        if fd < 0:
            log.info("inotify is not available (%s): every manifest is a full one", os.strerror(ctypes.get_errno()))
            return False
        self._fd = fd
        add_watch = libc.inotify_add_watch
        add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        add_watch.restype = ctypes.c_int
        self._add_watch = add_watch
        return True

    def token(self, generation: int) -> str:
        return f"{self.instance}.{generation}"

    def bump(self) -> None:
        """Something is being written through the server."""
        with self._lock:
            self.generation += 1

    def unchanged_since(self, token: str) -> bool:
        """Whether nothing changed since the scan that handed out ``token``."""
        if not self.usable:
            return False
        self._drain()
        return token == self.token(self.generation)

    def begin_scan(self) -> int:
        """Before a manifest scan: the count it starts from."""
        self._scan_failed = False
        self._drain()
        return self.generation

    def watch(self, directory: str) -> None:
        """Watch ``directory`` (the scan calls this before listing it)."""
        if self._fd is None or self._add_watch is None:
            return
        if self._add_watch(self._fd, os.fsencode(directory), WATCH_MASK) < 0:
            error = ctypes.get_errno()
            if not self._scan_failed and error not in (2, 20):  # ENOENT, ENOTDIR: it went away meanwhile
                log.info("cannot watch %s (%s): this manifest gets no token", directory, os.strerror(error))
            self._scan_failed = True

    def end_scan(self, started: int) -> str | None:
        """After a manifest scan: its token, or None if something changed while it ran."""
        if not self.usable:
            return None
        self._drain()
        if self._scan_failed or self.generation != started:
            return None
        return self.token(started)

    def _drain(self) -> None:
        if self._fd is None:
            return
        changed = False
        while True:
            try:
                if not os.read(self._fd, 65536):
                    break
            except BlockingIOError:
                break
            changed = True  # what changed does not matter, only that something did
        if changed:
            self.bump()


def file_system_type(path: Path) -> str | None:
    """The type of the file system ``path`` is on (from ``/proc/self/mountinfo``), if known."""
    real = os.path.realpath(path)
    best, found = -1, None
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as mounts:
            for line in mounts:
                before, _, after = line.partition(" - ")
                fields = before.split()
                if len(fields) < 5 or not after:
                    continue
                point = fields[4].replace("\\040", " ")
                inside = real == point or real.startswith(point.rstrip("/") + "/")
                if inside and len(point) >= best:
                    best, found = len(point), after.split()[0]
    except OSError:
        return None
    return found
