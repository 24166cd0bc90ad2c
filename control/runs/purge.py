"""Deleting a project together with its history: runs (their log chunks, artifacts and work
items), jobs with their triggers, schedules and their ticks, and the records of stopped develop servers.

Nothing that is still going is touched: a project with a queued or running run, or a develop
server that is not stopped, is refused (:class:`StillInUse`), so no worker or develop server is
left reporting to rows that are gone. Rows go in one transaction; the objects they point to
(logs, artifacts) are returned for the caller to delete once that transaction has committed,
so a failed delete never leaves rows pointing at missing objects.
"""

from __future__ import annotations

from sqlmodel import Session, col, delete, select, update

from control.db.tables import (
    Artifact,
    DevServer,
    Job,
    JobTrigger,
    LogChunk,
    PreviewLink,
    Run,
    RunStep,
    Schedule,
    ScheduleTick,
    WorkItem,
)
from control.devservers import lifecycle as devserver_states
from control.runs import states


class StillInUse(Exception):
    """Something of the project is still going; the message is one sentence."""


def refuse_if_in_use(session: Session, project_id: int, name: str) -> None:
    going = list(
        session.exec(
            select(Run.id).where(Run.project_id == project_id, col(Run.state).notin_(states.FINISHED)).limit(5)
        )
    )
    if going:
        ids = ", ".join(str(i) for i in going)
        raise StillInUse(
            f"Project {name} has runs that are not finished ({ids}); cancel them first (`yard runs cancel`)."
        )
    servers = session.exec(
        select(DevServer.id).where(DevServer.project_id == project_id, col(DevServer.state) != devserver_states.STOPPED)
    ).first()
    if servers is not None:
        raise StillInUse(
            f"Project {name} has a develop server that is not stopped; stop it first (`yard dev stop -p {name}`)."
        )


def purge_history(session: Session, project_id: int) -> tuple[int, list[str]]:
    """Delete the project's runs, jobs, schedules and stopped develop servers (in ``session``, not
    committed); returns how many runs went and the object keys to delete after the commit."""
    run_ids = list(session.exec(select(Run.id).where(Run.project_id == project_id)))
    server_ids = list(session.exec(select(DevServer.id).where(DevServer.project_id == project_id)))
    schedule_ids = list(session.exec(select(Schedule.id).where(Schedule.project_id == project_id)))
    job_ids = list(session.exec(select(Job.id).where(Job.project_id == project_id)))
    keys: set[str] = set()
    if run_ids:
        keys.update(session.exec(select(LogChunk.object_key).where(col(LogChunk.run_id).in_(run_ids))))
        keys.update(session.exec(select(Artifact.object_key).where(col(Artifact.run_id).in_(run_ids))))
        session.exec(delete(WorkItem).where(col(WorkItem.run_id).in_(run_ids)))  # type: ignore[call-overload]
        session.exec(delete(LogChunk).where(col(LogChunk.run_id).in_(run_ids)))  # type: ignore[call-overload]
        session.exec(delete(Artifact).where(col(Artifact.run_id).in_(run_ids)))  # type: ignore[call-overload]
        session.exec(delete(RunStep).where(col(RunStep.run_id).in_(run_ids)))  # type: ignore[call-overload]
        # Retries point at the run they retry, ticks are pointed at: cut those links first.
        session.exec(update(Run).where(col(Run.id).in_(run_ids)).values(retry_of_id=None, tick_id=None))  # type: ignore[call-overload]
        session.exec(delete(Run).where(col(Run.id).in_(run_ids)))  # type: ignore[call-overload]
    if schedule_ids:
        session.exec(delete(ScheduleTick).where(col(ScheduleTick.schedule_id).in_(schedule_ids)))  # type: ignore[call-overload]
        session.exec(delete(Schedule).where(col(Schedule.id).in_(schedule_ids)))  # type: ignore[call-overload]
    if job_ids:
        session.exec(delete(JobTrigger).where(col(JobTrigger.job_id).in_(job_ids)))  # type: ignore[call-overload]
        session.exec(delete(Job).where(col(Job.id).in_(job_ids)))  # type: ignore[call-overload]
    if server_ids:
        session.exec(delete(WorkItem).where(col(WorkItem.devserver_id).in_(server_ids)))  # type: ignore[call-overload]
        session.exec(delete(PreviewLink).where(col(PreviewLink.server_id).in_(server_ids)))  # type: ignore[call-overload]
        session.exec(delete(DevServer).where(col(DevServer.id).in_(server_ids)))  # type: ignore[call-overload]
    return len(run_ids), sorted(keys)
