"""A job as stored, as shown, and as the run it starts (one function each)."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from control import access
from control.db.tables import Environment, Job, Project
from control.runs.code import CodeChoice, choose_code
from control.runs.create import RunRequest
from control.runs.steps import StepDef
from control.wire.jobs import JobStep
from control.wire.resources import ProjectRole, Role

JOB_TTY = (120, 40)
"""Window size of a job run's pseudo-terminal (``tty``): nobody's terminal to take it from."""


def stored_steps(steps: list[JobStep]) -> list[dict[str, Any]]:
    """Steps as the ``jobs.steps`` column holds them: every step named."""
    return [
        {"name": step.name or _default_name(step.command, index), "command": list(step.command)}
        for index, step in enumerate(steps, start=1)
    ]


def _default_name(command: list[str], index: int) -> str:
    """``dbt build`` for ``dbt build --select x``; a path's last part (a name holds no '/')."""
    words = " ".join(arg.rsplit("/", 1)[-1] for arg in command[:2])
    name = "".join(c for c in words if c.isprintable()).strip()[:64]
    return name or f"step {index}"


def may_change(session: Session, project: Project, user_id: int, role: Role) -> bool:
    """Admins, the project's owner and its maintainers define its jobs."""
    if role is Role.admin or project.owner_id == user_id:
        return True
    return role is Role.developer and access.member_role(session, project, user_id) is ProjectRole.maintainer


def job_code(
    session: Session, project: Project, environment: Environment | None, user_id: int, ref: str | None = None
) -> CodeChoice:
    """Where a job's run gets its code: a fresh checkout of ``ref``, else of its environment's
    branch (or the project's default branch); an empty folder when the project has no repository
    and the environment is not a deployment. Never anyone's workspace: a job is a background run
    of the project's code, the same whoever starts it. ApiError (409) when it cannot be had."""
    return choose_code(session, project, environment, user_id, ref=ref, workspace_allowed=False)


def run_request(
    job: Job,
    project: Project,
    environment: Environment | None,
    user_id: int,
    trigger: str,
    trigger_info: dict[str, Any] | None = None,
    **extra: Any,
) -> RunRequest:
    """The run a job starts now: its steps, artifacts, limits and stop signals.

    ``extra`` holds what only this run has (its code, a schedule tick, an idempotency key).
    """
    assert job.id is not None
    steps = [StepDef(str(step["name"]), list(step["command"])) for step in job.steps]
    return RunRequest(
        project=project,
        environment=environment,
        user_id=user_id,
        command=steps[0].command if len(steps) == 1 else [],
        steps=steps,
        stop_signals=list(job.stop_signals),
        stop_grace_s=job.stop_grace_s,
        timeout_s=job.timeout_s,
        max_retries=job.max_retries,
        artifact_globs=list(job.artifact_globs),
        trigger=trigger,
        trigger_info={"job": job.name, **(trigger_info or {})},
        job_id=job.id,
        tty=JOB_TTY if job.tty else None,
        **extra,
    )
