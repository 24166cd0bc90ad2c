"""A job's triggers as written, stored and shown.

A cron trigger is the job's ``schedules`` row (its ticks, catch-up and overlap need the row);
every other kind is a ``job_triggers`` row holding the kind and its config, so a new kind (git
pushes, pull requests) is a new wire model and a new ``kind`` value, not a new table.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from sqlmodel import Session, col, delete, select, update

from control.db.tables import Job, JobTrigger, Run, Schedule, ScheduleTick
from control.schedules.cron import ScheduleInvalid, validate, zone
from control.schedules.ticks import first_fire_after
from control.wire.jobs import (
    AfterJobTrigger,
    CronTrigger,
    PullRequestTrigger,
    PushTrigger,
    TriggerOut,
    TriggerSpec,
)

AFTER_JOB = "job"
PUSH = "push"
PULL_REQUEST = "pull_request"
GIT_KINDS = (PUSH, PULL_REQUEST)


class TriggerRefused(Exception):
    """A trigger that cannot be stored; ``status`` and one sentence for the caller."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def schedule_of(session: Session, job_id: int) -> Schedule | None:
    return session.exec(select(Schedule).where(Schedule.job_id == job_id)).first()


def checked_cron(cron: str, timezone: str) -> str:
    try:
        zone(timezone)
        return validate(cron)
    except ScheduleInvalid as exc:
        raise TriggerRefused(422, str(exc)) from None


def schedule_name(session: Session, project: str, job: str) -> str:
    """A new cron trigger's schedule name: the job's name, or ``project.job`` when another
    project's schedule has it (schedule names are global, job names are per project)."""
    for name in (job, f"{project}.{job}"[:64]):
        if session.exec(select(Schedule.id).where(Schedule.name == name)).first() is None:
            return name
    raise TriggerRefused(409, f"Schedules {job} and {project}.{job} already exist; remove one or rename the job.")


def set_cron(session: Session, job: Job, project: str, spec: CronTrigger | None, now: datetime) -> None:
    """Give the job this cron trigger (or none), keeping its schedule row when there is one."""
    assert job.id is not None
    current = schedule_of(session, job.id)
    if spec is None:
        if current is not None:
            remove_schedule(session, current)
        return
    cron = checked_cron(spec.cron, spec.timezone)
    schedule = current or Schedule(
        name=schedule_name(session, project, job.name), project_id=job.project_id, job_id=job.id, cron=cron
    )
    moved = current is None or (cron, spec.timezone) != (current.cron, current.timezone)
    resumed = current is not None and spec.enabled and not current.enabled
    schedule.cron, schedule.timezone, schedule.enabled = cron, spec.timezone, spec.enabled
    schedule.catchup, schedule.catchup_cap, schedule.overlap = spec.catchup, spec.catchup_cap, spec.overlap
    if moved or resumed:
        # Time spent without this cron (or paused) is not "missed": the next tick is from now.
        schedule.next_fire_at = first_fire_after(schedule, now)
    schedule.updated_at = now
    session.add(schedule)


def remove_schedule(session: Session, schedule: Schedule) -> None:
    """Remove a cron trigger; its runs keep their history, only the links to it go."""
    session.exec(update(Run).where(col(Run.schedule_id) == schedule.id).values(schedule_id=None, tick_id=None))  # type: ignore[call-overload]
    session.exec(delete(ScheduleTick).where(col(ScheduleTick.schedule_id) == schedule.id))  # type: ignore[call-overload]
    session.delete(schedule)


def set_after_jobs(session: Session, job: Job, specs: list[AfterJobTrigger]) -> None:
    """Replace the job's "after job X" triggers; refuses unknown jobs and loops."""
    assert job.id is not None
    rows: list[JobTrigger] = []
    for spec in specs:
        upstream = session.exec(select(Job).where(Job.project_id == job.project_id, Job.name == spec.job)).first()
        if upstream is None:
            raise TriggerRefused(
                422, f"Job {spec.job} does not exist in this project; a job can only follow a job of its own project."
            )
        assert upstream.id is not None
        if upstream.id == job.id or _reaches(session, job.project_id, job.id, upstream.id):
            raise TriggerRefused(
                422,
                f"Job {job.name} cannot run after {spec.job}: {spec.job} already runs after {job.name}, which would loop.",
            )
        config = {"job_id": upstream.id, "states": sorted(set(spec.states))}
        rows.append(JobTrigger(job_id=job.id, kind=AFTER_JOB, config=config, enabled=spec.enabled))
    session.exec(delete(JobTrigger).where(col(JobTrigger.job_id) == job.id, col(JobTrigger.kind) == AFTER_JOB))  # type: ignore[call-overload]
    session.add_all(rows)


