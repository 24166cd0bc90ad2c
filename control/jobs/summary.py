"""A job as every reader sees it: the one summary the API answers with and job events carry."""

from __future__ import annotations

from sqlmodel import Session, col, select

from control.db.tables import Environment, Job, Project, Run, User
from control.jobs.triggers import describe_triggers
from control.notifications.applying import applying, summary
from control.wire.jobs import JobOut, JobRunBrief, JobStep


def last_run(session: Session, job_id: int) -> JobRunBrief | None:
    run = session.exec(select(Run).where(Run.job_id == job_id).order_by(col(Run.id).desc()).limit(1)).first()
    if run is None or run.id is None:
        return None
    return JobRunBrief(
        id=run.id,
        state=run.state,
        trigger=run.trigger,
        queued_at=run.queued_at,
        finished_at=run.finished_at,
        exit_code=run.exit_code,
    )


def describe_job(session: Session, job: Job) -> JobOut:
    assert job.id is not None
    project = session.get(Project, job.project_id)
    env = session.get(Environment, job.environment_id) if job.environment_id else None
    user = session.get(User, job.user_id)
    triggers = describe_triggers(session, job)
    fires = [t.next_fire_at for t in triggers if t.next_fire_at is not None]
    return JobOut(
        id=job.id,
        name=job.name,
        project=project.name if project else "?",
        environment=env.name if env else None,
        user=user.name if user else "?",
        description=job.description,
        steps=[JobStep.model_validate(step) for step in job.steps],
        artifacts=list(job.artifact_globs),
        timeout_s=job.timeout_s,
        max_retries=job.max_retries,
        stop_signals=list(job.stop_signals) or None,
        stop_grace_s=job.stop_grace_s,
        tty=job.tty,
        triggers=triggers,
        next_fire_at=min(fires) if fires else None,
        last_run=last_run(session, job.id),
        notifies=[summary(n) for n in applying(session, job.project_id, job.id)],
        created_at=job.created_at,
        updated_at=job.updated_at,
    )
