"""The agent's side of the queue: registration, heartbeats, and the work items it claims.

A claimed item is one of :data:`ClaimedWork`, told apart by ``kind``; the agent matches on the
class. A kind this agent does not know arrives as :class:`UnknownWork` instead of failing the
whole batch, so it can be refused by itself. The item's spec travels under the key ``run`` for
every kind (the wire format predates develop servers).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Discriminator, Field, StringConstraints, Tag

from control.wire.code import CodeSpec
from control.wire.fields import Name, Strict


class AgentRegister(Strict):
    name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")]
    queue: Name = "default"
    substrate: Literal["local", "docker", "kubernetes"] = "local"
    hostname: Annotated[str, StringConstraints(max_length=255)] | None = None
    version: Annotated[str, StringConstraints(max_length=32)] | None = None


class AgentOut(BaseModel):
    id: int
    name: str
    queue: str
    substrate: str
    hostname: str | None
    version: str | None
    last_heartbeat_at: datetime | None


class WorkRequest(Strict):
    agent_id: int
    wait_s: Annotated[float, Field(ge=0, le=60)] = 25.0
    max_items: Annotated[int, Field(ge=1, le=50)] = 10


class LaunchReport(Strict):
    handle: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    error: Annotated[str, StringConstraints(max_length=2000)] | None = None
    code_commit: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{40}$")] | None = None
    """The commit the agent resolved the run's ref to and checked out (repository runs)."""


class AgentHeartbeat(Strict):
    agent_id: int
    runs: Annotated[list[int], Field(max_length=10_000)] = []
    """Runs whose workers the agent still sees alive."""


class StepSpec(BaseModel):
    name: str
    command: list[str]


class RunSpec(BaseModel):
    """What an agent needs to launch a run worker; secrets included (agents are trusted)."""

    id: int
    project: str | None
    environment: str | None
    command: list[str]
    cwd: str | None
    env: dict[str, str]
    secret_values: list[str]
    timeout_s: int | None
    artifact_globs: list[str]
    image: str | None
    resources: dict[str, Any]
    attempt: int
    cancel_grace_s: float
    workspace: str | None
    devserver_id: int | None
    tty: dict[str, int] | None = None
    """``{"cols", "rows"}`` when the command runs in a terminal."""
    steps: list[StepSpec] = []
    """The commands to run in order (a run of one command has one step, ``command``)."""
    stop_signals: list[str] = ["TERM"]
    """Sent to the command's process group in order on cancel or timeout, ``cancel_grace_s``
    apart; KILL after the last grace period."""
    code: CodeSpec | None = None
    """What the agent puts in the run's folder (None: an empty folder, or the workspace)."""


class DevServerSpec(BaseModel):
    """What an agent needs to start or stop a develop server; secrets included (agents are trusted)."""

    id: int
    devserver: Literal[True] = True
    state: str
    workspace: str | None
    secret: str | None
    handle: str | None
    restart_count: int
    env: dict[str, str]
    image: str | None
    resources: dict[str, Any]


class CancelSpec(BaseModel):
    """The run to stop and the handle of its worker, if the API knows it."""

    id: int | None
    handle: str | None


class _Claimed(BaseModel):
    """What every claimed item carries; each kind narrows ``kind`` and ``run``."""

    id: int
    kind: str
    payload: dict[str, Any]
    run: Any
    worker_token: str | None = None
    """The run worker's own token (run items only)."""


class RunWork(_Claimed):
    kind: Literal["run"] = "run"
    run: RunSpec


class CancelWork(_Claimed):
    kind: Literal["cancel"] = "cancel"
    run: CancelSpec


class DevServerStartWork(_Claimed):
    kind: Literal["devserver_start"] = "devserver_start"
    run: DevServerSpec


class DevServerStopWork(_Claimed):
    kind: Literal["devserver_stop"] = "devserver_stop"
    run: DevServerSpec


class UnknownWork(BaseModel):
    """An item of a kind this side does not know; the agent refuses it."""

    id: int
    kind: str


KINDS = ("run", "cancel", "devserver_start", "devserver_stop")


def _kind(item: Any) -> str:
    kind = item.get("kind") if isinstance(item, dict) else getattr(item, "kind", None)
    return kind if kind in KINDS else "unknown"


ClaimedWork = Annotated[
    Annotated[RunWork, Tag("run")]
    | Annotated[CancelWork, Tag("cancel")]
    | Annotated[DevServerStartWork, Tag("devserver_start")]
    | Annotated[DevServerStopWork, Tag("devserver_stop")]
    | Annotated[UnknownWork, Tag("unknown")],
    Discriminator(_kind),
]


class WorkBatch(BaseModel):
    """The answer to ``POST /agent/work``: what was claimed (empty when the wait ran out)."""

    items: list[ClaimedWork]


class LaunchReported(BaseModel):
    id: int
    state: str