def _downstream(session: Session, project_id: int) -> dict[int, set[int]]:
    """upstream job id → ids of the jobs that run after it, in one project."""
    edges: dict[int, set[int]] = defaultdict(set)
    rows = session.exec(
        select(JobTrigger)
        .join(Job, col(Job.id) == col(JobTrigger.job_id))
        .where(Job.project_id == project_id, JobTrigger.kind == AFTER_JOB)
    )
    for trigger in rows:
        edges[int(trigger.config.get("job_id", 0))].add(trigger.job_id)
    return edges


def _reaches(session: Session, project_id: int, start: int, target: int) -> bool:
    """Whether a run of ``start`` leads, through chained jobs, to a run of ``target``."""
    edges = _downstream(session, project_id)
    seen, todo = {start}, [start]
    while todo:
        for nxt in edges.get(todo.pop(), ()):
            if nxt == target:
                return True
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return False


def set_triggers(session: Session, job: Job, project: str, specs: list[TriggerSpec], now: datetime) -> None:
    crons = [s for s in specs if isinstance(s, CronTrigger)]
    set_cron(session, job, project, crons[0] if crons else None, now)
    set_after_jobs(session, job, [s for s in specs if isinstance(s, AfterJobTrigger)])
    set_git_triggers(session, job, [s for s in specs if isinstance(s, PushTrigger | PullRequestTrigger)])


def set_git_triggers(session: Session, job: Job, specs: list[PushTrigger | PullRequestTrigger]) -> None:
    """Replace the job's push and pull-request triggers (control/hooks/triggers.py fires them)."""
    assert job.id is not None
    session.exec(delete(JobTrigger).where(col(JobTrigger.job_id) == job.id, col(JobTrigger.kind).in_(GIT_KINDS)))  # type: ignore[call-overload]
    for spec in specs:
        config = spec.model_dump(exclude={"kind", "enabled"})
        session.add(JobTrigger(job_id=job.id, kind=spec.kind, config=config, enabled=spec.enabled))


def followers_of(session: Session, job: Job) -> list[Job]:
    """Jobs that run after ``job`` (its removal would leave them following nothing)."""
    triggers = session.exec(select(JobTrigger).where(JobTrigger.kind == AFTER_JOB))
    ids = {t.job_id for t in triggers if t.config.get("job_id") == job.id and t.job_id != job.id}
    return list(session.exec(select(Job).where(col(Job.id).in_(ids)))) if ids else []


def describe_triggers(session: Session, job: Job) -> list[TriggerOut]:
    assert job.id is not None
    out: list[TriggerOut] = []
    schedule = schedule_of(session, job.id)
    if schedule is not None:
        config = {
            "cron": schedule.cron,
            "timezone": schedule.timezone,
            "catchup": schedule.catchup,
            "catchup_cap": schedule.catchup_cap,
            "overlap": schedule.overlap,
        }
        out.append(
            TriggerOut(
                kind="cron",
                summary=f"cron {schedule.cron} ({schedule.timezone})",
                enabled=schedule.enabled,
                config=config,
                schedule=schedule.name,
                next_fire_at=schedule.next_fire_at if schedule.enabled else None,
            )
        )
    for trigger in session.exec(select(JobTrigger).where(JobTrigger.job_id == job.id).order_by(col(JobTrigger.id))):
        out.append(_describe_row(session, trigger))
    return out


def _describe_row(session: Session, trigger: JobTrigger) -> TriggerOut:
    if trigger.kind == AFTER_JOB:
        upstream = session.get(Job, int(trigger.config.get("job_id", 0)))
        name = upstream.name if upstream else "?"
        states = list(trigger.config.get("states", []))
        config = {"job": name, "states": states}
        return TriggerOut(
            kind=AFTER_JOB, summary=f"after job {name} {' or '.join(states)}", enabled=trigger.enabled, config=config
        )
    config = dict(trigger.config)
    branches = ", ".join(config.get("branches") or ["**"])
    if trigger.kind == PUSH:
        return TriggerOut(kind=PUSH, summary=f"push to {branches}", enabled=trigger.enabled, config=config)
    if trigger.kind == PULL_REQUEST:
        keeps = "" if config.get("cancel_in_progress", True) else " (older runs keep running)"
        summary = f"pull request into {branches}{keeps}"
        return TriggerOut(kind=PULL_REQUEST, summary=summary, enabled=trigger.enabled, config=config)
    return TriggerOut(kind=trigger.kind, summary=trigger.kind, enabled=trigger.enabled, config=config)


def remove_all(session: Session, job: Job) -> None:
    """Remove every trigger of a job (before the job itself goes)."""
    assert job.id is not None
    schedule = schedule_of(session, job.id)
    if schedule is not None:
        remove_schedule(session, schedule)
    session.exec(delete(JobTrigger).where(col(JobTrigger.job_id) == job.id))  # type: ignore[call-overload]
