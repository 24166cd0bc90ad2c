"""What the API needs at run time, built once per process from settings."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from control.auth import PrincipalCache
from control.events import EventBus
from control.notify import Hub
from control.objectstore import ObjectStore
from control.settings import Settings

# Published when a token is revoked or a user changes: every API process forgets its verified tokens.
PRINCIPALS_CHANGED = "principals"


class SharedPrincipalCache(PrincipalCache):
    """A principal cache that is cleared in every API process at once (through the hub)."""

    def __init__(self, hub: Hub) -> None:
        super().__init__()
        self._hub = hub
        hub.on_notice(PRINCIPALS_CHANGED, super().clear)

    def clear(self) -> None:
        super().clear()
        self._hub.publish(PRINCIPALS_CHANGED)


@dataclass
class Services:
    settings: Settings
    engine: Engine
    store: ObjectStore
    events: EventBus = field(default_factory=EventBus)
    hub: Hub = field(default_factory=Hub)
    principals: PrincipalCache = field(default_factory=PrincipalCache)
    started: float = field(default_factory=time.time)
    # Per-process helpers that routes create on first use (the gateway's HTTP client, ...).
    extras: dict[str, Any] = field(default_factory=dict)

    def begin_shutdown(self) -> None:
        """The server stopped accepting connections: end long-polls and event streams now, so
        the graceful shutdown does not wait out their timeouts."""
        self.hub.begin_shutdown()
        self.events.close()

    @classmethod
    def from_settings(cls, settings: Settings, bus_dir: Path | None = None) -> Services:
        """``bus_dir``: on SQLite, the folder through which this process exchanges wake-ups and
        events with the other API processes of the data dir (PostgreSQL uses NOTIFY instead)."""
        from control.db.engine import make_engine

        engine = make_engine(settings.effective_database_url)
        store = ObjectStore.from_url(
            settings.effective_object_store_url,
            s3_endpoint=settings.s3_endpoint,
            s3_region=settings.s3_region,
        )
        hub = Hub(engine, bus_dir=bus_dir)
        services = cls(settings=settings, engine=engine, store=store, hub=hub)
        if hub.bridged:
            # Events published in any process reach subscribers in every process.
            services.events.remote = hub.broadcast
            hub.on_broadcast = services.events.receive_remote
            services.principals = SharedPrincipalCache(hub)
        return services
