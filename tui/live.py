"""The events stream, followed for the life of the TUI and reconnected by itself.

:func:`follow_events` yields what the app needs to know, in order: :class:`Connected` (with who
we are) each time the stream opens, :class:`Change` for every event, and :class:`Disconnected`
with the reason when it drops, then retries with back-off. After a reconnect the app reloads
what it shows: the API's event buffer does not survive restarts, so a gap is possible.
No Textual here; the app turns these into messages.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from control.client import AsyncControlClient, DevyardError
from control.wire.resources import Me

RECONNECT_FIRST_S = 0.5
RECONNECT_MAX_S = 10.0


@dataclass(frozen=True)
class Connected:
    """The stream is open; ``user`` is the token's user."""

    user: Me


@dataclass(frozen=True)
class Disconnected:
    """The stream is down; ``reason`` is one sentence, ``retry_in`` seconds until the next try."""

    reason: str
    retry_in: float


@dataclass(frozen=True)
class Change:
    """One event: ``type`` (``run.updated``) and its ``data``."""

    id: int | None
    type: str
    data: dict[str, Any]

    @property
    def kind(self) -> str:
        """The part before the dot: ``run``, ``devserver``, ``schedule``..."""
        return self.type.split(".", 1)[0]


FeedItem = Connected | Disconnected | Change


async def follow_events(client: AsyncControlClient, types: list[str] | None = None) -> AsyncIterator[FeedItem]:
    """Follow the events stream forever, resuming after the last event seen."""
    delay = RECONNECT_FIRST_S
    last_id: int | None = None
    while True:
        try:
            me = await client.me()
            yield Connected(me)
            delay = RECONNECT_FIRST_S
            async for event in client.events(types=types, after=last_id):
                if event.event == "overflow":
                    break
                body = event.json() or {}
                if event.id is not None:
                    last_id = int(event.id)
                data = body.get("data") if isinstance(body, dict) else None
                yield Change(last_id, event.event, data if isinstance(data, dict) else {})
            reason = "The events stream closed."
        except DevyardError as exc:
            reason = str(exc)
        yield Disconnected(reason, delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, RECONNECT_MAX_S)
