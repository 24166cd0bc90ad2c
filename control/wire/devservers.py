"""Bodies of the develop server routes (users) and of the agent's reports about them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints

from control.wire.fields import Name, Strict

FINGERPRINT_PATTERN = r"^SHA256:[0-9A-F]{2}(:[0-9A-F]{2}){31}$"
"""A certificate's SHA-256 as control.trust.fingerprint_of writes it."""


class DevServerCreate(Strict):
    project: Name
    environment: Name | None = None
    idle_timeout_s: Annotated[int, Field(ge=60, le=7 * 24 * 3600)] | None = None
    """Stop the server after this long without activity (default one hour)."""


class DevServerOut(BaseModel):
    id: int
    user: str
    project: str
    environment: str | None
    state: str
    substrate: str
    workspace: str | None
    agent_id: int | None
    restart_count: int
    error: str | None
    idle_timeout_s: int
    last_activity_at: datetime | None
    started_at: datetime | None
    stopped_at: datetime | None
    created_at: datetime
    stale_environment: bool = False
    """The environment changed after the server read it: restart the server to get the new values."""


class DevServerReport(Strict):
    state: Literal["starting", "running", "stopped", "failed"]
    handle: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    endpoint: Annotated[str, StringConstraints(pattern=r"^https?://", max_length=500)] | None = None
    tls_fingerprint: Annotated[str, StringConstraints(pattern=FINGERPRINT_PATTERN)] | None = None
    """The develop server's certificate (required with an https endpoint); the gateway pins it."""
    error: Annotated[str, StringConstraints(max_length=2000)] | None = None
    restart_count: Annotated[int, Field(ge=0)] | None = None


class AdoptedDevServer(BaseModel):
    """A server the agent owns, for re-adoption after the agent restarts (secret included)."""

    id: int
    state: str
    handle: str | None
    endpoint: str | None
    tls_fingerprint: str | None = None
    workspace: str | None
    secret: str | None
    restart_count: int
    env: dict[str, str] = {}
    image: str | None = None
    resources: dict[str, Any] = {}
