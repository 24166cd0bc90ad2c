"""The scheduler process: repeats :meth:`~control.schedules.scheduler.Scheduler.run_once` until
told to stop. `yard scheduler` runs it on its own; `yard up` in a thread of its server."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

from control.schedules.scheduler import Scheduler, standalone_scheduler
from control.settings import Settings

log = logging.getLogger("devyard.scheduler")

MAX_SLEEP_S = 0.5


def serve(scheduler: Scheduler, stop: threading.Event) -> None:
    """Run cycles until ``stop`` is set; sleeps at most half a second between cycles."""
    while not stop.is_set():
        started = time.monotonic()
        try:
            scheduler.run_once()
        except Exception:  # keep scheduling through database hiccups
            log.warning("scheduler cycle failed", exc_info=True)
        stop.wait(max(0.0, MAX_SLEEP_S - (time.monotonic() - started)))
    scheduler.resign()


def serve_standalone(settings: Settings, stop: threading.Event, started: Callable[[str], None]) -> None:
    """`yard scheduler`: serve against the configured database until ``stop`` is set;
    ``started`` is told the database's dialect once it is reachable."""
    with standalone_scheduler(settings) as scheduler:
        scheduler.crash_at = os.environ.get("DEVYARD_SCHEDULER_CRASH_AT")  # fault tests only
        started(scheduler.engine.dialect.name)
        serve(scheduler, stop)
