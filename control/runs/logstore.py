"""Log chunks: objects in the store, indexed by (run, seq) in the database.

A chunk is written to the object store first and indexed second, so an index row always points
at a complete object. A retried upload of a chunk that is already indexed is compared by hash:
identical means "already have it" (the retry never duplicates lines), different is a conflict.
"""

from __future__ import annotations

import hashlib
from enum import Enum

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from control.clock import utcnow
from control.db.tables import LogChunk, Run
from control.logformat import count_records
from control.objectstore import ObjectStore


class ChunkResult(Enum):
    stored = "stored"
    duplicate = "duplicate"


class ChunkRejected(Exception):
    """The chunk does not fit the run's log; one sentence for the worker."""


def chunk_key(run_id: int, seq: int) -> str:
    return f"runs/{run_id}/logs/{seq:08d}"


def store_chunk(session: Session, store: ObjectStore, run: Run, seq: int, data: bytes) -> ChunkResult:
    """Store chunk ``seq`` of ``run`` (the next one, or an identical retry) and commit."""
    assert run.id is not None
    digest = hashlib.sha256(data).hexdigest()
    if seq <= run.log_seq:
        existing = session.exec(select(LogChunk).where(LogChunk.run_id == run.id, LogChunk.seq == seq)).first()
        if existing is not None and existing.sha256 == digest:
            return ChunkResult.duplicate
        raise ChunkRejected(f"Chunk {seq} of run {run.id} was already stored with different content.")
    if seq != run.log_seq + 1:
        raise ChunkRejected(f"Chunk {seq} of run {run.id} is out of order; expected chunk {run.log_seq + 1}.")
    if data and not data.endswith(b"\n"):
        raise ChunkRejected(f"Chunk {seq} of run {run.id} does not end with a complete record.")
    key = chunk_key(run.id, seq)
    store.put(key, data)
    lines = count_records(data)
    session.add(LogChunk(run_id=run.id, seq=seq, object_key=key, size=len(data), lines=lines, sha256=digest))
    run.log_seq, run.log_bytes, run.log_lines, run.heartbeat_at = (
        seq,
        run.log_bytes + len(data),
        run.log_lines + lines,
        utcnow(),
    )
    session.add(run)
    try:
        session.commit()
    except IntegrityError:
        # A concurrent retry of the same chunk won the race; judge it like a late retry.
        session.rollback()
        existing = session.exec(select(LogChunk).where(LogChunk.run_id == run.id, LogChunk.seq == seq)).first()
        if existing is not None and existing.sha256 == digest:
            return ChunkResult.duplicate
        raise ChunkRejected(f"Chunk {seq} of run {run.id} conflicts with a concurrent upload.") from None
    return ChunkResult.stored


def compacted_key(run_id: int) -> str:
    return f"runs/{run_id}/log"


async def read_chunk(store: ObjectStore, chunk: LogChunk) -> bytes:
    """A chunk's bytes, from its own object or from its range in the compacted log."""
    if chunk.object_key == chunk_key(chunk.run_id, chunk.seq):
        return await store.get_async(chunk.object_key)
    return await store.get_range_async(chunk.object_key, chunk.offset, chunk.offset + chunk.size)


def chunks_from(session: Session, run_id: int, from_seq: int, limit: int = 1000) -> list[LogChunk]:
    return list(
        session.exec(
            select(LogChunk)
            .where(LogChunk.run_id == run_id, LogChunk.seq >= from_seq)
            .order_by(col(LogChunk.seq))
            .limit(limit)
        )
    )
