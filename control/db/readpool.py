"""Read-only queries on the event loop, for PostgreSQL: async psycopg connections in a small pool.

The busiest reads (keyset list pages) are one SELECT each. Through the synchronous engine they
cost a hop to a worker thread and back, and under load those threads, the event loop and the
database backends all compete for the GIL and the CPUs: the hops, not the query, set the tail
latency. An async connection sends the query from the event loop and awaits the socket, so a
page costs no thread at all. SQLite has no async driver that avoids threads, and its queries
take microseconds, so it keeps the thread path.

Connections are in autocommit (one SELECT needs no transaction: no BEGIN/ROLLBACK round trips)
and psycopg prepares a statement after its fifth use on a connection. A connection broken by a
server restart or failover fails its query once; the pool then checks its idle connections,
discards the dead ones and the query is retried on a live one (a SELECT is safe to repeat).
"""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool
from sqlalchemy import Engine

POOL_SIZE = 4  # per API process: the event loop sends, PostgreSQL's backends do the work


def conninfo(engine: Engine) -> str:
    """The engine's URL as a libpq connection string (``postgresql://...``, no driver suffix)."""
    url = engine.url.set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


class ReadPool:
    """A pool of async autocommit connections bound to one event loop."""

    def __init__(self, engine: Engine, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._pool = AsyncConnectionPool(
            conninfo(engine),
            min_size=1,
            max_size=POOL_SIZE,
            kwargs={"autocommit": True, "connect_timeout": 5},
            open=False,
            name="devyard-read",
        )
        self._opened = False
        self._opening = asyncio.Lock()

    async def fetchall(self, sql_text: str, arguments: Any) -> list[Any]:
        """Run one SELECT; rows as tuples. Retried once on a connection that turns out dead."""
        if not self._opened:
            async with self._opening:
                if not self._opened:
                    await self._pool.open(wait=False)
                    self._opened = True
        for attempt in (1, 2):
            try:
                async with self._pool.connection() as connection, connection.cursor() as cursor:
                    await cursor.execute(sql_text, arguments)
                    return list(await cursor.fetchall())
            except psycopg.OperationalError:
                if attempt == 2:
                    raise
                # One dead connection usually means all of them (a restart): check the idle
                # ones too, so the retry gets a live one.
                await self._pool.check()
        raise AssertionError("unreachable")

    async def close(self) -> None:
        if self._opened:
            await self._pool.close()
