"""Notifications of a project (and of its jobs), and the record of every delivery.

The project's owner, its maintainers and admins add and remove them; anyone who works in the
project lists them. A channel's secret parts (a Slack URL, a webhook URL and its signing secret)
are sealed at rest and never returned; ``target`` says where a notification goes without them.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Query
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from control import access, audit, standard_webhooks
from control.api.deps import DB, Reader, Svc, Writer
from control.api.errors import conflict, forbidden
from control.api.routes.projects import find_project
from control.api.routing import SegmentRouter
from control.auth import Principal
from control.clock import utcnow
from control.db.tables import Delivery, DeliveryAttempt, Notification, Project
from control.notifications import dispatcher, jobs
from control.wire.errors import NOT_FOUND, ApiError
from control.wire.fields import Name
from control.wire.notifications import (
    AttemptOut,
    DeliveryOut,
    NotificationCreate,
    NotificationCreated,
    NotificationOut,
)
from control.wire.resources import ProjectRole, Role

router = SegmentRouter(tags=["notifications"])

MAX_DELIVERIES = 500


def require_manager(session: Session, project: Project, who: Principal) -> None:
    """The owner, a maintainer or an admin: they decide where the project's news goes."""
    if who.is_admin or project.owner_id == who.user_id:
        return
    if access.member_role(session, project, who.user_id) is ProjectRole.maintainer:
        return
    raise forbidden(
        f"Only the owner of project {project.name}, its maintainers or an admin can change its notifications."
    )


def require_worker(session: Session, project: Project, who: Principal) -> None:
    if not access.works_in(session, project, who.user_id, who.role) and who.role is not Role.viewer:
        raise forbidden(f"Only members of project {project.name} can see its notifications.")


