"""Routes the run worker calls: started, heartbeat, log chunks, artifacts, finish.

The worker authenticates with the run token minted when its run was claimed (``dyr_...``),
which is good for that one run: a forged run id gets 404 and nothing is stored. Agent and
admin tokens are accepted too (an agent may finish a run whose worker could not start).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Query, Request
from sqlmodel import Session, select

from control.api.deps import _bearer, authenticate, db_session, services_dep
from control.api.errors import conflict, not_found
from control.api.media import binary_body
from control.api.routes.runs import publish_run
from control.api.routing import SegmentRouter
from control.api.services import Services
from control.auth import AGENTS, hash_token
from control.db.tables import Artifact, Run
from control.notifications.outbox import WAKE_KEY as DELIVERIES
from control.runs import states
from control.runs.lifecycle import TransitionRefused, finish, heartbeat, worker_started
from control.runs.logstore import ChunkRejected, ChunkResult, store_chunk
from control.runs.steps import record as record_steps
from control.runs.summary import describe_run
from control.wire.errors import ApiError
from control.wire.runs import ArtifactOut, RunOut, WorkerFinish, WorkerStarted, WorkerStep

router = SegmentRouter(tags=["run worker"])

RUN_TOKEN_PREFIX = "dyr_"


def worker_run(run_id: int, request: Request, session: Annotated[Session, Depends(db_session)]) -> Run:
    """The run this request may act on, or 401/403/404."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() == "bearer" and token.startswith(RUN_TOKEN_PREFIX):
        run = session.exec(select(Run).where(Run.worker_token_hash == hash_token(token))).first()
        if run is None:
            raise ApiError(401, "unauthenticated", "The run token is not valid.")
        if run.id != run_id:
            raise not_found("Run", run_id)
        return run
    svc: Services = request.app.state.services
    who = svc.principals.get(hash_token(token)) or authenticate(svc, _bearer(request))
    if who.role not in AGENTS:
        raise ApiError(403, "forbidden", "Only the run's worker or an agent can use this endpoint.")
    run = session.get(Run, run_id)
    if run is None:
        raise not_found("Run", run_id)
    return run


WorkerRun = Annotated[Run, Depends(worker_run)]
DB = Annotated[Session, Depends(db_session)]
Svc = Annotated[Services, Depends(services_dep)]


@router.post("/runs/{run_id}/worker/started", response_model=RunOut)
def started(run_id: int, body: WorkerStarted, run: WorkerRun, session: DB, svc: Svc) -> RunOut:
    try:
        worker_started(session, run, body.started_at)
    except TransitionRefused as exc:
        raise conflict(str(exc)) from None
    session.commit()
    summary = describe_run(session, run)
    publish_run(svc, summary)
    return summary


@router.post("/runs/{run_id}/worker/step", response_model=RunOut)
def step(run_id: int, body: WorkerStep, run: WorkerRun, session: DB, svc: Svc) -> RunOut:
    """A step started or ended (a late or repeated report changes nothing)."""
    if run.state in states.FINISHED:
        raise conflict(f"Run {run_id} already finished ({run.state}).")
    changed = record_steps(session, run, [body])
    session.commit()
    summary = describe_run(session, run)
    if changed:
        publish_run(svc, summary)
    return summary


@router.post("/runs/{run_id}/worker/heartbeat", status_code=204)
def beat(run_id: int, run: WorkerRun, session: DB) -> None:
    """Keep the run from being marked lost while the command is quiet."""
    heartbeat(session, run)
    session.commit()


@router.put("/runs/{run_id}/logs/{seq}", openapi_extra=binary_body("Log records, ending with a whole record."))
async def put_chunk(
    run_id: int, seq: int, request: Request, run: WorkerRun, session: DB, svc: Svc
) -> dict[str, object]:
    if seq < 1:
        raise ApiError(422, "invalid_request", "Chunk sequence numbers start at 1.")
    if run.state == states.QUEUED:
        raise conflict(f"Run {run_id} has not been claimed by an agent; it cannot have logs yet.")
    data = await request.body()
    from starlette.concurrency import run_in_threadpool

    try:
        result = await run_in_threadpool(store_chunk, session, svc.store, run, seq, data)
    except ChunkRejected as exc:
        raise conflict(str(exc)) from None
    if result is ChunkResult.stored:
        svc.hub.publish(f"run:{run_id}")
    return {"seq": seq, "result": result.value, "log_seq": run.log_seq}


