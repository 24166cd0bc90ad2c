"""Crash-safe ticks: plan due times as tick rows, then turn each pending tick into one run.

Phase 1 (:func:`plan_due`) writes one ``schedule_ticks`` row per (schedule, scheduled time) under
a unique key and advances the schedule's ``next_fire_at``, in one transaction. Phase 2
(:func:`fire_pending`) creates the run for a pending tick and marks the tick fired in one
transaction; the run carries the tick's id under a unique constraint. So a crash anywhere leaves
either no tick (phase 1 redone), a pending tick (phase 2 redone) or a fired tick with exactly one
run — and two schedulers racing produce the same result, because the unique keys decide.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select

from control.db.engine import begin_write
from control.db.tables import Environment, Job, Project, Run, Schedule, ScheduleTick
from control.jobs.definition import run_request
from control.runs import states
from control.runs.code import choose_code
from control.runs.create import create_run
from control.runs.lifecycle import TransitionRefused, request_cancel
from control.runs.summary import Publish, Wake, announce_run, describe_run
from control.schedules.cron import due_between, fire_times
from control.wire.errors import ApiError
from control.wire.runs import RunOut
from control.wire.schedules import TickFired

CATCHUP = ("latest", "all", "none")
OVERLAP = ("skip", "queue", "cancel_previous")
PENDING, FIRED, SKIPPED = "pending", "fired", "skipped"
FAR_PAST = timedelta(microseconds=1)
INSERT_BATCH = 1000


@dataclass(frozen=True)
class TickResult:
    schedule_id: int
    schedule: str
    tick_id: int
    scheduled_for: datetime
    state: str
    run: RunOut | None = None
    """The run this tick created, described before its commit (what ``run.created`` carries)."""
    reason: str | None = None
    cancelled: tuple[RunOut, ...] = ()
    """Earlier runs of the schedule asked to stop (overlap ``cancel_previous``)."""

    @property
    def run_id(self) -> int | None:
        return self.run.id if self.run is not None else None

    def fired(self) -> TickFired:
        return TickFired(
            schedule=self.schedule,
            tick_id=self.tick_id,
            scheduled_for=self.scheduled_for,
            state=self.state,
            run_id=self.run_id,
            reason=self.reason,
        )


def first_fire_after(schedule: Schedule, moment: datetime) -> datetime:
    return next(fire_times(schedule.cron, schedule.timezone, moment))


def _insert_ignore(session: Session, rows: list[dict[str, object]]) -> None:
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    builder = pg_insert if dialect == "postgresql" else sqlite_insert
    # One statement per thousand rows: databases cap the parameters of one statement (65,535 on
    # PostgreSQL), and a catch-up pass over many schedules can plan tens of thousands of ticks.
    for start in range(0, len(rows), INSERT_BATCH):
        statement = builder(ScheduleTick).values(rows[start : start + INSERT_BATCH])
        session.execute(statement.on_conflict_do_nothing(index_elements=["schedule_id", "scheduled_for"]))


def plan_due(session: Session, now: datetime, misfire_grace: timedelta, limit: int = 5000) -> int:
    """Phase 1: write pending ticks for every due schedule and advance it; commits. Returns ticks planned."""
    begin_write(session)
    due_schedules = list(
        session.exec(
            select(Schedule)
            .where(Schedule.enabled == True, col(Schedule.next_fire_at) <= now)  # noqa: E712
            .order_by(col(Schedule.next_fire_at))
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    planned = 0
    rows: list[dict[str, object]] = []
    for schedule in due_schedules:
        assert schedule.next_fire_at is not None and schedule.id is not None
        cap = {"all": max(1, schedule.catchup_cap)}.get(schedule.catchup, 1)
        times, _dropped = due_between(schedule.cron, schedule.timezone, schedule.next_fire_at - FAR_PAST, now, cap)
        if schedule.catchup == "none":
            times = [t for t in times if now - t <= misfire_grace]
        rows += [{"schedule_id": schedule.id, "scheduled_for": t, "state": PENDING} for t in times]
        planned += len(times)
        schedule.next_fire_at = first_fire_after(schedule, now)
        session.add(schedule)
    _insert_ignore(session, rows)
    session.commit()
    return planned


def _active_runs(session: Session, schedule_id: int) -> list[Run]:
    return list(
        session.exec(
            select(Run).where(Run.schedule_id == schedule_id, col(Run.state).in_(states.ACTIVE | {states.QUEUED}))
        )
    )


def fire_one(session: Session, tick: ScheduleTick, schedule: Schedule) -> TickResult:
    """Phase 2 for one tick: apply the overlap policy, create the run, mark the tick; no commit."""
    assert tick.id is not None and schedule.id is not None
    active = _active_runs(session, schedule.id)
    cancelled: list[Run] = []
    if active and schedule.overlap == "skip":
        tick.state, tick.reason = SKIPPED, f"run {active[0].id} of this schedule is still {active[0].state}"
        session.add(tick)
        return TickResult(schedule.id, schedule.name, tick.id, tick.scheduled_for, SKIPPED, reason=tick.reason)
    if active and schedule.overlap == "cancel_previous":
        for previous in active:
            try:
                request_cancel(session, previous)
                cancelled.append(previous)
            except TransitionRefused:
                pass
    project = session.get(Project, schedule.project_id)
    job = session.get(Job, schedule.job_id)
    if project is None or job is None:
        tick.state, tick.reason = SKIPPED, "the project no longer exists" if project is None else "the job was removed"
        session.add(tick)
        return TickResult(schedule.id, schedule.name, tick.id, tick.scheduled_for, SKIPPED, reason=tick.reason)
    env = session.get(Environment, job.environment_id) if job.environment_id else None
    try:  # a scheduled run never uses anyone's workspace: nobody asked for it in person
        code = choose_code(session, project, env, job.user_id, workspace_allowed=False)
    except ApiError as exc:
        tick.state, tick.reason = SKIPPED, exc.message
        session.add(tick)
        return TickResult(schedule.id, schedule.name, tick.id, tick.scheduled_for, SKIPPED, reason=tick.reason)
    info = {"schedule": schedule.name, "scheduled_for": tick.scheduled_for.isoformat()}
    request = run_request(
        job, project, env, job.user_id, "schedule", info, code=code, schedule_id=schedule.id, tick_id=tick.id
    )
    run, _ = create_run(session, request)
    tick.state = FIRED
    session.add(tick)
    return TickResult(
        schedule.id,
        schedule.name,
        tick.id,
        tick.scheduled_for,
        FIRED,
        run=describe_run(session, run),
        cancelled=tuple(describe_run(session, previous) for previous in cancelled),
    )


def announce_tick(result: TickResult, publish: Publish, wake: Wake) -> None:
    """The events of a tick: the tick, the run it created (whole), the runs it asked to stop."""
    publish("schedule.tick", result.fired())
    if result.run is not None:
        announce_run(publish, wake, result.run, "run.created")
    for cancelled in result.cancelled:
        announce_run(publish, wake, cancelled)


def fire_pending(
    session_factory: Callable[[], Session], batch: int = 50, on_committed: Callable[[TickResult], None] | None = None
) -> list[TickResult]:
    """Phase 2 for every pending tick, oldest first, ``batch`` ticks per transaction."""
    results: list[TickResult] = []
    while True:
        with session_factory() as session:
            begin_write(session)
            ticks = list(
                session.exec(
                    select(ScheduleTick)
                    .where(ScheduleTick.state == PENDING)
                    .order_by(col(ScheduleTick.scheduled_for), col(ScheduleTick.id))
                    .limit(batch)
                    .with_for_update(skip_locked=True)
                )
            )
            done: list[TickResult] = []
            for tick in ticks:
                schedule = session.get(Schedule, tick.schedule_id)
                if schedule is None:
                    tick.state, tick.reason = SKIPPED, "the schedule was removed"
                    session.add(tick)
                    continue
                done.append(fire_one(session, tick, schedule))
            session.commit()
        results += done
        if on_committed is not None:
            for result in done:
                on_committed(result)
        if len(ticks) < batch:
            return results


def trigger_now(session: Session, schedule: Schedule, now: datetime) -> TickResult:
    """`yard schedule trigger`: a tick at ``now`` that fires at once (overlap policy applies)."""
    _insert_ignore(session, [{"schedule_id": schedule.id, "scheduled_for": now, "state": PENDING}])
    tick = session.exec(
        select(ScheduleTick).where(ScheduleTick.schedule_id == schedule.id, ScheduleTick.scheduled_for == now)
    ).one()
    tick.reason = "triggered by hand"
    return fire_one(session, tick, schedule)
