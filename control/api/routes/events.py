"""``GET /api/v1/events``: the live event stream as Server-Sent Events."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Header, Query
from fastapi.responses import StreamingResponse

from control.api.deps import Reader, Svc
from control.api.routing import SegmentRouter
from control.auth import Principal
from control.events import Event, EventBus

router = SegmentRouter(tags=["events"])

KEEPALIVE_S = 15.0


def sse(event: Event) -> bytes:
    return f"id: {event.id}\nevent: {event.type}\ndata: {json.dumps(event.as_json())}\n\n".encode()


def visible(event: Event, who: Principal) -> bool:
    return event.audience is None or who.is_admin or event.audience == who.user_id


async def stream(bus: EventBus, who: Principal, types: list[str], after: int | None) -> AsyncIterator[bytes]:
    sub, backlog = bus.subscribe(types, after)
    try:
        # An initial comment flushes headers so clients know they are connected.
        yield b": connected\n\n"
        for event in backlog:
            if visible(event, who):
                yield sse(event)
        while True:
            try:
                item = await asyncio.wait_for(sub.queue.get(), KEEPALIVE_S)
            except TimeoutError:
                yield b": keepalive\n\n"
                continue
            if item is None:
                if sub.overflowed:
                    yield b"event: overflow\ndata: {}\n\n"
                return
            if visible(item, who):
                yield sse(item)
    finally:
        bus.unsubscribe(sub)


@router.get("/events", response_class=StreamingResponse)
async def events(
    who: Reader,
    svc: Svc,
    types: Annotated[
        str | None, Query(max_length=500, description="Comma-separated type prefixes, e.g. run,project.")
    ] = None,
    after: Annotated[int | None, Query(ge=0, description="Replay buffered events after this id.")] = None,
    last_event_id: Annotated[int | None, Header(ge=0)] = None,
) -> StreamingResponse:
    wanted = [t.strip() for t in types.split(",") if t.strip()] if types else []
    resume = after if after is not None else last_event_id
    return StreamingResponse(
        stream(svc.events, who, wanted, resume),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
