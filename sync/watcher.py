"""Watching the local tree: file-system events, coalesced over a few milliseconds, as batches.

watchfiles' Rust watcher does the watching. It is driven directly (as ``watchfiles.watch``
drives it) for one reason: the watch must be in place *before* the first full sync, or an edit
made during that sync would be missed, and only the constructor returning says it is.

Latency and idle cost both come from ``step_ms``, how often the watcher looks for events:
measured here, a step of 1 ms costs 2 % of a core while idle and 5 ms costs 0.5 %, for a write
reported 5-10 ms after it happened instead of 1-2 ms. The default is 5 ms.

A batch says which paths changed, whether the git state moved (``.git/HEAD``, refs), whether
ignore rules changed, and whether the machine slept since the last one (the wall clock jumped
ahead of the monotonic one), in which case everything is compared again.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from control.client import DevyardError
from sync.ignore import RULE_FILES

DEBOUNCE_MS = 5
STEP_MS = 5
IDLE_CHECK_MS = 5_000  # how often an idle watch wakes up to notice a sleep
SLEPT_AFTER_S = 5.0
GIT_STATE_FILES = frozenset({"HEAD", "packed-refs"})


class WatchFailed(DevyardError):
    """The operating system would not let the tree be watched."""


class StopSignal(Protocol):
    """Anything with ``is_set()`` (a :class:`threading.Event`)."""

    def is_set(self) -> bool: ...


@dataclass
class ChangeBatch:
    """What changed in the tree since the last batch."""

    paths: set[str] = field(default_factory=set)
    git: bool = False  # HEAD or a ref moved
    rules: bool = False  # a .gitignore, .yardignore or .git/info/exclude changed
    resumed: bool = False  # the machine slept: compare everything

    @property
    def empty(self) -> bool:
        return not (self.paths or self.git or self.rules or self.resumed)


def classify(root: str, raw: set[tuple[int, str]]) -> ChangeBatch:
    """Turn watchfiles' ``(change, absolute path)`` pairs into a batch of relative paths."""
    batch = ChangeBatch()
    prefix = root.rstrip(os.sep) + os.sep
    for _change, path in raw:
        if not path.startswith(prefix):
            continue
        rel = path[len(prefix) :].replace(os.sep, "/")
        if rel == ".git" or rel.startswith(".git/"):
            inner = rel[5:]
            if inner in GIT_STATE_FILES or inner.startswith("refs/"):
                batch.git = True
            elif inner == "info/exclude":
                batch.rules = True
            continue
        if "/.git/" in f"/{rel}/":
            continue  # a nested repository's own files are never synced
        if rel.rsplit("/", 1)[-1] in RULE_FILES:
            batch.rules = True
        batch.paths.add(rel)
    return batch


def slept(wall_elapsed: float, monotonic_elapsed: float) -> bool:
    """Whether the machine was suspended: its monotonic clock stops then, the wall clock does not."""
    return wall_elapsed - monotonic_elapsed > SLEPT_AFTER_S


class TreeWatcher:
    """Watches ``root`` recursively from construction until :meth:`close`."""

    def __init__(self, root: Path, *, debounce_ms: int = DEBOUNCE_MS, step_ms: int = STEP_MS) -> None:
        from watchfiles._rust_notify import RustNotify

        self.root = os.fspath(root)
        self.debounce_ms = debounce_ms
        self.step_ms = step_ms
        try:
            self._notify = RustNotify([self.root], False, False, 300, True, True)
        except (OSError, RuntimeError) as exc:  # e.g. the system's limit on inotify watches
            raise WatchFailed(f"Cannot watch {self.root} for changes: {exc}") from exc

    def batches(self, stop: StopSignal | None = None) -> Iterator[ChangeBatch]:
        """Yield batches until ``stop`` is set; a signal (Ctrl-C) raises KeyboardInterrupt."""
        wall, mono = time.time(), time.monotonic()
        while True:
            try:
                raw = self._notify.watch(self.debounce_ms, self.step_ms, IDLE_CHECK_MS, stop)
            except (OSError, RuntimeError) as exc:
                raise WatchFailed(f"Watching {self.root} for changes failed: {exc}") from exc
            if raw == "stop":
                return
            if raw == "signal":
                raise KeyboardInterrupt
            now_wall, now_mono = time.time(), time.monotonic()
            batch = classify(self.root, raw) if isinstance(raw, set) else ChangeBatch()
            batch.resumed = slept(now_wall - wall, now_mono - mono)
            wall, mono = now_wall, now_mono
            if not batch.empty:
                yield batch

    def close(self) -> None:
        """Stop watching."""
        self._notify.close()

    def __enter__(self) -> TreeWatcher:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
