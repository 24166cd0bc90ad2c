"""File-watch auto-runs: which changes start a run, and what happens when one is already running.

:class:`TriggerFilter` decides whether a changed path is relevant (under the watched paths,
matching ``--glob``, not matching ``--ignore``). :class:`RunDispatcher` starts runs on its own
thread so the watch keeps syncing meanwhile, waiting ``debounce`` after the last relevant
change so a save touching several files starts one run. While a run is going, new changes are:

- ``queue``: collected into one more run, started when the current one ends;
- ``restart``: the current run is cancelled and a new one starts when it has ended;
- ``skip``: dropped (and reported).

Runs go through a :class:`RunBackend` (the CLI's is the control API); results go to a
:class:`DispatchReporter`. Nothing here prints.
"""

from __future__ import annotations

import fnmatch
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from control.client import DevyardError
from control.wire.runs import RunOut

POLICIES = ("queue", "restart", "skip")
# Files that tools and editors write on their own; a change to them never starts a run
# (without this, a local pytest run writing its cache would start the next run, forever).
DEFAULT_IGNORES = (
    "*__pycache__*",
    "*.pyc",
    "*.pytest_cache*",
    "*.mypy_cache*",
    "*.ruff_cache*",
    "*.hypothesis*",
    ".coverage*",
    "*.swp",
    "*.swx",
    "*~",
    ".#*",
    "4913",  # vim's test that a folder is writable
)


@dataclass(frozen=True)
class TriggerFilter:
    """Which changed paths (relative to the tree root, POSIX) start a run."""

    paths: Sequence[str] = ()  # folders or files (no trailing slash); empty: everywhere
    globs: Sequence[str] = ()
    ignores: Sequence[str] = ()

    def relevant(self, path: str) -> bool:
        if self.paths and not any(path == p or path.startswith(p + "/") for p in self.paths):
            return False
        if self.globs and not any(_matches(path, glob) for glob in self.globs):
            return False
        return not any(_matches(path, glob) for glob in self.ignores)

    def pick(self, paths: Iterable[str]) -> list[str]:
        """The relevant ones, sorted."""
        return sorted(path for path in paths if self.relevant(path))


def _matches(path: str, pattern: str) -> bool:
    """A glob matches the whole relative path (``*`` crosses folders) or just the file name."""
    return fnmatch.fnmatchcase(path, pattern) or fnmatch.fnmatchcase(path.rsplit("/", 1)[-1], pattern)


class RunBackend(Protocol):
    """Starting, waiting for and cancelling runs."""

    def start(self, paths: list[str]) -> RunOut: ...

    def wait(self, run: RunOut) -> RunOut: ...

    def cancel(self, run: RunOut) -> None: ...


class DispatchReporter(Protocol):
    """Told about each run and each dropped change."""

    def started(self, run: RunOut, paths: list[str]) -> None: ...

    def finished(self, run: RunOut, paths: list[str]) -> None: ...

    def skipped(self, paths: list[str]) -> None: ...

    def failed(self, message: str) -> None: ...


@dataclass
class RunDispatcher:
    """Starts a run per (debounced) burst of relevant changes, one run at a time."""

    backend: RunBackend
    reporter: DispatchReporter
    policy: str = "queue"
    debounce_s: float = 0.05
    _pending: set[str] = field(default_factory=set)
    _due: float = 0.0
    _current: RunOut | None = None
    _cancelling: bool = False
    _stopped: bool = False
    _lock: threading.Condition = field(default_factory=threading.Condition)
    _thread: threading.Thread | None = None

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(f"--on-busy must be one of {', '.join(POLICIES)}, not {self.policy!r}.")

    def start(self) -> None:
        """Start the dispatcher's thread."""
        self._thread = threading.Thread(target=self._loop, name="watch-runs", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop starting runs (one already started is left to finish)."""
        with self._lock:
            self._stopped = True
            self._lock.notify_all()

    def trigger(self, paths: Iterable[str]) -> None:
        """Relevant paths changed (and, with a develop server, are already synced)."""
        paths = set(paths)
        if not paths:
            return
        with self._lock:
            if self._current is not None and self.policy == "skip":
                self.reporter.skipped(sorted(paths))
                return
            self._pending |= paths
            self._due = time.monotonic() + self.debounce_s
            if self._current is not None and self.policy == "restart" and not self._cancelling:
                self._cancelling = True
                run = self._current
                threading.Thread(target=self._cancel, args=(run,), daemon=True).start()
            self._lock.notify_all()

    def _cancel(self, run: RunOut) -> None:
        try:
            self.backend.cancel(run)
        except DevyardError as exc:  # reported, never fatal: the watch goes on
            self.reporter.failed(f"Could not cancel run {run.id}: {exc}")

    def _next_burst(self) -> list[str] | None:
        with self._lock:
            while not self._stopped:
                if self._pending:
                    wait = self._due - time.monotonic()
                    if wait <= 0:
                        paths = sorted(self._pending)
                        self._pending.clear()
                        return paths
                    self._lock.wait(wait)
                else:
                    self._lock.wait()
            return None

    def _loop(self) -> None:
        while (paths := self._next_burst()) is not None:
            try:
                run = self.backend.start(paths)
            except DevyardError as exc:  # the API unreachable, the project gone...: say so, keep watching
                self.reporter.failed(f"Could not start a run: {exc}")
                continue
            with self._lock:
                self._current, self._cancelling = run, False
            self.reporter.started(run, paths)
            try:
                final = self.backend.wait(run)
            except DevyardError as exc:
                self.reporter.failed(f"Lost track of run {run.id}: {exc}")
                final = run
            with self._lock:
                self._current = None
            self.reporter.finished(final, paths)

    @property
    def busy(self) -> bool:
        """Whether a run is going or about to start."""
        with self._lock:
            return self._current is not None or bool(self._pending)
