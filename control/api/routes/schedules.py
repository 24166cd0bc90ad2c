"""Schedules: the cron triggers of jobs. Readers list them; the project's owner, maintainers and admins change them.

`POST /schedules` still takes a command: it makes a job of one step with this cron trigger."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Query
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from control import access, audit
from control.api.deps import DB, Reader, Svc, Writer
from control.api.errors import conflict, forbidden, not_found
from control.api.routes.environments import find_environment
from control.api.routes.projects import find_project
from control.api.routing import SegmentRouter
from control.auth import Principal
from control.clock import utcnow
from control.db.engine import begin_write
from control.db.tables import Environment, Job, Project, Run, Schedule, ScheduleTick, User
from control.jobs.definition import may_change, stored_steps
from control.jobs.triggers import TriggerRefused, checked_cron, remove_schedule
from control.schedules.cron import next_times
from control.schedules.ticks import announce_tick, first_fire_after, trigger_now
from control.wire.errors import ApiError
from control.wire.events import ScheduleRef
from control.wire.jobs import JobStep
from control.wire.schedules import ScheduleCreate, ScheduleOut, ScheduleUpdate, TickFired, TickOut

router = SegmentRouter(tags=["schedules"])


def _last_tick(session: Session, schedule_id: int) -> dict[str, object] | None:
    tick = session.exec(
        select(ScheduleTick)
        .where(ScheduleTick.schedule_id == schedule_id)
        .order_by(col(ScheduleTick.scheduled_for).desc())
        .limit(1)
    ).first()
    if tick is None:
        return None
    run = session.exec(select(Run).where(Run.tick_id == tick.id)).first()
    return {
        "scheduled_for": tick.scheduled_for.isoformat().replace("+00:00", "Z"),
        "state": tick.state,
        "run_id": run.id if run else None,
        "run_state": run.state if run else None,
    }


def schedule_out(session: Session, schedule: Schedule) -> ScheduleOut:
    assert schedule.id is not None
    project = session.get(Project, schedule.project_id)
    job = session.get(Job, schedule.job_id)
    env = session.get(Environment, job.environment_id) if job and job.environment_id else None
    user = session.get(User, job.user_id) if job else None
    return ScheduleOut(
        id=schedule.id,
        name=schedule.name,
        project=project.name if project else "?",
        job=job.name if job else None,
        environment=env.name if env else None,
        user=user.name if user else "?",
        command=list(job.steps[0]["command"]) if job and job.steps else [],
        cron=schedule.cron,
        timezone=schedule.timezone,
        enabled=schedule.enabled,
        catchup=schedule.catchup,
        catchup_cap=schedule.catchup_cap,
        overlap=schedule.overlap,
        tty=job.tty if job else False,
        next_fire_at=schedule.next_fire_at if schedule.enabled else None,
        last_tick=_last_tick(session, schedule.id),
        created_at=schedule.created_at,
        updated_at=schedule.updated_at,
    )


def find_schedule(session: Session, name: str) -> Schedule:
    schedule = session.exec(select(Schedule).where(Schedule.name == name)).first()
    if schedule is None:
        raise not_found("Schedule", name)
    return schedule


def _may_change(session: Session, schedule: Schedule, who: Principal) -> None:
    project = session.get(Project, schedule.project_id)
    if project is None or not may_change(session, project, who.user_id, who.role):
        raise forbidden(
            f"Only the owner of project {project.name if project else '?'}, its maintainers or an admin"
            f" can change schedule {schedule.name}."
        )


def _checked(cron: str, timezone: str) -> str:
    try:
        return checked_cron(cron, timezone)
    except TriggerRefused as exc:
        raise ApiError(exc.status, "invalid_request", exc.message) from None


@router.get("/schedules", response_model=list[ScheduleOut])
def list_schedules(
    session: DB, _: Reader, project: Annotated[str | None, Query(max_length=64)] = None
) -> list[ScheduleOut]:
    statement = select(Schedule).order_by(col(Schedule.name))
    if project:
        statement = statement.where(Schedule.project_id == find_project(session, project).id)
    return [schedule_out(session, s) for s in session.exec(statement)]


@router.get("/schedules/{name}", response_model=ScheduleOut)
def get_schedule(name: str, session: DB, _: Reader) -> ScheduleOut:
    return schedule_out(session, find_schedule(session, name))


@router.post("/schedules", response_model=ScheduleOut, status_code=201)
def create_schedule(body: ScheduleCreate, session: DB, who: Writer, svc: Svc) -> ScheduleOut:
    cron = _checked(body.cron, body.timezone)
    project = find_project(session, body.project)
    if not may_change(session, project, who.user_id, who.role):
        raise forbidden(
            f"Only the owner of project {project.name}, its maintainers or an admin can schedule runs in it."
        )
    env = find_environment(session, project, body.environment) if body.environment else None
    if env is not None:
        access.check_environment(session, project, env, who.user_id, who.role)
    assert project.id is not None
    if session.exec(select(Schedule.id).where(Schedule.name == body.name)).first() is not None:
        raise conflict(f"Schedule {body.name} already exists.")
    if session.exec(select(Job.id).where(Job.project_id == project.id, Job.name == body.name)).first() is not None:
        raise conflict(
            f"Job {body.name} already exists in project {project.name}; give it a cron trigger with"
            f" `yard jobs edit {body.name} -p {project.name} --cron EXPR`."
        )
    job = Job(
        project_id=project.id,
        name=body.name,
        environment_id=env.id if env else None,
        user_id=who.user_id,
        steps=stored_steps([JobStep(command=body.command)]),
        tty=body.tty,
    )
    session.add(job)
    session.flush()
    assert job.id is not None
    schedule = Schedule(
        name=body.name,
        project_id=project.id,
        job_id=job.id,
        cron=cron,
        timezone=body.timezone,
        enabled=body.enabled,
        catchup=body.catchup,
        catchup_cap=body.catchup_cap,
        overlap=body.overlap,
    )
    schedule.next_fire_at = first_fire_after(schedule, utcnow())
    session.add(schedule)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise conflict(f"Schedule {body.name} already exists.") from None
    audit.record(
        session, who, "schedule.create", "schedule", schedule.id, name=body.name, cron=cron, timezone=body.timezone
    )
    session.commit()
    out = schedule_out(session, schedule)
    svc.events.publish("schedule.created", out)
    return out


def _change_job(session: Session, schedule: Schedule, who: Principal, changes: dict[str, object]) -> None:
    """What a schedule used to hold itself (environment, command, tty) is now its job's."""
    job = session.get(Job, schedule.job_id)
    project = session.get(Project, schedule.project_id)
    assert job is not None and project is not None
    if "environment" in changes:
        env_name = changes.pop("environment")
        env = find_environment(session, project, str(env_name)) if env_name else None
        if env is not None:
            # The job's runs are its author's: both the caller and the author must be allowed.
            access.check_environment(session, project, env, who.user_id, who.role)
            access.check_user_environment(session, env.id, job.user_id)
        job.environment_id = env.id if env else None
    if "command" in changes:
        if len(job.steps) > 1:
            raise conflict(
                f"Job {job.name} has {len(job.steps)} steps; change them with `yard jobs edit {job.name} --step ...`."
            )
        job.steps = stored_steps([JobStep(command=list(changes.pop("command")))])  # type: ignore[call-overload]
    if "tty" in changes:
        job.tty = bool(changes.pop("tty"))
    job.updated_at = utcnow()
    session.add(job)


