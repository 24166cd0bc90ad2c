"""The audit log, readable by admins, newest first."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from sqlmodel import select

from control.api import paging
from control.api.deps import DB, Admin
from control.api.schemas import AuditOut
from control.db.tables import AuditEvent

router = APIRouter(tags=["audit"])


def audit_out(event: AuditEvent) -> AuditOut:
    assert event.id is not None
    return AuditOut(**event.model_dump())


@router.get("/audit", response_model=paging.Page[AuditOut])
def list_audit(
    session: DB,
    _: Admin,
    params: Annotated[paging.PageParams, Depends(paging.page_params)],
    action: Annotated[str | None, Query(max_length=64)] = None,
    actor: Annotated[str | None, Query(max_length=64)] = None,
) -> dict[str, object]:
    statement = select(AuditEvent)
    if action:
        statement = statement.where(AuditEvent.action == action)
    if actor:
        statement = statement.where(AuditEvent.actor_name == actor)
    rows = list(session.exec(paging.apply(statement, AuditEvent.id, params)))
    return paging.build(rows, params, audit_out)
