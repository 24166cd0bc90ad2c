"""Environments of a project: variables, secrets (write-only, encrypted at rest), agent queue,
image, resources."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select
from starlette.concurrency import run_in_threadpool

from control import audit
from control.api.deps import DB, Reader, Svc, Writer
from control.api.errors import SecretsLocked, conflict
from control.api.routes.members import announce_stops, stop_refused_devservers
from control.api.routes.projects import find_project, require_owner
from control.api.routing import SegmentRouter
from control.bootstrap import prepare_secrets
from control.clock import utcnow
from control.db.tables import Environment, Project
from control.secretbox import SecretsUnreadable
from control.wire.errors import ENVIRONMENT_NOT_FOUND, ApiError
from control.wire.events import EnvironmentRef
from control.wire.resources import EnvironmentCreate, EnvironmentOut, EnvironmentUpdate


@asynccontextmanager
async def _secrets_at_rest(app: FastAPI) -> AsyncIterator[None]:
    """When the API starts: bind the secret keys to the engine and seal plaintext secrets."""
    services = app.state.services
    await run_in_threadpool(prepare_secrets, services.engine, services.settings)
    yield


router = SegmentRouter(tags=["environments"], lifespan=_secrets_at_rest)


def secrets_of(env: Environment, project: str) -> dict[str, str]:
    """The decrypted secrets of ``env``, or the clear error when the keys do not fit."""
    try:
        return dict(env.secrets)
    except SecretsUnreadable:
        raise SecretsLocked(f"{project}/{env.name}") from None


def environment_out(env: Environment, project: Project) -> EnvironmentOut:
    assert env.id is not None
    return EnvironmentOut(
        id=env.id,
        project=project.name,
        name=env.name,
        variables=env.variables,
        secret_names=sorted(secrets_of(env, project.name)),
        agent_queue=env.agent_queue,
        image=env.image,
        resources=env.resources,
        max_concurrent_runs=env.max_concurrent_runs,
        protected=env.protected,
        kind=env.kind,  # type: ignore[arg-type]
        branch=env.branch,
        created_at=env.created_at,
        updated_at=env.updated_at,
    )


def find_environment(session: Session, project: Project, name: str) -> Environment:
    env = session.exec(
        select(Environment).where(Environment.project_id == project.id, Environment.name == name)
    ).first()
    if env is None:
        raise ApiError(404, ENVIRONMENT_NOT_FOUND, f"Environment {project.name}/{name} does not exist.")
    return env


@router.get("/projects/{project}/environments", response_model=list[EnvironmentOut])
def list_environments(project: str, session: DB, _: Reader) -> list[EnvironmentOut]:
    proj = find_project(session, project)
    envs = session.exec(select(Environment).where(Environment.project_id == proj.id).order_by(Environment.name))
    return [environment_out(e, proj) for e in envs]


@router.get("/projects/{project}/environments/{name}", response_model=EnvironmentOut)
def get_environment(project: str, name: str, session: DB, _: Reader) -> EnvironmentOut:
    proj = find_project(session, project)
    return environment_out(find_environment(session, proj, name), proj)


@router.post("/projects/{project}/environments", response_model=EnvironmentOut, status_code=201)
def create_environment(project: str, body: EnvironmentCreate, session: DB, who: Writer, svc: Svc) -> EnvironmentOut:
    proj = find_project(session, project)
    require_owner(proj, who)
    assert proj.id is not None
    env = Environment(project_id=proj.id, **body.model_dump())
    session.add(env)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise conflict(f"Environment {project}/{body.name} already exists.") from None
    # Secret values never go to the audit log, only their names.
    audit.record(
        session,
        who,
        "environment.create",
        "environment",
        env.id,
        project=project,
        name=body.name,
        secret_names=sorted(body.secrets),
    )
    session.commit()
    svc.events.publish("environment.created", EnvironmentRef(id=env.id, project=project, name=env.name))
    return environment_out(env, proj)


@router.patch("/projects/{project}/environments/{name}", response_model=EnvironmentOut)
def update_environment(
    project: str, name: str, body: EnvironmentUpdate, session: DB, who: Writer, svc: Svc
) -> EnvironmentOut:
    proj = find_project(session, project)
    require_owner(proj, who)
    env = find_environment(session, proj, name)
    changes = body.model_dump(exclude_unset=True)
    if "secrets" in changes:
        merged = {**secrets_of(env, project), **changes.pop("secrets")}
        env.secrets = {k: v for k, v in merged.items() if v != ""}
    for key, value in changes.items():
        setattr(env, key, value)
    env.updated_at = utcnow()
    session.add(env)
    session.flush()
    stopping = stop_refused_devservers(session, proj)
    audit.record(
        session,
        who,
        "environment.update",
        "environment",
        env.id,
        project=project,
        name=name,
        fields=sorted(body.model_dump(exclude_unset=True)),
    )
    session.commit()
    svc.events.publish("environment.updated", EnvironmentRef(id=env.id, project=project, name=name))
    announce_stops(session, svc, stopping)
    return environment_out(env, proj)


@router.delete("/projects/{project}/environments/{name}", status_code=204)
def delete_environment(project: str, name: str, session: DB, who: Writer, svc: Svc) -> None:
    proj = find_project(session, project)
    require_owner(proj, who)
    env = find_environment(session, proj, name)
    session.delete(env)
    audit.record(session, who, "environment.delete", "environment", env.id, project=project, name=name)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise conflict(f"Environment {project}/{name} is still used by runs or jobs.") from None
    svc.events.publish("environment.deleted", EnvironmentRef(id=env.id, project=project, name=name))