def target_of(body: NotificationCreate) -> str:
    """Where it goes, shown without secret parts: a Slack URL is the credential, a webhook URL's
    path and query may hold one too."""
    if body.channel == "email":
        return ", ".join(body.to)[:300]
    assert body.url is not None
    parts = urlsplit(body.url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"[:300]


def notification_out(notification: Notification, project: Project, job: str | None) -> NotificationOut:
    assert notification.id is not None
    return NotificationOut(
        id=notification.id,
        project=project.name,
        job=job,
        name=notification.name,
        channel=notification.channel,  # type: ignore[arg-type]
        events=notification.events,  # type: ignore[arg-type]
        target=notification.target,
        enabled=notification.enabled,
        created_at=notification.created_at,
    )


def find_notification(session: Session, project: Project, name: str) -> Notification:
    found = session.exec(
        select(Notification).where(Notification.project_id == project.id, Notification.name == name)
    ).first()
    if found is None:
        raise ApiError(404, NOT_FOUND, f"Notification {project.name}/{name} does not exist.")
    return found


@router.post("/projects/{project}/notifications", response_model=NotificationCreated, status_code=201)
def add_notification(project: str, body: NotificationCreate, session: DB, who: Writer, svc: Svc) -> NotificationCreated:
    proj = find_project(session, project)
    require_manager(session, proj, who)
    if body.channel == "email" and not svc.settings.smtp_host:
        raise ApiError(
            409, "smtp_not_configured", "E-mail notifications need an SMTP server; set DEVYARD_SMTP_HOST on the API."
        )
    assert proj.id is not None
    job_id = jobs.job_id(session, proj, body.job) if body.job else None
    config: dict[str, str] = {}
    signing_secret = None
    if body.channel == "email":
        config["to"] = ",".join(body.to)
    else:
        assert body.url is not None
        config["url"] = body.url
    if body.channel == "webhook":
        signing_secret = body.secret or standard_webhooks.new_secret()
        config["secret"] = signing_secret
    notification = Notification(
        project_id=proj.id,
        job_id=job_id,
        name=body.name,
        channel=body.channel,
        events=list(dict.fromkeys(body.events)),
        target=target_of(body),
        config=config,
        created_by=who.user_id,
    )
    session.add(notification)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise conflict(f"Notification {project}/{body.name} already exists.") from None
    # Where it goes and on what, never the URL or the secret.
    audit.record(
        session,
        who,
        "notification.create",
        "notification",
        notification.id,
        project=project,
        name=body.name,
        channel=body.channel,
        target=notification.target,
        events=notification.events,
        job=body.job,
    )
    session.commit()
    out = notification_out(notification, proj, body.job)
    # Shown once when we made it up; a secret the caller chose is theirs already.
    return NotificationCreated(**out.model_dump(), signing_secret=signing_secret if body.secret is None else None)


@router.get("/projects/{project}/notifications", response_model=list[NotificationOut])
def list_notifications(project: str, session: DB, who: Reader) -> list[NotificationOut]:
    proj = find_project(session, project)
    require_worker(session, proj, who)
    rows = session.exec(
        select(Notification).where(Notification.project_id == proj.id).order_by(col(Notification.name))
    ).all()
    names = jobs.job_names(session, [n.job_id for n in rows if n.job_id is not None])
    return [notification_out(n, proj, names.get(n.job_id) if n.job_id else None) for n in rows]


@router.delete("/projects/{project}/notifications/{name}", status_code=204)
def remove_notification(project: str, name: Name, session: DB, who: Writer) -> None:
    proj = find_project(session, project)
    require_manager(session, proj, who)
    notification = find_notification(session, proj, name)
    # Its deliveries stay as history; one not sent yet fails with the reason when its turn comes.
    for delivery in session.exec(select(Delivery).where(Delivery.notification_id == notification.id)):
        delivery.notification_id = None
        session.add(delivery)
    session.flush()
    session.delete(notification)
    audit.record(session, who, "notification.delete", "notification", notification.id, project=project, name=name)
    session.commit()


@router.post("/projects/{project}/notifications/{name}/test", response_model=DeliveryOut)
async def test_notification(project: str, name: Name, session: DB, who: Writer, svc: Svc) -> DeliveryOut:
    """Send a sample message now, once (no retries), and answer with the attempt."""
    from starlette.concurrency import run_in_threadpool

    delivery_id = await run_in_threadpool(_queue_test, session, project, name, who, svc)
    await dispatcher.attempt(svc, delivery_id, retries=False)
    return await run_in_threadpool(_delivery_now, session, delivery_id)


def _delivery_now(session: Session, delivery_id: int) -> DeliveryOut:
    session.expire_all()
    delivery = session.get(Delivery, delivery_id)
    assert delivery is not None
    return deliveries_out(session, [delivery])[0]


def _queue_test(session: Session, project: str, name: str, who: Principal, svc: Svc) -> int:
    proj = find_project(session, project)
    require_manager(session, proj, who)
    notification = find_notification(session, proj, name)
    assert proj.id is not None
    # Taken by this request at once (state sending): the delivery loop leaves it alone.
    delivery = Delivery(
        project_id=proj.id,
        notification_id=notification.id,
        channel=notification.channel,
        target=notification.target,
        event="test",
        payload={"project": proj.name},
        state="sending",
        lease_until=utcnow() + dispatcher._lease(svc),
    )
    session.add(delivery)
    audit.record(session, who, "notification.test", "notification", notification.id, project=project, name=name)
    session.commit()
    assert delivery.id is not None
    return delivery.id


@router.get("/notifications/deliveries", response_model=list[DeliveryOut])
def list_deliveries(
    session: DB,
    who: Reader,
    project: Annotated[str | None, Query(max_length=64)] = None,
    run: Annotated[int | None, Query(ge=1)] = None,
    failed: Annotated[bool, Query(description="Only deliveries that failed for good.")] = False,
    limit: Annotated[int, Query(ge=1, le=MAX_DELIVERIES)] = 50,
) -> list[DeliveryOut]:
    """The newest deliveries first, each with every attempt and its answer."""
    statement = select(Delivery).order_by(col(Delivery.id).desc()).limit(limit)
    if project is not None:
        proj = find_project(session, project)
        require_worker(session, proj, who)
        statement = statement.where(Delivery.project_id == proj.id)
    elif not who.is_admin:
        visible = [p.id for p in session.exec(select(Project)) if _works_in(session, p, who)]
        statement = statement.where(col(Delivery.project_id).in_(visible))
    if run is not None:
        statement = statement.where(Delivery.run_id == run)
    if failed:
        statement = statement.where(Delivery.state == "failed")
    return deliveries_out(session, list(session.exec(statement)))


def _works_in(session: Session, project: Project, who: Principal) -> bool:
    return who.role is Role.viewer or access.works_in(session, project, who.user_id, who.role)


def deliveries_out(session: Session, rows: list[Delivery]) -> list[DeliveryOut]:
    ids = [d.id for d in rows]
    attempts: dict[int, list[AttemptOut]] = {}
    for attempt in session.exec(
        select(DeliveryAttempt).where(col(DeliveryAttempt.delivery_id).in_(ids)).order_by(col(DeliveryAttempt.number))
    ):
        attempts.setdefault(attempt.delivery_id, []).append(
            AttemptOut(
                number=attempt.number,
                at=attempt.at,
                duration_ms=attempt.duration_ms,
                ok=attempt.ok,
                status_code=attempt.status_code,
                answer=attempt.answer,
            )
        )
    projects = {
        p.id: p.name for p in session.exec(select(Project).where(col(Project.id).in_({d.project_id for d in rows})))
    }
    notification_ids = {d.notification_id for d in rows if d.notification_id is not None}
    names = {n.id: n.name for n in session.exec(select(Notification).where(col(Notification.id).in_(notification_ids)))}
    out = []
    for delivery in rows:
        assert delivery.id is not None
        out.append(
            DeliveryOut(
                id=delivery.id,
                project=projects.get(delivery.project_id, "?"),
                run_id=delivery.run_id,
                notification=names.get(delivery.notification_id) if delivery.notification_id else None,
                channel=delivery.channel,  # type: ignore[arg-type]
                target=delivery.target,
                event=delivery.event,
                state=delivery.state,  # type: ignore[arg-type]
                attempts=attempts.get(delivery.id, []),
                next_attempt_at=delivery.next_attempt_at if delivery.state == "pending" else None,
                last_error=delivery.last_error,
                created_at=delivery.created_at,
                finished_at=delivery.finished_at,
            )
        )
    return out