@router.patch("/schedules/{name}", response_model=ScheduleOut)
def update_schedule(name: str, body: ScheduleUpdate, session: DB, who: Writer, svc: Svc) -> ScheduleOut:
    schedule = find_schedule(session, name)
    _may_change(session, schedule, who)
    changes = body.model_dump(exclude_unset=True)
    if "cron" in changes or "timezone" in changes:
        changes["cron"] = _checked(changes.get("cron", schedule.cron), changes.get("timezone", schedule.timezone))
    if {"environment", "command", "tty"} & set(changes):
        _change_job(session, schedule, who, changes)
    resumed = changes.get("enabled") is True and not schedule.enabled
    for key, value in changes.items():
        setattr(schedule, key, value)
    if resumed or "cron" in changes or "timezone" in changes:
        # Time spent paused is not "missed": the next tick is the next one from now.
        schedule.next_fire_at = first_fire_after(schedule, utcnow())
    schedule.updated_at = utcnow()
    session.add(schedule)
    audit.record(
        session,
        who,
        "schedule.update",
        "schedule",
        schedule.id,
        name=name,
        fields=sorted(body.model_dump(exclude_unset=True)),
    )
    session.commit()
    out = schedule_out(session, schedule)
    svc.events.publish("schedule.updated", out)
    return out


@router.delete("/schedules/{name}", status_code=204)
def delete_schedule(name: str, session: DB, who: Writer, svc: Svc) -> None:
    """Remove the schedule (the job's cron trigger); the job and every run stay."""
    schedule = find_schedule(session, name)
    _may_change(session, schedule, who)
    schedule_id = schedule.id
    remove_schedule(session, schedule)
    audit.record(session, who, "schedule.delete", "schedule", schedule_id, name=name)
    session.commit()
    svc.events.publish("schedule.deleted", ScheduleRef(id=schedule_id, name=name))


@router.post("/schedules/{name}/trigger", response_model=TickFired)
def trigger(name: str, session: DB, who: Writer, svc: Svc) -> TickFired:
    """Fire the schedule now (its overlap policy applies)."""
    begin_write(session)
    schedule = find_schedule(session, name)
    _may_change(session, schedule, who)
    result = trigger_now(session, schedule, utcnow())
    audit.record(session, who, "schedule.trigger", "schedule", schedule.id, name=name, run=result.run_id)
    session.commit()
    announce_tick(result, svc.events.publish, svc.hub.publish)
    if result.run is not None:
        svc.hub.publish("work")
    return result.fired()


@router.get("/schedules/{name}/next", response_model=list[datetime])
def next_fires(name: str, session: DB, _: Reader, count: Annotated[int, Query(ge=1, le=100)] = 5) -> list[datetime]:
    schedule = find_schedule(session, name)
    return next_times(schedule.cron, schedule.timezone, utcnow(), count)


@router.get("/schedules/{name}/ticks", response_model=list[TickOut])
def ticks(name: str, session: DB, _: Reader, limit: Annotated[int, Query(ge=1, le=1000)] = 50) -> list[TickOut]:
    schedule = find_schedule(session, name)
    rows = session.exec(
        select(ScheduleTick, Run)
        .join(Run, Run.tick_id == ScheduleTick.id, isouter=True)  # type: ignore[arg-type]
        .where(ScheduleTick.schedule_id == schedule.id)
        .order_by(col(ScheduleTick.scheduled_for).desc())
        .limit(limit)
    ).all()
    return [
        TickOut(
            id=t.id or 0,
            scheduled_for=t.scheduled_for,
            state=t.state,
            reason=t.reason,
            run_id=r.id if r else None,
            run_state=r.state if r else None,
            created_at=t.created_at,
        )
        for t, r in rows
    ]
