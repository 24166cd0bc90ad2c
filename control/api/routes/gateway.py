"""The gateway: ``/api/v1/devservers/{id}/<rest>`` is proxied to the develop server's ``/<rest>``.

Only the owner (or an admin) gets through. The caller's token stays here: the develop server
sees the per-server secret instead, which never leaves the control plane and the agent, so the
develop server is unusable without passing this check. Bodies and responses stream both ways
(large uploads, live exec output); WebSockets (the PTY) are relayed frame by frame.

Develop servers serve HTTPS with a certificate they make at start; their agent reports its
fingerprint with the endpoint, and every connection from here (HTTP, WebSockets, tunnels,
previews) accepts exactly that certificate (control.tlspin.pinned_context): anything else is
refused before the secret is sent. Only a row from an older agent (an ``http://`` endpoint and
no fingerprint) is still reached in plain HTTP, until that server restarts.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import Request, WebSocket
from fastapi.responses import JSONResponse, Response, StreamingResponse
from sqlmodel import Session
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection

from control.api.deps import Caller, Svc, authenticate, services
from control.api.errors import not_found
from control.api.routing import SegmentRouter
from control.api.services import Services
from control.auth import Principal, hash_token
from control.clock import utcnow
from control.db.tables import DevServer
from control.devservers import lifecycle
from control.tlspin import pinned_context, refused_pin
from control.wire.errors import ApiError, error_body, parse_error
from control.wire.resources import Role
from control.wsrelay import relay

log = logging.getLogger("devyard.gateway")
router = SegmentRouter(tags=["gateway"])

# Request headers worth passing on; everything else (the caller's Authorization, cookies,
# hop-by-hop headers) stays at the gateway.
FORWARD_REQUEST = frozenset({"accept", "content-type", "content-length", "range", "if-none-match", "if-modified-since"})
DROP_RESPONSE = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "upgrade", "proxy-authenticate", "server", "date", "trailer"}
)
# Writing last_activity_at on every proxied request would turn every read into a write.
TOUCH_EVERY_S = 15.0
SMALL_ERROR_BYTES = 64 * 1024
# HTTP clients kept (one per develop-server certificate); past this, the oldest half is dropped.
MAX_CLIENTS = 256


@dataclass(frozen=True)
class Target:
    server_id: int
    endpoint: str
    secret: str
    fingerprint: str | None = None
    """The develop server's certificate, pinned; None only for a plain-HTTP endpoint."""

    def ssl(self) -> ssl.SSLContext | None:
        """The client context for this server: its certificate exactly, or None (plain HTTP)."""
        return pinned_context(self.fingerprint) if self.fingerprint else None


def find_target(svc: Services, server_id: int, who: Principal | None) -> Target:
    """Where to reach a running develop server the caller owns (or any, for an admin). ``who``
    None: the caller was let in by other means (a preview link for this server)."""
    with Session(svc.engine) as session:
        server = session.get(DevServer, server_id)
        if server is None or (who is not None and server.user_id != who.user_id and not who.is_admin):
            raise not_found("Develop server", server_id)
        if server.state != lifecycle.RUNNING or not server.endpoint or not server.secret:
            raise ApiError(
                409,
                "devserver_not_running",
                f"Develop server {server_id} is {server.state}; start it with `yard dev start`"
                + (" and try again." if server.state in lifecycle.ACTIVE else "."),
                state=server.state,
            )
        if server.endpoint.startswith("https://") and not server.tls_fingerprint:
            raise ApiError(
                502, "devserver_unreachable", f"Develop server {server_id} has no recorded certificate; restart it."
            )
        return Target(server_id, server.endpoint.rstrip("/"), server.secret, server.tls_fingerprint or None)


class ActivityClock:
    """Marks develop servers as active (for the idle stop), at most every TOUCH_EVERY_S each."""

    def __init__(self) -> None:
        self._last: dict[int, float] = {}

    def due(self, server_id: int) -> bool:
        now = time.monotonic()
        if now - self._last.get(server_id, 0.0) < TOUCH_EVERY_S:
            return False
        self._last[server_id] = now
        return True


def _touch(svc: Services, server_id: int) -> None:
    with Session(svc.engine) as session:
        server = session.get(DevServer, server_id)
        if server is not None and server.state == lifecycle.RUNNING:
            lifecycle.touch(server, utcnow())
            session.add(server)
            session.commit()


async def touch(svc: Services, server_id: int) -> None:
    clock: ActivityClock = svc.extras.setdefault("activity", ActivityClock())
    if clock.due(server_id):
        await run_in_threadpool(_touch, svc, server_id)


