"""Reading a run's log: ranges, tail, and live follow as Server-Sent Events.

Follow replays stored chunks from the object store, then waits for the hub to say a new chunk
landed (in-process, or LISTEN/NOTIFY from another replica) and sends it. Each event carries
its chunk sequence number as the SSE id, so a follower that reconnects with ``Last-Event-ID``
(or ``from_seq``) resumes exactly where it stopped: no gap, no duplicate.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Header, Query
from fastapi.responses import Response, StreamingResponse
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from control.api.deps import DB, Reader, Svc
from control.api.media import BINARY
from control.api.routes.runs import find_run
from control.api.routing import SegmentRouter
from control.api.services import Services
from control.db.tables import LogChunk, Run
from control.logformat import tail_records
from control.objectstore import ObjectNotFound
from control.runs import states
from control.runs.logstore import chunks_from, read_chunk
from control.wire.errors import ApiError

router = SegmentRouter(tags=["run logs"])

KEEPALIVE_S = 15.0
MAX_NON_FOLLOW_CHUNKS = 100_000


def _read_state(svc: Services, run_id: int, from_seq: int) -> tuple[Run, list[LogChunk]]:
    with Session(svc.engine, expire_on_commit=False) as session:
        run = find_run(session, run_id)
        return run, chunks_from(session, run_id, from_seq, limit=200)


def _reload_chunk(svc: Services, run_id: int, seq: int) -> LogChunk | None:
    with Session(svc.engine, expire_on_commit=False) as session:
        found = chunks_from(session, run_id, seq, limit=1)
        return found[0] if found and found[0].seq == seq else None


async def read_current(svc: Services, chunk: LogChunk) -> bytes:
    """A chunk's bytes; if its object is gone because compaction moved it into the run's single
    log object after the index was read, read the index row again and take it from there."""
    try:
        return await read_chunk(svc.store, chunk)
    except ObjectNotFound:
        fresh = await run_in_threadpool(_reload_chunk, svc, chunk.run_id, chunk.seq)
        if fresh is None or (fresh.object_key, fresh.offset) == (chunk.object_key, chunk.offset):
            raise
        return await read_chunk(svc.store, fresh)


def _frame(event: str, seq: int, lines: int, payload: bytes) -> bytes:
    """One frame of the ``format=frames`` stream: ``<event> <size> <seq> <lines>\\n<payload>``."""
    return b"%s %d %d %d\n" % (event.encode(), len(payload), seq, lines) + payload


async def follow(svc: Services, run_id: int, from_seq: int, frames: bool = False) -> AsyncIterator[bytes]:
    next_seq = from_seq
    yield _frame("keepalive", 0, 0, b"") if frames else b": following\n\n"
    with svc.hub.waiter([f"run:{run_id}"]) as wake:
        while True:
            run, chunks = await run_in_threadpool(_read_state, svc, run_id, next_seq)
            for chunk in chunks:
                try:
                    data = await read_current(svc, chunk)
                except ObjectNotFound:
                    # The index points at an object the store no longer has (retention, or a
                    # store that is not shared between replicas): say so instead of hanging.
                    problem = {"message": f"Log chunk {chunk.seq} of run {run_id} is missing from the object store."}
                    body = json.dumps(problem).encode()
                    yield _frame("error", chunk.seq, 0, body) if frames else b"event: error\ndata: " + body + b"\n\n"
                    return
                if frames:
                    yield _frame("chunk", chunk.seq, chunk.lines, data)
                else:
                    # Base64 never needs JSON escaping: splice it in rather than json.dumps a
                    # multi-megabyte string (which costs more than the base64 encoding itself).
                    head = b'id: %d\nevent: chunk\ndata: {"seq": %d, "lines": %d, "data": "' % (
                        chunk.seq,
                        chunk.seq,
                        chunk.lines,
                    )
                    yield head + base64.b64encode(data) + b'"}\n\n'
                next_seq = chunk.seq + 1
            if chunks:
                continue
            if run.state in states.FINISHED and next_seq > run.log_seq:
                end = json.dumps(
                    {"state": run.state, "exit_code": run.exit_code, "error": run.error, "log_seq": run.log_seq}
                ).encode()
                yield _frame("end", run.log_seq, 0, end) if frames else b"event: end\ndata: " + end + b"\n\n"
                return
            if svc.hub.stopping:
                return  # no end frame: the follower reconnects and resumes from next_seq
            if not await wake.wait(KEEPALIVE_S):
                yield _frame("keepalive", 0, 0, b"") if frames else b": keepalive\n\n"


@router.get(
    "/runs/{run_id}/logs",
    response_model=None,
    response_class=Response,
    responses={
        200: {
            "description": "Log records (see docs/api.md), or with follow=true a stream of them.",
            "content": {
                "application/octet-stream": {"schema": BINARY},
                "text/event-stream": {"schema": {"type": "string"}},
                "application/x-devyard-log-frames": {"schema": BINARY},
            },
        }
    },
)
async def read_logs(
    run_id: int,
    session: DB,
    svc: Svc,
    _: Reader,
    follow_: Annotated[
        bool, Query(alias="follow", description="Stream as Server-Sent Events until the run ends.")
    ] = False,
    from_seq: Annotated[int, Query(ge=1, description="First chunk to return.")] = 1,
    to_seq: Annotated[int | None, Query(ge=1, description="Last chunk to return (non-follow).")] = None,
    tail: Annotated[int | None, Query(ge=0, le=1_000_000, description="Only the last N lines (non-follow).")] = None,
    last_event_id: Annotated[int | None, Header(ge=0)] = None,
    format_: Annotated[
        str,
        Query(
            alias="format",
            pattern="^(sse|frames)$",
            description="Follow as SSE (default) or raw length-prefixed frames.",
        ),
    ] = "sse",
) -> Response:
    run = find_run(session, run_id)
    if run.logs_expired_at is not None:
        raise ApiError(
            410, "gone", f"The logs of run {run_id} were removed by retention on {run.logs_expired_at:%Y-%m-%d}."
        )
    if follow_:
        start = last_event_id + 1 if last_event_id is not None else from_seq
        return StreamingResponse(
            follow(svc, run_id, start, frames=format_ == "frames"),
            media_type="text/event-stream" if format_ == "sse" else "application/x-devyard-log-frames",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    last = min(to_seq or run.log_seq, run.log_seq)
    chunks = [c for c in chunks_from(session, run_id, from_seq, limit=MAX_NON_FOLLOW_CHUNKS) if c.seq <= last]
    if tail is not None:
        picked: list[bytes] = []
        lines = 0
        for chunk in reversed(chunks):
            data = await read_current(svc, chunk)
            picked.append(data)
            lines += chunk.lines
            if lines >= tail:
                break
        body = tail_records(b"".join(reversed(picked)), tail)
    headers = {"X-Devyard-Log-Seq": str(last if chunks else from_seq - 1), "X-Devyard-Run-State": run.state}
    if tail is None:
        # Chunk by chunk: the API holds one chunk (at most 4 MiB) of a log of any size. The first
        # is read before answering, so a store that is down is still a clean error response.
        first = await read_current(svc, chunks[0]) if chunks else b""
        stream = _stored(svc, first, chunks[1:])
        return StreamingResponse(stream, media_type="application/octet-stream", headers=headers)
    return Response(body, media_type="application/octet-stream", headers=headers)


async def _stored(svc: Services, first: bytes, rest: list[LogChunk]) -> AsyncIterator[bytes]:
    yield first
    for chunk in rest:
        yield await read_current(svc, chunk)
