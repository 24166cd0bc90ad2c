"""Artifacts of a run: list and download (readers)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from urllib.parse import quote

from fastapi.responses import StreamingResponse
from sqlmodel import col, select

from control.api.deps import DB, Reader, Svc
from control.api.errors import not_found
from control.api.media import BINARY
from control.api.routes.runs import find_run
from control.api.routing import SegmentRouter
from control.db.tables import Artifact
from control.runs.summary import artifact_out
from control.wire.runs import ArtifactOut

router = SegmentRouter(tags=["artifacts"])

# What may stand in a quoted ASCII ``filename=``: printable ASCII without '"' and '\\'.
_UNSAFE_ASCII = re.compile(r'[^\x20-\x7e]|["\\]')


def content_disposition(name: str) -> str:
    """An ``attachment`` header for a file called ``name`` (RFC 6266): an ASCII ``filename``
    for old clients and, when the name is not plain ASCII, ``filename*`` with the UTF-8 name
    percent-encoded (RFC 5987). Headers are Latin-1 on the wire: a raw non-Latin-1 name failed
    every such download."""
    decomposed = "".join(c for c in unicodedata.normalize("NFKD", name) if not unicodedata.combining(c))
    fallback = _UNSAFE_ASCII.sub("_", decomposed).strip() or "download"
    if fallback == name:
        return f'attachment; filename="{name}"'
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


@router.get("/runs/{run_id}/artifacts", response_model=list[ArtifactOut])
def list_artifacts(run_id: int, session: DB, _: Reader) -> list[ArtifactOut]:
    find_run(session, run_id)
    rows = session.exec(select(Artifact).where(Artifact.run_id == run_id).order_by(col(Artifact.path)))
    return [artifact_out(a) for a in rows]


@router.get(
    "/runs/{run_id}/artifacts/{artifact_id}/content",
    response_class=StreamingResponse,
    responses={
        200: {"description": "The artifact's bytes.", "content": {"application/octet-stream": {"schema": BINARY}}}
    },
)
def download(run_id: int, artifact_id: int, session: DB, svc: Svc, _: Reader) -> StreamingResponse:
    artifact = session.get(Artifact, artifact_id)
    if artifact is None or artifact.run_id != run_id:
        raise not_found("Artifact", artifact_id)
    name = artifact.path.rsplit("/", 1)[-1]

    def body() -> Iterator[bytes]:
        yield from svc.store.stream(artifact.object_key)

    return StreamingResponse(
        body(),
        media_type="application/octet-stream",
        headers={
            "Content-Length": str(artifact.size),
            "Content-Disposition": content_disposition(name),
            "X-Devyard-Sha256": artifact.sha256,
        },
    )
