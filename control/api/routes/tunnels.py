"""``WS /devservers/{id}/tunnel/{port}``: one TCP connection to a port in a develop server.

The caller's own token decides, as for every gateway call: the owner (or an admin) with a role
that may write gets through; a viewer never (a tunnel reaches whatever listens, so it is as
strong as a shell). The develop server connects to the port before it accepts, so "nothing
listens there" arrives as the handshake's answer (409 ``port_not_listening``), passed on as is.
The bytes are relayed message by message (:mod:`control.wsrelay`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import TYPE_CHECKING

from fastapi import WebSocket
from starlette.concurrency import run_in_threadpool

from control.api.deps import services
from control.api.routes.gateway import (
    TOUCH_EVERY_S,
    Target,
    authorize,
    deny,
    find_target,
    touch,
    unreachable,
    ws_principal,
)
from control.api.routing import SegmentRouter
from control.api.services import Services
from control.auth import Principal
from control.wire.errors import ApiError, parse_error
from control.wire.ports import BAD_PORT, port_problem
from control.wsrelay import relay

if TYPE_CHECKING:
    from websockets.asyncio.client import ClientConnection

log = logging.getLogger("devyard.gateway")
router = SegmentRouter(tags=["ports"])

# One message carries at most one read of the develop server (256 KiB); a little room on top.
MAX_MESSAGE = 1024 * 1024
# Messages waiting in the relay's receive queue from the develop server; more pauses its reads.
MAX_QUEUE = 4


async def open_upstream(
    target: Target, path: str, *, headers: dict[str, str] | None = None, subprotocols: list[str] | None = None
) -> ClientConnection:
    """A WebSocket to the develop server's ``path`` with the gateway's secret; a refusal of the
    develop server becomes its own error (status and body), anything else 502."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidHandshake, InvalidStatus

    url = target.endpoint.replace("http://", "ws://", 1).replace("https://", "wss://", 1) + path
    try:
        return await connect(
            url,
            additional_headers={**(headers or {}), "Authorization": f"Bearer {target.secret}"},
            subprotocols=subprotocols,  # type: ignore[arg-type]
            compression=None,
            max_size=MAX_MESSAGE,
            max_queue=MAX_QUEUE,
            open_timeout=10,
            close_timeout=2,
            ping_interval=None,  # the caller's side keeps the connection alive, not this hop
            ssl=target.ssl(),  # the develop server's own certificate, exactly
        )
    except InvalidStatus as exc:
        status = exc.response.status_code
        body = exc.response.body or b""
        try:
            parsed = parse_error(json.loads(body))
        except ValueError:
            parsed = None
        if parsed is not None and status < 500 and status != 401:
            code, message, extra = parsed
            raise ApiError(status, code, message, **extra) from exc
        log.warning("develop server %s refused a websocket to %s: %s", target.server_id, path, status)
        raise ApiError(
            502, "devserver_unreachable", f"Develop server {target.server_id} refused the connection."
        ) from exc
    except (OSError, InvalidHandshake, TimeoutError) as exc:
        log.warning("websocket to develop server %s failed: %s", target.server_id, exc)
        raise unreachable(target.server_id, exc) from exc


# A browser opens several connections at once, each its own tunnel: the lookup of where the server
# is (a database read in a worker thread) is kept this long per caller, like a verified token.
TARGET_TTL_S = 2.0


async def recent_target(svc: Services, server_id: int, who: Principal) -> Target:
    """:func:`find_target`, remembered for TARGET_TTL_S per (server, caller). A server stopped in
    that time answers the develop server's own 502, which the forward retries like a 409."""
    cache: dict[tuple[int, int], tuple[Target, float]] = svc.extras.setdefault("tunnel_targets", {})
    key = (server_id, who.user_id)
    now = time.monotonic()
    hit = cache.get(key)
    if hit is not None and hit[1] > now:
        return hit[0]
    target = await run_in_threadpool(find_target, svc, server_id, who)
    if len(cache) > 10_000:
        cache.clear()
    cache[key] = (target, now + TARGET_TTL_S)
    return target


@router.websocket("/devservers/{server_id}/tunnel/{port}")
async def tunnel(websocket: WebSocket, server_id: int, port: str) -> None:
    """One TCP connection to ``port`` inside the develop server (owner or admin; not viewers)."""
    svc = services(websocket)  # type: ignore[arg-type]
    try:
        who = await ws_principal(websocket)
        authorize(who, read_only=False)
        problem = port_problem(port)
        if problem:
            raise ApiError(400, BAD_PORT, problem)
        target = await recent_target(svc, server_id, who)
        upstream = await open_upstream(target, f"/tunnel/{int(port)}")
    except ApiError as exc:
        await deny(websocket, exc)
        return
    await websocket.accept()
    await relay_active(websocket, upstream, svc, server_id)


async def relay_active(websocket: WebSocket, upstream: ClientConnection, svc: Services, server_id: int) -> None:
    """Relay, marking the develop server active while the connection is open (as a shell does)."""

    async def keep_active() -> None:
        while True:
            await touch(svc, server_id)
            await asyncio.sleep(TOUCH_EVERY_S)

    keeper = asyncio.ensure_future(keep_active())
    try:
        await relay(websocket, upstream)
    finally:
        keeper.cancel()
