"""Bodies of the schedule routes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, Field, StringConstraints, field_validator

from control.wire.fields import Name, Patch, Strict
from control.wire.runs import Arg

Catchup = Literal["latest", "all", "none"]
Overlap = Literal["skip", "queue", "cancel_previous"]
Cron = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Tz = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class ScheduleCreate(Strict):
    """A job named ``name`` with one step (``command``) and this cron trigger."""

    name: Name
    project: Name
    environment: Name | None = None
    command: Annotated[list[Arg], Field(min_length=1, max_length=4096)]
    cron: Cron
    timezone: Tz = "UTC"
    catchup: Catchup = "latest"
    catchup_cap: Annotated[int, Field(ge=1, le=1000)] = 10
    overlap: Overlap = "skip"
    enabled: bool = True
    tty: bool = False
    """Its runs get a pseudo-terminal (120x40) instead of one pipe."""

    @field_validator("command")
    @classmethod
    def _not_empty(cls, value: list[str]) -> list[str]:
        if not value[0].strip():
            raise ValueError("the command is empty; give the program to run and its arguments")
        return value


class ScheduleUpdate(Patch):
    NULLABLE: ClassVar[frozenset[str]] = frozenset({"environment"})

    environment: Name | None = None
    command: Annotated[list[Arg], Field(min_length=1, max_length=4096)] | None = None
    cron: Cron | None = None
    timezone: Tz | None = None
    catchup: Catchup | None = None
    catchup_cap: Annotated[int, Field(ge=1, le=1000)] | None = None
    overlap: Overlap | None = None
    enabled: bool | None = None
    tty: bool | None = None


class ScheduleOut(BaseModel):
    """A job's cron trigger, with what the job runs (a schedule is one since jobs came)."""

    id: int
    name: str
    project: str
    job: str | None = None
    """The job this schedule fires; `yard jobs show` shows all of it."""
    environment: str | None
    user: str
    command: list[str]
    """The job's command; for a job of several steps, the first step's."""
    cron: str
    timezone: str
    enabled: bool
    catchup: str
    catchup_cap: int
    overlap: str
    tty: bool = False
    next_fire_at: datetime | None
    last_tick: dict[str, object] | None
    created_at: datetime
    updated_at: datetime


class TickOut(BaseModel):
    id: int
    scheduled_for: datetime
    state: str
    reason: str | None
    run_id: int | None
    run_state: str | None
    created_at: datetime


class TickFired(BaseModel):
    """What firing a schedule did (the answer of ``POST /schedules/{name}/trigger``, and the
    ``schedule.tick`` event)."""

    schedule: str
    tick_id: int
    scheduled_for: datetime
    state: str
    run_id: int | None
    reason: str | None
