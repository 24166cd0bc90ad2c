"""Relaying one WebSocket between a caller (served by the API) and a develop server (a client of it).

Messages pass as they are, both ways; the first side to close ends the relay and its close code
goes to the other side. Neither direction buffers more than one message: a message is received
from one side only after the previous one was handed to the other (whose send waits while its
transport is full), so a slow reader on either end slows the writer on the other end instead of
growing the API's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from starlette.websockets import WebSocket, WebSocketDisconnect

if TYPE_CHECKING:
    from websockets.asyncio.client import ClientConnection

# Abnormal closes (1005 none given, 1006 dropped) cannot be sent; they become "internal error".
_UNSENDABLE = frozenset({1005, 1006, 1015})


async def relay(websocket: WebSocket, upstream: ClientConnection) -> None:
    """Relay until one side closes; then close the other with the same code (1011 for a drop)."""
    from websockets.exceptions import ConnectionClosed

    async def down() -> None:
        try:
            async for message in upstream:
                if isinstance(message, bytes):
                    await websocket.send_bytes(message)
                else:
                    await websocket.send_text(message)
        except ConnectionClosed:
            pass
        code = upstream.close_code or 1000
        with contextlib.suppress(RuntimeError, WebSocketDisconnect, OSError):
            await websocket.close(code=1011 if code in _UNSENDABLE else code, reason=upstream.close_reason or "")

    async def up() -> None:
        code, reason = 1000, ""
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    code = message.get("code") or 1000
                    reason = message.get("reason") or ""
                    break
                data = message.get("bytes")
                await upstream.send(data if data is not None else message.get("text") or "")
        except (ConnectionClosed, WebSocketDisconnect, RuntimeError):
            pass
        await upstream.close(code=1000 if code in _UNSENDABLE else code, reason=reason)

    tasks = [asyncio.ensure_future(down()), asyncio.ensure_future(up())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await upstream.close()
