"""A deleted project's notifications, deliveries and webhooks go with it."""

from __future__ import annotations

from sqlmodel import Session, col, delete, select, update

from control.db.tables import Delivery, DeliveryAttempt, HookDelivery, Notification, ProjectHook


def forget_project(session: Session, project_id: int) -> None:
    """Delete them in ``session`` (the caller commits); deliveries go before the runs they name."""
    delivery_ids = select(Delivery.id).where(Delivery.project_id == project_id)
    session.exec(delete(DeliveryAttempt).where(col(DeliveryAttempt.delivery_id).in_(delivery_ids)))  # type: ignore[call-overload]
    for table in (Delivery, Notification, ProjectHook, HookDelivery):
        session.exec(delete(table).where(table.project_id == project_id))  # type: ignore[call-overload, attr-defined, arg-type]


def forget_job(session: Session, job_id: int | None) -> None:
    """Delete a removed job's own notifications (in ``session``); their deliveries stay, unlinked."""
    own = select(Notification.id).where(Notification.job_id == job_id)
    session.exec(update(Delivery).where(col(Delivery.notification_id).in_(own)).values(notification_id=None))  # type: ignore[call-overload]
    session.exec(delete(Notification).where(col(Notification.job_id) == job_id))  # type: ignore[call-overload]
