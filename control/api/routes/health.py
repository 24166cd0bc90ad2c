"""Health (public, for load balancers) and status (authenticated, for `yard status`)."""

from __future__ import annotations

import time

from sqlalchemy import func, text
from sqlmodel import select

from control import __version__
from control.api.deps import DB, Reader, Svc
from control.api.routing import SegmentRouter
from control.db.tables import Agent, DevServer, Project, Run, User
from control.objectstore import ObjectStoreProblem
from control.wire.errors import ApiError
from control.wire.resources import Health, Status

router = SegmentRouter(tags=["health"])


@router.get("/health", response_model=Health, openapi_extra={"security": []})
def health(session: DB) -> Health:
    """Liveness and readiness: the process answers and the database does too."""
    try:
        session.exec(select(text("1"))).one()  # type: ignore[call-overload]
    except Exception as exc:
        raise ApiError(503, "unavailable", f"The database is not reachable: {type(exc).__name__}.") from exc
    return Health(status="ok", version=__version__, database="ok")


@router.get("/status", response_model=Status)
def status(session: DB, svc: Svc, _: Reader) -> Status:
    """Every component's state, as `yard status` shows it."""
    started = time.perf_counter()
    store: dict[str, object] = {"url": _safe_store_url(svc.store.url)}
    try:
        svc.store.check()
        store["status"] = "ok"
    except ObjectStoreProblem as exc:
        store["status"] = "error"
        store["error"] = str(exc)
    store["latency_ms"] = round((time.perf_counter() - started) * 1000, 2)
    counts = {
        name: session.exec(select(func.count()).select_from(table)).one()
        for name, table in (
            ("users", User),
            ("projects", Project),
            ("runs", Run),
            ("devservers", DevServer),
            ("agents", Agent),
        )
    }
    overall = "ok" if store["status"] == "ok" else "degraded"
    return Status(
        status=overall,
        version=__version__,
        uptime_s=round(time.time() - svc.started, 1),
        database={"status": "ok", "backend": svc.engine.dialect.name},
        object_store=store,
        substrate=svc.settings.substrate,
        counts=counts,
    )


def _safe_store_url(url: str) -> str:
    # Store URLs carry no credentials (those come from AWS_* variables), but be safe.
    scheme, sep, rest = url.partition("://")
    return scheme + sep + rest.split("@")[-1]
