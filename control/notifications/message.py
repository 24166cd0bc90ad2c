"""What a notification says about a run: what ran, at which commit, how it ended, the failing step,
the last lines of its log (secrets masked) and the command that shows the rest.

Built when the delivery is sent (not when the run ends), from the database and the object store,
so the transaction that ends a run reads no log.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlmodel import Session, col, select

from control.db.tables import Environment, LogChunk, Project, Run, RunStep
from control.logformat import decode, tail_records
from control.objectstore import ObjectStore, ObjectStoreProblem
from control.runs.logstore import chunk_key
from control.secretbox import SecretsUnreadable

log = logging.getLogger("devyard.notifications")

TAIL_LINES = 20
TAIL_LINE_CHARS = 300
MASK = "***"

HEADLINES = {
    "succeeded": "succeeded",
    "failed": "failed",
    "timed_out": "timed out",
    "cancelled": "was cancelled",
    "lost": "was lost (its worker stopped answering)",
}


@dataclass
class RunReport:
    """A run's end as every channel tells it (one producer: :func:`report_of`)."""

    run_id: int
    project: str
    state: str
    what: str
    """The job's name, or the command."""
    job: str | None = None
    environment: str | None = None
    trigger: str = "manual"
    commit: str | None = None
    ref: str | None = None
    exit_code: int | None = None
    error: str | None = None
    failing_step: str | None = None
    duration_s: float | None = None
    log_tail: list[str] = field(default_factory=list)
    logs_command: str = ""
    url: str = ""

    @property
    def headline(self) -> str:
        at = f" at {self.commit[:12]}" if self.commit else ""
        return f"{self.project}: {self.what} {HEADLINES.get(self.state, self.state)}{at} (run {self.run_id})"

    def lines(self) -> list[str]:
        """The details, one fact a line, for text channels."""
        facts = [f"Run {self.run_id} of project {self.project} {HEADLINES.get(self.state, self.state)}."]
        facts.append(f"What ran: {self.what}" + (f" (environment {self.environment})" if self.environment else ""))
        if self.commit or self.ref:
            facts.append(f"Commit: {self.commit or '?'}" + (f" ({self.ref})" if self.ref else ""))
        facts.append(f"Triggered by: {self.trigger}")
        outcome = f"Outcome: {self.state}"
        if self.exit_code is not None:
            outcome += f", exit code {self.exit_code}"
        if self.duration_s is not None:
            outcome += f", after {self.duration_s:.1f} s"
        facts.append(outcome)
        if self.failing_step:
            facts.append(f"Failing step: {self.failing_step}")
        if self.error:
            facts.append(f"Error: {self.error}")
        return facts

    def text(self) -> str:
        """The whole message as plain text (e-mail body)."""
        parts = self.lines()
        if self.log_tail:
            parts += ["", f"Last {len(self.log_tail)} lines of the log:", *("  " + line for line in self.log_tail)]
        parts += ["", f"The whole log: {self.logs_command}", f"Run: {self.url}"]
        return "\n".join(parts) + "\n"

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["headline"] = self.headline
        return data


def mask(text: str, secrets: list[str]) -> str:
    """``text`` with every secret value replaced (longest first, as the run worker masks logs)."""
    for value in sorted({s for s in secrets if len(s) >= 3}, key=len, reverse=True):
        text = text.replace(value, MASK)
    return text


def environment_secrets(session: Session, run: Run) -> list[str]:
    """The values the run's log was masked for; masked again here in case a line slipped through."""
    if run.environment_id is None:
        return []
    env = session.get(Environment, run.environment_id)
    if env is None:
        return []
    try:
        return list(env.secrets.values())
    except SecretsUnreadable:
        return []


def log_tail(session: Session, store: ObjectStore, run: Run, lines: int = TAIL_LINES) -> list[str]:
    """The last ``lines`` lines of the run's stored log (empty when there is none or it is gone)."""
    if run.logs_expired_at is not None or run.log_seq == 0:
        return []
    chunks = session.exec(
        select(LogChunk).where(LogChunk.run_id == run.id).order_by(col(LogChunk.seq).desc()).limit(64)
    ).all()
    picked: list[bytes] = []
    counted = 0
    try:
        for chunk in chunks:
            if chunk.object_key == chunk_key(chunk.run_id, chunk.seq):
                picked.append(store.get(chunk.object_key))
            else:
                picked.append(store.get_range(chunk.object_key, chunk.offset, chunk.offset + chunk.size))
            counted += chunk.lines
            if counted >= lines:
                break
    except ObjectStoreProblem:
        log.warning("the log of run %s could not be read for its notification", run.id, exc_info=True)
        return []
    blob = tail_records(b"".join(reversed(picked)), lines)
    return [record.text.decode("utf-8", "replace").rstrip("\r")[:TAIL_LINE_CHARS] for record in decode(blob)]


def failing_step(session: Session, run: Run) -> str | None:
    """The step that ended the run badly (``dbt build`` of step ``build``), when it has steps."""
    for step in session.exec(select(RunStep).where(RunStep.run_id == run.id).order_by(col(RunStep.idx))):
        if step.state in ("failed", "timed_out", "cancelled"):
            code = f", exit code {step.exit_code}" if step.exit_code is not None else ""
            return f"{step.name} (step {step.idx + 1}, {step.state}{code})"
    return None


def report_of(session: Session, store: ObjectStore, run: Run, public_url: str) -> RunReport:
    """The report of ``run`` as it is now."""
    assert run.id is not None
    project = session.get(Project, run.project_id)
    env = session.get(Environment, run.environment_id) if run.environment_id else None
    secrets = environment_secrets(session, run)
    job = run.trigger_info.get("job") if isinstance(run.trigger_info.get("job"), str) else None
    job = getattr(run, "job_name", None) or job
    duration = None
    if run.started_at and run.finished_at:
        duration = (run.finished_at - run.started_at).total_seconds()
    commit = getattr(run, "code_commit", None) or run.trigger_info.get("commit")
    ref = getattr(run, "code_ref", None) or run.trigger_info.get("ref")
    return RunReport(
        run_id=run.id,
        project=project.name if project else "?",
        state=run.state,
        what=f"job {job}" if job else mask(" ".join(run.command)[:200], secrets),
        job=job,
        environment=env.name if env else None,
        trigger=run.trigger,
        commit=str(commit) if commit else None,
        ref=str(ref) if ref else None,
        exit_code=run.exit_code,
        error=mask(run.error, secrets) if run.error else None,
        failing_step=failing_step(session, run),
        duration_s=duration,
        log_tail=[mask(line, secrets) for line in log_tail(session, store, run)],
        logs_command=f"yard runs logs {run.id}",
        url=f"{public_url}/api/v1/runs/{run.id}",
    )
