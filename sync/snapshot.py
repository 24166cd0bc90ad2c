"""Recognising, about as fast as ``git status``, a tree that has not changed since a sync found
nothing to do.

When a full sync finds the workspace already equal to the tree, it leaves a snapshot in the
sync state directory: the stat data of every synced entry in the order a walk meets them
(mode, size, modification time and inode, as git's index keeps them), what the ignore rules
left out, the stamps of the rule files outside the tree, the git branch and commit, and the
workspace manifest's token (see :mod:`devserver.changes`). The next sync walks the tree once,
comparing stat data only (no ignore rule is evaluated, no file read), while the develop server
is asked whether anything changed since that token; if neither side changed, there is nothing
to do. Any difference, however small (a new ignored file, a touched file), just means the full
sync runs; it writes a fresh snapshot when it again finds nothing to do.

A snapshot is only written when no entry was modified in the last two seconds: a second write
within one tick of a coarse clock would leave the stat data unchanged (git's "racy clean").
"""

from __future__ import annotations

import contextlib
import marshal
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from control.wire.manifest import Row
from sync.state import RACY_NS

SNAPSHOT_FILE = "clean.marshal"
FORMAT = 1
GIT_DIR = ".git"
_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass
class Snapshot:
    """The tree and the workspace as a sync that found nothing to do left them."""

    token: str  # the workspace manifest's token
    rows: list[Row]  # stat data of every synced entry, in walk order
    skipped: dict[str, bool]  # paths the rules left out -> whether each is a directory
    sources: list[list[Any]]  # [path, size, mtime_ns] of each rule file outside the tree
    git: tuple[str | None, str | None, bool] | None  # (branch, head, detached); None: no repository

    @classmethod
    def load(cls, directory: Path) -> Snapshot | None:
        """The snapshot in ``directory``, if there is a usable one."""
        try:
            data = marshal.loads((directory / SNAPSHOT_FILE).read_bytes())
            if data[0] != FORMAT:
                return None
            _, token, rows, skipped, sources, git = data
            return cls(token, rows, skipped, sources, tuple(git) if git is not None else None)
        except (OSError, ValueError, EOFError, TypeError, IndexError):
            return None

    def save(self, directory: Path) -> bool:
        """Write the snapshot (atomically); False, and any old one removed, if it would be racy."""
        newest = max((row[3] for row in self.rows), default=0)
        if time.time_ns() - newest < RACY_NS:
            forget(directory)
            return False
        data = (FORMAT, self.token, self.rows, self.skipped, self.sources, self.git)
        directory.mkdir(parents=True, exist_ok=True)
        temp = directory / f".{SNAPSHOT_FILE}.{os.getpid()}.tmp"
        try:
            temp.write_bytes(marshal.dumps(data))
            os.replace(temp, directory / SNAPSHOT_FILE)
        finally:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
        return True

    def tree_unchanged(self, root: Path) -> bool:
        """Whether the tree's stat data and the rule files are exactly as recorded."""
        return stamps([str(source[0]) for source in self.sources]) == self.sources and matches(
            root, self.skipped, self.rows
        )


def forget(directory: Path) -> None:
    """Remove the snapshot in ``directory`` (the tree or the workspace changed)."""
    with contextlib.suppress(FileNotFoundError):
        (directory / SNAPSHOT_FILE).unlink()


def stamps(paths: list[str]) -> list[list[Any]]:
    """``[path, size, mtime_ns]`` of each file (``-1`` for one that is missing)."""
    result: list[list[Any]] = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            result.append([path, -1, -1])
        else:
            result.append([path, st.st_size, st.st_mtime_ns])
    return result


def matches(root: Path, skipped: dict[str, bool], expected: list[Row]) -> bool:
    """Whether walking the tree meets exactly the stat rows ``expected``, in the order
    :func:`control.wire.manifest.scan` meets them; False at the first difference, or as soon as
    something cannot be compared (unreadable, a skipped path changed kind, rows of another shape).

    Compared while walking, not collected first: an unchanged tree costs no list of its own and
    a changed one stops early. Each folder is opened once (never through a link) and its entries
    are ``stat``-ed relative to its descriptor (``fstatat``), so the kernel does not resolve every
    file's full path again. One process walks the whole tree (see docs/architecture.md for the
    forked second walker this replaced, and why).
    """
    top = os.fspath(root)
    pending = [(top, "")]
    index, end = 0, len(expected)
    is_dir = stat.S_ISDIR
    try:
        while pending:
            directory, prefix = pending.pop()
            # One path lookup per folder, then fstatat per entry. The root may be a link (a
            # synced folder reached through one); folders below it never are.
            fd = os.open(directory, _FLAGS if prefix else _FLAGS & ~os.O_NOFOLLOW)
            try:
                with os.scandir(fd) as listing:
                    items = list(listing)
                for item in items:
                    name = item.name
                    rel = prefix + name
                    left_out = skipped.get(rel)
                    if left_out is not None:
                        if left_out != item.is_dir(follow_symlinks=False):
                            return False  # a rule like "build/" matches folders only
                        continue
                    if not prefix and name == GIT_DIR:
                        continue
                    st = item.stat(follow_symlinks=False)  # fstatat(fd, name): scandir got an fd
                    mode = st.st_mode
                    if index == end:
                        return False
                    if is_dir(mode):
                        if expected[index] != (rel, mode, 0, 0, 0):
                            return False
                        pending.append((os.path.join(directory, name), rel + "/"))
                    elif expected[index] != (rel, mode, st.st_size, st.st_mtime_ns, st.st_ino):
                        return False
                    index += 1
            finally:
                os.close(fd)
    except OSError:
        return False
    return index == end
