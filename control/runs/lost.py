"""Runs whose heartbeats stopped become lost: marked, audited and announced by one function.

Both the API's housekeeping and the scheduler's cleanup call :func:`reap_lost_runs`; the update
is conditional (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, a single writer on SQLite), so two
callers never mark the same run twice, and every reader sees the same whole-run event.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine
from sqlmodel import Session

from control import audit
from control.runs.claims import serialize_writers
from control.runs.lifecycle import mark_lost
from control.runs.summary import Publish, Wake, announce_run, describe_run


def reap_lost_runs(engine: Engine, cutoff: datetime, publish: Publish, wake: Wake, via: str) -> list[int]:
    """Mark runs silent since before ``cutoff`` lost (queueing their retries); returns their ids.

    ``via`` names the caller in the audit log.
    """
    with Session(engine, expire_on_commit=False) as session:
        serialize_writers(session)
        changed = mark_lost(session, cutoff)
        for run, retry in changed:
            audit.record(session, None, "run.lost", "run", run.id, retry=retry.id if retry else None, via=via)
        session.commit()
        for run, retry in changed:
            announce_run(publish, wake, describe_run(session, run))
            if retry is not None:
                announce_run(publish, wake, describe_run(session, retry), "run.created")
    if changed:
        wake("work")
    return [run.id or 0 for run, _ in changed]
