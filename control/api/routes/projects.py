"""Projects: every reader sees them; developers create them and change the ones they own."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import Depends, Query
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from control import audit
from control.api import paging
from control.api.deps import DB, Reader, Svc, Writer
from control.api.errors import conflict, forbidden
from control.api.routing import SegmentRouter
from control.auth import Principal
from control.clock import utcnow
from control.db.tables import DevServer, Environment, Job, Project, ProjectMember, Run, User
from control.notifications.purge import forget_project
from control.objectstore import ObjectStoreProblem
from control.runs import purge
from control.wire.errors import PROJECT_NOT_FOUND, ApiError
from control.wire.events import ProjectRef
from control.wire.resources import Page, ProjectCreate, ProjectOut, ProjectUpdate

router = SegmentRouter(tags=["projects"])
logger = logging.getLogger("devyard.projects")


def project_out(row: tuple[Project, User]) -> ProjectOut:
    project, owner = row
    assert project.id is not None
    return ProjectOut(
        id=project.id,
        name=project.name,
        description=project.description,
        repo_url=project.repo_url,
        default_branch=project.default_branch,
        repo_secret=project.repo_secret,
        owner=owner.name,
        max_concurrent_runs=project.max_concurrent_runs,
        created_at=project.created_at,
        updated_at=project.updated_at,
    )


def find_project(session: Session, name: str) -> Project:
    project = session.exec(select(Project).where(Project.name == name)).first()
    if project is None:
        # A code of its own: a client tells a missing project from a missing environment by it.
        raise ApiError(404, PROJECT_NOT_FOUND, f"Project {name} does not exist.")
    return project


def require_owner(project: Project, who: Principal) -> None:
    if project.owner_id != who.user_id and not who.is_admin:
        raise forbidden(f"Only the owner of project {project.name} or an admin can change it.")


def check_repo_url(url: str | None, who: Principal) -> None:
    """A file:// repository is read from the agents' own disks (any repository there, as the
    agent's user): only an admin may point a project at one."""
    if url and url.startswith("file:") and not who.is_admin:
        raise forbidden(
            "A file:// repository is read from the agent's own disk; only an admin can set one"
            " (use an https:// or ssh:// URL)."
        )


def _with_owner(session: Session, project: Project) -> tuple[Project, User]:
    owner = session.get(User, project.owner_id)
    assert owner is not None
    return project, owner


@router.get("/projects", response_model=Page[ProjectOut])
def list_projects(
    session: DB, _: Reader, params: Annotated[paging.PageParams, Depends(paging.page_params)]
) -> dict[str, object]:
    statement = select(Project, User).join(User, Project.owner_id == User.id)  # type: ignore[arg-type]
    rows = list(session.exec(paging.apply(statement, Project.id, params)))
    page = paging.build([r[0] for r in rows], params, lambda p: p)
    owners = {p.id: u for p, u in rows}
    page["items"] = [project_out((p, owners[p.id])) for p in page["items"]]  # type: ignore[attr-defined]
    return page


@router.get("/projects/{name}", response_model=ProjectOut)
def get_project(name: str, session: DB, _: Reader) -> ProjectOut:
    return project_out(_with_owner(session, find_project(session, name)))


@router.post("/projects", response_model=ProjectOut, status_code=201)
def create_project(body: ProjectCreate, session: DB, who: Writer, svc: Svc) -> ProjectOut:
    check_repo_url(body.repo_url, who)
    project = Project(**body.model_dump(), owner_id=who.user_id)
    session.add(project)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise conflict(f"Project {body.name} already exists.") from None
    audit.record(session, who, "project.create", "project", project.id, name=project.name)
    session.commit()
    svc.events.publish("project.created", ProjectRef(id=project.id, name=project.name))
    return project_out(_with_owner(session, project))


@router.patch("/projects/{name}", response_model=ProjectOut)
def update_project(name: str, body: ProjectUpdate, session: DB, who: Writer, svc: Svc) -> ProjectOut:
    project = find_project(session, name)
    require_owner(project, who)
    changes = body.model_dump(exclude_unset=True)
    check_repo_url(changes.get("repo_url"), who)
    for key, value in changes.items():
        setattr(project, key, value)
    project.updated_at = utcnow()
    session.add(project)
    audit.record(session, who, "project.update", "project", project.id, fields=sorted(changes))
    session.commit()
    svc.events.publish("project.updated", ProjectRef(id=project.id, name=project.name))
    return project_out(_with_owner(session, project))


@router.delete("/projects/{name}", status_code=204)
def delete_project(
    name: str,
    session: DB,
    who: Writer,
    svc: Svc,
    with_runs: Annotated[
        bool, Query(description="Also delete its finished runs, jobs, schedules and stopped develop servers.")
    ] = False,
) -> None:
    project = find_project(session, name)
    require_owner(project, who)
    assert project.id is not None
    runs_deleted, objects = 0, list[str]()
    forget_project(session, project.id)  # not committed if the delete is refused below
    if with_runs:
        try:
            purge.refuse_if_in_use(session, project.id, name)
        except purge.StillInUse as exc:
            raise ApiError(409, "in_use", str(exc)) from None
        runs_deleted, objects = purge.purge_history(session, project.id)
    else:
        for table, what in ((Run, "runs"), (Job, "jobs"), (DevServer, "develop servers")):
            if session.exec(select(table.id).where(table.project_id == project.id).limit(1)).first() is not None:  # type: ignore[attr-defined]
                raise ApiError(
                    409,
                    "has_history",
                    f"Project {name} still has {what}; `yard projects rm {name} --with-runs` deletes them with it.",
                )
    for env in session.exec(select(Environment).where(Environment.project_id == project.id)):
        session.delete(env)
    for member in session.exec(select(ProjectMember).where(ProjectMember.project_id == project.id)):
        session.delete(member)
    session.flush()  # rows that refer to the project go first: no relationship orders these deletes
    session.delete(project)
    audit.record(session, who, "project.delete", "project", project.id, name=name, runs_deleted=runs_deleted)
    session.commit()
    for key in objects:  # after the commit: no row ever points at a deleted object
        try:
            svc.store.delete(key)
        except ObjectStoreProblem:
            logger.warning("object %s of deleted project %s was left in the store", key, name)
    svc.events.publish("project.deleted", ProjectRef(id=project.id, name=name))
