"""The rule that decides where a run's code comes from (docs/runs.md, "Where a run's code comes from").

1. Asked for explicitly: ``code: none`` is an empty folder; ``code: workspace`` (``--workspace``)
   is the caller's running develop server's workspace, refused when there is none (never an
   empty folder instead); ``ref`` or ``code: repository`` is a fresh checkout of the project's
   repository at that ref (default: the environment's branch, else the project's default branch).
2. Otherwise a deployment environment runs a fresh checkout of its branch: never anyone's
   uncommitted files.
3. Otherwise (a development environment, or none): the caller's workspace when their develop
   server runs (not for runs nobody asked for in person: schedules), else a checkout of the
   default branch when the project has a repository, else an empty folder.

Whatever the rule picks is recorded on the run, so ``yard runs show`` says it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session

from control.db.tables import DevServer, Environment, Project
from control.devservers import lifecycle as devserver_lifecycle
from control.wire.errors import NO_REPOSITORY, NO_WORKSPACE, ApiError


@dataclass(frozen=True)
class CodeChoice:
    source: str
    repo_url: str | None = None
    ref: str | None = None
    devserver: DevServer | None = None


def _running_server(session: Session, project: Project, user_id: int) -> DevServer | None:
    server = devserver_lifecycle.find_for(session, user_id, project.id or 0)
    return server if server is not None and server.state == devserver_lifecycle.RUNNING else None


def _repository(project: Project, env: Environment | None, ref: str | None, why: str) -> CodeChoice:
    if not project.repo_url:
        raise ApiError(
            409,
            NO_REPOSITORY,
            f"{why} needs the project's repository and project {project.name} has none; set one with"
            f" `yard projects set {project.name} --repo-url URL`, or run with --no-checkout.",
        )
    branch = env.branch if env is not None else None
    return CodeChoice("repository", project.repo_url, ref or branch or project.default_branch)


def choose_code(
    session: Session,
    project: Project,
    env: Environment | None,
    user_id: int,
    *,
    code: str | None = None,
    ref: str | None = None,
    workspace_allowed: bool = True,
) -> CodeChoice:
    """Where a new run's code comes from; ApiError (409) with one sentence when it cannot.

    ``workspace_allowed`` False: the rule never picks the caller's workspace by itself (a
    schedule's run, or a client that said "not in my develop server")."""
    if code == "none":
        return CodeChoice("none")
    if code == "workspace":
        server = _running_server(session, project, user_id)
        if server is None:
            raise ApiError(
                409,
                NO_WORKSPACE,
                f"You have no running develop server for project {project.name}, so there is no workspace"
                f" to run in; start one with `yard dev start -p {project.name}`, or run a commit with --ref.",
            )
        return CodeChoice("workspace", devserver=server)
    if code == "repository" or ref is not None:
        return _repository(project, env, ref, f"A run at {ref}" if ref else "A run of the repository")
    if env is not None and env.kind == "deployment":
        return _repository(project, env, None, f"Deployment environment {project.name}/{env.name}")
    server = _running_server(session, project, user_id) if workspace_allowed else None
    if server is not None:
        return CodeChoice("workspace", devserver=server)
    if project.repo_url:
        return _repository(project, env, None, "This run")
    return CodeChoice("none")
