"""The runs a git event starts: jobs whose push or pull-request triggers match it.

- ``push`` triggers match the pushed branch against their globs (``main``, ``release/*``; ``*``
  stays within one path segment, ``**`` crosses them, as GitHub Actions' filters do).
- ``pull_request`` triggers match the pull request's base (target) branch; opened, updated
  (new commits) and reopened start a run at the head commit with the number, base and head
  refs as variables; with ``cancel_in_progress`` (the default) a newer one cancels the older runs
  of the same job and pull request still going, as GitHub Actions' concurrency groups do. A
  closed (or merged) pull request cancels what is left of its runs.

Every run is the job's (its author's, who the claim checks again), at the event's commit, and
carries an idempotency key per (delivery, trigger), so the same delivery never starts one twice.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from sqlmodel import Session, col, select

from control.api.services import Services
from control.db.tables import Environment, Job, JobTrigger, Project, Run
from control.hooks.events import GitEvent
from control.hooks.origin import WEBHOOK
from control.hooks.status import queue_status
from control.jobs.definition import run_request
from control.jobs.triggers import PULL_REQUEST, PUSH
from control.runs import states
from control.runs.code import choose_code
from control.runs.create import create_run
from control.runs.lifecycle import TransitionRefused, request_cancel
from control.runs.summary import announce_run, describe_run
from control.wire.errors import ApiError


@lru_cache(maxsize=256)
def _pattern(glob: str) -> re.Pattern[str]:
    parts = []
    for piece in re.split(r"(\*\*|\*|\?)", glob):
        if piece == "**":
            parts.append(".*")
        elif piece == "*":
            parts.append("[^/]*")
        elif piece == "?":
            parts.append("[^/]")
        else:
            parts.append(re.escape(piece))
    return re.compile("".join(parts) + r"\Z")


def branch_matches(globs: list[str], branch: str) -> bool:
    """Whether ``branch`` matches one of ``globs`` (no globs: every branch)."""
    return not globs or any(_pattern(glob).match(branch) for glob in globs)


@dataclass
class Started:
    runs: list[Run]
    detail: str
    announce: Callable[[], None] = field(default=lambda: None)
    """Publish the new and cancelled runs' events and wake the agents (after the commit)."""


def _same_pull_request(run: Run, event: GitEvent) -> bool:
    info = run.trigger_info
    return (
        run.trigger in (WEBHOOK, "retry")
        and info.get("event") == PULL_REQUEST
        and info.get("pull_request") == event.number
        and info.get("repository") == event.repository
    )


def _cancel_pull_request_runs(session: Session, project: Project, event: GitEvent, job_id: int | None) -> list[Run]:
    """Cancel the unfinished runs of this pull request (of one job, or of every job)."""
    query = select(Run).where(Run.project_id == project.id, col(Run.state).in_([states.QUEUED, *states.ACTIVE]))
    if job_id is not None:
        query = query.where(Run.job_id == job_id)
    cancelled = []
    for run in session.exec(query):
        if not _same_pull_request(run, event):
            continue
        try:
            request_cancel(session, run)
        except TransitionRefused:
            continue
        cancelled.append(run)
    return cancelled


def _matching(session: Session, project: Project, event: GitEvent) -> list[tuple[JobTrigger, Job]]:
    rows = session.exec(
        select(JobTrigger, Job)
        .join(Job, col(Job.id) == col(JobTrigger.job_id))
        .where(Job.project_id == project.id, JobTrigger.kind == event.kind, col(JobTrigger.enabled).is_(True))
        .order_by(col(Job.name))
    ).all()
    return [(t, job) for t, job in rows if branch_matches(list(t.config.get("branches") or []), event.branch)]


def start_runs(
    session: Session, project: Project, provider: str, event: GitEvent, delivery_id: str, svc: Services
) -> Started:
    """Start (and cancel) what ``event`` asks of the project's jobs, in ``session`` (the caller
    commits, then calls :attr:`Started.announce`)."""
    where = f"branch {event.branch}" if event.kind == PUSH else f"pull request {event.number} into {event.branch}"
    if event.action == "closed":
        left = _cancel_pull_request_runs(session, project, event, None)
        detail = f"Pull request {event.number} was closed; cancelled {len(left)} unfinished run(s)."
        return Started([], detail, _announcer(session, svc, [], left))
    matched = _matching(session, project, event)
    if not matched:
        return Started([], f"No job of project {project.name} has a {event.kind} trigger matching {where}.")
    started: list[Run] = []
    cancelled: list[Run] = []
    problems: list[str] = []
    info: dict[str, Any] = {**event.as_info(), "provider": provider, "delivery": delivery_id}
    for trigger, job in matched:
        assert job.id is not None
        env = session.get(Environment, job.environment_id) if job.environment_id else None
        try:
            code = choose_code(session, project, env, job.user_id, ref=event.sha, workspace_allowed=False)
        except ApiError as exc:
            problems.append(f"job {job.name}: {exc.message}")
            continue
        if event.kind == PULL_REQUEST and trigger.config.get("cancel_in_progress", True):
            cancelled += _cancel_pull_request_runs(session, project, event, job.id)
        request = run_request(
            job, project, env, job.user_id, WEBHOOK, info,
            idempotency_key=f"hook:{provider}:{delivery_id}:{trigger.id}"[:200], code=code,
        )  # fmt: skip
        run, created = create_run(session, request)
        if created:
            session.flush()
            queue_status(session, run, "pending")
            started.append(run)
    names = ", ".join(job.name for _, job in matched)
    detail = f"Started {len(started)} run(s) of {names} at {event.sha[:12]} for {where}."
    if cancelled:
        detail += f" Cancelled {len(cancelled)} older run(s) of the pull request."
    if problems:
        detail += " Not started: " + "; ".join(problems)
    return Started(started, detail, _announcer(session, svc, started, cancelled))


def _announcer(session: Session, svc: Services, started: list[Run], cancelled: list[Run]) -> Callable[[], None]:
    def announce() -> None:
        for run in started:
            announce_run(svc.events.publish, svc.hub.publish, describe_run(session, run), "run.created")
        for run in cancelled:
            announce_run(svc.events.publish, svc.hub.publish, describe_run(session, run))
        if started or cancelled:
            svc.hub.publish("work")

    return announce
