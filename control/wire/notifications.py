"""Bodies of the notification routes: where to tell someone a run ended, and each delivery with
every attempt and the receiver's answer."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints, model_validator

from control.wire.fields import Name, Strict

Channel = Literal["slack", "email", "webhook"]
DeliveryChannel = Literal["slack", "email", "webhook", "github_status", "gitlab_status"]
Outcome = Literal["succeeded", "failed", "timed_out", "cancelled", "lost"]

DEFAULT_EVENTS: list[Outcome] = ["failed", "timed_out", "lost"]
"""A notification without ``events`` tells about runs that did not succeed and were not cancelled."""

Url = Annotated[str, StringConstraints(min_length=8, max_length=2000, pattern=r"^https?://[^\s]+$")]
Address = Annotated[str, StringConstraints(max_length=254, pattern=r"^[^@\s<>,;]+@[^@\s<>,;]+$")]


class NotificationCreate(Strict):
    """A notification of a project (``job`` unset: the default for its runs) or of one job."""

    name: Name
    channel: Channel
    events: Annotated[list[Outcome], Field(min_length=1, max_length=5)] = DEFAULT_EVENTS
    """Run states that send it."""
    job: Name | None = None
    """Only runs of this job; a job's own notifications replace the project's for its runs."""
    url: Url | None = None
    """slack: the incoming-webhook URL; webhook: the receiver. Kept sealed: never shown again."""
    to: Annotated[list[Address], Field(max_length=20)] = []
    """email: the recipients."""
    secret: Annotated[str, StringConstraints(min_length=16, max_length=200)] | None = None
    """webhook: the signing secret (``whsec_`` + base64, per Standard Webhooks); default: a new one,
    returned once."""

    @model_validator(mode="after")
    def _fits_the_channel(self) -> NotificationCreate:
        if self.channel in ("slack", "webhook") and not self.url:
            raise ValueError(f"a {self.channel} notification needs 'url'")
        if self.channel == "email" and not self.to:
            raise ValueError("an email notification needs at least one address in 'to'")
        if self.channel != "email" and self.to:
            raise ValueError("'to' is for email notifications")
        if self.channel == "email" and self.url:
            raise ValueError("'url' is for slack and webhook notifications")
        if self.secret is not None and self.channel != "webhook":
            raise ValueError("'secret' is for webhook notifications")
        return self


class NotificationOut(BaseModel):
    id: int
    project: str
    job: str | None
    name: str
    channel: Channel
    events: list[Outcome]
    target: str
    """Where it goes, without its secret parts (a host, the addresses)."""
    enabled: bool
    created_at: datetime


class NotificationCreated(NotificationOut):
    signing_secret: str | None = None
    """webhook: the secret receivers verify signatures with; shown this once."""


class AttemptOut(BaseModel):
    number: int
    at: datetime
    duration_ms: int
    ok: bool
    status_code: int | None
    """The HTTP status or SMTP reply code, when the receiver answered."""
    answer: str
    """The start of the receiver's answer, or why there was none (refused, timed out)."""


class DeliveryOut(BaseModel):
    id: int
    project: str
    run_id: int | None
    notification: str | None
    """The notification's name (None: a commit status, or a removed notification)."""
    channel: DeliveryChannel
    target: str
    event: str
    state: Literal["pending", "sending", "delivered", "failed", "superseded"]
    attempts: list[AttemptOut]
    next_attempt_at: datetime | None
    """When it is tried again (pending ones)."""
    last_error: str | None
    created_at: datetime
    finished_at: datetime | None
