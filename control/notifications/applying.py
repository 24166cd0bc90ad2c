"""Which notifications tell about a job's runs: one rule for the sender and for every reader."""

from __future__ import annotations

from sqlmodel import Session, col, select

from control.db.tables import Notification


def applying(session: Session, project_id: int, job_id: int | None) -> list[Notification]:
    """The enabled notifications of the runs of job ``job_id`` (None: runs of no job) of a
    project: the job's own if it has any, else the project's defaults (those without a job)."""
    candidates = session.exec(
        select(Notification).where(Notification.project_id == project_id, col(Notification.enabled).is_(True))
    ).all()
    own = [n for n in candidates if job_id is not None and n.job_id == job_id]
    return own or [n for n in candidates if n.job_id is None]


def summary(notification: Notification) -> str:
    """``slack on failed, lost``: the channel and the outcomes, never where it goes."""
    return f"{notification.channel} on {', '.join(notification.events)}"
