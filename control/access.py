"""Who may use a project and its environments.

An environment's variables and secrets reach every command started with it, so using an
environment is as good as reading its secrets. The rule, checked when a develop server, run or
schedule is asked for *and* again when an agent claims the work (membership may have changed,
a schedule fires long after it was written, a run is retried):

- admins and the project's owner may use every environment of the project;
- a member with the ``maintainer`` role may use every environment;
- a member with the ``developer`` role may use the environments that are not ``protected``;
- nobody else may use any (other developers still get develop servers and runs without one).
"""

from __future__ import annotations

from sqlmodel import Session, col, select

from control.db.tables import DevServer, Environment, Project, ProjectMember, User
from control.devservers import lifecycle as devserver_lifecycle
from control.wire.resources import ProjectRole, Role


class AccessRefused(Exception):
    """The user may not do this; the message is one sentence naming what to ask for."""


def member_role(session: Session, project: Project, user_id: int) -> ProjectRole | None:
    """The user's role in the project; ``None`` for a non-member (the owner is not a member)."""
    role = session.exec(
        select(ProjectMember.role).where(ProjectMember.project_id == project.id, ProjectMember.user_id == user_id)
    ).first()
    return ProjectRole(role) if role else None


def works_in(session: Session, project: Project, user_id: int, role: Role) -> bool:
    """Admins, the owner and members work in the project (may start runs from its repository)."""
    return role is Role.admin or project.owner_id == user_id or member_role(session, project, user_id) is not None


def may_use(session: Session, project: Project, environment: Environment, user_id: int, role: Role) -> bool:
    if role is Role.admin or project.owner_id == user_id:
        return True
    if role is not Role.developer:
        return False
    member = member_role(session, project, user_id)
    if member is ProjectRole.maintainer:
        return True
    return member is ProjectRole.developer and not environment.protected


def check_environment(session: Session, project: Project, environment: Environment, user_id: int, role: Role) -> None:
    """Raise :class:`AccessRefused` unless the user may use the environment's secrets."""
    if may_use(session, project, environment, user_id, role):
        return
    who = "its owner, maintainers and admins" if environment.protected else "its owner, members and admins"
    raise AccessRefused(
        f"Environment {project.name}/{environment.name} can only be used by {who};"
        f" ask the owner of project {project.name} to add you (`yard projects members add`)."
    )


def check_user_environment(session: Session, environment_id: int | None, user_id: int) -> None:
    """The same check for work already queued, with the user as the database knows them now."""
    if environment_id is None:
        return
    environment = session.get(Environment, environment_id)
    user = session.get(User, user_id)
    project = session.get(Project, environment.project_id) if environment else None
    if environment is None or project is None:
        return
    if user is None or user.disabled:
        raise AccessRefused(
            f"The user who asked for this can no longer use environment {project.name}/{environment.name}."
        )
    check_environment(session, project, environment, user_id, Role(user.role))


def servers_to_stop(session: Session, project: Project) -> list[DevServer]:
    """Active develop servers in the project whose user may no longer use their environment
    (after a member was removed or demoted, or an environment was protected)."""
    refused = []
    servers = session.exec(
        select(DevServer).where(
            DevServer.project_id == project.id,
            col(DevServer.environment_id).is_not(None),
            col(DevServer.state).in_(devserver_lifecycle.ACTIVE),
        )
    )
    for server in servers:
        try:
            check_user_environment(session, server.environment_id, server.user_id)
        except AccessRefused:
            refused.append(server)
    return refused


LOCAL_SUBSTRATE_REFUSAL = (
    "The local substrate runs every command as the server's own operating-system user, so it serves"
    " one person (its admins); use the Docker or Kubernetes substrate for a team"
    " (or set DEVYARD_LOCAL_MULTI_USER=true to accept that risk)."
)


def check_local_substrate(role: Role, multi_user: bool) -> None:
    """Only admins (the person who ran `yard up`) get commands on the local substrate."""
    if role is not Role.admin and not multi_user:
        raise AccessRefused(LOCAL_SUBSTRATE_REFUSAL)


def check_local_claim(session: Session, user_id: int, multi_user: bool) -> None:
    user = session.get(User, user_id)
    check_local_substrate(Role(user.role) if user else Role.viewer, multi_user)
