"""State changes of a run after it was created: launch, start, heartbeat, finish, cancel, lost."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, col, select

from control.clock import utcnow
from control.db.tables import Run, WorkItem
from control.notifications.outbox import queue_run_end
from control.runs import states
from control.runs.create import queue_retry
from control.runs.steps import close_open_steps


class TransitionRefused(Exception):
    """The run is not in a state that allows this; one sentence for the caller."""


def launched(session: Session, item: WorkItem, run: Run, handle: str) -> None:
    item.state = "done"
    run.handle = handle
    session.add_all([item, run])


def launch_failed(session: Session, item: WorkItem, run: Run, error: str) -> Run | None:
    """The agent could not start the run; a run cancelled while the agent prepared it (checking
    out its code, say) ends cancelled, not failed, and is not retried."""
    item.state = "failed"
    session.add(item)
    if run.cancel_requested_at is not None:
        return finish(session, run, states.CANCELLED, None, error)
    return finish(session, run, states.FAILED, None, error)


def worker_started(session: Session, run: Run, started_at: datetime | None = None) -> None:
    if run.state in states.FINISHED:
        raise TransitionRefused(f"Run {run.id} already finished ({run.state}).")
    if run.state == states.STARTING:
        run.state = states.RUNNING
        run.started_at = started_at or utcnow()
    run.heartbeat_at = utcnow()
    session.add(run)


def heartbeat(session: Session, run: Run) -> None:
    run.heartbeat_at = utcnow()
    session.add(run)


def finish(
    session: Session,
    run: Run,
    state: str,
    exit_code: int | None,
    error: str | None = None,
    started_at: datetime | None = None,
    finished_at: datetime | None = None,
) -> Run | None:
    """Record the final state and queue a retry when one is due; returns the retry run."""
    if run.state in states.FINISHED and run.state != states.LOST:
        raise TransitionRefused(f"Run {run.id} already finished ({run.state}).")
    was_lost = run.state == states.LOST
    run.state = state
    run.exit_code = exit_code
    run.error = error[:2000] if error else None
    run.started_at = run.started_at or started_at
    run.finished_at = finished_at or utcnow()
    session.add(run)
    close_open_steps(session, run, state, run.finished_at)
    # A lost run that turns out to have finished already had its retry queued when it was lost.
    retry = None if was_lost else queue_retry(session, run)
    queue_run_end(session, run, retried=retry is not None)
    return retry


def request_cancel(session: Session, run: Run) -> bool:
    """Cancel a run; True if it ended at once (it was still queued)."""
    if run.state in states.FINISHED:
        raise TransitionRefused(f"Run {run.id} already finished ({run.state}).")
    now = utcnow()
    if run.state == states.QUEUED:
        run.state, run.finished_at, run.cancel_requested_at = states.CANCELLED, now, now
        close_open_steps(session, run, states.CANCELLED, now)
        for item in session.exec(select(WorkItem).where(WorkItem.run_id == run.id, WorkItem.state == "pending")):
            item.state = "done"
            session.add(item)
        session.add(run)
        queue_run_end(session, run, retried=False)
        return True
    if run.cancel_requested_at is None:
        run.cancel_requested_at = now
        session.add(run)
        session.add(WorkItem(kind="cancel", queue=f"agent:{run.agent_id}", run_id=run.id))
    return False


def mark_lost(session: Session, cutoff: datetime) -> list[tuple[Run, Run | None]]:
    """Runs whose worker and agent went silent before ``cutoff`` become lost (and maybe retried)."""
    silent = session.exec(
        select(Run)
        .where(col(Run.state).in_(states.ACTIVE), col(Run.heartbeat_at) < cutoff)
        .with_for_update(skip_locked=True)
    ).all()
    changed = []
    for run in silent:
        run.state = states.LOST
        run.finished_at = utcnow()
        run.error = "No heartbeat from the run worker or its agent; the run was marked lost."
        session.add(run)
        close_open_steps(session, run, states.LOST, run.finished_at)
        retry = queue_retry(session, run)
        queue_run_end(session, run, retried=retry is not None)
        changed.append((run, retry))
    return changed
