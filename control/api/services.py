"""What the API needs at run time, built once per process from settings."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from control.auth import PrincipalCache
from control.events import EventBus
from control.notify import Hub
from control.objectstore import ObjectStore
from control.settings import Settings


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

    @classmethod
    def from_settings(cls, settings: Settings) -> Services:
        from control.db.engine import make_engine

        engine = make_engine(settings.effective_database_url)
        store = ObjectStore.from_url(
            settings.effective_object_store_url,
            s3_endpoint=settings.s3_endpoint,
            s3_region=settings.s3_region,
        )
        services = cls(settings=settings, engine=engine, store=store, hub=Hub(engine))
        if services.hub.bridged:
            # Events published on any replica reach subscribers on every replica.
            services.events.remote = services.hub.broadcast
            services.hub.on_broadcast = services.events.receive_remote
        return services
