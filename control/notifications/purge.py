"""A deleted project's notifications, deliveries and webhooks go with it."""

from __future__ import annotations

from sqlmodel import Session, col, delete, select

from control.db.tables import Delivery, DeliveryAttempt, HookDelivery, Notification, ProjectHook


def forget_project(session: Session, project_id: int) -> None:
    """Delete them in ``session`` (the caller commits); deliveries go before the runs they name."""
    delivery_ids = select(Delivery.id).where(Delivery.project_id == project_id)
    session.exec(delete(DeliveryAttempt).where(col(DeliveryAttempt.delivery_id).in_(delivery_ids)))  # type: ignore[call-overload]
    for table in (Delivery, Notification, ProjectHook, HookDelivery):
        session.exec(delete(table).where(table.project_id == project_id))  # type: ignore[call-overload, attr-defined, arg-type]
