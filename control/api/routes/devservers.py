"""Develop servers: users start, list, show and stop their own; agents report what they see.

A developer only ever sees their own servers (another user's is a 404, like a missing one);
admins see everyone's. Viewers can list (their own: none) but never start one.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Response
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from control import access, audit
from control.api.deps import DB, AgentCaller, Reader, Svc, Writer
from control.api.errors import conflict, not_found
from control.api.routes.agents import devserver_spec, own_agent
from control.api.routes.environments import find_environment
from control.api.routes.projects import find_project
from control.api.routing import SegmentRouter
from control.api.services import Services
from control.auth import Principal
from control.db.tables import DevServer, Environment, Project, User
from control.devservers import lifecycle
from control.wire.devservers import AdoptedDevServer, DevServerCreate, DevServerOut, DevServerReport
from control.wire.errors import ApiError

router = SegmentRouter(tags=["devservers"])


def devserver_out(server: DevServer, user: str, project: str, environment: Environment | None) -> DevServerOut:
    assert server.id is not None
    return DevServerOut(
        id=server.id,
        user=user,
        project=project,
        environment=environment.name if environment else None,
        stale_environment=lifecycle.stale_environment(server, environment),
        state=server.state,
        substrate=server.substrate,
        workspace=server.workspace,
        agent_id=server.agent_id,
        restart_count=server.restart_count,
        error=server.error,
        idle_timeout_s=server.idle_timeout_s,
        last_activity_at=server.last_activity_at,
        started_at=server.started_at,
        stopped_at=server.stopped_at,
        created_at=server.created_at,
    )


def describe(session: Session, server: DevServer) -> DevServerOut:
    user = session.get(User, server.user_id)
    project = session.get(Project, server.project_id)
    env = session.get(Environment, server.environment_id) if server.environment_id else None
    return devserver_out(server, user.name if user else "?", project.name if project else "?", env)


def publish(svc: Services, summary: DevServerOut, owner_id: int) -> None:
    # Only its owner (and admins) may see a develop server, on the stream as through GET.
    svc.events.publish("devserver.updated", summary, audience=owner_id)
    svc.hub.publish(f"devserver:{summary.id}")


def find_own(session: Session, server_id: int, who: Principal) -> DevServer:
    """The server if the caller owns it (or is admin); otherwise the same 404 as a missing one."""
    server = session.get(DevServer, server_id)
    if server is None or (server.user_id != who.user_id and not who.is_admin):
        raise not_found("Develop server", server_id)
    return server


@router.post("/devservers", response_model=DevServerOut, status_code=201)
def start(body: DevServerCreate, response: Response, session: DB, who: Writer, svc: Svc) -> DevServerOut:
    """Start the caller's develop server for a project (idempotent: a running one is returned)."""
    project = find_project(session, body.project)
    env = find_environment(session, project, body.environment) if body.environment else None
    user = session.get(User, who.user_id)
    assert user is not None
    server, started = lifecycle.request_start(session, user, project, env, body.idle_timeout_s)
    if not started:
        response.status_code = 200
        return describe(session, server)
    # Checked on the environment the server will really get: a restart keeps the last one.
    # Raising here leaves the flushed start uncommitted (the session rolls back).
    access.check_user_environment(session, server.environment_id, who.user_id)
    if svc.settings.agent and svc.settings.substrate == "local":  # the embedded stack's own agent
        access.check_local_substrate(who.role, svc.settings.local_multi_user)
    audit.record(session, who, "devserver.start", "devserver", server.id, project=project.name)
    session.commit()
    summary = describe(session, server)
    publish(svc, summary, server.user_id)
    svc.hub.publish("work")
    return summary


