"""A run as every reader sees it: the one summary the API answers with and every run event carries."""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel
from sqlmodel import Session

from control.db.tables import Artifact, Environment, Job, Project, Run, RunStep, User
from control.runs.steps import step_out, steps_of
from control.wire.runs import ArtifactOut, RunOut

Publish = Callable[[str, BaseModel], object]
"""Publishes an event (``EventBus.publish``)."""
Wake = Callable[..., None]
"""Wakes the waiters of some keys (``Hub.publish``)."""


def run_out(
    run: Run,
    project: str,
    environment: str | None,
    user: str,
    steps: list[RunStep] | None = None,
    job: str | None = None,
) -> RunOut:
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
        steps=[step_out(row) for row in steps or []],
        stop_signals=run.stop_signals,
        stop_grace_s=run.stop_grace_s,
        code_source=run.code_source,
        code_repo_url=run.code_repo_url,
        code_ref=run.code_ref,
        code_commit=run.code_commit,
        job=job,
    )


def describe_run(session: Session, run: Run) -> RunOut:
    project = session.get(Project, run.project_id)
    env = session.get(Environment, run.environment_id) if run.environment_id else None
    user = session.get(User, run.user_id)
    assert run.id is not None
    steps = steps_of(session, [run.id])[run.id]
    job = session.get(Job, run.job_id) if run.job_id else None
    return run_out(
        run,
        project.name if project else "?",
        env.name if env else None,
        user.name if user else "?",
        steps,
        job.name if job else None,
    )


def announce_run(publish: Publish, wake: Wake, summary: RunOut, kind: str = "run.updated") -> None:
    """The event of a run change (the whole summary) and the wake-up of its followers."""
    publish(kind, summary)
    wake(f"run:{summary.id}")


def artifact_out(a: Artifact) -> ArtifactOut:
    assert a.id is not None
    return ArtifactOut(id=a.id, run_id=a.run_id, path=a.path, size=a.size, sha256=a.sha256, created_at=a.created_at)
