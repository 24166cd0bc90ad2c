"""JSON responses and the API's error shape: ``{"error": code, "message": one sentence, ...}``."""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import Response
from starlette.types import Receive


class ApiError(Exception):
    """An error the client caused or must handle; becomes a JSON response with ``status``."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A compact JSON response.

    ``ensure_ascii`` stays on: file names that are not valid UTF-8 then come out as escapes
    instead of failing the whole response.
    """
    body = json.dumps(data, separators=(",", ":")).encode("ascii")
    return Response(body, status, headers=headers, media_type="application/json")


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    """The JSON body of an error."""
    return {"error": code, "message": message, **extra}


def error_response(status: int, code: str, message: str, **extra: Any) -> Response:
    """An error as a JSON response."""
    return json_response(error_body(code, message, **extra), status)


async def wait_for_disconnect(receive: Receive) -> None:
    """Return when the client has gone away (the request body must already be consumed)."""
    while (await receive())["type"] != "http.disconnect":
        pass
