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

import bisect
import contextlib
import gc
import marshal
import os
import signal
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devserver.manifest import Row
from sync.state import RACY_NS

SNAPSHOT_FILE = "clean.marshal"
FORMAT = 1
GIT_DIR = ".git"
PARALLEL_ROWS = 4000  # from this many rows a forked child walks about half of the tree (see matches)
Part = tuple[str, int, int]  # a folder ("" for the root, else its path and "/") and its rows' range
_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_PID = os.getpid()  # the process that imported this module; a fork of it does not fork again


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
    :func:`devserver.manifest.scan` meets them; False at the first difference, or as soon as
    something cannot be compared (unreadable, a skipped path changed kind).

    Compared while walking, not collected first: an unchanged tree costs no list of its own and
    a changed one stops early. Each folder is opened once (never through a link) and its entries
    are ``stat``-ed relative to its descriptor (``fstatat``), so the kernel does not resolve every
    file's full path again.

    A large tree is walked by two processes. ``git status`` is fast because it ``lstat``-s the
    index from several threads (``core.preloadIndex``); Python threads cannot do that, the GIL
    changes hands at every system call (they made the walk slower). So a forked child walks
    subtrees holding about half of the rows while this process walks the rest, and each part is
    compared with its own rows: the rows of a folder's subtree are contiguous (see :func:`_parts`).
    On 10,000 files in 1,050 folders on two cores: 32 ms in one process, 21 ms in two
    (``git status``: 20 ms). Forking a 35 MB process costs about 1.7 ms: two processes only
    caught up with one near 3,000 rows (4,400 rows: 8.5 ms in one, 7.0 ms in two), hence
    :data:`PARALLEL_ROWS`. Not forked either where that is unsafe: while another thread runs (a
    fork copies its locks, not the thread), or in a fork of the process that imported this module.
    """
    top = os.fspath(root)
    whole: Part = ("", 0, len(expected))
    plan = None
    if len(expected) >= PARALLEL_ROWS and _may_fork():
        with contextlib.suppress(TypeError, AttributeError, IndexError, ValueError):
            plan = _plan(expected)  # rows that are not rows at all: the walk below says False
    if plan is None:
        return _walk(top, whole, skipped, expected)
    shallow, mine, theirs = plan
    # Signals stay blocked in the child (SIGKILL aside): no handler may raise into this code there.
    # The mask to come back to is read by a call that changes nothing: pthread_sigmask runs
    # pending Python handlers once the mask is set, so the call that blocks everything may raise
    # a Ctrl-C with its answer lost, and the block would stay with this process and every process
    # it starts afterwards (a CI run: Ctrl-C, run cancels and `yard down` then did nothing).
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, ())
    everything = signal.valid_signals()  # not called inside the try: a handler may run after any call
    pid = -1
    exited = False  # the child ended (it stays a zombie, so its pid stays ours, until reaped below)
    code: int | None = None
    try:
        signal.pthread_sigmask(signal.SIG_BLOCK, everything)
        try:
            pid = os.fork()
        except Exception:  # no process to be had (OSError), or not here (RuntimeError): one walks all
            pid = -1
        if pid == 0:  # the child: os-level calls only, and it always leaves through os._exit
            same = False
            try:
                gc.disable()  # garbage of the parent's is the parent's to finalise
                same = all(_walk(top, part, skipped, expected) for part in theirs)
            finally:
                os._exit(0 if same else 1)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        if pid < 0:  # could not fork
            return _walk(top, whole, skipped, expected)
        if not (
            all(_walk(top, part, skipped, expected, deep=False) for part in shallow)
            and all(_walk(top, part, skipped, expected) for part in mine)
        ):
            return False
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)  # wait without reaping
        exited = True
    finally:
        try:
            if pid > 0:
                # Reaped with signals blocked: a handler raising inside the wait would leave a
                # zombie. Blocking may itself raise a pending interrupt, once the block is set.
                # (A child stuck in an uninterruptible read, on a hung network file system,
                # holds this process until SIGKILL lands; its own walk would be stuck the same.)
                try:
                    signal.pthread_sigmask(signal.SIG_BLOCK, everything)
                finally:
                    if not exited:  # a difference found here, or interrupted: stop the child
                        with contextlib.suppress(ProcessLookupError):  # reaped by someone else's waitpid(-1)
                            os.kill(pid, signal.SIGKILL)  # not reaped yet, so the pid is still the child's
                    code = _reap(pid)  # the one reap
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # a pending interrupt is raised here
    if code in (0, 1):
        return code == 0
    return all(_walk(top, part, skipped, expected) for part in theirs)  # the child was killed


def _walk(top: str, part: Part, skipped: dict[str, bool], expected: list[Row], deep: bool = True) -> bool:
    """Whether the folder ``part`` names (below ``top``), and everything below it if ``deep``,
    meets exactly the rows of its range."""
    prefix, index, end = part
    # Without the trailing "/", which would make open() follow a link despite O_NOFOLLOW.
    pending = [(os.path.join(top, prefix[:-1]) if prefix else top, prefix)]
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
                        if deep:
                            pending.append((os.path.join(directory, name), rel + "/"))
                    elif expected[index] != (rel, mode, st.st_size, st.st_mtime_ns, st.st_ino):
                        return False
                    index += 1
            finally:
                os.close(fd)
    except OSError:
        return False
    return index == end


def _may_fork() -> bool:
    """Whether forking a child to walk part of the tree is possible and safe here."""
    return (
        hasattr(os, "fork")
        and os.getpid() == _PID
        and threading.active_count() == 1
        and _os_threads() == 1  # threads started outside Python too (watchfiles' notifier)
        and signal.getsignal(signal.SIGCHLD) != signal.SIG_IGN  # the child's answer would be lost
    )


def _os_threads() -> int:
    """How many threads this process has, as the kernel counts them (1 where that is unknown)."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 1


