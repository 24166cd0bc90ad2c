"""Creating a run: the run row and its work item in one transaction, idempotently."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from control.db.tables import Environment, Project, Run, RunStep, WorkItem
from control.runs import states
from control.runs.code import CodeChoice, choose_code
from control.runs.steps import StepDef, add_steps, step_defs


class RunRejected(Exception):
    """The request cannot become a run; the message is one sentence."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class RunRequest:
    project: Project
    environment: Environment | None
    user_id: int
    command: list[str]
    cwd: str | None = None
    timeout_s: int | None = None
    max_retries: int = 0
    artifact_globs: list[str] = field(default_factory=list)
    trigger: str = "api"
    trigger_info: dict[str, Any] = field(default_factory=dict)
    idempotency_key: str | None = None
    schedule_id: int | None = None
    tick_id: int | None = None
    devserver_id: int | None = None
    job_id: int | None = None
    tty: tuple[int, int] | None = None
    """``(columns, rows)`` of the pseudo-terminal the command gets; None: one pipe."""
    steps: list[StepDef] = field(default_factory=list)
    """Several commands in order; empty: one step, ``command``."""
    stop_signals: list[str] = field(default_factory=list)
    stop_grace_s: float | None = None
    code: CodeChoice | None = None
    """Where its code comes from (control/runs/code.py); None: decided by the rule here."""


def _existing(session: Session, user_id: int, key: str) -> Run | None:
    return session.exec(select(Run).where(Run.user_id == user_id, Run.idempotency_key == key)).first()


def create_run(
    session: Session, request: RunRequest, *, attempt: int = 1, retry_of: int | None = None
) -> tuple[Run, bool]:
    """Add the run and its work item to the session (the caller commits); returns (run, created).

    A repeated idempotency key returns the run created the first time (``created`` False),
    also when two requests race: the unique index decides and the loser reads the winner.
    """
    if request.idempotency_key:
        found = _existing(session, request.user_id, request.idempotency_key)
        if found is not None:
            return found, False
    assert request.project.id is not None
    code = request.code or choose_code(
        session, request.project, request.environment, request.user_id, workspace_allowed=False
    )
    run = Run(
        project_id=request.project.id,
        environment_id=request.environment.id if request.environment else None,
        user_id=request.user_id,
        # A run of several steps has no one command; a one-step job's run shows its step's.
        command=request.command if len(request.steps) <= 1 else [],
        cwd=request.cwd,
        timeout_s=request.timeout_s,
        max_retries=request.max_retries,
        artifact_globs=request.artifact_globs,
        trigger=request.trigger,
        trigger_info=request.trigger_info,
        idempotency_key=request.idempotency_key,
        schedule_id=request.schedule_id,
        tick_id=request.tick_id,
        devserver_id=code.devserver.id if code.devserver else request.devserver_id,
        code_source=code.source,
        code_repo_url=code.repo_url,
        code_ref=code.ref,
        job_id=request.job_id,
        chain_pending=request.job_id is not None,
        tty_cols=request.tty[0] if request.tty else None,
        tty_rows=request.tty[1] if request.tty else None,
        stop_signals=request.stop_signals,
        stop_grace_s=request.stop_grace_s,
        attempt=attempt,
        retry_of_id=retry_of,
        state=states.QUEUED,
    )
    session.add(run)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        if request.idempotency_key:
            found = _existing(session, request.user_id, request.idempotency_key)
            if found is not None:
                return found, False
        raise
    add_steps(session, run, request.steps or step_defs(request.command))
    queue = request.environment.agent_queue if request.environment else "default"
    session.add(WorkItem(kind="run", queue=queue, run_id=run.id))
    return run, True


def queue_retry(session: Session, failed: Run) -> Run | None:
    """Queue the next attempt of ``failed`` if it has retries left; the caller commits."""
    if failed.state not in states.RETRYABLE or failed.attempt > failed.max_retries:
        return None
    retry = Run(
        project_id=failed.project_id,
        environment_id=failed.environment_id,
        user_id=failed.user_id,
        devserver_id=failed.devserver_id,
        schedule_id=failed.schedule_id,
        job_id=failed.job_id,
        chain_pending=failed.job_id is not None,
        command=failed.command,
        cwd=failed.cwd,
        timeout_s=failed.timeout_s,
        max_retries=failed.max_retries,
        artifact_globs=failed.artifact_globs,
        tty_cols=failed.tty_cols,
        tty_rows=failed.tty_rows,
        stop_signals=failed.stop_signals,
        stop_grace_s=failed.stop_grace_s,
        # The same code: the commit the failed attempt ran (its ref may have moved since).
        code_source=failed.code_source,
        code_repo_url=failed.code_repo_url,
        code_ref=failed.code_ref,
        code_commit=failed.code_commit,
        trigger="retry",
        trigger_info={"retry_of": failed.id, **{k: v for k, v in failed.trigger_info.items() if k != "retry_of"}},
        attempt=failed.attempt + 1,
        retry_of_id=failed.id,
        state=states.QUEUED,
    )
    session.add(retry)
    session.flush()
    rows = session.exec(select(RunStep).where(RunStep.run_id == failed.id).order_by(col(RunStep.idx))).all()
    add_steps(session, retry, [StepDef(r.name, r.command) for r in rows] or step_defs(failed.command))
    queue = "default"
    if failed.environment_id is not None:
        env = session.get(Environment, failed.environment_id)
        queue = env.agent_queue if env else queue
    session.add(WorkItem(kind="run", queue=queue, run_id=retry.id))
    return retry