@router.get("/devservers", response_model=list[DevServerOut])
def list_devservers(
    session: DB,
    who: Reader,
    project: Annotated[str | None, Query(max_length=64)] = None,
    all_users: Annotated[bool, Query(alias="all", description="Admins: every user's servers.")] = False,
) -> list[DevServerOut]:
    env_alias = aliased(Environment)
    statement = (
        select(DevServer, User.name, Project.name, env_alias)
        .join(User, User.id == DevServer.user_id)  # type: ignore[arg-type]
        .join(Project, Project.id == DevServer.project_id)  # type: ignore[arg-type]
        .outerjoin(env_alias, env_alias.id == DevServer.environment_id)  # type: ignore[arg-type]
        .order_by(col(DevServer.id))
    )
    if not (who.is_admin and all_users):
        statement = statement.where(DevServer.user_id == who.user_id)
    if project:
        statement = statement.where(Project.name == project)
    return [devserver_out(s, u, p, e) for s, u, p, e in session.exec(statement)]


@router.get("/devservers/{server_id}", response_model=DevServerOut)
def show(server_id: int, session: DB, who: Reader) -> DevServerOut:
    return describe(session, find_own(session, server_id, who))


@router.post("/devservers/{server_id}/stop", response_model=DevServerOut)
def stop(server_id: int, session: DB, who: Writer, svc: Svc) -> DevServerOut:
    server = find_own(session, server_id, who)
    summary = describe(session, server)
    if lifecycle.request_stop(session, server, "requested"):
        audit.record(session, who, "devserver.stop", "devserver", server.id)
        session.commit()
        svc.hub.publish("work")
        summary = describe(session, server)
        publish(svc, summary, server.user_id)  # only a change is news: a no-op stop publishes nothing
    return summary


@router.post("/agent/devservers/{server_id}/state", response_model=DevServerOut)
def agent_report(server_id: int, body: DevServerReport, session: DB, who: AgentCaller, svc: Svc) -> DevServerOut:
    """The owning agent reports a state change (started, crashed and restarting, stopped)."""
    server = session.get(DevServer, server_id)
    if server is None or server.agent_id is None:
        raise not_found("Develop server", server_id)
    own_agent(session, server.agent_id, who)
    if body.state == lifecycle.RUNNING and not body.endpoint:
        raise ApiError(422, "invalid_request", "A running develop server needs its endpoint.")
    if body.endpoint and body.endpoint.startswith("https://") and not body.tls_fingerprint:
        raise ApiError(422, "invalid_request", "An https endpoint needs the develop server's tls_fingerprint.")
    try:
        lifecycle.report(
            server, body.state, body.handle, body.endpoint, body.error, body.restart_count, body.tls_fingerprint
        )
    except lifecycle.TransitionRefused as exc:
        raise conflict(str(exc)) from exc
    session.add(server)
    session.commit()
    summary = describe(session, server)
    publish(svc, summary, server.user_id)
    return summary


@router.get("/agent/{agent_id}/devservers", response_model=list[AdoptedDevServer])
def adopted(agent_id: int, session: DB, who: AgentCaller, svc: Svc) -> list[AdoptedDevServer]:
    """What a (re)started agent should be running: it re-adopts these by handle or restarts them."""
    own_agent(session, agent_id, who)
    adopted = []
    for server in lifecycle.owned_by_agent(session, agent_id):
        try:
            access.check_user_environment(session, server.environment_id, server.user_id)
            spec = devserver_spec(session, server)
        except access.AccessRefused:
            # Its user lost the environment while no agent watched: stop it, never restart it with secrets.
            lifecycle.request_stop(session, server, "environment access revoked")
            session.commit()
            svc.hub.publish("work")
            spec = devserver_spec(session, server, secrets=False)
        adopted.append(
            AdoptedDevServer(
                id=server.id or 0,
                state=server.state,
                handle=server.handle,
                endpoint=server.endpoint,
                tls_fingerprint=server.tls_fingerprint,
                workspace=server.workspace,
                secret=server.secret,
                restart_count=server.restart_count,
                env=spec.env,
                image=spec.image,
                resources=spec.resources,
            )
        )
    return adopted
