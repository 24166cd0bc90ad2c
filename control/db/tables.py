"""SQLModel tables of the metadata database.

On SQLite every table uses AUTOINCREMENT, so an id is never reused after a delete (events,
audit rows and logs refer to ids).

Every schema change goes through an Alembic migration in ``control/migrations/versions``; the
test ``tests/control/test_migrations.py`` fails when these classes and the migrations disagree.
Identifiers are integers so that lists can be paged with a keyset (``id < cursor``) in O(page).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, UniqueConstraint
from sqlalchemy.orm import deferred
from sqlmodel import Field, SQLModel

from control.clock import utcnow
from control.db.types import SealedSecrets, SealedText, UTCDateTime
from control.wire.resources import ProjectRole


class User(SQLModel, table=True):
    __tablename__ = "users"
    __table_args__ = {"sqlite_autoincrement": True}

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=64, unique=True, index=True)
    email: str | None = Field(default=None, max_length=254)
    role: str = Field(max_length=16)
    disabled: bool = False
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # The identity provider's ``sub`` for this user, once linked by a single sign-on.
    sso_subject: str | None = Field(default=None, max_length=255, unique=True, index=True)


class ApiToken(SQLModel, table=True):
    __tablename__ = "api_tokens"
    __table_args__ = {"sqlite_autoincrement": True}

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", index=True)
    name: str = Field(max_length=64)
    # sha256 of the whole token; the token itself is shown once and never stored.
    token_hash: str = Field(max_length=64, unique=True)
    prefix: str = Field(max_length=16)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # "api": made by `yard tokens create` or with a user; "sso": one single sign-on session,
    # whose access token (token_hash) is short-lived and renewed with its refresh token.
    kind: str = Field(default="api", max_length=8)
    # sha256 of the session's current refresh token; each refresh replaces both secrets.
    refresh_hash: str | None = Field(default=None, max_length=64, unique=True, index=True)
    refresh_expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # The refresh token this one replaced: presented again, it means a copy was stolen (or a
    # client lost an answer), and the session is ended (RFC 9700 section 4.14.2).
    previous_refresh_hash: str | None = Field(default=None, max_length=64, index=True)


class Project(SQLModel, table=True):
    __tablename__ = "projects"
    __table_args__ = {"sqlite_autoincrement": True}

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=64, unique=True, index=True)
    description: str = Field(default="", max_length=1000)
    # Where runs get their code (see control/runs/code.py); never holds a credential: the
    # validator refuses a URL with a password, and repo_secret names an environment secret.
    repo_url: str | None = Field(default=None, max_length=1000)
    default_branch: str = Field(default="main", max_length=255, sa_column_kwargs={"server_default": "main"})
    repo_secret: str | None = Field(default=None, max_length=128)
    owner_id: int = Field(foreign_key="users.id", index=True)
    max_concurrent_runs: int | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ProjectMember(SQLModel, table=True):
    """A user who works in a project that someone else owns."""

    __tablename__ = "project_members"
    __table_args__ = (UniqueConstraint("project_id", "user_id"), {"sqlite_autoincrement": True})

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="projects.id", index=True)
    user_id: int = Field(foreign_key="users.id", index=True)
    role: str = Field(default=ProjectRole.developer, max_length=16)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


# Encrypted at rest (control/secretbox.py). Deferred: only code that needs the values decrypts them,
# so listing runs still works when a key is missing.
_ENVIRONMENT_SECRETS = Column("secrets", SealedSecrets, nullable=False, default=dict)


class Environment(SQLModel, table=True):
    __tablename__ = "environments"
    __table_args__ = (UniqueConstraint("project_id", "name"), {"sqlite_autoincrement": True})
    __mapper_args__ = {"properties": {"secrets": deferred(_ENVIRONMENT_SECRETS)}}

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="projects.id", index=True)
    name: str = Field(max_length=64)
    variables: dict[str, str] = Field(default_factory=dict, sa_type=JSON)
    # Values of secret variables are given to runs but never returned by the API, are masked in
    # stored logs and are encrypted in the database.
    secrets: dict[str, str] = Field(default_factory=dict, sa_column=_ENVIRONMENT_SECRETS)
    agent_queue: str = Field(default="default", max_length=64)
    image: str | None = Field(default=None, max_length=500)
    resources: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    max_concurrent_runs: int | None = None
    # Only the project's owner, its maintainers and admins may use a protected environment.
    protected: bool = False
    # "deployment": runs check out ``branch`` (default: the project's default branch) of the
    # project's repository; "development": runs use the caller's workspace when there is one.
    kind: str = Field(default="development", max_length=16, sa_column_kwargs={"server_default": "development"})
    branch: str | None = Field(default=None, max_length=255)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


# Sealed like environment secrets, and deferred for the same reason (the scheduler lists servers
# without keys).
_DEVSERVER_SECRET = Column("secret", SealedText, nullable=True)


class DevServer(SQLModel, table=True):
    __tablename__ = "dev_servers"
    __table_args__ = (UniqueConstraint("user_id", "project_id"), {"sqlite_autoincrement": True})
    __mapper_args__ = {"properties": {"secret": deferred(_DEVSERVER_SECRET)}}

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", index=True)
    project_id: int = Field(foreign_key="projects.id", index=True)
    environment_id: int | None = Field(default=None, foreign_key="environments.id")
    state: str = Field(default="pending", max_length=16)
    substrate: str = Field(default="local", max_length=16)
    # The agent that runs it: stop requests and restarts go to that agent's private queue.
    agent_id: int | None = Field(default=None, foreign_key="agents.id", index=True)
    # Relative to the shared volume: workspaces/<user>/<project>; the same across restarts.
    workspace: str | None = Field(default=None, max_length=300)
    handle: str | None = Field(default=None, max_length=200)
    endpoint: str | None = Field(default=None, max_length=500)
    # SHA256:... of the certificate the develop server made at its start (reported with the
    # endpoint): the gateway accepts exactly it. None with an https endpoint is never reached.
    tls_fingerprint: str | None = Field(default=None, max_length=120)
    # Per-server secret the gateway presents; it never leaves the control plane and agent, and is
    # stored sealed (control/db/types.SealedText).
    secret: str | None = Field(default=None, sa_column=_DEVSERVER_SECRET)
    idle_timeout_s: int = 3600
    restart_count: int = 0
    error: str | None = Field(default=None, max_length=2000)
    last_activity_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    started_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    stopped_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # When the agent read the environment's variables for this start: an environment updated
    # later is not what the server runs with (see lifecycle.stale_environment).
    environment_read_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class PreviewLink(SQLModel, table=True):
    """A link that opens one port of one develop server in a browser (``yard dev preview``)."""

    __tablename__ = "preview_links"
    __table_args__ = {"sqlite_autoincrement": True}

    id: int | None = Field(default=None, primary_key=True)
    server_id: int = Field(foreign_key="dev_servers.id", index=True)
    port: int
    # Who made it: the link works only while they may still reach the server.
    user_id: int = Field(foreign_key="users.id")
    # sha256 of the link's secret; the secret is in the link, shown once, never stored.
    token_hash: str = Field(max_length=64, unique=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Run(SQLModel, table=True):
    __tablename__ = "runs"
    __table_args__ = (
        UniqueConstraint("user_id", "idempotency_key"),
        Index("ix_runs_state_id", "state", "id"),
        {"sqlite_autoincrement": True},
    )

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="projects.id", index=True)
    environment_id: int | None = Field(default=None, foreign_key="environments.id", index=True)
    user_id: int = Field(foreign_key="users.id", index=True)
    devserver_id: int | None = Field(default=None, foreign_key="dev_servers.id")
    schedule_id: int | None = Field(default=None, foreign_key="schedules.id", index=True)
    job_id: int | None = Field(default=None, foreign_key="jobs.id", index=True)
    # True until the scheduler has started the runs of jobs chained after this run's end
    # (control/jobs/chain.py); set on every run of a job, cleared once its end was handled.
    chain_pending: bool = Field(default=False, index=True)
    tick_id: int | None = Field(default=None, foreign_key="schedule_ticks.id", unique=True)
    retry_of_id: int | None = Field(default=None, foreign_key="runs.id")
    command: list[str] = Field(default_factory=list, sa_type=JSON)
    cwd: str | None = Field(default=None, max_length=1000)
    state: str = Field(default="queued", max_length=16)
    trigger: str = Field(default="manual", max_length=16)
    trigger_info: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    idempotency_key: str | None = Field(default=None, max_length=200)
    attempt: int = 1
    max_retries: int = 0
    timeout_s: int | None = None
    artifact_globs: list[str] = Field(default_factory=list, sa_type=JSON)
    # The command gets a pseudo-terminal of this size (``--tty``) instead of one pipe.
    tty_cols: int | None = None
    tty_rows: int | None = None
    # Cancel and timeout send these to the command's process group, stop_grace_s apart, then
    # KILL; empty means the default (TERM) and None the server's cancel_grace_s.
    stop_signals: list[str] = Field(default_factory=list, sa_type=JSON)
    stop_grace_s: float | None = None
    # Where the run's code comes from (repository | workspace | none; NULL: a run from before
    # code sources were recorded). For a repository: the URL and ref asked for, and the commit
    # the agent resolved the ref to (a retry or rerun checks out that commit again).
    code_source: str | None = Field(default=None, max_length=16)
    code_repo_url: str | None = Field(default=None, max_length=1000)
    code_ref: str | None = Field(default=None, max_length=255)
    code_commit: str | None = Field(default=None, max_length=40)
    exit_code: int | None = None
    error: str | None = Field(default=None, max_length=2000)
    agent_id: int | None = Field(default=None, foreign_key="agents.id")
    handle: str | None = Field(default=None, max_length=200)
    # The run worker authenticates with a token minted at claim time that is good for this run
    # only, so a worker (or the user's command) cannot write another run's logs.
    worker_token_hash: str | None = Field(default=None, max_length=64, unique=True, index=True)
    cancel_requested_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    log_seq: int = 0
    log_bytes: int = 0
    log_lines: int = 0
    logs_compacted: bool = False
    logs_expired_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    artifacts_expired_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    queued_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    started_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    heartbeat_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class RunStep(SQLModel, table=True):
    """One step of a run (a run of one command has one): its definition and how it went.

    Rows of their own rather than a JSON column on ``runs``: the worker reports each step as it
    starts and ends, and a row per step is updated alone instead of rewriting the run's row
    (which heartbeats and log chunks already update) with a read-modify-write of a list.
    """

    __tablename__ = "run_steps"
    __table_args__ = (UniqueConstraint("run_id", "idx"), {"sqlite_autoincrement": True})

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="runs.id", index=True)
    idx: int
    name: str = Field(max_length=64)
    command: list[str] = Field(default_factory=list, sa_type=JSON)
    state: str = Field(default="pending", max_length=16)
    exit_code: int | None = None
    started_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # The log record (1-based) where the step's output starts.
    log_line: int | None = None


class LogChunk(SQLModel, table=True):
    __tablename__ = "log_chunks"
    __table_args__ = (UniqueConstraint("run_id", "seq"), {"sqlite_autoincrement": True})

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="runs.id", index=True)
    seq: int
    object_key: str = Field(max_length=500)
    # Byte offset of this chunk inside ``object_key``: 0 for a chunk object, its position in
    # the run's single log object after compaction.
    offset: int = 0
    size: int
    lines: int
    sha256: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Artifact(SQLModel, table=True):
    __tablename__ = "artifacts"
    __table_args__ = (UniqueConstraint("run_id", "path"), {"sqlite_autoincrement": True})

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="runs.id", index=True)
    path: str = Field(max_length=1000)
    object_key: str = Field(max_length=1000)
    size: int
    sha256: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Job(SQLModel, table=True):
    """A saved run definition of a project: what to run, how to stop it, what to keep."""

    __tablename__ = "jobs"
    __table_args__ = (UniqueConstraint("project_id", "name"), {"sqlite_autoincrement": True})

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="projects.id", index=True)
    name: str = Field(max_length=64)
    description: str = Field(default="", max_length=1000)
    environment_id: int | None = Field(default=None, foreign_key="environments.id")
    # Runs started by a trigger (cron, another job's end) are this user's: the claim checks
    # again that they may still use the environment.
    user_id: int = Field(foreign_key="users.id")
    # [{"name": ..., "command": [...]}, ...], run in order in one checkout.
    steps: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSON)
    artifact_globs: list[str] = Field(default_factory=list, sa_type=JSON)
    timeout_s: int | None = None
    max_retries: int = 0
    stop_signals: list[str] = Field(default_factory=list, sa_type=JSON)
    stop_grace_s: float | None = None
    tty: bool = False
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class JobTrigger(SQLModel, table=True):
    """What starts a job besides a person, other than its cron schedule: a kind and its config.

    ``job``: ``{"job_id": upstream, "states": [...]}``, a run when the upstream job ends in one
    of those states. Cron triggers are ``schedules`` rows (their ticks need the row).
    """

    __tablename__ = "job_triggers"
    __table_args__ = {"sqlite_autoincrement": True}

    id: int | None = Field(default=None, primary_key=True)
    job_id: int = Field(foreign_key="jobs.id", index=True)
    kind: str = Field(max_length=32)
    config: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    enabled: bool = True
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Schedule(SQLModel, table=True):
    """A job's cron trigger (at most one per job). What runs is the job's; the row holds the
    cron state (next fire time, catch-up, overlap) that its ticks need."""

    __tablename__ = "schedules"
    __table_args__ = {"sqlite_autoincrement": True}

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=64, unique=True, index=True)
    project_id: int = Field(foreign_key="projects.id", index=True)
    job_id: int = Field(foreign_key="jobs.id", unique=True)
    cron: str = Field(max_length=200)
    timezone: str = Field(default="UTC", max_length=64)
    enabled: bool = True
    catchup: str = Field(default="latest", max_length=16)
    catchup_cap: int = 10
    overlap: str = Field(default="skip", max_length=16)
    next_fire_at: datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ScheduleTick(SQLModel, table=True):
    __tablename__ = "schedule_ticks"
    __table_args__ = (UniqueConstraint("schedule_id", "scheduled_for"), {"sqlite_autoincrement": True})

    id: int | None = Field(default=None, primary_key=True)
    schedule_id: int = Field(foreign_key="schedules.id", index=True)
    scheduled_for: datetime = Field(sa_type=UTCDateTime)
    state: str = Field(default="pending", max_length=16)
    reason: str | None = Field(default=None, max_length=500)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Agent(SQLModel, table=True):
    __tablename__ = "agents"
    __table_args__ = {"sqlite_autoincrement": True}

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=128, unique=True)
    queue: str = Field(default="default", max_length=64)
    substrate: str = Field(default="local", max_length=16)
    hostname: str | None = Field(default=None, max_length=255)
    version: str | None = Field(default=None, max_length=32)
    user_id: int | None = Field(default=None, foreign_key="users.id")
    last_heartbeat_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class WorkItem(SQLModel, table=True):
    __tablename__ = "work_items"
    __table_args__ = (Index("ix_work_items_claim", "queue", "state", "id"), {"sqlite_autoincrement": True})

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=32)
    queue: str = Field(default="default", max_length=64)
    state: str = Field(default="pending", max_length=16)
    run_id: int | None = Field(default=None, foreign_key="runs.id", index=True)
    devserver_id: int | None = Field(default=None, foreign_key="dev_servers.id", index=True)
    payload: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    claimed_by: int | None = Field(default=None, foreign_key="agents.id")
    claimed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    attempts: int = 0
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class AuditEvent(SQLModel, table=True):
    __tablename__ = "audit_events"
    __table_args__ = {"sqlite_autoincrement": True}

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    actor_id: int | None = Field(default=None, index=True)
    actor_name: str = Field(max_length=64)
    action: str = Field(max_length=64, index=True)
    target_type: str = Field(max_length=32)
    target_id: str | None = Field(default=None, max_length=64)
    details: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)


class Lease(SQLModel, table=True):
    """A named lease: one holder at a time until it expires (the SQLite scheduler's lock)."""

    __tablename__ = "leases"

    name: str = Field(primary_key=True, max_length=64)
    holder: str = Field(max_length=128)
    expires_at: datetime = Field(sa_type=UTCDateTime)


# Notifications (issue 21). The channel's configuration (a Slack URL, a webhook URL and its
# signing secret, e-mail addresses) is sealed like environment secrets: a Slack incoming-webhook
# URL is itself the credential. ``target`` is what may be shown (a host, the addresses).
_NOTIFICATION_CONFIG = Column("config", SealedSecrets, nullable=False, default=dict)


class Notification(SQLModel, table=True):
    """Where to tell someone that a run of a project (or of one job of it) ended."""

    __tablename__ = "notifications"
    __table_args__ = (UniqueConstraint("project_id", "name"), {"sqlite_autoincrement": True})
    __mapper_args__ = {"properties": {"config": deferred(_NOTIFICATION_CONFIG)}}

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="projects.id", index=True)
    # A job's own notifications replace the project's for its runs; None: the project's default.
    # No foreign key: jobs come from another migration; a deleted job's id is never reused.
    job_id: int | None = Field(default=None, index=True)
    name: str = Field(max_length=64)
    channel: str = Field(max_length=16)
    events: list[str] = Field(default_factory=list, sa_type=JSON)
    target: str = Field(max_length=300)
    config: dict[str, str] = Field(default_factory=dict, sa_column=_NOTIFICATION_CONFIG)
    enabled: bool = True
    created_by: int | None = Field(default=None, foreign_key="users.id")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Delivery(SQLModel, table=True):
    """One message to send (a notification of a run's end, or a commit status), written in the
    transaction that ended the run and sent later by the API's delivery loop, with retries."""

    __tablename__ = "deliveries"
    __table_args__ = (Index("ix_deliveries_due", "state", "next_attempt_at"), {"sqlite_autoincrement": True})

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="projects.id", index=True)
    run_id: int | None = Field(default=None, foreign_key="runs.id", index=True)
    # None once the notification is removed (its history stays), and for commit statuses.
    notification_id: int | None = Field(default=None, foreign_key="notifications.id", index=True)
    channel: str = Field(max_length=16)
    target: str = Field(max_length=300)
    event: str = Field(max_length=16)
    payload: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    state: str = Field(default="pending", max_length=16)
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # While a replica sends it; a replica that died mid-send leaves it to be taken again after this.
    lease_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_error: str | None = Field(default=None, max_length=1000)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class DeliveryAttempt(SQLModel, table=True):
    """One try of a delivery and what the receiver answered."""

    __tablename__ = "delivery_attempts"
    __table_args__ = {"sqlite_autoincrement": True}

    id: int | None = Field(default=None, primary_key=True)
    delivery_id: int = Field(foreign_key="deliveries.id", index=True)
    number: int
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    duration_ms: int = 0
    ok: bool = False
    status_code: int | None = None
    answer: str = Field(default="", max_length=1000)


