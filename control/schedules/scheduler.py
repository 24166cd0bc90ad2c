"""One scheduler: fires cron schedules and does the background cleanup, one cycle at a time.

Each cycle (:meth:`Scheduler.run_once`):

1. on SQLite, hold the ``scheduler`` lease (a second scheduler waits until it lapses); on
   PostgreSQL several schedulers may run at once, partitioned by row locks;
2. plan due ticks (phase 1) and fire pending ticks (phase 2) — see control.schedules.ticks;
   start the runs of jobs chained after runs that ended (control.jobs.chain);
3. every ``cleanup_interval_s``: mark lost runs, compact finished runs' logs, apply retention,
   close orphaned work items, stop idle develop servers.

The process that repeats cycles is runner.scheduler. The clock is injectable so tests drive time
by hand, and ``crash_at`` (tests only) kills the process with SIGKILL at a named point to prove
that ticks are crash-safe.
"""

from __future__ import annotations

import os
import signal
import socket
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from control.clock import utcnow
from control.db.engine import check_connection, make_engine, new_session
from control.events import EventBus
from control.jobs.chain import start_followers
from control.notify import Hub
from control.objectstore import ObjectStore
from control.runs.lost import reap_lost_runs
from control.runs.summary import Publish, Wake
from control.schedules import cleanup, lease
from control.schedules.ticks import TickResult, announce_tick, fire_pending, plan_due
from control.settings import Settings
from control.wire.events import CleanedIds, CleanedWorkItems, LostRuns
from control.wire.runs import RunOut

if TYPE_CHECKING:
    from sqlmodel import Session

LEASE = "scheduler"


@dataclass
class CycleReport:
    planned: int = 0
    fired: list[TickResult] = field(default_factory=list)
    chained: list[RunOut] = field(default_factory=list)
    """Runs of jobs started because a run of the job they follow ended."""
    cleanup: cleanup.CleanupReport | None = None
    lost: list[int] = field(default_factory=list)
    leader: bool = True


@dataclass
class Scheduler:
    engine: Engine
    store: ObjectStore
    settings: Settings
    publish: Publish = lambda _type, _data: None
    wake: Wake = lambda *_keys: None
    clock: Callable[[], datetime] = utcnow
    holder: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}")
    crash_at: str | None = None
    _last_cleanup: datetime | None = None

    def _session(self) -> Session:
        return new_session(self.engine)

    def _crash(self, point: str) -> None:
        if self.crash_at == point:
            os.kill(os.getpid(), signal.SIGKILL)

    def _leader(self, now: datetime) -> bool:
        if self.engine.dialect.name != "sqlite":
            return True
        with self._session() as session:
            return lease.hold(session, LEASE, self.holder, now, timedelta(seconds=self.settings.scheduler_lease_s))

    def run_once(self, now: datetime | None = None) -> CycleReport:
        """One scheduling cycle at ``now`` (default: the clock)."""
        now = now or self.clock()
        report = CycleReport()
        if not self._leader(now):
            report.leader = False
            return report
        with self._session() as session:
            report.planned = plan_due(session, now, timedelta(seconds=self.settings.misfire_grace_s))
        self._crash("after_tick_row")
        report.fired = fire_pending(
            self._session, on_committed=lambda tick: announce_tick(tick, self.publish, self.wake)
        )
        if report.fired:
            self._crash("after_run_row")
            self.wake("work")
        report.chained = start_followers(self._session, self.publish, self.wake)
        if self._last_cleanup is None or now - self._last_cleanup >= timedelta(
            seconds=self.settings.cleanup_interval_s
        ):
            self._last_cleanup = now
            report.lost, report.cleanup = self.clean(now)
        return report

    def clean(self, now: datetime) -> tuple[list[int], cleanup.CleanupReport]:
        """The background cleanup pass; each step is published as an event when it did something."""
        settings = self.settings
        report = cleanup.CleanupReport()
        lost = reap_lost_runs(
            self.engine, now - timedelta(seconds=settings.run_lost_after_s), self.publish, self.wake, via="scheduler"
        )
        if lost:
            self.publish("cleanup.lost", LostRuns(runs=lost))
        report.compacted = cleanup.compact_finished(
            self._session, self.store, now, timedelta(seconds=settings.compact_after_s)
        )
        with self._session() as session:
            report.logs_expired, report.artifacts_expired = cleanup.apply_retention(
                session,
                self.store,
                now,
                settings.log_retention_days,
                settings.artifact_retention_days,
                settings.log_retention_runs,
            )
        with self._session() as session:
            report.orphans_closed, report.items_deleted = cleanup.close_orphan_work_items(
                session, now, timedelta(days=7)
            )
        with self._session() as session:
            report.devservers_stopped = cleanup.stop_idle_devservers(session, now)
        for name, value in (
            ("cleanup.compacted", report.compacted),
            ("cleanup.logs_expired", report.logs_expired),
            ("cleanup.artifacts_expired", report.artifacts_expired),
            ("cleanup.devservers_stopped", report.devservers_stopped),
        ):
            if value:
                self.publish(name, CleanedIds(ids=value))
        if report.orphans_closed or report.items_deleted:
            self.publish(
                "cleanup.work_items", CleanedWorkItems(closed=report.orphans_closed, deleted=report.items_deleted)
            )
        if report.devservers_stopped:
            self.wake("work")
        return lost, report

    def resign(self) -> None:
        """Give the lease up (SQLite) so that another scheduler need not wait for it to lapse."""
        if self.engine.dialect.name == "sqlite":
            with self._session() as session:
                lease.release(session, LEASE, self.holder)


@contextmanager
def standalone_scheduler(settings: Settings) -> Iterator[Scheduler]:
    """A scheduler with its own engine, store and wake-ups (`yard scheduler`); closed on exit.

    Its events reach API replicas through NOTIFY on PostgreSQL; on SQLite only the in-process
    scheduler of `yard up` reaches readers.
    """
    engine = make_engine(settings.effective_database_url)
    try:
        check_connection(engine)
        store = ObjectStore.from_url(
            settings.effective_object_store_url, s3_endpoint=settings.s3_endpoint, s3_region=settings.s3_region
        )
        hub = Hub(engine)
        try:
            events = EventBus()
            events.remote = hub.broadcast
            yield Scheduler(engine, store, settings, publish=events.publish, wake=hub.publish)
        finally:
            hub.close()
    finally:
        engine.dispose()
