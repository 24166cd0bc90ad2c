"""Background cleanup done by the scheduler: compaction, retention, orphans, idle develop servers.

Every step is idempotent and crash-safe: compaction writes the run's single log object before it
repoints the chunk index at it, and deletes the chunk objects last, so readers always find the
bytes (before, during and after); a crash in between leaves only garbage that the next pass
removes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, delete, select

from control.db.engine import begin_write
from control.db.tables import Artifact, DevServer, LogChunk, Project, Run, WorkItem
from control.devservers import lifecycle as devserver_states
from control.objectstore import ObjectNotFound, ObjectStore
from control.runs import states
from control.runs.logstore import chunk_key, compacted_key


@dataclass
class CleanupReport:
    compacted: list[int] = field(default_factory=list)
    logs_expired: list[int] = field(default_factory=list)
    artifacts_expired: list[int] = field(default_factory=list)
    orphans_closed: int = 0
    items_deleted: int = 0
    devservers_stopped: list[int] = field(default_factory=list)

    def any(self) -> bool:
        return bool(
            self.compacted
            or self.logs_expired
            or self.artifacts_expired
            or self.orphans_closed
            or self.items_deleted
            or self.devservers_stopped
        )


def compact_run(session_factory: Callable[[], Session], store: ObjectStore, run_id: int) -> bool:
    """Rewrite a finished run's chunks as one object; True if it was compacted now.

    Object I/O happens outside any write transaction (SQLite has one writer); the index is
    repointed in a short transaction at the end, and the chunk objects are deleted last.
    """
    with session_factory() as session:
        chunks = list(session.exec(select(LogChunk).where(LogChunk.run_id == run_id).order_by(col(LogChunk.seq))))
    if not chunks or any(c.object_key != chunk_key(run_id, c.seq) for c in chunks):
        return False  # nothing to do, or already compacted
    target = compacted_key(run_id)
    store.put(target, b"".join(store.get(c.object_key) for c in chunks))
    with session_factory() as session:
        begin_write(session)
        offset = 0
        for chunk in session.exec(select(LogChunk).where(LogChunk.run_id == run_id).order_by(col(LogChunk.seq))):
            chunk.offset, chunk.object_key = offset, target
            offset += chunk.size
            session.add(chunk)
        run = session.get(Run, run_id)
        if run is not None:
            run.logs_compacted = True
            session.add(run)
        session.commit()
    for chunk in chunks:
        store.delete(chunk_key(run_id, chunk.seq))
    return True


def compact_finished(
    session_factory: Callable[[], Session], store: ObjectStore, now: datetime, settle: timedelta, limit: int = 50
) -> list[int]:
    """Compact runs that finished more than ``settle`` ago."""
    with session_factory() as session:
        ids = list(
            session.exec(
                select(Run.id)
                .where(
                    col(Run.state).in_(states.FINISHED),
                    Run.logs_compacted == False,  # noqa: E712
                    col(Run.logs_expired_at).is_(None),
                    col(Run.finished_at) < now - settle,
                    Run.log_seq > 0,
                )
                .order_by(col(Run.id))
                .limit(limit)
            )
        )
    return [run_id for run_id in ids if run_id is not None and compact_run(session_factory, store, run_id)]


def _delete_logs(session: Session, store: ObjectStore, run: Run, now: datetime) -> None:
    assert run.id is not None
    keys = {c.object_key for c in session.exec(select(LogChunk).where(LogChunk.run_id == run.id))}
    for key in keys:
        store.delete(key)
    session.execute(delete(LogChunk).where(col(LogChunk.run_id) == run.id))
    run.logs_expired_at = now
    session.add(run)


def _delete_artifacts(session: Session, store: ObjectStore, run: Run, now: datetime) -> None:
    for artifact in session.exec(select(Artifact).where(Artifact.run_id == run.id)):
        with contextlib.suppress(ObjectNotFound):
            store.delete(artifact.object_key)
        session.delete(artifact)
    run.artifacts_expired_at = now
    session.add(run)


def _run_ids(session: Session, *conditions: Any) -> set[int]:
    return {i for i in session.exec(select(Run.id).where(*conditions)) if i is not None}


def apply_retention(
    session: Session,
    store: ObjectStore,
    now: datetime,
    log_days: float | None,
    artifact_days: float | None,
    keep_runs: int | None,
) -> tuple[list[int], list[int]]:
    """Remove logs and artifacts of finished runs older than the retention or beyond the newest ``keep_runs`` per project."""
    begin_write(session)
    finished = col(Run.state).in_(states.FINISHED)
    logs_kept, artifacts_kept = col(Run.logs_expired_at).is_(None), col(Run.artifacts_expired_at).is_(None)
    logs: set[int] = set()
    artifacts: set[int] = set()
    if log_days is not None:
        logs |= _run_ids(session, finished, logs_kept, col(Run.finished_at) < now - timedelta(days=log_days))
    if artifact_days is not None:
        artifacts |= _run_ids(
            session, finished, artifacts_kept, col(Run.finished_at) < now - timedelta(days=artifact_days)
        )
    if keep_runs is not None:
        for project_id in session.exec(select(Project.id)):
            older = list(
                session.exec(
                    select(Run.id)
                    .where(Run.project_id == project_id, finished)
                    .order_by(col(Run.id).desc())
                    .offset(keep_runs)
                )
            )
            if older:
                logs |= _run_ids(session, col(Run.id).in_(older), logs_kept)
                artifacts |= _run_ids(session, col(Run.id).in_(older), artifacts_kept)
    for run_id in sorted(logs):
        run = session.get(Run, run_id)
        if run is not None:
            _delete_logs(session, store, run, now)
    for run_id in sorted(artifacts):
        run = session.get(Run, run_id)
        if run is not None:
            _delete_artifacts(session, store, run, now)
    session.commit()
    return sorted(logs), sorted(artifacts)


def close_orphan_work_items(session: Session, now: datetime, keep_done: timedelta) -> tuple[int, int]:
    """Pending/claimed items whose run already ended are closed; old finished items are deleted."""
    begin_write(session)
    closed = 0
    open_items = session.exec(
        select(WorkItem, Run)
        .join(Run, col(Run.id) == col(WorkItem.run_id), isouter=True)
        .where(col(WorkItem.state).in_(("pending", "claimed")))
    ).all()
    for item, run in open_items:
        orphan = item.run_id is not None and (run is None or (run.state in states.FINISHED and item.kind == "run"))
        if orphan and item.created_at < now - timedelta(seconds=30):
            item.state = "done"
            session.add(item)
            closed += 1
    result = session.execute(
        delete(WorkItem).where(col(WorkItem.state).in_(("done", "failed")), col(WorkItem.created_at) < now - keep_done)
    )
    session.commit()
    return closed, int(result.rowcount or 0)  # type: ignore[attr-defined]


def stop_idle_devservers(session: Session, now: datetime) -> list[int]:
    """Develop servers idle longer than their timeout get a stop work item for their agent.

    A run in a server's workspace (queued or going) is activity: the server is kept and its
    idle time counts from the last pass that saw the run, so it ends a timeout after the run."""
    begin_write(session)
    busy = set(
        session.exec(
            select(Run.devserver_id).where(
                col(Run.devserver_id).is_not(None), col(Run.state).in_((states.QUEUED, *states.ACTIVE))
            )
        )
    )
    stopped: list[int] = []
    for server in session.exec(select(DevServer).where(DevServer.state == devserver_states.RUNNING)):
        if server.id in busy:
            devserver_states.touch(server, now)
            session.add(server)
            continue
        last = server.last_activity_at or server.started_at or server.created_at
        if last < now - timedelta(seconds=server.idle_timeout_s) and devserver_states.request_stop(
            session, server, "idle"
        ):
            stopped.append(server.id or 0)
    session.commit()
    return stopped
