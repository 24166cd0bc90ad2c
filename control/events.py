"""The event bus behind ``GET /api/v1/events``.

Publishers (route handlers, the scheduler, the agent endpoints) call :meth:`EventBus.publish`
after their transaction commits, from any thread. Each subscriber owns a bounded asyncio queue
on its event loop; a subscriber that falls too far behind is cut off and told so, and can
resume with ``Last-Event-ID`` from the replay buffer instead of slowing everyone down.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from control.clock import utcnow
from control.wire.events import PAYLOADS

SUBSCRIBER_QUEUE = 1000
REPLAY_EVENTS = 2000


@dataclass(frozen=True)
class Event:
    id: int
    type: str
    data: dict[str, Any]
    at: datetime = field(default_factory=utcnow)
    # None: every reader may see it; otherwise only that user (and admins).
    audience: int | None = None

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "type": self.type, "at": self.at.isoformat(), "data": self.data}


@dataclass(eq=False)
class Subscription:
    queue: asyncio.Queue[Event | None]
    loop: asyncio.AbstractEventLoop
    types: frozenset[str]
    overflowed: bool = False

    def wants(self, event: Event) -> bool:
        if not self.types:
            return True
        return any(event.type == t or event.type.startswith(t + ".") for t in self.types)


class EventBus:
    """Fan-out of events to live subscribers with a short replay buffer."""

    def __init__(self) -> None:
        self.origin = uuid.uuid4().hex
        # Set by the API to forward events to other processes (PostgreSQL NOTIFY, the local bus).
        self.remote: Callable[[str], bool] | None = None
        self._lock = threading.Lock()
        self._last_id = 0
        self._subscribers: set[Subscription] = set()
        self._recent: deque[Event] = deque(maxlen=REPLAY_EVENTS)

    def publish(self, type: str, payload: BaseModel, audience: int | None = None) -> Event:
        """Publish ``payload``, which must be of the model ``PAYLOADS`` declares for ``type``."""
        expected = PAYLOADS.get(type)
        if expected is None or not isinstance(payload, expected):
            raise TypeError(
                f"event {type!r} takes a {expected.__name__ if expected else 'declared'} payload "
                f"(control/wire/events.py PAYLOADS), not {payload.__class__.__name__}"
            )
        data = payload.model_dump(mode="json")
        event = self._publish_local(type, data, audience)
        if self.remote is not None:
            self.remote(
                json.dumps(
                    {
                        "origin": self.origin,
                        "id": event.id,
                        "at": event.at.isoformat(),
                        "type": type,
                        "data": data,
                        "audience": audience,
                    }
                )
            )
        return event

    def receive_remote(self, payload: str) -> None:
        """An event published on another replica (our own come back too and are skipped)."""
        try:
            raw = json.loads(payload)
        except ValueError:
            return
        if raw.get("origin") == self.origin:
            return
        event_id = raw.get("id")
        if isinstance(event_id, int):
            with self._lock:
                # Local ids continue after the newest remote one, so ids keep growing in the
                # order a subscriber here sees events, whichever process published them.
                self._last_id = max(self._last_id, event_id)
        self._publish_local(raw["type"], raw["data"], raw.get("audience"), event_id, datetime.fromisoformat(raw["at"]))

    def _publish_local(
        self,
        type: str,
        data: dict[str, Any],
        audience: int | None,
        event_id: int | None = None,
        at: datetime | None = None,
    ) -> Event:
        with self._lock:
            # Ids grow across restarts too (microseconds since the epoch, bumped to stay unique),
            # so a client resuming with an id from before a restart is not confused by reuse.
            if event_id is None:
                self._last_id = max(self._last_id + 1, time.time_ns() // 1000)
                event_id = self._last_id
            event = Event(event_id, type, data, at=at or utcnow(), audience=audience)
            self._recent.append(event)
            targets = [s for s in self._subscribers if s.wants(event)]
        for sub in targets:
            sub.loop.call_soon_threadsafe(self._deliver, sub, event)
        return event

    @staticmethod
    def _deliver(sub: Subscription, event: Event) -> None:
        if sub.overflowed:
            return
        try:
            sub.queue.put_nowait(event)
        except asyncio.QueueFull:
            sub.overflowed = True
            # Make room for the end marker so the reader wakes up and learns it was dropped.
            while not sub.queue.empty():
                sub.queue.get_nowait()
            sub.queue.put_nowait(None)

    def subscribe(self, types: Iterable[str] = (), after: int | None = None) -> tuple[Subscription, list[Event]]:
        """Register a subscriber on the running loop; returns it and the events to replay first."""
        sub = Subscription(asyncio.Queue(SUBSCRIBER_QUEUE), asyncio.get_running_loop(), frozenset(types))
        with self._lock:
            self._subscribers.add(sub)
            backlog = [e for e in self._recent if after is not None and e.id > after and sub.wants(e)]
        return sub, backlog

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            self._subscribers.discard(sub)

    def close(self) -> None:
        """Wake every subscriber so streams end when the server shuts down."""
        with self._lock:
            subs = list(self._subscribers)
        for sub in subs:
            sub.loop.call_soon_threadsafe(self._end, sub)

    @staticmethod
    def _end(sub: Subscription) -> None:
        while sub.queue.full():
            sub.queue.get_nowait()
        sub.queue.put_nowait(None)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)