MAX_NAME_BYTES = 255  # one component of an artifact path, as most file systems and stores allow
MAX_PATH_BYTES = 900  # a whole artifact path: S3 keys hold 1,024 bytes, with the store's prefix


def artifact_path_problem(path: str) -> str | None:
    """Why ``path`` cannot name an artifact (finishing "Artifact path P ..."), or None.

    Checked before anything is stored: a name the store refuses used to surface as 503
    ``store_unavailable`` (blaming the store), and a control character as a 500.
    """
    parts = path.split("/")
    if path.startswith("/") or "\x00" in path or any(p in ("", ".", "..") for p in parts):
        return "must be relative and stay inside the run"
    if any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in path):
        return "holds a control character"
    try:
        sizes = [len(p.encode("utf-8")) for p in parts]
    except UnicodeEncodeError:
        return "is not valid UTF-8"
    if max(sizes) > MAX_NAME_BYTES:
        return f"has a name longer than {MAX_NAME_BYTES} bytes"
    if sum(sizes) + len(sizes) - 1 > MAX_PATH_BYTES:
        return f"is longer than {MAX_PATH_BYTES} bytes"
    return None


@router.put(
    "/runs/{run_id}/artifacts",
    response_model=ArtifactOut,
    status_code=201,
    openapi_extra=binary_body("The file, streamed."),
)
async def put_artifact(
    run_id: int,
    request: Request,
    run: WorkerRun,
    session: DB,
    svc: Svc,
    path: Annotated[str, Query(min_length=1, max_length=1000)],
) -> ArtifactOut:
    problem = artifact_path_problem(path)
    if problem is not None:
        raise ApiError(422, "invalid_request", f"Artifact path {path[:200]!r} {problem}.")
    digest = hashlib.sha256()
    size = 0
    with tempfile.NamedTemporaryFile(prefix="devyard-artifact-", delete=False) as spool:
        try:
            async for piece in request.stream():
                digest.update(piece)
                size += len(piece)
                spool.write(piece)
            spool.close()
            key = f"runs/{run_id}/artifacts/{path}"
            from starlette.concurrency import run_in_threadpool

            await run_in_threadpool(svc.store.put_file, key, Path(spool.name))
        finally:
            os.unlink(spool.name)
    existing = session.exec(select(Artifact).where(Artifact.run_id == run_id, Artifact.path == path)).first()
    artifact = existing or Artifact(run_id=run_id, path=path, object_key=key, size=size, sha256="")
    artifact.size, artifact.sha256, artifact.object_key = size, digest.hexdigest(), key
    session.add(artifact)
    session.commit()
    assert artifact.id is not None
    return ArtifactOut(
        id=artifact.id, run_id=run_id, path=path, size=size, sha256=artifact.sha256, created_at=artifact.created_at
    )


@router.post("/runs/{run_id}/worker/finish", response_model=RunOut)
def finished(run_id: int, body: WorkerFinish, run: WorkerRun, session: DB, svc: Svc) -> RunOut:
    # A killed worker cannot ship what it had not shipped: what is stored is the whole log.
    if body.log_seq != run.log_seq and body.outcome != "killed":
        raise conflict(
            f"Run {run_id} has {run.log_seq} log chunks stored but the worker shipped {body.log_seq}; ship the rest first."
        )
    if body.outcome == "exited":
        state = states.SUCCEEDED if body.exit_code == 0 else states.FAILED
    elif body.outcome == "killed" and run.cancel_requested_at is not None:
        # The worker died after a cancel was asked for (the SIGTERM can arrive before the
        # worker has its handler, within its first ~0.1 s): the user's cancel is what happened.
        state = states.CANCELLED
    else:
        state = states.WORKER_OUTCOMES[body.outcome] or states.FAILED
    if run.state not in states.FINISHED or run.state == states.LOST:
        record_steps(session, run, body.steps, final=True)
    try:
        retry = finish(session, run, state, body.exit_code, body.error, body.started_at, body.finished_at)
    except TransitionRefused as exc:
        raise conflict(str(exc)) from None
    session.commit()
    summary = describe_run(session, run)
    publish_run(svc, summary)
    if retry is not None:
        publish_run(svc, describe_run(session, retry), "run.created")
    svc.hub.publish("work", DELIVERIES)  # DELIVERIES: its notifications go now, not at the next poll
    return summary
