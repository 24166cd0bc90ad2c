"""Bodies of the runs and run-worker routes."""

from __future__ import annotations

from datetime import datetime
from pathlib import PurePosixPath
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints, field_validator, model_validator

from control.wire.code import CodeSource, Ref
from control.wire.fields import Name, Strict

Arg = Annotated[str, StringConstraints(max_length=32_768)]
Glob = Annotated[str, StringConstraints(min_length=1, max_length=500)]
StepName = Annotated[str, StringConstraints(pattern=r"^[^\x00-\x1f\x7f/]{1,64}$", strip_whitespace=True)]
"""A step's name: 1 to 64 printable characters, no '/' (the log's step markers read ``n/total name``)."""

STEP_STATES = ("pending", "running", "succeeded", "failed", "timed_out", "cancelled", "skipped")
StepState = Literal["pending", "running", "succeeded", "failed", "timed_out", "cancelled", "skipped"]
STOP_SIGNALS = ("INT", "TERM", "HUP", "QUIT", "USR1", "USR2")
"""Signals a run may be stopped with, in the order given; KILL always follows the last grace period."""
MAX_STEPS = 50


def check_command(value: list[str]) -> list[str]:
    if not value or not value[0].strip():
        raise ValueError("the command is empty; give the program to run and its arguments")
    if any("\x00" in part for part in value):
        raise ValueError("the command contains a NUL byte")
    return value


def stop_signal_names(value: list[str]) -> list[str]:
    """``["SIGINT", "term"]`` → ``["INT", "TERM"]``; one sentence for anything else."""
    names = []
    for raw in value:
        name = raw.strip().upper().removeprefix("SIG")
        if name == "KILL":
            raise ValueError("KILL is always sent after the last grace period; leave it out of the stop signals")
        if name not in STOP_SIGNALS:
            raise ValueError(f"unknown stop signal {raw!r}; use some of {', '.join(STOP_SIGNALS)}")
        if name in names:
            raise ValueError(f"stop signal {name} is given twice")
        names.append(name)
    return names


class StepCreate(Strict):
    """One step of a run: a command run in the run's folder after the steps before it succeeded."""

    name: StepName
    command: Annotated[list[Arg], Field(max_length=4096)]

    @field_validator("command")
    @classmethod
    def _not_empty(cls, value: list[str]) -> list[str]:
        return check_command(value)


class RunCreate(Strict):
    project: Name
    environment: Name | None = None
    command: Annotated[list[Arg], Field(max_length=4096)] = []
    """The command of a one-step run; leave it out when ``steps`` are given."""
    steps: Annotated[list[StepCreate], Field(max_length=MAX_STEPS)] = []
    """Several commands run in order in the same folder; the run stops at the first that fails."""
    stop_signals: Annotated[list[str], Field(max_length=len(STOP_SIGNALS))] = []
    """Signals that stop the command's process group on cancel or timeout, one per grace period,
    then KILL (default ``["TERM"]``)."""
    stop_grace_s: Annotated[float, Field(gt=0, le=3600)] | None = None
    """Seconds to wait after each stop signal before the next one (default: the server's
    ``cancel_grace_s``, 10 s)."""
    cwd: Annotated[str, StringConstraints(max_length=1000)] | None = None
    """Working directory, relative to the run's code folder (its own folder on the shared volume,
    or the caller's workspace); it never leaves that folder."""
    timeout_s: Annotated[int, Field(gt=0, le=7 * 24 * 3600)] | None = None
    max_retries: Annotated[int, Field(ge=0, le=10)] = 0
    artifacts: Annotated[list[Glob], Field(max_length=50)] = []
    """Globs relative to the working directory, uploaded after the command ends."""
    idempotency_key: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    trigger: Literal["manual", "api", "watch"] = "api"
    trigger_info: Annotated[dict[str, Any], Field(max_length=20)] = {}
    code: CodeSource | None = None
    """Where the code comes from: ``repository`` (a fresh checkout of ``ref``), ``workspace``
    (the caller's running develop server's; refused when there is none) or ``none`` (an empty
    folder). Unset: the rule in docs/runs.md ("Where a run's code comes from")."""
    ref: Ref | None = None
    """A branch, tag or commit of the project's repository (implies ``code: repository``)."""
    in_devserver: bool | None = None
    """Older clients' switch: true is ``code: workspace``; false keeps the rule but never picks
    the workspace."""
    local_tree: Annotated[str, StringConstraints(max_length=4096)] | None = None
    """An absolute folder on the machine of the embedded stack (``yard up`` with the local
    substrate) to run in instead of a code folder on the volume: ``yard watch`` without a develop
    server runs in your own tree. Only the stack's one person (an admin) may ask for it, and only
    that stack's local agent runs it; ``cwd`` must be unset with it."""
    tty: bool = False
    """Give the command a pseudo-terminal (order as a terminal shows it, colours, progress
    bars) instead of one pipe; its output is stored unchanged either way."""
    tty_cols: Annotated[int, Field(ge=10, le=1000)] = 120
    """Window width of the pseudo-terminal (with ``tty``)."""
    tty_rows: Annotated[int, Field(ge=2, le=1000)] = 40
    """Window height of the pseudo-terminal (with ``tty``)."""

    @field_validator("cwd")
    @classmethod
    def _inside_the_code_folder(cls, value: str | None) -> str | None:
        # A run works in its own code folder: "/etc" or "../../.." reached the shared volume
        # above every user's workspace. The agent and the worker check it again after symlinks.
        if value is None or value.strip() in ("", "."):
            return None
        if "\x00" in value or value.startswith("/") or ".." in PurePosixPath(value).parts:
            raise ValueError(
                f"the working directory '{value}' is outside the run's code folder; "
                "give a path relative to it, without '..'"
            )
        return value

    @model_validator(mode="after")
    def _one_code_source(self) -> RunCreate:
        if self.ref is not None and self.code not in (None, "repository"):
            raise ValueError(f"a ref picks a commit of the repository; it cannot go with code '{self.code}'")
        if self.in_devserver and self.code not in (None, "workspace"):
            raise ValueError(f"in_devserver cannot go with code '{self.code}'")
        if self.in_devserver and self.ref is not None:
            raise ValueError("in_devserver cannot go with a ref")
        if self.local_tree is not None and (self.code not in (None, "workspace") or self.ref is not None):
            raise ValueError("a run in your local tree takes no ref and no other code source")
        return self

    @field_validator("local_tree")
    @classmethod
    def _absolute(cls, value: str | None) -> str | None:
        if value is not None and ("\x00" in value or not value.startswith("/")):
            raise ValueError(f"the local tree '{value}' must be an absolute folder")
        return value

    @field_validator("stop_signals")
    @classmethod
    def _known_signals(cls, value: list[str]) -> list[str]:
        return stop_signal_names(value)

    @model_validator(mode="after")
    def _command_or_steps(self) -> RunCreate:
        if self.steps and self.command:
            raise ValueError("give either a command or steps, not both")
        if not self.steps:
            check_command(self.command)
        names = [step.name for step in self.steps]
        if len(set(names)) != len(names):
            raise ValueError(f"step names must differ; '{next(n for n in names if names.count(n) > 1)}' is used twice")
        return self

    @field_validator("artifacts")
    @classmethod
    def _relative_globs(cls, value: list[str]) -> list[str]:
        for glob in value:
            if glob.startswith("/") or ".." in glob.split("/"):
                raise ValueError(f"artifact glob {glob!r} must stay inside the working directory")
        return value