def _reap(pid: int) -> int:
    """Wait for the child ``pid``: its exit code (negative: the signal that killed it; -1 if it
    was reaped elsewhere)."""
    while True:
        try:
            return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
        except InterruptedError:  # Python retries itself (PEP 475) unless a handler raised
            continue
        except ChildProcessError:
            return -1


def _plan(expected: list[Row]) -> tuple[list[Part], list[Part], list[Part]] | None:
    """The folders this process lists without what is below them (the root, and any folder
    holding more than half of the rows, split further), the subtrees it walks, and those a child
    walks, about as many rows each; None if there is nothing to share, or ``expected`` is not
    what a walk meets."""
    split = _parts(expected, ("", 0, len(expected)))
    if split is None:
        return None
    shallow, parts = [split[0]], split[1]
    while parts:
        big = max(parts, key=_size)
        split = _parts(expected, big) if 2 * _size(big) > len(expected) else None
        if split is None or not split[1]:
            break
        parts.remove(big)
        shallow.append(split[0])
        parts += split[1]
    mine: list[Part] = []
    theirs: list[Part] = []
    load = sum(map(_size, shallow))  # this process's rows less the child's
    for part in sorted(parts, key=_size, reverse=True):
        if load > 0:
            theirs.append(part)
            load -= _size(part)
        else:
            mine.append(part)
            load += _size(part)
    # Not worth a fork unless this process keeps a fair share (one flat folder of most rows would
    # otherwise go to the child whole, and this process would only wait for it).
    return (shallow, mine, theirs) if theirs and 3 * sum(map(_size, theirs)) <= 2 * len(expected) else None


def _parts(expected: list[Row], part: Part) -> tuple[Part, list[Part]] | None:
    """The rows of the folder ``part`` split into its own entries and the subtree of each
    subfolder: a walk lists a folder, then walks the subfolders from the last listed (a stack), so
    each subtree's rows are contiguous. None if the rows do not split so (no walk meets them)."""
    prefix, start, end = part
    depth = len(prefix)
    own = bisect.bisect_left(expected, True, start, end, key=lambda row: row[0].find("/", depth) >= 0)
    parts: list[Part] = []
    lo = own
    for path, mode, *_ in reversed(expected[start:own]):
        if stat.S_ISDIR(mode):
            below = path + "/"
            hi = bisect.bisect_left(expected, True, lo, end, key=lambda row: not row[0].startswith(below))
            parts.append((below, lo, hi))
            lo = hi
    return ((prefix, start, own), parts) if lo == end else None


def _size(part: Part) -> int:
    return part[2] - part[1]
