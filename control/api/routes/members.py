"""Members of a project: the owner (or an admin) adds developers with a role; see control/access.py."""

from __future__ import annotations

from sqlmodel import Session, col, select

from control import access, audit
from control.api.deps import DB, Reader, Svc, Writer
from control.api.errors import not_found
from control.api.routes.projects import find_project, require_owner
from control.api.routing import SegmentRouter
from control.api.services import Services
from control.db.tables import DevServer, Project, ProjectMember, User
from control.devservers import lifecycle
from control.wire.errors import ApiError
from control.wire.events import ProjectRef
from control.wire.fields import Name
from control.wire.resources import MemberOut, MemberSet, ProjectRole, Role

router = SegmentRouter(tags=["projects"])


def member_out(project: Project, user: User, member: ProjectMember) -> MemberOut:
    return MemberOut(project=project.name, user=user.name, role=ProjectRole(member.role), created_at=member.created_at)


def _find_user(session: Session, name: str) -> User:
    user = session.exec(select(User).where(User.name == name)).first()
    if user is None:
        raise not_found("User", name)
    return user


def stop_refused_devservers(session: Session, project: Project) -> list[DevServer]:
    """Ask to stop the active develop servers whose user lost their environment; the caller commits."""
    stopping = access.servers_to_stop(session, project)
    for server in stopping:
        lifecycle.request_stop(session, server, "environment access revoked")
    return stopping


def announce_stops(session: Session, svc: Services, stopping: list[DevServer]) -> None:
    if not stopping:
        return
    from control.api.routes import devservers  # it imports the environments module, which imports this one

    for server in stopping:
        devservers.publish(svc, devservers.describe(session, server), server.user_id)
    svc.hub.publish("work")


@router.get("/projects/{project}/members", response_model=list[MemberOut])
def list_members(project: str, session: DB, _: Reader) -> list[MemberOut]:
    proj = find_project(session, project)
    rows = session.exec(
        select(ProjectMember, User)
        .join(User, User.id == ProjectMember.user_id)  # type: ignore[arg-type]
        .where(ProjectMember.project_id == proj.id)
        .order_by(col(User.name))
    )
    return [member_out(proj, user, member) for member, user in rows]


@router.put("/projects/{project}/members/{user}", response_model=MemberOut)
def set_member(project: str, user: Name, body: MemberSet, session: DB, who: Writer, svc: Svc) -> MemberOut:
    """Add a developer to the project, or change their role (idempotent)."""
    proj = find_project(session, project)
    require_owner(proj, who)
    person = _find_user(session, user)
    if person.id == proj.owner_id:
        raise ApiError(422, "invalid_request", f"{user} owns project {project}; owners need no membership.")
    if person.role != Role.developer:
        raise ApiError(
            422,
            "invalid_request",
            f"Only developers can be members; {user} is a {person.role} (admins can use every project).",
        )
    assert proj.id is not None and person.id is not None
    member = session.exec(
        select(ProjectMember).where(ProjectMember.project_id == proj.id, ProjectMember.user_id == person.id)
    ).first()
    member = member or ProjectMember(project_id=proj.id, user_id=person.id)
    member.role = body.role
    session.add(member)
    session.flush()
    stopping = stop_refused_devservers(session, proj)  # a maintainer made developer loses protected ones
    audit.record(session, who, "project.member.set", "project", proj.id, project=project, user=user, role=body.role)
    session.commit()
    announce_stops(session, svc, stopping)
    svc.events.publish("project.updated", ProjectRef(id=proj.id, name=proj.name))
    return member_out(proj, person, member)


@router.delete("/projects/{project}/members/{user}", status_code=204)
def remove_member(project: str, user: Name, session: DB, who: Writer, svc: Svc) -> None:
    """Remove a member; their develop servers that use the project's environments are stopped."""
    proj = find_project(session, project)
    require_owner(proj, who)
    person = _find_user(session, user)
    member = session.exec(
        select(ProjectMember).where(ProjectMember.project_id == proj.id, ProjectMember.user_id == person.id)
    ).first()
    if member is None:
        raise not_found("Member", f"{project}/{user}")
    session.delete(member)
    session.flush()
    stopping = stop_refused_devservers(session, proj)
    audit.record(session, who, "project.member.remove", "project", proj.id, project=project, user=user)
    session.commit()
    announce_stops(session, svc, stopping)
    svc.events.publish("project.updated", ProjectRef(id=proj.id, name=proj.name))
