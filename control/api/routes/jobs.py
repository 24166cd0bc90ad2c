"""Jobs: saved run definitions of a project. Readers list them; the project's owner, its
maintainers and admins define them; whoever may start runs in the project runs them."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Response
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select, update

from control import access, audit
from control.api.deps import DB, Reader, Svc, Writer
from control.api.errors import conflict, forbidden
from control.api.routes.environments import find_environment
from control.api.routes.projects import find_project
from control.api.routes.runs import publish_run
from control.api.routing import SegmentRouter
from control.api.services import Services
from control.auth import Principal
from control.clock import utcnow
from control.db.engine import begin_write
from control.db.tables import Environment, Job, Project, Run
from control.jobs.definition import job_code, may_change, run_request, stored_steps
from control.jobs.summary import describe_job
from control.jobs.triggers import TriggerRefused, followers_of, remove_all, set_triggers
from control.notifications.purge import forget_job
from control.runs.create import create_run
from control.runs.summary import describe_run
from control.wire.errors import JOB_NOT_FOUND, ApiError
from control.wire.events import JobRef
from control.wire.jobs import JobCreate, JobOut, JobRunCreate, JobUpdate
from control.wire.runs import RunOut

router = SegmentRouter(tags=["jobs"])


def find_job(session: Session, project: Project, name: str) -> Job:
    job = session.exec(select(Job).where(Job.project_id == project.id, Job.name == name)).first()
    if job is None:
        raise ApiError(404, JOB_NOT_FOUND, f"Job {name} does not exist in project {project.name}.")
    return job


def _require_definer(session: Session, project: Project, who: Principal) -> None:
    if not may_change(session, project, who.user_id, who.role):
        raise forbidden(f"Only the owner of project {project.name}, its maintainers or an admin can define its jobs.")


def _environment(session: Session, project: Project, name: str | None, who: Principal) -> Environment | None:
    env = find_environment(session, project, name) if name else None
    if env is not None:
        access.check_environment(session, project, env, who.user_id, who.role)
    return env


def _publish(svc: Services, kind: str, job: JobOut) -> None:
    svc.events.publish(kind, job)


def _triggers(session: Session, job: Job, project: Project, body: JobCreate | JobUpdate) -> None:
    if body.triggers is None:
        return
    try:
        set_triggers(session, job, project.name, body.triggers, utcnow())
    except TriggerRefused as exc:
        session.rollback()
        raise ApiError(exc.status, "invalid_request" if exc.status == 422 else "conflict", exc.message) from None


@router.get("/jobs", response_model=list[JobOut])
def list_jobs(session: DB, _: Reader, project: Annotated[str | None, Query(max_length=64)] = None) -> list[JobOut]:
    """Every job (of one project with ``project``), by project and name."""
    statement = select(Job).join(Project, Project.id == Job.project_id).order_by(col(Project.name), col(Job.name))  # type: ignore[arg-type]
    if project:
        statement = statement.where(Job.project_id == find_project(session, project).id)
    return [describe_job(session, job) for job in session.exec(statement)]


@router.get("/projects/{project}/jobs", response_model=list[JobOut])
def list_project_jobs(project: str, session: DB, who: Reader) -> list[JobOut]:
    return list_jobs(session, who, project)


@router.get("/projects/{project}/jobs/{name}", response_model=JobOut)
def get_job(project: str, name: str, session: DB, _: Reader) -> JobOut:
    return describe_job(session, find_job(session, find_project(session, project), name))


@router.post("/projects/{project}/jobs", response_model=JobOut, status_code=201)
def create_job(project: str, body: JobCreate, session: DB, who: Writer, svc: Svc) -> JobOut:
    found = find_project(session, project)
    _require_definer(session, found, who)
    env = _environment(session, found, body.environment, who)
    assert found.id is not None
    if session.exec(select(Job.id).where(Job.project_id == found.id, Job.name == body.name)).first() is not None:
        raise conflict(f"Job {body.name} already exists in project {found.name}.")
    job = Job(
        project_id=found.id,
        name=body.name,
        description=body.description,
        environment_id=env.id if env else None,
        user_id=who.user_id,
        steps=stored_steps(body.steps),
        artifact_globs=body.artifacts,
        timeout_s=body.timeout_s,
        max_retries=body.max_retries,
        stop_signals=list(body.stop_signals or []),
        stop_grace_s=body.stop_grace_s,
        tty=body.tty,
    )
    session.add(job)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise conflict(f"Job {body.name} already exists in project {found.name}.") from None
    _triggers(session, job, found, body)
    audit.record(session, who, "job.create", "job", job.id, project=found.name, name=body.name)
    session.commit()
    out = describe_job(session, job)
    _publish(svc, "job.created", out)
    return out


@router.patch("/projects/{project}/jobs/{name}", response_model=JobOut)
def update_job(project: str, name: str, body: JobUpdate, session: DB, who: Writer, svc: Svc) -> JobOut:
    found = find_project(session, project)
    job = find_job(session, found, name)
    _require_definer(session, found, who)
    changes = body.model_dump(exclude_unset=True)
    if "environment" in changes:
        env = _environment(session, found, body.environment, who)
        if env is not None:
            # Triggered runs are the job's author's: they must be allowed too.
            access.check_user_environment(session, env.id, job.user_id)
        job.environment_id = env.id if env else None
    if body.steps is not None:
        job.steps = stored_steps(body.steps)
    if body.artifacts is not None:
        job.artifact_globs = body.artifacts
    if "stop_signals" in changes:
        job.stop_signals = list(body.stop_signals or [])
    for field in ("description", "timeout_s", "max_retries", "stop_grace_s", "tty"):
        if field in changes:
            setattr(job, field, changes[field])
    job.updated_at = utcnow()
    session.add(job)
    _triggers(session, job, found, body)
    audit.record(session, who, "job.update", "job", job.id, project=found.name, name=name, fields=sorted(changes))
    session.commit()
    out = describe_job(session, job)
    _publish(svc, "job.updated", out)
    return out


@router.delete("/projects/{project}/jobs/{name}", status_code=204)
def delete_job(project: str, name: str, session: DB, who: Writer, svc: Svc) -> None:
    """Remove a job and its triggers; its runs stay (no longer linked to it)."""
    found = find_project(session, project)
    job = find_job(session, found, name)
    _require_definer(session, found, who)
    followers = followers_of(session, job)
    if followers:
        names = ", ".join(sorted(f.name for f in followers))
        raise conflict(
            f"Job {name} starts job {names} when it ends; remove that trigger first"
            f" (`yard jobs edit {followers[0].name} -p {found.name} --no-after`)."
        )
    job_id = job.id
    remove_all(session, job)
    forget_job(session, job_id)  # its own notifications go with it (deliveries stay as history)
    session.exec(update(Run).where(col(Run.job_id) == job_id).values(job_id=None, chain_pending=False))  # type: ignore[call-overload]
    session.delete(job)
    audit.record(session, who, "job.delete", "job", job_id, project=found.name, name=name)
    session.commit()
    svc.events.publish("job.deleted", JobRef(id=job_id, project=found.name, name=name))


@router.post("/projects/{project}/jobs/{name}/runs", response_model=RunOut, status_code=201)
def run_job(
    project: str, name: str, body: JobRunCreate, response: Response, session: DB, who: Writer, svc: Svc
) -> RunOut:
    """A run of the job now; the caller's, so the caller must be allowed to use its environment."""
    begin_write(session)
    found = find_project(session, project)
    job = find_job(session, found, name)
    if not access.works_in(session, found, who.user_id, who.role):
        raise forbidden(f"Only the owner of project {found.name}, its members or an admin can run its jobs.")
    env = session.get(Environment, job.environment_id) if job.environment_id else None
    if env is not None:
        access.check_environment(session, found, env, who.user_id, who.role)
    if svc.settings.agent and svc.settings.substrate == "local":  # the embedded stack's own agent
        access.check_local_substrate(who.role, svc.settings.local_multi_user)
    code = job_code(session, found, env, who.user_id, body.ref)
    request = run_request(job, found, env, who.user_id, body.trigger, code=code, idempotency_key=body.idempotency_key)
    run, created = create_run(session, request)
    if not created:
        response.status_code = 200
        return describe_run(session, run)
    audit.record(session, who, "run.create", "run", run.id, project=found.name, job=name)
    session.commit()
    summary = describe_run(session, run)
    publish_run(svc, summary, "run.created")
    svc.hub.publish("work")
    return summary
