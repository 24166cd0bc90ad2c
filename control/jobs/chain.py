"""Job chaining: when a run of job X ends in state S, start the jobs that run "after X S".

The scheduler does it, once per ended run: every run of a job is created with
``chain_pending``; a cycle picks the ended ones (``FOR UPDATE SKIP LOCKED``), clears the flag and
creates the followers' runs in the same transaction. Each follower run carries the idempotency
key ``after:<trigger>:<run>`` under the runs' unique key, so a crash after the commit or two
schedulers at once still start each follower exactly once. A run that will be retried has not
ended: its retry (also pending) decides.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlmodel import Session, col, select

from control.db.engine import begin_write
from control.db.tables import Environment, Job, JobTrigger, Project, Run
from control.jobs.definition import job_code, run_request
from control.jobs.triggers import AFTER_JOB
from control.runs import states
from control.runs.create import create_run
from control.runs.summary import Publish, Wake, announce_run, describe_run
from control.wire.errors import ApiError
from control.wire.runs import RunOut

BATCH = 100
log = logging.getLogger("devyard.scheduler")


def _will_retry(run: Run) -> bool:
    return run.state in states.RETRYABLE and run.attempt <= run.max_retries


def _followers(session: Session, run: Run) -> list[tuple[JobTrigger, Job]]:
    rows = session.exec(
        select(JobTrigger, Job)
        .join(Job, Job.id == JobTrigger.job_id)  # type: ignore[arg-type]
        .where(Job.project_id == run.project_id, JobTrigger.kind == AFTER_JOB, JobTrigger.enabled == True)  # noqa: E712
    ).all()
    return [
        (trigger, job)
        for trigger, job in rows
        if trigger.config.get("job_id") == run.job_id and run.state in trigger.config.get("states", [])
    ]


def _start_followers(session: Session, run: Run) -> list[Run]:
    upstream = session.get(Job, run.job_id) if run.job_id else None
    project = session.get(Project, run.project_id)
    if upstream is None or project is None:
        return []
    started: list[Run] = []
    for trigger, job in _followers(session, run):
        env = session.get(Environment, job.environment_id) if job.environment_id else None
        info = {"after_job": upstream.name, "after_run": run.id, "after_state": run.state}
        try:
            code = job_code(session, project, env, job.user_id)
        except ApiError as exc:  # e.g. the repository was removed from the project since
            log.warning("job %s did not start after run %s: %s", job.name, run.id, exc.message)
            continue
        request = run_request(
            job, project, env, job.user_id, "job", info, code=code, idempotency_key=f"after:{trigger.id}:{run.id}"
        )
        follower, created = create_run(session, request)
        if created:
            started.append(follower)
    return started


def start_followers(session_factory: Callable[[], Session], publish: Publish, wake: Wake) -> list[RunOut]:
    """Handle every ended run of a job that is still pending; returns the runs started."""
    started: list[RunOut] = []
    while True:
        with session_factory() as session:
            begin_write(session)
            ended = list(
                session.exec(
                    select(Run)
                    .where(Run.chain_pending == True, col(Run.state).in_(states.FINISHED))  # noqa: E712
                    .order_by(col(Run.id))
                    .limit(BATCH)
                    .with_for_update(skip_locked=True)
                )
            )
            created: list[Run] = []
            for run in ended:
                run.chain_pending = False
                session.add(run)
                if not _will_retry(run):
                    created += _start_followers(session, run)
            session.commit()
            summaries = [describe_run(session, follower) for follower in created]
        for summary in summaries:
            announce_run(publish, wake, summary, "run.created")
        started += summaries
        if len(ended) < BATCH:
            if started:
                wake("work")
            return started
