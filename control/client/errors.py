"""What the client raises: one sentence for the user, and the API's error code for programs."""

from __future__ import annotations

import httpx

from control import reach
from control.wire.errors import TOKEN_EXPIRED, UNAUTHENTICATED, ApiError, DevyardError, parse_error

__all__ = [
    "ApiError",
    "AuthFailed",
    "Conflict",
    "ConnectionFailed",
    "DevyardError",
    "Forbidden",
    "NotFound",
    "UnexpectedAnswer",
    "connection_failed",
    "raise_for_error",
]


class ConnectionFailed(DevyardError):
    """The control API could not be reached."""


class UnexpectedAnswer(DevyardError):
    """The API answered, but not in the shape this client knows (another version)."""


class AuthFailed(ApiError):
    """401: the token is missing, wrong, expired or revoked."""


class Forbidden(ApiError):
    """403: the token is valid but its role may not do this."""


class NotFound(ApiError):
    """404."""


class Conflict(ApiError):
    """409: the resource already exists or is in use."""


_BY_STATUS: dict[int, type[ApiError]] = {401: AuthFailed, 403: Forbidden, 404: NotFound, 409: Conflict}


def raise_for_error(response: httpx.Response, token_from_environment: bool = False) -> None:
    """Raise the :class:`ApiError` (subclass by status) an error response carries; the body must
    have been read."""
    if response.status_code < 400:
        return
    try:
        parsed = parse_error(response.json())
    except ValueError:
        parsed = None
    fallback = f"The API answered {response.status_code}."
    code, message, extra = parsed or ("http_error", fallback, {})
    message = message or fallback
    if response.status_code == 401 and code in (UNAUTHENTICATED, TOKEN_EXPIRED):
        message = reach.refused_token(message, token_from_environment)
    raise _BY_STATUS.get(response.status_code, ApiError)(response.status_code, code, message, **extra)


def connection_failed(url: str, exc: Exception) -> ConnectionFailed:
    """The one sentence for an API that cannot be reached."""
    return ConnectionFailed(reach.unreachable(url, exc))
