"""Previews: ``/devservers/{id}/ports/{port}/...`` serves a port of a develop server to a browser.

Who gets through: a holder of a preview link for that server and port (the link's secret in the
``preview`` query parameter once, then in a cookie scoped to the port's path), or a caller with
an API token who owns the server (or an admin), as everywhere. The app is reached through the
develop server's ``/preview/{port}/...`` (HTTP and WebSockets), with the headers of
:mod:`control.api.preview_headers`. Links are made, listed and revoked here too.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
from fastapi import Request, WebSocket
from fastapi.responses import RedirectResponse, Response, StreamingResponse
from sqlmodel import Session
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection

from control import audit, previews
from control.api import preview_headers
from control.api.deps import DB, Reader, Svc, Writer, services
from control.api.errors import not_found
from control.api.routes.devservers import find_own
from control.api.routes.gateway import (
    Target,
    authorize,
    deny,
    find_target,
    http_client,
    touch,
    unreachable,
    ws_principal,
)
from control.api.routes.tunnels import open_upstream, relay_active
from control.api.routing import SegmentRouter
from control.api.services import Services
from control.clock import utcnow
from control.db.tables import PreviewLink
from control.wire.errors import ApiError
from control.wire.ports import BAD_PORT, PreviewCreate, PreviewIssued, PreviewOut, port_problem

router = SegmentRouter(tags=["previews"])
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


# ------------------------------------------------------------------ links


@router.post("/devservers/{server_id}/previews", response_model=PreviewIssued, status_code=201)
def create_preview(server_id: int, body: PreviewCreate, request: Request, session: DB, who: Writer) -> PreviewIssued:
    """A preview link to a port of your develop server (its URL, with its secret, is shown once)."""
    authorize(who, read_only=False)
    server = find_own(session, server_id, who)
    link, secret = previews.create(session, server, body.port, who.user_id, body.ttl_s)
    audit.record(session, who, "preview.create", "preview", link.id, server=server_id, port=body.port)
    session.commit()
    base = str(request.base_url).rstrip("/")
    shown = previews.out(link)
    return PreviewIssued(**shown.model_dump(), url=f"{base}{shown.path}?{previews.QUERY}={secret}")


@router.get("/devservers/{server_id}/previews", response_model=list[PreviewOut])
def list_previews(server_id: int, session: DB, who: Reader) -> list[PreviewOut]:
    """The preview links of your develop server that still work."""
    server = find_own(session, server_id, who)
    assert server.id is not None
    return [previews.out(link) for link in previews.active(session, server.id)]


@router.delete("/devservers/{server_id}/previews/{preview_id}", response_model=PreviewOut)
def revoke_preview(server_id: int, preview_id: int, session: DB, who: Writer) -> PreviewOut:
    """Revoke a preview link: its next request is refused (open ones end with their request)."""
    authorize(who, read_only=False)
    find_own(session, server_id, who)
    link = session.get(PreviewLink, preview_id)
    if link is None or link.server_id != server_id:
        raise not_found("Preview link", preview_id)
    link = previews.revoke(session, link)
    audit.record(session, who, "preview.revoke", "preview", link.id, server=server_id, port=link.port)
    session.commit()
    return previews.out(link)


# ------------------------------------------------------------------ who may pass


def _port(raw: str) -> int:
    problem = port_problem(raw)
    if problem:
        raise ApiError(400, BAD_PORT, problem)
    return int(raw)


def _check_link(svc: Services, secret: str, server_id: int, port: int) -> previews.Grant:
    with Session(svc.engine) as session:
        return previews.check(session, secret, server_id, port)


async def _admit(conn: HTTPConnection, svc: Services, server_id: int, port: int) -> tuple[Target, bool]:
    """The target for a caller with a link's cookie or an API token; and whether the caller's
    Authorization header was devyard's (so it must not reach the app)."""
    cookie = conn.cookies.get(previews.COOKIE)
    if cookie:
        await run_in_threadpool(_check_link, svc, cookie, server_id, port)
        return await run_in_threadpool(find_target, svc, server_id, None), False
    if conn.headers.get("authorization", "").lower().startswith("bearer "):
        who = await ws_principal(conn)
        authorize(who, read_only=False)
        return await run_in_threadpool(find_target, svc, server_id, who), True
    raise ApiError(
        401,
        "unauthenticated",
        "Open this port with a preview link (`yard dev preview PORT` prints one) or pass an API token.",
    )


def _scheme(conn: HTTPConnection) -> str:
    scheme = conn.url.scheme
    return {"ws": "http", "wss": "https"}.get(scheme, scheme)


def _host(conn: HTTPConnection) -> str:
    return conn.headers.get("host") or conn.url.netloc


def _query_without_link(conn: HTTPConnection) -> str:
    pairs = [(k, v) for k, v in parse_qsl(conn.url.query, keep_blank_values=True) if k != previews.QUERY]
    return urlencode(pairs)


