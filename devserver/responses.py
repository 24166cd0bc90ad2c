"""JSON responses; errors in the shape of :mod:`control.wire.errors`, the same as the control API's."""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import Response
from starlette.types import Receive
from starlette.websockets import WebSocket

from control.wire.errors import ApiError, error_body

__all__ = ["ApiError", "error_body", "error_response", "json_response", "refuse_websocket", "wait_for_disconnect"]


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A compact JSON response.

    ``ensure_ascii`` stays on: file names that are not valid UTF-8 then come out as escapes
    instead of failing the whole response.
    """
    body = json.dumps(data, separators=(",", ":")).encode("ascii")
    return Response(body, status, headers=headers, media_type="application/json")


def error_response(status: int, code: str, message: str, **extra: Any) -> Response:
    """An error as a JSON response."""
    return json_response(error_body(code, message, **extra), status)


async def wait_for_disconnect(receive: Receive) -> None:
    """Return when the client has gone away (the request body must already be consumed)."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def refuse_websocket(websocket: WebSocket, response: Response, close_code: int = 4400) -> None:
    """Refuse a handshake with ``response`` (an HTTP answer) when the server can send one, else close."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(response)
    else:
        await websocket.close(code=close_code)
