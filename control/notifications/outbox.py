"""Deliveries written with the change they tell about (the outbox).

A run's end writes its notification deliveries in the transaction that records the end, so a
crash between "the run ended" and "someone was told" cannot lose the message, and nothing is sent
from inside that transaction: the API's delivery loop (:mod:`control.notifications.dispatcher`)
sends them afterwards, retrying with back-off, and records every attempt.
"""

from __future__ import annotations

from sqlmodel import Session

from control.db.tables import Delivery, Notification, Run
from control.hooks.status import queue_status
from control.notifications.applying import applying
from control.runs import states

WAKE_KEY = "deliveries"
"""Published (``Hub.publish``) after a commit that queued deliveries: the loop looks at once."""


def notifications_for(session: Session, run: Run) -> list[Notification]:
    """The enabled notifications that apply to ``run``: its job's own if the job has any, else the
    project's defaults (those without a job)."""
    return applying(session, run.project_id, getattr(run, "job_id", None))


def queue_run_end(session: Session, run: Run, retried: bool) -> list[Delivery]:
    """Queue the notifications of a run that just ended (in ``session``, committed by the caller).

    A failed attempt that is retried is not the end: only the last attempt's outcome is told.
    """
    if retried or run.state not in states.FINISHED:
        return []
    queued = []
    posted = queue_status(session, run, run.state)  # a run a git webhook started: its commit status
    if posted is not None:
        queued.append(posted)
    for notification in notifications_for(session, run):
        if run.state not in notification.events:
            continue
        delivery = Delivery(
            project_id=run.project_id,
            run_id=run.id,
            notification_id=notification.id,
            channel=notification.channel,
            target=notification.target,
            event=run.state,
        )
        session.add(delivery)
        queued.append(delivery)
    return queued
