"""The events of ``GET /api/v1/events``: the envelope and the payload model of each type.

Every event is ``{"id", "type", "at", "data"}``; ``data`` is the whole resource for resource
events (``run.*`` a :class:`RunOut`, ``devserver.updated`` a :class:`DevServerOut`...) and a
small reference for the rest. :func:`resource_of` reads ``data`` for a consumer that keeps the
resource: a payload that names only some fields changes the copy it already has.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from control.wire.devservers import DevServerOut
from control.wire.jobs import JobOut
from control.wire.runs import RunOut
from control.wire.schedules import ScheduleOut, TickFired
from control.wire.work import AgentOut

M = TypeVar("M", bound=BaseModel)


class Event(BaseModel):
    """One event as the stream sends it (the SSE ``data`` line)."""

    id: int
    type: str
    at: datetime
    data: dict[str, Any]


class ProjectRef(BaseModel):
    """``project.created`` / ``updated`` / ``deleted``."""

    id: int | None
    name: str


class EnvironmentRef(BaseModel):
    """``environment.created`` / ``updated`` / ``deleted``."""

    id: int | None
    project: str
    name: str


class UserRef(BaseModel):
    """``user.created`` (with the role) and ``user.updated``."""

    id: int | None
    name: str
    role: str | None = None


class JobRef(BaseModel):
    """``job.deleted``."""

    id: int | None
    project: str
    name: str


class ScheduleRef(BaseModel):
    """``schedule.deleted``."""

    id: int | None
    name: str


class LostRuns(BaseModel):
    """``cleanup.lost``: the runs the cleanup pass marked lost (each also has its ``run.updated``)."""

    runs: list[int]


class CleanedIds(BaseModel):
    """``cleanup.compacted`` / ``logs_expired`` / ``artifacts_expired`` / ``devservers_stopped``."""

    ids: list[int]


class CleanedWorkItems(BaseModel):
    """``cleanup.work_items``: orphaned items closed and old ones deleted."""

    closed: int
    deleted: int


PAYLOADS: dict[str, type[BaseModel]] = {
    "run.created": RunOut,
    "run.updated": RunOut,
    "devserver.updated": DevServerOut,
    "agent.registered": AgentOut,
    "schedule.created": ScheduleOut,
    "schedule.updated": ScheduleOut,
    "schedule.deleted": ScheduleRef,
    "schedule.tick": TickFired,
    "job.created": JobOut,
    "job.updated": JobOut,
    "job.deleted": JobRef,
    "project.created": ProjectRef,
    "project.updated": ProjectRef,
    "project.deleted": ProjectRef,
    "environment.created": EnvironmentRef,
    "environment.updated": EnvironmentRef,
    "environment.deleted": EnvironmentRef,
    "user.created": UserRef,
    "user.updated": UserRef,
    "cleanup.lost": LostRuns,
    "cleanup.compacted": CleanedIds,
    "cleanup.logs_expired": CleanedIds,
    "cleanup.artifacts_expired": CleanedIds,
    "cleanup.devservers_stopped": CleanedIds,
    "cleanup.work_items": CleanedWorkItems,
}
"""The payload model of every event type the API publishes: ``EventBus.publish`` refuses a type
that is not here or a payload of another model, so a new event is declared before it is sent."""


def resource_of(model: type[M], data: dict[str, Any], known: M | None = None) -> M | None:
    """``data`` as ``model``: the whole resource, or (a payload naming only some fields) ``known``
    with those fields changed; None when it is partial and nothing is known."""
    try:
        return model.model_validate(data)
    except ValidationError:
        return known.model_copy(update=data) if known is not None else None
