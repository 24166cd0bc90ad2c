"""Git webhooks: a project's inbound endpoints (GitHub, GitLab, Standard Webhooks) and the route
providers call, ``POST /api/v1/hooks/{provider}/{project}``.

The inbound route takes no bearer token: the request proves itself with the project's secret
(compared in constant time, control/hooks/signatures.py). A request that does not is 401 and
audited; a delivery id seen before is answered ``duplicate`` and starts nothing; an event that
starts nothing is 202 ``ignored``; a body over ``hook_max_body_bytes`` is 413.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select
from starlette.concurrency import run_in_threadpool

from control import audit
from control.api.deps import DB, Reader, Svc, Writer
from control.api.routes.notifications import require_manager, require_worker
from control.api.routes.projects import find_project
from control.api.routing import SegmentRouter
from control.api.services import Services
from control.clock import utcnow
from control.db.tables import HookDelivery, Project, ProjectHook
from control.hooks import events, signatures
from control.hooks.status import api_url_of
from control.hooks.triggers import start_runs
from control.notifications.outbox import WAKE_KEY
from control.standard_webhooks import new_secret
from control.wire.errors import NOT_FOUND, ApiError
from control.wire.hooks import HookAnswer, HookCreated, HookDeliveryOut, HookOut, HookSet, Provider

router = SegmentRouter(tags=["webhooks"])

HOOK_NOT_FOUND = "hook_not_found"
INVALID_SIGNATURE = "invalid_signature"


def hook_url(svc: Services, provider: str, project: str) -> str:
    return f"{svc.settings.effective_public_url}/api/v1/hooks/{provider}/{project}"


def hook_out(svc: Services, hook: ProjectHook, project: Project) -> HookOut:
    return HookOut(
        project=project.name,
        provider=hook.provider,  # type: ignore[arg-type]
        url=hook_url(svc, hook.provider, project.name),
        statuses=hook.status_token is not None,
        api_url=api_url_of(hook),
        created_at=hook.created_at,
        updated_at=hook.updated_at,
    )


def find_hook(session: Session, project: Project, provider: str) -> ProjectHook | None:
    return session.exec(
        select(ProjectHook).where(ProjectHook.project_id == project.id, ProjectHook.provider == provider)
    ).first()


@router.put("/projects/{project}/hooks/{provider}", response_model=HookCreated)
def set_hook(project: str, provider: Provider, body: HookSet, session: DB, who: Writer, svc: Svc) -> JSONResponse:
    """Create the project's webhook from ``provider`` (201, with the secret once if we made it)
    or change it (200)."""
    proj = find_project(session, project)
    require_manager(session, proj, who)
    assert proj.id is not None
    hook = find_hook(session, proj, provider)
    created = hook is None
    made = None
    if hook is None:
        secret = body.secret or new_secret()
        made = None if body.secret else secret
        hook = ProjectHook(project_id=proj.id, provider=provider, secret=secret)
    changes = body.model_dump(exclude_unset=True)
    if body.secret:
        hook.secret = body.secret
    if "status_token" in changes:
        hook.status_token = body.status_token
    if "api_url" in changes:
        hook.api_url = body.api_url
    hook.updated_at = utcnow()
    session.add(hook)
    try:
        session.flush()
    except IntegrityError:  # another request created it at the same moment
        session.rollback()
        raise ApiError(409, "conflict", f"The {provider} webhook of {project} was just created; try again.") from None
    # Which settings changed, never their values.
    audit.record(
        session, who, "hook.create" if created else "hook.update", "project", proj.id,
        provider=provider, fields=sorted(changes) or ["secret"],
    )  # fmt: skip
    session.commit()
    out = HookCreated(**hook_out(svc, hook, proj).model_dump(), secret=made)
    return JSONResponse(out.model_dump(mode="json"), 201 if created else 200)


@router.get("/projects/{project}/hooks", response_model=list[HookOut])
def list_hooks(project: str, session: DB, who: Reader, svc: Svc) -> list[HookOut]:
    proj = find_project(session, project)
    require_worker(session, proj, who)
    hooks = session.exec(select(ProjectHook).where(ProjectHook.project_id == proj.id).order_by(ProjectHook.provider))
    return [hook_out(svc, hook, proj) for hook in hooks]


@router.delete("/projects/{project}/hooks/{provider}", status_code=204)
def remove_hook(project: str, provider: Provider, session: DB, who: Writer) -> None:
    proj = find_project(session, project)
    require_manager(session, proj, who)
    hook = find_hook(session, proj, provider)
    if hook is None:
        raise ApiError(404, NOT_FOUND, f"Project {project} has no {provider} webhook.")
    session.delete(hook)
    audit.record(session, who, "hook.delete", "project", proj.id, provider=provider)
    session.commit()


@router.get("/projects/{project}/hooks/deliveries", response_model=list[HookDeliveryOut])
def list_hook_deliveries(
    project: str,
    session: DB,
    who: Reader,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[HookDeliveryOut]:
    """What each accepted delivery did, newest first."""
    proj = find_project(session, project)
    require_worker(session, proj, who)
    rows = session.exec(
        select(HookDelivery)
        .where(HookDelivery.project_id == proj.id)
        .order_by(col(HookDelivery.id).desc())
        .limit(limit)
    )
    return [
        HookDeliveryOut(
            id=row.id or 0,
            project=proj.name,
            provider=row.provider,  # type: ignore[arg-type]
            delivery_id=row.delivery_id,
            event=row.event,
            outcome=row.outcome,  # type: ignore[arg-type]
            detail=row.detail,
            run_ids=row.run_ids,
            received_at=row.received_at,
        )
        for row in rows
    ]


async def _body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "too_large", f"Webhook bodies may be at most {limit} bytes.")
    parts, seen = [], 0
    async for piece in request.stream():
        seen += len(piece)
        if seen > limit:
            raise ApiError(413, "too_large", f"Webhook bodies may be at most {limit} bytes.")
        parts.append(piece)
    return b"".join(parts)


@router.post(
    "/hooks/{provider}/{project}",
    response_model=HookAnswer,
    openapi_extra={"security": []},
    responses={202: {"model": HookAnswer, "description": "The event starts nothing; ignored."}},
)
async def receive(provider: Provider, project: str, request: Request, svc: Svc) -> JSONResponse:
    """A provider's delivery: proven by the project's secret, acted on once per delivery id."""
    body = await _body(request, svc.settings.hook_max_body_bytes)
    headers = {name.lower(): value for name, value in request.headers.items()}
    client = request.client.host if request.client else None
    answer, status = await run_in_threadpool(handle_delivery, svc, provider, project, headers, body, client)
    if answer.runs:
        svc.hub.publish("work", WAKE_KEY)
    return JSONResponse(answer.model_dump(mode="json"), status)


def handle_delivery(
    svc: Services, provider: str, project: str, headers: dict[str, str], body: bytes, client: str | None
) -> tuple[HookAnswer, int]:
    with Session(svc.engine, expire_on_commit=False) as session:
        proj = session.exec(select(Project).where(Project.name == project)).first()
        hook = find_hook(session, proj, provider) if proj is not None else None
        if proj is None or hook is None:
            # The same answer for a missing project: the caller has proven nothing yet.
            raise ApiError(404, HOOK_NOT_FOUND, f"No {provider} webhook is set up for project {project}.")
        try:
            delivery_id = signatures.VERIFY[provider](hook.secret, headers, body)[:200]
        except signatures.Refused as exc:
            audit.record(
                session, None, "hook.refused", "project", proj.id, provider=provider, reason=str(exc), client=client
            )
            session.commit()
            raise ApiError(401, INVALID_SIGNATURE, str(exc)) from None
        return _act(svc, session, proj, provider, delivery_id, headers, body)


def _parse(provider: str, headers: dict[str, str], payload: Any) -> tuple[str, events.GitEvent]:
    if provider == "github":
        name = headers.get("x-github-event", "")
        return name or "?", events.github(name, payload)
    if provider == "gitlab":
        name = str(payload.get("object_kind") or headers.get("x-gitlab-event") or "?")
        return name, events.gitlab(payload)
    return str(payload.get("type") or "?"), events.standard(payload)


def _act(
    svc: Services, session: Session, project: Project, provider: str, delivery_id: str, headers: dict[str, str],
    body: bytes,
) -> tuple[HookAnswer, int]:  # fmt: skip
    assert project.id is not None
    try:
        payload = json.loads(body)
        if not isinstance(payload, dict):
            raise ValueError("not an object")
    except ValueError:
        raise ApiError(400, "bad_request", "The webhook body is not a JSON object.") from None
    event_name = str(headers.get("x-github-event") or payload.get("object_kind") or payload.get("type") or "?")
    record = HookDelivery(
        project_id=project.id, provider=provider, delivery_id=delivery_id, event="?", outcome="ignored"
    )
    try:
        event_name, event = _parse(provider, headers, payload)
    except events.Ignored as exc:
        record.event, record.detail = event_name[:64], str(exc)[:1000]
        return _record(session, record, delivery_id, 202)
    except events.Malformed as exc:
        raise ApiError(
            422, "invalid_payload", f"The {event_name} payload is not what {provider} sends: {exc}"
        ) from None
    record.event = event_name[:64]
    session.add(record)
    try:
        session.flush()  # claims the delivery id before anything runs
    except IntegrityError:
        session.rollback()
        return HookAnswer(status="duplicate", delivery=delivery_id, detail="Seen before; nothing was run again."), 200
    started = start_runs(session, project, provider, event, delivery_id, svc)
    record.outcome = "accepted"
    record.detail = started.detail[:1000]
    record.run_ids = [run.id for run in started.runs if run.id is not None]
    session.add(record)
    session.commit()
    started.announce()
    answer = HookAnswer(status="accepted", delivery=delivery_id, detail=started.detail, runs=record.run_ids)
    return answer, 200


def _record(session: Session, record: HookDelivery, delivery_id: str, status: int) -> tuple[HookAnswer, int]:
    session.add(record)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        return HookAnswer(status="duplicate", delivery=delivery_id, detail="Seen before; nothing was run again."), 200
    return HookAnswer(status="ignored", delivery=delivery_id, detail=record.detail), status
