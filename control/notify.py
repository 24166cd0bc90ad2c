"""Wake-ups between request handlers: "a log chunk landed", "work was queued", "a run ended".

Handlers that long-poll (agents waiting for work, followers tailing logs) register interest in
keys and sleep; writers call :meth:`Hub.publish` after their commit. In one process this is a
direct wake-up. On PostgreSQL every publish is also sent with ``NOTIFY`` and a listener thread
wakes the local waiters on every replica, so a follower connected to replica A sees a chunk
written through replica B. On SQLite the API processes of one data dir do the same through
:class:`~control.localbus.LocalBus`. A notice only says "look again": waiters always re-read the
database, so a lost or duplicated notice can delay but never corrupt anything.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path

from sqlalchemy import Engine

from control.localbus import LocalBus

log = logging.getLogger("devyard.notify")

CHANNEL = "devyard"
EVENTS_CHANNEL = "devyard_events"
NOTIFY_MAX_BYTES = 7900  # PostgreSQL refuses NOTIFY payloads of 8000 bytes or more


class _Waiter:
    __slots__ = ("event", "loop")

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.event = asyncio.Event()

    def wake(self) -> None:
        self.loop.call_soon_threadsafe(self.event.set)


class Hub:
    """In-process wake-ups, bridged across processes: LISTEN/NOTIFY on PostgreSQL, the local bus
    (``bus_dir``) on SQLite."""

    def __init__(self, engine: Engine | None = None, bus_dir: Path | None = None) -> None:
        self._lock = threading.Lock()
        self._waiters: dict[str, set[_Waiter]] = defaultdict(set)
        self.stopping = False  # see begin_shutdown
        self._engine = engine if engine is not None and engine.dialect.name == "postgresql" else None
        self._stop = threading.Event()
        self._listener: threading.Thread | None = None
        self._bus: LocalBus | None = None
        self._on_notice: dict[str, Callable[[], None]] = {}
        self.on_broadcast: Callable[[str], None] | None = None
        if self._engine is not None:
            self._listener = threading.Thread(target=self._listen, name="devyard-listen", daemon=True)
            self._listener.start()
        elif bus_dir is not None:
            self._bus = LocalBus(bus_dir, on_keys=self._remote, on_event=self._remote_event)

    def publish(self, *keys: str) -> None:
        self._wake(keys)
        if self._bus is not None:
            self._bus.send_keys(keys)
        elif self._engine is not None:
            try:
                with self._engine.connect() as conn:
                    for key in keys:
                        conn.exec_driver_sql("SELECT pg_notify(%(channel)s, %(key)s)", {"channel": CHANNEL, "key": key})
                    conn.commit()
            except Exception:  # a lost notice only delays other replicas' waiters
                log.warning("NOTIFY failed", exc_info=True)

    @property
    def bridged(self) -> bool:
        """Whether notices reach other processes, not just this one."""
        return self._engine is not None or self._bus is not None

    def on_notice(self, key: str, callback: Callable[[], None]) -> None:
        """Call ``callback`` (in a listener thread) when another process publishes ``key``."""
        self._on_notice[key] = callback

    def broadcast(self, payload: str) -> bool:
        """Send ``payload`` to :attr:`on_broadcast` of every other replica; False if not sent."""
        if self._bus is not None:
            return self._bus.send_event(payload)
        if self._engine is None or len(payload.encode()) > NOTIFY_MAX_BYTES:
            return False
        try:
            with self._engine.connect() as conn:
                conn.exec_driver_sql(
                    "SELECT pg_notify(%(channel)s, %(payload)s)", {"channel": EVENTS_CHANNEL, "payload": payload}
                )
                conn.commit()
        except Exception:  # the event still reached this replica's subscribers
            log.warning("event broadcast failed", exc_info=True)
            return False
        return True

    def _remote(self, keys: list[str]) -> None:
        """Notices from another process: run their callbacks, wake local waiters."""
        for key in keys:
            callback = self._on_notice.get(key)
            if callback is not None:
                callback()
        self._wake(keys)

    def _remote_event(self, payload: str) -> None:
        if self.on_broadcast is not None:
            self.on_broadcast(payload)

    def _wake(self, keys: Iterable[str]) -> None:
        with self._lock:
            targets = [w for key in keys for w in self._waiters.get(key, ())]
        for waiter in targets:
            waiter.wake()

    @property
    def waiter_count(self) -> int:
        """How many subscriptions are registered now (a long-poll in progress holds one)."""
        with self._lock:
            return sum(len(waiters) for waiters in self._waiters.values())

    def begin_shutdown(self) -> None:
        """The server stops accepting requests: wake every waiter, and long-polls end now
        rather than holding the shutdown for their full wait."""
        self.stopping = True
        with self._lock:
            keys = list(self._waiters)
        self._wake(keys)

    def waiter(self, keys: Iterable[str]) -> Subscription:
        """Register interest now and wait later, so nothing published in between is missed."""
        return Subscription(self, list(keys))

    def close(self) -> None:
        self._stop.set()
        if self._bus is not None:
            self._bus.close()

    def _listen(self) -> None:
        import psycopg

        assert self._engine is not None
        url = self._engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        while not self._stop.is_set():
            try:
                with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    conn.execute(f"LISTEN {EVENTS_CHANNEL}")
                    while not self._stop.is_set():
                        for notice in conn.notifies(timeout=1.0):
                            if notice.channel == EVENTS_CHANNEL:
                                self._remote_event(notice.payload)
                            else:
                                self._remote([notice.payload])
            except Exception:  # reconnect: the database may be restarting
                log.warning("LISTEN connection lost; reconnecting", exc_info=True)
                self._stop.wait(1.0)


class Subscription:
    """Interest registered ahead of a database read (see :meth:`Hub.waiter`)."""

    def __init__(self, hub: Hub, keys: list[str]) -> None:
        self._hub = hub
        self._keys = keys
        self._waiter = _Waiter()
        with hub._lock:
            for key in keys:
                hub._waiters[key].add(self._waiter)

    async def wait(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._waiter.event.wait(), timeout)
            return True
        except TimeoutError:
            return False
        finally:
            self._waiter.event.clear()

    def close(self) -> None:
        with self._hub._lock:
            for key in self._keys:
                self._hub._waiters[key].discard(self._waiter)
                if not self._hub._waiters[key]:
                    del self._hub._waiters[key]

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
