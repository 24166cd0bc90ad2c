"""The delivery loop: every API process sends due deliveries, retries with back-off, records attempts.

Why here and not in the run's path: the transaction that ends a run only writes delivery rows
(:mod:`control.notifications.outbox`), so a slow or dead receiver never delays a run's end, an
agent's report or a scheduler tick. Every API replica runs this loop; a delivery is taken with a
conditional update (``pending`` and due, or a ``sending`` lease that ran out) so two replicas
never send it at once, and a replica that dies mid-send leaves it to be taken again when its lease
ends: delivery is at least once, and webhook receivers drop duplicates by ``webhook-id``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, update
from sqlmodel import Session, col, select
from starlette.concurrency import run_in_threadpool

from control.api.services import Services
from control.clock import utcnow
from control.db.tables import Delivery, DeliveryAttempt, Notification, Run
from control.hooks import status
from control.notifications import channels
from control.notifications.channels import Answer
from control.notifications.message import RunReport, report_of
from control.notifications.outbox import WAKE_KEY

log = logging.getLogger("devyard.notifications")

BATCH = 20
IDLE_WAIT_S = 1.0
"""The longest the loop sleeps without a wake-up: deliveries queued by another process (the
scheduler's lost runs) or coming due after a back-off are seen within this."""


@dataclass
class Prepared:
    """A delivery with what sending it needs, read in one short transaction."""

    delivery_id: int
    channel: str
    event: str
    config: dict[str, str]
    payload: dict[str, Any]
    report: RunReport | None
    run_id: int | None = None


def _lease(svc: Services) -> timedelta:
    # An attempt takes at most the timeout (SMTP: per exchange step); the lease outlives it.
    return timedelta(seconds=svc.settings.notify_timeout_s * 4 + 30)


def _due() -> Any:
    now = utcnow()
    return or_(
        and_(col(Delivery.state) == "pending", col(Delivery.next_attempt_at) <= now),
        and_(col(Delivery.state) == "sending", col(Delivery.lease_until) < now),
    )


def claim_due(svc: Services, limit: int = BATCH) -> list[int]:
    """Take up to ``limit`` due deliveries for this process (``sending`` under a lease)."""
    with Session(svc.engine) as session:
        ids = session.exec(select(Delivery.id).where(_due()).order_by(col(Delivery.next_attempt_at)).limit(limit)).all()
        claimed = []
        for delivery_id in ids:
            taken = session.exec(  # type: ignore[call-overload]
                update(Delivery)
                .where(col(Delivery.id) == delivery_id, _due())
                .values(state="sending", lease_until=utcnow() + _lease(svc))
            )
            if taken.rowcount == 1:
                claimed.append(delivery_id)
        session.commit()
    return [i for i in claimed if i is not None]


def _status_config(session: Session, delivery: Delivery) -> dict[str, str] | None:
    """A commit status's token, or None (and the delivery closed) when it should not be sent:
    a newer status of the run exists (an older one retried must not land after it), or the
    project's statuses were turned off."""
    newer = session.exec(
        select(Delivery.id).where(
            Delivery.run_id == delivery.run_id, Delivery.channel == delivery.channel, col(Delivery.id) > delivery.id
        )
    ).first()
    config = None if newer is not None else status.status_config(session, delivery)
    if config is None:
        delivery.state, delivery.finished_at, delivery.lease_until = "superseded", utcnow(), None
        delivery.last_error = (
            "A newer status of the run replaced it." if newer is not None else "The project no longer posts statuses."
        )
        session.add(delivery)
        session.commit()
    return config


def prepare(svc: Services, delivery_id: int) -> Prepared | None:
    """What sending needs; None when it is not to be sent after all (its notification was
    removed, a newer status replaced it), the delivery then closed with the reason."""
    with Session(svc.engine, expire_on_commit=False) as session:
        delivery = session.get(Delivery, delivery_id)
        if delivery is None:
            return None
        payload = dict(delivery.payload)
        if delivery.channel in status.CHANNELS.values():
            config = _status_config(session, delivery)
            if config is None:
                return None
            return Prepared(delivery_id, delivery.channel, delivery.event, config, payload, None, delivery.run_id)
        notification = session.get(Notification, delivery.notification_id) if delivery.notification_id else None
        if notification is None:
            delivery.state, delivery.finished_at = "failed", utcnow()
            delivery.last_error = "Its notification was removed before it could be sent."
            session.add(delivery)
            session.commit()
            return None
        run = session.get(Run, delivery.run_id) if delivery.run_id is not None else None
        report = report_of(session, svc.store, run, svc.settings.effective_public_url) if run is not None else None
        config = dict(notification.config)
        return Prepared(delivery_id, delivery.channel, delivery.event, config, payload, report, delivery.run_id)


async def send(prepared: Prepared, svc: Services) -> Answer:
    """One attempt on the delivery's channel."""
    settings = svc.settings
    report = prepared.report or test_report(prepared.payload.get("project", "?"), settings.effective_public_url)
    message_id = f"msg_devyard_{prepared.delivery_id}"
    if prepared.channel == "slack":
        return await channels.send_slack(prepared.config["url"], report, settings.notify_timeout_s)
    if prepared.channel == "webhook":
        kind = "run.finished" if prepared.report is not None else "notification.test"
        return await channels.send_webhook(
            prepared.config["url"], prepared.config["secret"], message_id, report, settings.notify_timeout_s, kind
        )
    if prepared.channel == "email":
        return await channels.send_email(settings, prepared.config["to"].split(","), report, prepared.delivery_id)
    if prepared.channel in status.CHANNELS.values():
        return await status.send_status(
            prepared.channel,
            prepared.config,
            prepared.payload,
            prepared.event,
            prepared.run_id,
            settings.effective_public_url,
            settings.notify_timeout_s,
        )
    return Answer(False, None, f"This server cannot send {prepared.channel} deliveries.")


def test_report(project: str, public_url: str) -> RunReport:
    """The message of `yard notify test`: a sample, marked as one."""
    return RunReport(
        run_id=0,
        project=project,
        state="failed",
        what="a test message from `yard notify test`",
        trigger="test",
        exit_code=1,
        log_tail=["this is what the last lines of a run's log look like", "secrets in them are shown as ***"],
        logs_command="yard runs logs N",
        url=f"{public_url}/api/v1/runs",
    )


def record(
    svc: Services, delivery_id: int, answer: Answer, at: datetime, duration_ms: int, retries: bool = True
) -> None:
    """Store the attempt and decide: delivered, tried again after the next pause, or failed."""
    delays = svc.settings.notify_retry_delays_s
    with Session(svc.engine) as session:
        delivery = session.get(Delivery, delivery_id)
        if delivery is None:
            return
        delivery.attempts += 1
        session.add(
            DeliveryAttempt(
                delivery_id=delivery_id,
                number=delivery.attempts,
                at=at,
                duration_ms=duration_ms,
                ok=answer.ok,
                status_code=answer.status_code,
                answer=answer.answer[:1000],
            )
        )
        delivery.lease_until = None
        if delivery.state == "superseded":
            pass  # a newer commit status replaced it while it was being sent
        elif answer.ok:
            delivery.state, delivery.finished_at, delivery.last_error = "delivered", utcnow(), None
        elif retries and answer.retry and delivery.attempts <= len(delays):
            delivery.state = "pending"
            delivery.next_attempt_at = utcnow() + timedelta(seconds=delays[delivery.attempts - 1])
            delivery.last_error = answer.answer[:1000]
        else:
            delivery.state, delivery.finished_at, delivery.last_error = "failed", utcnow(), answer.answer[:1000]
        session.add(delivery)
        session.commit()


async def attempt(svc: Services, delivery_id: int, retries: bool = True) -> None:
    """Send a claimed delivery once and record the outcome; never raises."""
    at = utcnow()
    started = time.monotonic()
    try:
        prepared = await run_in_threadpool(prepare, svc, delivery_id)
        if prepared is None:
            return
        answer = await send(prepared, svc)
    except Exception as exc:  # a bug or a database hiccup must not end the loop; it is recorded
        log.warning("delivery %s could not be sent", delivery_id, exc_info=True)
        answer = Answer(False, None, f"The delivery could not be prepared ({type(exc).__name__}).", retry=True)
    duration_ms = int((time.monotonic() - started) * 1000)
    await run_in_threadpool(record, svc, delivery_id, answer, at, duration_ms, retries)


async def delivery_loop(svc: Services) -> None:
    """Send due deliveries until cancelled (the API's lifespan). Attempts run side by side (at most
    :data:`BATCH`), so one receiver that is slow to time out holds up no other delivery."""
    inflight: set[asyncio.Task[None]] = set()
    try:
        while True:
            with svc.hub.waiter([WAKE_KEY]) as wake:
                room = BATCH - len(inflight)
                claimed: list[int] = []
                if room > 0:
                    try:
                        claimed = await run_in_threadpool(claim_due, svc, room)
                    except Exception:  # keep the loop alive through database hiccups
                        log.warning("the delivery loop failed; trying again", exc_info=True)
                for delivery_id in claimed:
                    task = asyncio.create_task(attempt(svc, delivery_id))
                    inflight.add(task)
                    task.add_done_callback(inflight.discard)
                if claimed and len(claimed) == room:
                    continue  # there may be more due
                await wake.wait(IDLE_WAIT_S)
    finally:
        # Cancelled attempts keep their lease; another process (or the next start) takes them.
        for task in inflight:
            task.cancel()