def http_client(svc: Services, target: Target) -> httpx.AsyncClient:
    """The client for ``target``: one per pinned certificate (httpx fixes the SSL context per
    client), so its connections are kept open and reused like any other."""
    clients: dict[str | None, httpx.AsyncClient] = svc.extras.setdefault("gateway_http", {})
    client = clients.get(target.fingerprint)
    if client is None:
        if len(clients) >= MAX_CLIENTS:
            # Certificates of servers long restarted; a response still streaming on one keeps its
            # connection (closed when the client is collected).
            for fingerprint in list(clients)[: MAX_CLIENTS // 2]:
                clients.pop(fingerprint)
        # No read timeout: exec output and log follows may be quiet for a long time.
        client = httpx.AsyncClient(
            timeout=httpx.Timeout(None, connect=5.0),
            limits=httpx.Limits(max_connections=None),
            verify=target.ssl() or True,
        )
        clients[target.fingerprint] = client
    return client


def unreachable(server_id: int, exc: BaseException | None = None) -> ApiError:
    """Why the develop server could not be reached, for the caller: a certificate that is not
    the recorded one is said so (never accepted), anything else is "does not answer"."""
    refused = refused_pin(exc)
    if refused is not None:
        log.error(
            "develop server %s presented certificate %s, not the recorded %s", server_id, refused.seen, refused.expected
        )
        return ApiError(
            502,
            "devserver_certificate_mismatch",
            f"Develop server {server_id} presented a certificate other than the one its agent reported, so the"
            " gateway refused it; restart the server with `yard dev stop` and `yard dev start`.",
        )
    return ApiError(
        502, "devserver_unreachable", f"Develop server {server_id} does not answer; it may be restarting, try again."
    )


async def _error_response(upstream: httpx.Response, server_id: int) -> Response:
    """The develop server's JSON error as it came (both speak the body of control.wire.errors);
    anything else becomes one."""
    body = await upstream.aread()
    await upstream.aclose()
    if upstream.status_code == 401:
        log.error("develop server %s refused the gateway's secret", server_id)
        return JSONResponse(
            error_body("devserver_unreachable", f"Develop server {server_id} refused the gateway; restart it."), 502
        )
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if parse_error(data) is not None:
        return Response(body, upstream.status_code, media_type="application/json")
    return JSONResponse(
        error_body("devserver_error", f"The develop server answered {upstream.status_code}."), upstream.status_code
    )


def authorize(who: Principal, read_only: bool) -> None:
    """Reading needs a reader role; anything that can change the workspace needs a writer."""
    if read_only and who.can_read():
        return
    if who.role is Role.viewer:
        raise ApiError(403, "forbidden", "Viewers have read-only access.")
    if not who.can_write():
        raise ApiError(403, "forbidden", f"The {who.role} role cannot use this endpoint.")


async def proxy(server_id: int, path: str, request: Request, who: Caller, svc: Svc) -> Response:
    authorize(who, read_only=request.method == "GET")
    target = await run_in_threadpool(find_target, svc, server_id, who)
    headers = {k: v for k, v in request.headers.items() if k in FORWARD_REQUEST}
    headers["authorization"] = f"Bearer {target.secret}"
    url = f"{target.endpoint}/{path}"
    if request.url.query:
        url += f"?{request.url.query}"
    has_body = request.method not in ("GET", "HEAD", "DELETE") or "content-length" in headers
    client = http_client(svc, target)
    outgoing = client.build_request(
        request.method, url, headers=headers, content=request.stream() if has_body else None
    )
    try:
        upstream = await client.send(outgoing, stream=True)
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError, httpx.ReadError) as exc:
        raise unreachable(server_id, exc) from exc
    await touch(svc, server_id)
    if upstream.status_code >= 400 and int(upstream.headers.get("content-length") or 0) <= SMALL_ERROR_BYTES:
        return await _error_response(upstream, server_id)
    out_headers = {k: v for k, v in upstream.headers.items() if k.lower() not in DROP_RESPONSE}
    return StreamingResponse(
        _relay(upstream),
        status_code=upstream.status_code,
        headers=out_headers,
        background=BackgroundTask(upstream.aclose),
    )


for _method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
    router.add_api_route(
        "/devservers/{server_id}/{path:path}",
        proxy,
        methods=[_method],
        summary="Gateway to a develop server (owner or admin)",
        operation_id=f"devserver_gateway_{_method.lower()}",
    )


async def _relay(upstream: httpx.Response) -> Any:
    try:
        async for chunk in upstream.aiter_raw():
            yield chunk
    except httpx.HTTPError:
        # The develop server went away mid-response: end the body; the client sees it cut short
        # (exec streams end without their exit frame, which the CLI reports).
        return


# ------------------------------------------------------------------ WebSockets (the PTY)


