"""Periodic work inside the API process: mark runs lost when their heartbeats stop.

Every replica runs it; :func:`~control.runs.lost.reap_lost_runs` never marks a run twice.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from starlette.concurrency import run_in_threadpool

from control.api.services import Services
from control.clock import utcnow
from control.runs.lost import reap_lost_runs

log = logging.getLogger("devyard.housekeeping")


def reap_lost(svc: Services) -> int:
    cutoff = utcnow() - timedelta(seconds=svc.settings.run_lost_after_s)
    return len(reap_lost_runs(svc.engine, cutoff, svc.events.publish, svc.hub.publish, via="housekeeping"))


async def housekeeping_loop(svc: Services) -> None:
    while True:
        await asyncio.sleep(svc.settings.housekeeping_interval_s)
        try:
            count = await run_in_threadpool(reap_lost, svc)
            if count:
                log.info("marked %d run(s) lost", count)
        except Exception:  # keep the loop alive through database hiccups
            log.warning("housekeeping failed", exc_info=True)
