"""Reading JSON request bodies and query parameters, refusing bad input with one clear sentence."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from devserver.responses import ApiError

MAX_JSON_BODY = 16 * 1024 * 1024


def bad_request(message: str) -> ApiError:
    """A 400 for input that does not have the expected shape."""
    return ApiError(400, "bad_request", message)


async def json_object(request: Request) -> dict[str, Any]:
    """The request body as a JSON object (an empty body counts as ``{}``)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_JSON_BODY:
            raise ApiError(413, "too_large", f"The JSON body is larger than {MAX_JSON_BODY} bytes.")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise bad_request("The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.")
    return body


def text(body: dict[str, Any], name: str, default: str | None = None) -> str | None:
    """An optional string field."""
    value = body.get(name, default)
    if value is not None and not isinstance(value, str):
        raise bad_request(f"{name!r} must be a string.")
    return value


def required_text(body: dict[str, Any], name: str) -> str:
    """A string field that must be present and non-empty."""
    value = text(body, name)
    if not value:
        raise bad_request(f"{name!r} is required and must be a non-empty string.")
    return value


def flag(body: dict[str, Any], name: str, default: bool = False) -> bool:
    """An optional boolean field."""
    value = body.get(name, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise bad_request(f"{name!r} must be true or false.")
    return value


def number(body: dict[str, Any], name: str) -> float | None:
    """An optional positive number."""
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise bad_request(f"{name!r} must be a positive number.")
    return float(value)


def text_list(body: dict[str, Any], name: str, *, required: bool = False) -> list[str] | None:
    """An optional (or required, non-empty) list of strings."""
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value) or (required and not value):
        raise bad_request(f"{name!r} must be a {'non-empty ' if required else ''}list of strings.")
    return value


def text_map(body: dict[str, Any], name: str) -> dict[str, str] | None:
    """An optional object of string to string."""
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise bad_request(f"{name!r} must be an object of strings.")
    return value


def query_int(request: Request, name: str, default: int, minimum: int, maximum: int) -> int:
    """An integer query parameter within bounds."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad_request(f"The {name!r} query parameter must be an integer.") from None
    if not minimum <= value <= maximum:
        raise bad_request(f"The {name!r} query parameter must be between {minimum} and {maximum}.")
    return value


def query_flag(request: Request, name: str, default: bool = False) -> bool:
    """A boolean query parameter (``true``/``false``, ``1``/``0``)."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise bad_request(f"The {name!r} query parameter must be true or false.")
