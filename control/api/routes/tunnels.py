"""``WS /devservers/{id}/tunnel/{port}``: one TCP connection to a port in a develop server.

The caller's own token decides, as for every gateway call: the owner (or an admin) with a role
that may write gets through; a viewer never (a tunnel reaches whatever listens, so it is as
strong as a shell). The develop server connects to the port before it accepts, so "nothing
listens there" arrives as the handshake's answer (409 ``port_not_listening``), passed on as is.
The bytes are relayed message by message (:mod:`control.api.wsrelay`).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING

from fastapi import WebSocket
from starlette.concurrency import run_in_threadpool

from control.api.deps import services
from control.api.routes.gateway import TOUCH_EVERY_S, Target, authorize, deny, find_target, touch, ws_principal
from control.api.routing import SegmentRouter
from control.api.services import Services
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
        raise ApiError(
            502, "devserver_unreachable", f"Develop server {target.server_id} does not answer; it may be restarting."
        ) from exc


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
        target = await run_in_threadpool(find_target, svc, server_id, who)
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