# ------------------------------------------------------------------ HTTP


async def preview_root(server_id: int, port: str, request: Request) -> Response:
    """The port's root without its slash: redirect, so the app's relative links resolve."""
    _port(port)
    query = f"?{request.url.query}" if request.url.query else ""
    return RedirectResponse(f"{previews.prefix(server_id, int(port))}/{query}", status_code=308)


async def preview(server_id: int, port: str, path: str, request: Request, svc: Svc) -> Response:
    """Proxy one HTTP request to the app on ``port`` inside the develop server."""
    number = _port(port)
    prefix = previews.prefix(server_id, number)
    secret = request.query_params.get(previews.QUERY)
    if secret is not None:
        return await _open_link(request, svc, secret, server_id, number, path)
    target, drop_authorization = await _admit(request, svc, server_id, number)
    headers = preview_headers.to_app(
        list(request.headers.items()),
        prefix=prefix,
        host=_host(request),
        scheme=_scheme(request),
        client=request.client.host if request.client else None,
        port=number,
        drop_authorization=drop_authorization,
    )
    headers.append(("authorization", f"Bearer {target.secret}"))
    url = f"{target.endpoint}/preview/{number}/{path}"
    query = _query_without_link(request) if request.url.query else ""
    if query:
        url += f"?{query}"
    client = http_client(svc, target)
    has_body = request.method not in ("GET", "HEAD", "OPTIONS") or "content-length" in request.headers
    outgoing = client.build_request(
        request.method, url, headers=headers, content=request.stream() if has_body else None
    )
    try:
        upstream = await client.send(outgoing, stream=True)
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError, httpx.ReadError) as exc:
        raise unreachable(server_id, exc) from exc
    await touch(svc, server_id)
    out = preview_headers.from_app(list(upstream.headers.multi_items()), prefix=prefix, port=number)
    response = StreamingResponse(
        _body(upstream), status_code=upstream.status_code, background=BackgroundTask(upstream.aclose)
    )
    response.raw_headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in out]
    return response


async def _open_link(request: Request, svc: Services, secret: str, server_id: int, port: int, path: str) -> Response:
    """A link was opened: leave its secret in a cookie for this port and go to the same address
    without it (out of the address bar, history, Referer and the app's sight)."""
    grant = await run_in_threadpool(_check_link, svc, secret, server_id, port)
    prefix = previews.prefix(server_id, port)
    query = _query_without_link(request)
    response = RedirectResponse(f"{prefix}/{path}" + (f"?{query}" if query else ""), status_code=303)
    max_age = int((grant.expires_at - utcnow()).total_seconds())
    cookie = preview_headers.preview_cookie(secret, prefix=prefix, max_age=max_age, secure=_scheme(request) == "https")
    response.headers.append("set-cookie", cookie)
    response.headers["cache-control"] = "no-store"
    response.headers["referrer-policy"] = "no-referrer"
    return response


async def _body(upstream: httpx.Response) -> Any:
    try:
        async for chunk in upstream.aiter_raw():
            yield chunk
    except httpx.HTTPError:
        return  # the develop server went away mid-answer: the body ends short


router.add_api_route(
    "/devservers/{server_id}/ports/{port}",
    preview_root,
    methods=METHODS,
    summary="A preview's root: redirect to it with a slash",
    operation_id="preview_root",
    include_in_schema=False,
)
router.add_api_route(
    "/devservers/{server_id}/ports/{port}/{path:path}",
    preview,
    methods=METHODS,
    summary="Preview a port of a develop server (preview link cookie or API token)",
    operation_id="preview",
)


# ------------------------------------------------------------------ WebSockets


@router.websocket("/devservers/{server_id}/ports/{port}/{path:path}")
async def preview_websocket(websocket: WebSocket, server_id: int, port: str, path: str) -> None:
    """A WebSocket of the previewed app (hot reload, notebooks), relayed as it is."""
    svc = services(websocket)  # type: ignore[arg-type]
    try:
        number = _port(port)
        prefix = previews.prefix(server_id, number)
        target, drop_authorization = await _admit(websocket, svc, server_id, number)
        headers = preview_headers.to_app(
            list(websocket.headers.items()),
            prefix=prefix,
            host=_host(websocket),
            scheme=_scheme(websocket),
            client=websocket.client.host if websocket.client else None,
            port=number,
            drop_authorization=drop_authorization,
            websocket=True,
        )
        query = _query_without_link(websocket)
        upstream = await open_upstream(
            target,
            f"/preview/{number}/{path}" + (f"?{query}" if query else ""),
            headers=dict(headers),
            subprotocols=list(websocket.scope.get("subprotocols") or []) or None,
        )
    except ApiError as exc:
        await deny(websocket, exc)
        return
    await websocket.accept(subprotocol=upstream.subprotocol)
    await relay_active(websocket, upstream, svc, server_id)