class StepOut(BaseModel):
    """A step of a run as it went."""

    index: int
    """0 for the first step."""
    name: str
    command: list[str]
    state: str
    """pending, running, succeeded, failed, timed_out, cancelled or skipped."""
    exit_code: int | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_s: float | None = None
    log_line: int | None = None
    """The log record (1 = the first) where the step's output starts: its step marker in a run of
    several steps; None until the step starts."""


class RunOut(BaseModel):
    id: int
    project: str
    environment: str | None
    user: str
    command: list[str]
    cwd: str | None
    state: str
    trigger: str
    trigger_info: dict[str, Any]
    attempt: int
    max_retries: int
    retry_of_id: int | None
    devserver_id: int | None = None
    timeout_s: int | None
    exit_code: int | None
    error: str | None
    cancel_requested: bool
    agent_id: int | None
    queued_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    duration_s: float | None
    log_chunks: int
    log_bytes: int
    log_lines: int
    artifact_globs: list[str]
    tty: bool = False
    """Whether the command had a pseudo-terminal."""
    steps: list[StepOut] = []
    """The run's steps in order (one for a run of one command; none for runs stored before steps)."""
    stop_signals: list[str] = []
    """The signals a cancel or timeout sends before KILL (empty: the default, TERM)."""
    stop_grace_s: float | None = None
    code_source: str | None = None
    """repository | workspace | none (None: a run from before code sources were recorded)."""
    code_repo_url: str | None = None
    code_ref: str | None = None
    """The branch, tag or commit asked for (repository runs)."""
    code_commit: str | None = None
    """The commit the agent checked out (set once the agent resolved ``code_ref``)."""
    job: str | None = None
    """The job this is a run of (its name in the run's project), if any."""


class ArtifactOut(BaseModel):
    id: int
    run_id: int
    path: str
    size: int
    sha256: str
    created_at: datetime


class WorkerStarted(Strict):
    pid: int | None = None
    started_at: datetime | None = None


class WorkerStep(Strict):
    """A step's progress, reported by the worker as it happens (and again, all steps, at the end)."""

    index: Annotated[int, Field(ge=0, lt=MAX_STEPS)]
    state: StepState
    exit_code: int | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    log_line: Annotated[int, Field(ge=1)] | None = None


class LatestArtifacts(BaseModel):
    """The newest run that matches a query, and its artifacts."""

    run: RunOut
    artifacts: list[ArtifactOut]


class WorkerFinish(Strict):
    outcome: Literal["exited", "failed_to_start", "timed_out", "cancelled", "killed"]
    exit_code: int | None = None
    error: Annotated[str, StringConstraints(max_length=2000)] | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    log_seq: int = Field(ge=0)
    """The last chunk the worker shipped; the API refuses to finish while chunks are missing."""
    steps: Annotated[list[WorkerStep], Field(max_length=MAX_STEPS)] = []
    """Every step's final state (a worker of an older version sends none)."""