# Inbound git webhooks (issue 21): the signing secret and the commit-status token are sealed.
_HOOK_SECRET = Column("secret", SealedText, nullable=False)
_HOOK_STATUS_TOKEN = Column("status_token", SealedText, nullable=True)


class ProjectHook(SQLModel, table=True):
    """A project's inbound webhook from one provider (github, gitlab, standard)."""

    __tablename__ = "project_hooks"
    __table_args__ = (UniqueConstraint("project_id", "provider"), {"sqlite_autoincrement": True})
    __mapper_args__ = {"properties": {"secret": deferred(_HOOK_SECRET), "status_token": deferred(_HOOK_STATUS_TOKEN)}}

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="projects.id", index=True)
    provider: str = Field(max_length=16)
    secret: str = Field(sa_column=_HOOK_SECRET)
    # Commit statuses are posted with this token (none: no statuses) to api_url.
    status_token: str | None = Field(default=None, sa_column=_HOOK_STATUS_TOKEN)
    api_url: str | None = Field(default=None, max_length=500)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class HookDelivery(SQLModel, table=True):
    """An accepted inbound webhook request; its delivery id is never acted on twice."""

    __tablename__ = "hook_deliveries"
    __table_args__ = (UniqueConstraint("project_id", "provider", "delivery_id"), {"sqlite_autoincrement": True})

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="projects.id", index=True)
    provider: str = Field(max_length=16)
    delivery_id: str = Field(max_length=200)
    event: str = Field(max_length=64)
    outcome: str = Field(max_length=16)
    detail: str = Field(default="", max_length=1000)
    run_ids: list[int] = Field(default_factory=list, sa_type=JSON)
    received_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class DeviceCode(SQLModel, table=True):
    """One `yard login --sso` (RFC 8628): the CLI polls with the device code while a person
    approves the user code in a browser. Both codes are stored as SHA-256 only."""

    __tablename__ = "device_codes"
    __table_args__ = {"sqlite_autoincrement": True}

    id: int | None = Field(default=None, primary_key=True)
    device_code_hash: str = Field(max_length=64, unique=True)
    user_code_hash: str = Field(max_length=64, unique=True)
    client_name: str = Field(max_length=64)
    # pending -> approved (a user signed in) -> used (its token was issued); or denied.
    state: str = Field(default="pending", max_length=16)
    user_id: int | None = Field(default=None, foreign_key="users.id")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime, index=True)
    interval_s: float = 5.0
    last_polled_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class OidcLogin(SQLModel, table=True):
    """One trip of a browser to the identity provider for a device code: the state (stored
    hashed), nonce and PKCE verifier that its callback must match. Removed when used."""

    __tablename__ = "oidc_logins"
    __table_args__ = {"sqlite_autoincrement": True}

    id: int | None = Field(default=None, primary_key=True)
    state_hash: str = Field(max_length=64, unique=True)
    nonce: str = Field(max_length=128)
    code_verifier: str = Field(max_length=128)
    redirect_uri: str = Field(max_length=1000)
    device_code_id: int = Field(foreign_key="device_codes.id", index=True)
    expires_at: datetime = Field(sa_type=UTCDateTime)
