"""Schedules: cron runs of a project. Readers list them; the project's owner (or an admin) changes them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Query
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, delete, select

from control import access, audit
from control.api.deps import DB, Reader, Svc, Writer
from control.api.errors import conflict, forbidden, not_found
from control.api.routes.environments import find_environment
from control.api.routes.projects import find_project
from control.api.routing import SegmentRouter
from control.auth import Principal
from control.clock import utcnow
from control.db.engine import begin_write
from control.db.tables import Environment, Project, Run, Schedule, ScheduleTick, User
from control.schedules.cron import ScheduleInvalid, next_times, validate, zone
from control.schedules.ticks import announce_tick, first_fire_after, trigger_now
from control.wire.errors import ApiError
from control.wire.events import ScheduleRef
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
    env = session.get(Environment, schedule.environment_id) if schedule.environment_id else None
    user = session.get(User, schedule.user_id)
    return ScheduleOut(
        id=schedule.id,
        name=schedule.name,
        project=project.name if project else "?",
        environment=env.name if env else None,
        user=user.name if user else "?",
        command=schedule.command,
        cron=schedule.cron,
        timezone=schedule.timezone,
        enabled=schedule.enabled,
        catchup=schedule.catchup,
        catchup_cap=schedule.catchup_cap,
        overlap=schedule.overlap,
        tty=schedule.tty,
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
    if not who.is_admin and (project is None or project.owner_id != who.user_id):
        raise forbidden(
            f"Only the owner of project {project.name if project else '?'} or an admin can change schedule {schedule.name}."
        )


def _checked(cron: str, timezone: str) -> str:
    try:
        zone(timezone)
        return validate(cron)
    except ScheduleInvalid as exc:
        raise ApiError(422, "invalid_request", str(exc)) from None


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
    if project.owner_id != who.user_id and not who.is_admin:
        raise forbidden(f"Only the owner of project {project.name} or an admin can schedule runs in it.")
    env = find_environment(session, project, body.environment) if body.environment else None
    if env is not None:
        access.check_environment(session, project, env, who.user_id, who.role)
    assert project.id is not None
    schedule = Schedule(
        name=body.name,
        project_id=project.id,
        environment_id=env.id if env else None,
        user_id=who.user_id,
        command=body.command,
        cron=cron,
        timezone=body.timezone,
        enabled=body.enabled,
        catchup=body.catchup,
        catchup_cap=body.catchup_cap,
        overlap=body.overlap,
        tty=body.tty,
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


@router.patch("/schedules/{name}", response_model=ScheduleOut)
def update_schedule(name: str, body: ScheduleUpdate, session: DB, who: Writer, svc: Svc) -> ScheduleOut:
    schedule = find_schedule(session, name)
    _may_change(session, schedule, who)
    changes = body.model_dump(exclude_unset=True)
    if "cron" in changes or "timezone" in changes:
        changes["cron"] = _checked(changes.get("cron", schedule.cron), changes.get("timezone", schedule.timezone))
    if "environment" in changes:
        project = session.get(Project, schedule.project_id)
        assert project is not None
        env_name = changes.pop("environment")
        env = find_environment(session, project, env_name) if env_name else None
        if env is not None:
            # The schedule's runs are its author's: both the caller and the author must be allowed.
            access.check_environment(session, project, env, who.user_id, who.role)
            access.check_user_environment(session, env.id, schedule.user_id)
        schedule.environment_id = env.id if env else None
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
    schedule = find_schedule(session, name)
    _may_change(session, schedule, who)
    # Runs keep their history; only the link to the schedule and its ticks go.
    for run in session.exec(select(Run).where(Run.schedule_id == schedule.id)):
        run.schedule_id, run.tick_id = None, None
        session.add(run)
    session.flush()
    session.execute(delete(ScheduleTick).where(col(ScheduleTick.schedule_id) == schedule.id))
    session.delete(schedule)
    audit.record(session, who, "schedule.delete", "schedule", schedule.id, name=name)
    session.commit()
    svc.events.publish("schedule.deleted", ScheduleRef(id=schedule.id, name=name))


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