async def ws_principal(websocket: HTTPConnection) -> Principal:
    """The caller of a WebSocket (or any connection) by its bearer token; 401 without a valid one."""
    header = websocket.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "unauthenticated", "Missing bearer token; pass 'Authorization: Bearer <token>'.")
    svc = services(websocket)  # type: ignore[arg-type]
    cached = svc.principals.get(hash_token(token.strip()))
    if cached is not None:
        return cached
    return await run_in_threadpool(authenticate, svc, token.strip())


async def deny(websocket: WebSocket, exc: ApiError) -> None:
    """Refuse the handshake with the JSON error as an HTTP response when the server can, else close."""
    try:
        await websocket.send_denial_response(JSONResponse(error_body(exc.code, exc.message), exc.status))
    except RuntimeError:
        await websocket.close(code=4000 + exc.status, reason=exc.message[:120])


@router.websocket("/devservers/{server_id}/{path:path}")
async def proxy_websocket(websocket: WebSocket, server_id: int, path: str) -> None:
    svc = services(websocket)  # type: ignore[arg-type]
    try:
        who = await ws_principal(websocket)
        authorize(who, read_only=False)  # a shell can change anything
        target = await run_in_threadpool(find_target, svc, server_id, who)
        terminals = _open_terminals(svc)
        terminals.take(who.user_id, svc.settings.max_terminals_per_user)
    except ApiError as exc:
        await deny(websocket, exc)
        return
    try:
        await _relay_terminal(websocket, svc, server_id, target, path)
    finally:
        terminals.give_back(who.user_id)


class OpenTerminals:
    """Terminals relayed per user by this API process (counted on its event loop only).

    400 opened at once made the develop server spawn shells for longer than the gateway waited
    (5 s): most callers got 502 and their shells lived on unseen. Past the limit the handshake is
    refused before anything is asked of the develop server.
    """

    def __init__(self) -> None:
        self.by_user: dict[int, int] = {}

    def take(self, user_id: int, limit: int) -> None:
        """Count one more terminal of ``user_id``, or refuse with 429 ``too_many_terminals``."""
        held = self.by_user.get(user_id, 0)
        if held >= limit:
            raise ApiError(
                429, "too_many_terminals", f"You already have {limit} terminals open; close one before opening another."
            )
        self.by_user[user_id] = held + 1

    def give_back(self, user_id: int) -> None:
        """One terminal of ``user_id`` has ended."""
        left = self.by_user.get(user_id, 1) - 1
        if left > 0:
            self.by_user[user_id] = left
        else:
            self.by_user.pop(user_id, None)


def _open_terminals(svc: Services) -> OpenTerminals:
    terminals = svc.extras.get("open_terminals")
    if terminals is None:
        terminals = svc.extras["open_terminals"] = OpenTerminals()
    return terminals  # type: ignore[no-any-return]


async def _relay_terminal(websocket: WebSocket, svc: Services, server_id: int, target: Target, path: str) -> None:
    """Connect to the develop server's terminal and relay both ways until one side ends."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidHandshake, InvalidStatus

    url = target.endpoint.replace("http://", "ws://", 1).replace("https://", "wss://", 1) + f"/{path}"
    if websocket.url.query:
        url += f"?{websocket.url.query}"
    try:
        upstream = await connect(
            url,
            additional_headers={"Authorization": f"Bearer {target.secret}"},
            max_size=None,
            open_timeout=5,
            close_timeout=2,  # a caller gone: do not wait long for the develop server's goodbye
            ssl=target.ssl(),
        )
    except (OSError, InvalidHandshake, TimeoutError) as exc:
        status = exc.response.status_code if isinstance(exc, InvalidStatus) else 502
        log.warning("gateway websocket to develop server %s failed: %s", server_id, exc)
        if refused_pin(exc) is not None:
            await deny(websocket, unreachable(server_id, exc))
            return
        if status == 429:
            message = f"Develop server {server_id} has as many terminals open as it allows; close one first."
            await deny(websocket, ApiError(429, "too_many_terminals", message))
            return
        message = f"Develop server {server_id} did not accept the connection; try again."
        await deny(
            websocket, ApiError(502 if status >= 500 or status == 401 else status, "devserver_unreachable", message)
        )
        return
    await websocket.accept()

    async def keep_active() -> None:
        while True:
            await touch(svc, server_id)
            await asyncio.sleep(TOUCH_EVERY_S)

    # Develop server ↔ caller: the one relay tunnels use too (close codes pass through).
    keeper = asyncio.create_task(keep_active())
    try:
        await relay(websocket, upstream)
    finally:
        keeper.cancel()
        await asyncio.gather(keeper, return_exceptions=True)
