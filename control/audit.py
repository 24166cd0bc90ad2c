"""The audit log: one row per mutating action, written in the same transaction as the change."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from control.auth import Principal
from control.db.tables import AuditEvent


def record(
    session: Session,
    actor: Principal | None,
    action: str,
    target_type: str,
    target_id: object = None,
    **details: Any,
) -> AuditEvent:
    """Add an audit row to ``session``; the caller's commit makes it durable with the change."""
    event = AuditEvent(
        actor_id=actor.user_id if actor else None,
        actor_name=actor.name if actor else "system",
        action=action,
        target_type=target_type,
        target_id=None if target_id is None else str(target_id),
        details=details,
    )
    session.add(event)
    return event
