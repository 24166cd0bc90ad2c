"""Which runs a listing or a "latest run" lookup means: one filter, shared by both.

A filter is a field of :class:`RunQuery` and one ``where`` in :func:`narrow`; adding one (a job,
a branch) is a field and a line, and both ``GET /runs`` and ``GET /runs/latest`` get it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import aliased
from sqlmodel import col, select

from control.db.tables import Environment, Job, Project, Run, User

EnvironmentAlias = aliased(Environment)


@dataclass(frozen=True)
class RunQuery:
    states: tuple[str, ...] = ()
    project: str | None = None
    environment: str | None = None
    trigger: str | None = None
    job: str | None = None
    """Runs of the jobs of this name (in every project unless ``project`` says which)."""


def runs_with_names() -> Any:
    """``(Run, project name, environment name, user name)`` rows, not narrowed yet."""
    return (
        select(Run, Project.name, EnvironmentAlias.name, User.name)
        .join(Project, Project.id == Run.project_id)  # type: ignore[arg-type]
        .join(User, User.id == Run.user_id)  # type: ignore[arg-type]
        .outerjoin(EnvironmentAlias, EnvironmentAlias.id == Run.environment_id)  # type: ignore[arg-type]
    )


def narrow(statement: Any, query: RunQuery) -> Any:
    """``statement`` (from :func:`runs_with_names`) limited to the runs ``query`` means."""
    if query.states:
        statement = statement.where(col(Run.state).in_(query.states))
    if query.project:
        statement = statement.where(Project.name == query.project)
    if query.environment:
        statement = statement.where(EnvironmentAlias.name == query.environment)
    if query.trigger:
        statement = statement.where(Run.trigger == query.trigger)
    if query.job:
        statement = statement.where(col(Run.job_id).in_(select(Job.id).where(Job.name == query.job)))
    return statement


def job_names(session: Any, runs: list[Run]) -> dict[int, str]:
    """Job id → name for the runs' jobs (one query)."""
    ids = {run.job_id for run in runs if run.job_id is not None}
    if not ids:
        return {}
    return dict(session.exec(select(Job.id, Job.name).where(col(Job.id).in_(ids))).all())
