"""The runs a git event starts: jobs whose push or pull-request triggers match it.

Until jobs carry git triggers this answers that nothing matched; the webhook is still verified,
recorded and deduplicated.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlmodel import Session

from control.api.services import Services
from control.db.tables import Project, Run
from control.hooks.events import GitEvent


@dataclass
class Started:
    runs: list[Run]
    detail: str
    announce: Callable[[], None] = field(default=lambda: None)
    """Publish the new runs' events (after the commit)."""


def start_runs(
    session: Session, project: Project, provider: str, event: GitEvent, delivery_id: str, svc: Services
) -> Started:
    where = f"branch {event.branch}" if event.kind == "push" else f"pull request {event.number}"
    return Started([], f"No job of project {project.name} is triggered by {event.kind} to {where}.")
