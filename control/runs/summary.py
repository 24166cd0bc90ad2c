"""A run as every reader sees it: the one summary the API answers with and every run event carries."""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel
from sqlmodel import Session

from control.db.tables import Environment, Project, Run, User
from control.wire.runs import RunOut

Publish = Callable[[str, BaseModel], object]
"""Publishes an event (``EventBus.publish``)."""
Wake = Callable[..., None]
"""Wakes the waiters of some keys (``Hub.publish``)."""


def run_out(run: Run, project: str, environment: str | None, user: str) -> RunOut:
    assert run.id is not None
    duration = None
    if run.started_at is not None:
        end = run.finished_at
        duration = round((end - run.started_at).total_seconds(), 3) if end else None
    return RunOut(
        id=run.id,
        project=project,
        environment=environment,
        user=user,
        command=run.command,
        cwd=run.cwd,
        state=run.state,
        trigger=run.trigger,
        trigger_info=run.trigger_info,
        attempt=run.attempt,
        max_retries=run.max_retries,
        retry_of_id=run.retry_of_id,
        devserver_id=run.devserver_id,
        timeout_s=run.timeout_s,
        exit_code=run.exit_code,
        error=run.error,
        cancel_requested=run.cancel_requested_at is not None,
        agent_id=run.agent_id,
        queued_at=run.queued_at,
        started_at=run.started_at,
        finished_at=run.finished_at,
        duration_s=duration,
        log_chunks=run.log_seq,
        log_bytes=run.log_bytes,
        log_lines=run.log_lines,
        artifact_globs=run.artifact_globs,
        tty=run.tty_cols is not None,
    )


def describe_run(session: Session, run: Run) -> RunOut:
    project = session.get(Project, run.project_id)
    env = session.get(Environment, run.environment_id) if run.environment_id else None
    user = session.get(User, run.user_id)
    return run_out(run, project.name if project else "?", env.name if env else None, user.name if user else "?")


def announce_run(publish: Publish, wake: Wake, summary: RunOut, kind: str = "run.updated") -> None:
    """The event of a run change (the whole summary) and the wake-up of its followers."""
    publish(kind, summary)
    wake(f"run:{summary.id}")
