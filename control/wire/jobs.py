"""Bodies of the job routes: saved run definitions of a project and what triggers them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, Field, StringConstraints, field_validator

from control.wire.fields import Name, Patch, Strict
from control.wire.runs import MAX_STEPS, STOP_SIGNALS, Arg, Glob, StepName, check_command, stop_signal_names
from control.wire.schedules import Catchup, Cron, Overlap, Tz

EndState = Literal["succeeded", "failed", "cancelled", "timed_out", "lost"]


class JobStep(Strict):
    name: StepName | None = None
    """Shown in the run's steps; the command line (cut to 64 characters) when left out."""
    command: Annotated[list[Arg], Field(min_length=1, max_length=4096)]

    @field_validator("command")
    @classmethod
    def _not_empty(cls, value: list[str]) -> list[str]:
        return check_command(value)


class CronTrigger(Strict):
    """Run the job on a cron expression (the job's schedule; at most one per job)."""

    kind: Literal["cron"] = "cron"
    cron: Cron
    timezone: Tz = "UTC"
    catchup: Catchup = "latest"
    catchup_cap: Annotated[int, Field(ge=1, le=1000)] = 10
    overlap: Overlap = "skip"
    enabled: bool = True


class AfterJobTrigger(Strict):
    """Run the job when another job of the project ends in one of ``states`` (job chaining).

    A run that will be retried has not ended yet: only its last attempt counts."""

    kind: Literal["job"] = "job"
    job: Name
    states: Annotated[list[EndState], Field(min_length=1, max_length=5)] = ["succeeded"]
    enabled: bool = True


BranchGlob = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\s~^:\\\x00-\x1f]+$")]
"""A branch name or glob: ``*`` within one path segment, ``**`` across them, ``?`` one character."""


class PushTrigger(Strict):
    """Run the job at the pushed commit when a branch matching ``branches`` is pushed (a git
    webhook, docs/webhooks.md)."""

    kind: Literal["push"] = "push"
    branches: Annotated[list[BranchGlob], Field(min_length=1, max_length=20)]
    enabled: bool = True


class PullRequestTrigger(Strict):
    """Run the job at a pull (merge) request's head commit when one into a branch matching
    ``branches`` is opened, updated with new commits or reopened."""

    kind: Literal["pull_request"] = "pull_request"
    branches: Annotated[list[BranchGlob], Field(min_length=1, max_length=20)] = ["**"]
    """The pull request's base (target) branch."""
    cancel_in_progress: bool = True
    """A newer update cancels the job's older runs of the same pull request still going."""
    enabled: bool = True


TriggerSpec = Annotated[
    CronTrigger | AfterJobTrigger | PushTrigger | PullRequestTrigger, Field(discriminator="kind")
]
"""A trigger as written."""


def _globs_inside(value: list[str]) -> list[str]:
    for glob in value:
        if glob.startswith("/") or ".." in glob.split("/"):
            raise ValueError(f"artifact glob {glob!r} must stay inside the working directory")
    return value


def _one_cron(value: list[Any] | None) -> list[Any] | None:
    if value is not None and sum(1 for t in value if isinstance(t, CronTrigger)) > 1:
        raise ValueError("a job has at most one cron trigger; put the times in one cron expression")
    return value


Steps = Annotated[list[JobStep], Field(min_length=1, max_length=MAX_STEPS)]
Globs = Annotated[list[Glob], Field(max_length=50)]
Signals = Annotated[list[str], Field(min_length=1, max_length=len(STOP_SIGNALS))]
Timeout = Annotated[int, Field(gt=0, le=7 * 24 * 3600)]
Retries = Annotated[int, Field(ge=0, le=10)]
Grace = Annotated[float, Field(gt=0, le=3600)]
Triggers = Annotated[list[TriggerSpec], Field(max_length=20)]
Description = Annotated[str, StringConstraints(max_length=1000)]


class JobCreate(Strict):
    name: Name
    environment: Name | None = None
    description: Description = ""
    steps: Steps
    artifacts: Globs = []
    """Globs relative to the working directory, collected after every run of the job."""
    timeout_s: Timeout | None = None
    max_retries: Retries = 0
    stop_signals: Signals | None = None
    """How a cancel or timeout stops the command, e.g. ``["INT", "TERM"]``: each signal then
    ``stop_grace_s`` to end, KILL after the last. Unset: the API's default (TERM)."""
    stop_grace_s: Grace | None = None
    tty: bool = False
    """Its runs get a pseudo-terminal (120x40) instead of one pipe (see docs/jobs.md)."""
    triggers: Triggers = []

    _globs = field_validator("artifacts")(_globs_inside)
    _crons = field_validator("triggers")(_one_cron)

    @field_validator("stop_signals")
    @classmethod
    def _signals(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else stop_signal_names(value)


class JobUpdate(Patch):
    """Fields to change; ``triggers`` replaces the whole list (``[]`` removes every trigger)."""

    NULLABLE: ClassVar[frozenset[str]] = frozenset({"environment", "timeout_s", "stop_signals", "stop_grace_s"})

    environment: Name | None = None
    description: Description | None = None
    steps: Steps | None = None
    artifacts: Globs | None = None
    timeout_s: Timeout | None = None
    max_retries: Retries | None = None
    stop_signals: Signals | None = None
    stop_grace_s: Grace | None = None
    tty: bool | None = None
    triggers: Triggers | None = None

    @field_validator("artifacts")
    @classmethod
    def _globs(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else _globs_inside(value)

    _crons = field_validator("triggers")(_one_cron)

    @field_validator("stop_signals")
    @classmethod
    def _signals(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else stop_signal_names(value)


class TriggerOut(BaseModel):
    """One trigger of a job, of any kind (a client shows ``summary`` for kinds it does not know)."""

    kind: str
    summary: str
    """In words: ``cron 30 2 * * * (UTC)``, ``after job load succeeded``."""
    enabled: bool
    config: dict[str, Any]
    """The trigger as written (a ``CronTrigger`` or ``AfterJobTrigger`` body without ``kind``)."""
    schedule: str | None = None
    """A cron trigger's schedule name (`yard schedule show NAME` shows its ticks)."""
    next_fire_at: datetime | None = None


class JobRunBrief(BaseModel):
    """The newest run of a job, as the job listing shows it."""

    id: int
    state: str
    trigger: str
    queued_at: datetime
    finished_at: datetime | None
    exit_code: int | None


class JobOut(BaseModel):
    id: int
    name: str
    project: str
    environment: str | None
    user: str
    """Whose runs its triggers start (the job's author)."""
    description: str
    steps: list[JobStep]
    artifacts: list[str]
    timeout_s: int | None
    max_retries: int
    stop_signals: list[str] | None
    stop_grace_s: float | None
    tty: bool
    triggers: list[TriggerOut]
    next_fire_at: datetime | None
    last_run: JobRunBrief | None
    notifies: list[str] = []
    """The notifications its runs send (its own, else the project's), as ``slack on failed``:
    channels and outcomes, not where they go (``yard jobs show`` lists those for members)."""
    created_at: datetime
    updated_at: datetime


class JobRunCreate(Strict):
    """``POST /projects/{p}/jobs/{name}/runs``: a run of the job now, by hand or by a program."""

    ref: Annotated[str, StringConstraints(min_length=1, max_length=250)] | None = None
    """A branch, tag or commit of the project's repository instead of the environment's branch."""

    idempotency_key: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    trigger: Literal["manual", "api"] = "api"
