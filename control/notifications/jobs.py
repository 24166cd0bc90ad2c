"""Jobs as notifications see them: a job's name to its id and back.

Jobs (issue 16) are defined in ``control.db.tables.Job``; until a server has them, a notification
for a job is refused with one sentence instead of being stored against nothing.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select

from control.db import tables
from control.db.tables import Project
from control.wire.errors import NOT_FOUND, ApiError


def _job_table() -> Any:
    return getattr(tables, "Job", None)


def job_id(session: Session, project: Project, name: str) -> int:
    """The id of job ``name`` of ``project``; 404 when it does not exist."""
    job = _job_table()
    found = None
    if job is not None:
        found = session.exec(select(job.id).where(job.project_id == project.id, job.name == name)).first()
    if found is None:
        raise ApiError(404, NOT_FOUND, f"Job {project.name}/{name} does not exist.")
    return int(found)


def job_names(session: Session, ids: list[int]) -> dict[int, str]:
    """Names of the jobs with these ids (a removed job is missing)."""
    job = _job_table()
    if job is None or not ids:
        return {}
    return {int(i): str(n) for i, n in session.exec(select(job.id, job.name).where(col(job.id).in_(ids)))}
