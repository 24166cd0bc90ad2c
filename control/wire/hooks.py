"""Bodies of the git webhook routes: a project's inbound webhooks (GitHub, GitLab, Standard
Webhooks), what each delivery did, and the answer a sender gets."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, StringConstraints

from control.wire.fields import Patch

Provider = Literal["github", "gitlab", "standard"]

HookUrl = Annotated[str, StringConstraints(min_length=8, max_length=500, pattern=r"^https?://[^\s]+$")]


class HookSet(Patch):
    """``PUT /projects/{p}/hooks/{provider}``: create or change the project's webhook."""

    NULLABLE = frozenset({"status_token", "api_url"})

    secret: Annotated[str, StringConstraints(min_length=16, max_length=200)] | None = None
    """The shared secret (GitHub's and Standard Webhooks' signing secret, GitLab's token); when
    creating without one a new one is made and returned once. Given again: rotated."""
    status_token: Annotated[str, StringConstraints(min_length=1, max_length=400)] | None = None
    """A token that may post commit statuses (GitHub: ``repo:status`` or a fine-grained "Commit
    statuses: write"; GitLab: ``api`` scope, Developer role); null removes it (no statuses)."""
    api_url: HookUrl | None = None
    """The provider's REST API (default ``https://api.github.com`` / ``https://gitlab.com/api/v4``);
    set it for GitHub Enterprise or a self-managed GitLab. Never taken from a payload."""


class HookOut(BaseModel):
    project: str
    provider: Provider
    url: str
    """Where the provider sends its events."""
    statuses: bool
    """Whether commit statuses are posted back (a token is set)."""
    api_url: str
    created_at: datetime
    updated_at: datetime


class HookCreated(HookOut):
    secret: str | None = None
    """The secret we made; shown this once."""


class HookDeliveryOut(BaseModel):
    id: int
    project: str
    provider: Provider
    delivery_id: str
    event: str
    outcome: Literal["accepted", "ignored"]
    detail: str
    run_ids: list[int]
    received_at: datetime


class HookAnswer(BaseModel):
    """What the sender is answered (it shows in GitHub's and GitLab's delivery logs)."""

    status: Literal["accepted", "ignored", "duplicate"]
    delivery: str
    detail: str
    runs: list[int] = []
