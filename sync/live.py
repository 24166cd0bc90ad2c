"""``yard sync --watch``: keep the workspace equal to the local tree until stopped.

One full sync first (with the watch already in place, so nothing is missed), then every batch
of changes is pushed as it comes. A batch that changes the ignore rules, or arrives after the
machine slept, gets a full sync instead. When the develop server cannot be reached (it is
restarting, it was stopped, the laptop lost its network), the loop waits with back-off until it
answers again and then does a full sync, which also checks for anything changed there meanwhile.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Protocol

from sync.engine import SyncEngine, SyncReport
from sync.remote import DevserverUnavailable, RemoteWorkspace
from sync.transfer import Progress
from sync.watcher import ChangeBatch, StopSignal, TreeWatcher

SAVE_EVERY_S = 2.0
RETRY_FIRST_S = 0.2
RETRY_MAX_S = 5.0


class LiveReporter(Protocol):
    """How a live sync tells its user what happens (the CLI prints, tests collect)."""

    def synced(self, report: SyncReport) -> None: ...

    def waiting(self, message: str) -> None: ...

    def reconnected(self) -> None: ...


class LiveSync:
    """The watch loop around one engine."""

    def __init__(
        self,
        engine: SyncEngine,
        watcher: TreeWatcher,
        reconnect: Callable[[], RemoteWorkspace],
        reporter: LiveReporter,
        progress: Progress | None = None,
    ) -> None:
        self.engine = engine
        self.watcher = watcher
        self.reconnect = reconnect
        self.reporter = reporter
        self.progress = progress
        self._saved_at = time.monotonic()

    def run(
        self,
        stop: StopSignal | None = None,
        after: Callable[[ChangeBatch, SyncReport], None] | None = None,
    ) -> None:
        """Sync everything, then every change, until ``stop`` is set (or KeyboardInterrupt)."""
        try:
            self._guarded(lambda: self.engine.sync(progress=self.progress), stop)
            for batch in self.watcher.batches(stop):
                if batch.rules or batch.resumed:
                    report = self._guarded(lambda: self.engine.sync(), stop)
                else:
                    report = self._guarded(functools.partial(self.engine.push, batch.paths, git=batch.git), stop)
                if report is not None and after is not None:
                    after(batch, report)
                if time.monotonic() - self._saved_at > SAVE_EVERY_S:
                    self._save(report)
        finally:
            self._save(None)

    def _guarded(self, step: Callable[[], SyncReport], stop: StopSignal | None) -> SyncReport | None:
        """Run ``step``; while the develop server is away, wait for it, then sync in full."""
        while True:
            try:
                report = step()
            except DevserverUnavailable as exc:
                self.reporter.waiting(str(exc))
                if not self._wait_for_server(stop):
                    return None
                self.reporter.reconnected()
                step = self.engine.sync  # anything may have changed on either side meanwhile
                continue
            self.reporter.synced(report)
            return report

    def _wait_for_server(self, stop: StopSignal | None) -> bool:
        delay = RETRY_FIRST_S
        while stop is None or not stop.is_set():
            time.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_S)
            try:
                remote = self.reconnect()
                remote.health()
            except DevserverUnavailable:
                continue
            self.engine.use(remote)
            return True
        return False

    def _save(self, report: SyncReport | None) -> None:
        self.engine.save(report)
        self._saved_at = time.monotonic()
