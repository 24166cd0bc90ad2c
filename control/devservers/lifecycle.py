"""Develop server lifecycle: pending → starting → running → stopping → stopped / failed.

The API writes the row and a work item in one transaction (like runs); the agent that claims
the start item owns the server from then on, so stop requests and restarts go to its private
queue ``agent:<id>``. Starting again after a stop reuses the row and the same workspace.
"""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from control.clock import utcnow
from control.db.tables import DevServer, Environment, Project, User, WorkItem

PENDING, STARTING, RUNNING, STOPPING, STOPPED, FAILED = (
    "pending",
    "starting",
    "running",
    "stopping",
    "stopped",
    "failed",
)
ALL = frozenset({PENDING, STARTING, RUNNING, STOPPING, STOPPED, FAILED})
ACTIVE = frozenset({PENDING, STARTING, RUNNING})
# What an agent may report; pending and stopping are the control plane's to set.
AGENT_REPORTS = frozenset({STARTING, RUNNING, STOPPED, FAILED})
DEFAULT_IDLE_TIMEOUT_S = 3600


class TransitionRefused(Exception):
    """The server is not in a state that allows this; the message is one sentence."""


def workspace_of(user: User, project: Project) -> str:
    """The workspace folder on the shared volume. Names are slugs (no '/', never '..')."""
    return f"workspaces/{user.name}/{project.name}"


def find_for(session: Session, user_id: int, project_id: int) -> DevServer | None:
    return session.exec(
        select(DevServer).where(DevServer.user_id == user_id, DevServer.project_id == project_id)
    ).first()


def _queue(session: Session, server: DevServer) -> str:
    if server.agent_id is not None:
        return f"agent:{server.agent_id}"
    env = session.get(Environment, server.environment_id) if server.environment_id else None
    return env.agent_queue if env else "default"


def request_start(
    session: Session,
    user: User,
    project: Project,
    environment: Environment | None,
    idle_timeout_s: int | None = None,
) -> tuple[DevServer, bool]:
    """Start the (user, project) server unless it is already up; returns (server, started).

    Idempotent: a pending, starting or running server is returned as is. The caller commits.
    """
    assert user.id is not None and project.id is not None
    server = find_for(session, user.id, project.id)
    if server is not None and server.state in ACTIVE:
        return server, False
    now = utcnow()
    server = server or DevServer(user_id=user.id, project_id=project.id)
    server.environment_id = environment.id if environment else server.environment_id
    server.workspace = workspace_of(user, project)
    server.state, server.error, server.handle, server.endpoint = PENDING, None, None, None
    server.tls_fingerprint = None
    # A fresh secret per start: one that leaked from a stopped server is worth nothing.
    server.secret = secrets.token_urlsafe(32)
    server.restart_count, server.stopped_at, server.last_activity_at = 0, None, now
    # Any agent of the environment's queue may take a fresh start; the owner is set at claim.
    server.agent_id = None
    if idle_timeout_s is not None:
        server.idle_timeout_s = idle_timeout_s
    elif server.id is None:
        server.idle_timeout_s = DEFAULT_IDLE_TIMEOUT_S
    session.add(server)
    session.flush()
    session.add(WorkItem(kind="devserver_start", queue=_queue(session, server), devserver_id=server.id))
    return server, True


def request_stop(session: Session, server: DevServer, reason: str) -> bool:
    """Ask the owning agent to stop the server; False when it is not running. The caller commits."""
    if server.state not in ACTIVE:
        return False
    unclaimed = session.exec(
        select(WorkItem).where(
            WorkItem.devserver_id == server.id, WorkItem.kind == "devserver_start", WorkItem.state == "pending"
        )
    ).all()
    for item in unclaimed:
        item.state = "done"
        session.add(item)
    if server.state == PENDING and unclaimed:
        # No agent has it yet: nothing to stop.
        server.state, server.stopped_at = STOPPED, utcnow()
    else:
        server.state = STOPPING
        session.add(
            WorkItem(
                kind="devserver_stop", queue=_queue(session, server), devserver_id=server.id, payload={"reason": reason}
            )
        )
    session.add(server)
    return True


def claimed(server: DevServer, agent_id: int) -> None:
    """An agent took the start: it reads the environment's variables now."""
    server.agent_id, server.state = agent_id, STARTING
    server.environment_read_at = utcnow()


def stale_environment(server: DevServer, environment: Environment | None) -> bool:
    """Whether the server runs with older values than its environment has now (a restart,
    `yard dev restart`, gives it the new ones)."""
    return (
        environment is not None
        and server.state in (STARTING, RUNNING)
        and server.environment_read_at is not None
        and environment.updated_at > server.environment_read_at
    )


def report(
    server: DevServer,
    state: str,
    handle: str | None,
    endpoint: str | None,
    error: str | None,
    restart_count: int | None,
    tls_fingerprint: str | None = None,
) -> None:
    """Apply what the owning agent saw. A stop in progress is not undone by a late 'running'.
    The endpoint and its certificate's fingerprint are set and cleared together."""
    if state not in AGENT_REPORTS:
        raise TransitionRefused(f"An agent cannot report state {state!r}.")
    if server.state in (STOPPED, PENDING) and state != STOPPED:
        raise TransitionRefused(f"Develop server {server.id} is {server.state}; the report is stale.")
    if server.state == STOPPING and state in (STARTING, RUNNING):
        raise TransitionRefused(f"Develop server {server.id} is stopping.")
    now = utcnow()
    server.state, server.error = state, error
    if handle is not None:
        server.handle = handle
    if restart_count is not None:
        server.restart_count = restart_count
    if state == RUNNING:
        server.endpoint, server.tls_fingerprint, server.started_at = endpoint, tls_fingerprint, now
        server.last_activity_at = max(server.last_activity_at or now, now)
    elif state in (STOPPED, FAILED):
        server.endpoint, server.tls_fingerprint, server.stopped_at = None, None, now
    elif state == STARTING:
        server.endpoint = server.tls_fingerprint = None


def touch(server: DevServer, now: datetime) -> None:
    server.last_activity_at = now


def owned_by_agent(session: Session, agent_id: int) -> list[DevServer]:
    """Servers an agent should be running (for re-adoption after the agent restarts)."""
    return list(
        session.exec(
            select(DevServer).where(DevServer.agent_id == agent_id, col(DevServer.state).in_((STARTING, RUNNING)))
        )
    )


def record_stopped(engine: Engine, server_ids: list[int]) -> None:
    """Record servers as stopped without an agent report: the embedded stack stopped them as it
    shut down, after its API had gone."""
    if not server_ids:
        return
    now = utcnow()
    with Session(engine) as session:
        for server in session.exec(select(DevServer).where(col(DevServer.id).in_(server_ids))):
            server.state, server.endpoint, server.stopped_at, server.error = STOPPED, None, now, None
            server.tls_fingerprint = None
            session.add(server)
        for item in session.exec(
            select(WorkItem).where(
                col(WorkItem.devserver_id).in_(server_ids), col(WorkItem.state).in_(("pending", "claimed"))
            )
        ):
            item.state = "done"
            session.add(item)
        session.commit()
