"""The audit log, readable by admins, newest first.

This is the busiest list in a large installation (every change adds a row), so it is a
:class:`~control.api.paging.JsonList`: the database renders each row as JSON.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query
from fastapi.responses import Response
from sqlmodel import SQLModel

import control.db.tables  # noqa: F401  (registers the tables)
from control.api import paging
from control.api.deps import Admin, Svc
from control.api.routing import SegmentRouter
from control.wire.resources import AuditOut, Page

router = SegmentRouter(tags=["audit"])

AUDIT = paging.JsonList(
    SQLModel.metadata.tables["audit_events"],
    ("id", "at", "actor_id", "actor_name", "action", "target_type", "target_id", "details"),
    filters={"action": "action", "actor": "actor_name"},
)


@router.get("/audit", response_model=Page[AuditOut])
async def list_audit(
    svc: Svc,
    _: Admin,
    params: Annotated[paging.PageParams, Depends(paging.page_params)],
    action: Annotated[str | None, Query(max_length=64)] = None,
    actor: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    return await AUDIT.respond(svc, params, action=action, actor=actor)
