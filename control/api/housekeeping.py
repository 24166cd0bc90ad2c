"""Periodic work inside the API process: mark runs lost when their heartbeats stop.

Every replica runs it; the update is conditional (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, a
single writer on SQLite), so two replicas never mark the same run twice.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from control import audit
from control.api.routes.runs import describe_run, publish_run
from control.api.services import Services
from control.db.types import utcnow
from control.runs.claims import serialize_writers
from control.runs.lifecycle import mark_lost

log = logging.getLogger("devyard.housekeeping")


def reap_lost_runs(svc: Services) -> int:
    cutoff = utcnow() - timedelta(seconds=svc.settings.run_lost_after_s)
    with Session(svc.engine, expire_on_commit=False) as session:
        serialize_writers(session)
        changed = mark_lost(session, cutoff)
        for run, retry in changed:
            audit.record(session, None, "run.lost", "run", run.id, retry=retry.id if retry else None)
        session.commit()
        for run, retry in changed:
            publish_run(svc, describe_run(session, run))
            if retry is not None:
                publish_run(svc, describe_run(session, retry), "run.created")
    if changed:
        svc.hub.publish("work")
    return len(changed)


async def housekeeping_loop(svc: Services) -> None:
    while True:
        await asyncio.sleep(svc.settings.housekeeping_interval_s)
        try:
            count = await run_in_threadpool(reap_lost_runs, svc)
            if count:
                log.info("marked %d run(s) lost", count)
        except Exception:  # keep the loop alive through database hiccups
            log.warning("housekeeping failed", exc_info=True)
