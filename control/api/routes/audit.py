"""The audit log, readable by admins, newest first.

This is the busiest list in a large installation (every change adds a row), so it is served in
one worker-thread hop: query and JSON encoding together, with no per-row model validation.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from sqlalchemy import select
from sqlmodel import SQLModel
from starlette.concurrency import run_in_threadpool

import control.db.tables  # noqa: F401  (registers the tables)
from control.api import paging
from control.api.deps import Admin, Svc
from control.api.schemas import AuditOut
from control.api.services import Services

router = APIRouter(tags=["audit"])

TABLE = SQLModel.metadata.tables["audit_events"]
COLUMNS = [
    TABLE.c[name] for name in ("id", "at", "actor_id", "actor_name", "action", "target_type", "target_id", "details")
]


def _page(svc: Services, params: paging.PageParams, action: str | None, actor: str | None) -> bytes:
    table = TABLE
    statement = select(*COLUMNS)
    if action:
        statement = statement.where(table.c.action == action)
    if actor:
        statement = statement.where(table.c.actor_name == actor)
    if params.cursor is not None:
        statement = statement.where(table.c.id < params.cursor)
    statement = statement.order_by(table.c.id.desc()).limit(params.limit + 1)
    with svc.engine.connect() as conn:
        rows = conn.execute(statement).all()
    more = len(rows) > params.limit
    rows = rows[: params.limit]
    items: list[dict[str, Any]] = [
        {
            "id": r.id,
            "at": r.at.isoformat().replace("+00:00", "Z"),
            "actor_id": r.actor_id,
            "actor_name": r.actor_name,
            "action": r.action,
            "target_type": r.target_type,
            "target_id": r.target_id,
            "details": r.details,
        }
        for r in rows
    ]
    return json.dumps({"items": items, "next_cursor": str(rows[-1].id) if more and rows else None}).encode()


@router.get("/audit", response_model=paging.Page[AuditOut])
async def list_audit(
    svc: Svc,
    _: Admin,
    params: Annotated[paging.PageParams, Depends(paging.page_params)],
    action: Annotated[str | None, Query(max_length=64)] = None,
    actor: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    body = await run_in_threadpool(_page, svc, params, action, actor)
    return Response(body, media_type="application/json")
