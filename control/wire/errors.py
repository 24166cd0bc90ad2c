"""The one error shape of the control API and the develop server, and the one exception for it.

Every failure is a 4xx/5xx status with ``{"error": {"code": ..., "message": ..., <extra>}}``:
``code`` is what programs branch on (a stable snake_case word), ``message`` is one sentence for
a person, and any extra fields (``details`` of an invalid request, a refused batch entry's
``path`` and ``applied``) sit next to them. Servers raise :class:`ApiError` to answer with it;
clients raise it (or a subclass by status) when they receive one. No imports at run time: the
develop server and the fast CLI path use it too.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: the fast CLI path imports this, and typing costs ms
if TYPE_CHECKING:
    from typing import Any, TypedDict

    class ErrorDetail(TypedDict):
        """The ``error`` object (extra fields may follow ``message``)."""

        code: str
        message: str

    class ErrorBody(TypedDict):
        error: ErrorDetail


# Codes a client decides on (others exist; these are the ones code branches on).
NOT_FOUND = "not_found"
PROJECT_NOT_FOUND = "project_not_found"
ENVIRONMENT_NOT_FOUND = "environment_not_found"
JOB_NOT_FOUND = "job_not_found"
CONFLICT = "conflict"
FORBIDDEN = "forbidden"
UNAUTHENTICATED = "unauthenticated"
USER_DISABLED = "user_disabled"
INVALID_REQUEST = "invalid_request"
NO_WORKSPACE = "no_workspace"
"""A run asked for the caller's workspace and there is no running develop server."""
NO_REPOSITORY = "no_repository"
"""A run needs the project's repository and the project has none."""
TOKEN_EXPIRED = "token_expired"  # 401: renew it with the refresh token, if there is one
# The device authorization grant (RFC 8628 section 3.5) and the refresh grant: the codes are the RFC's.
AUTHORIZATION_PENDING = "authorization_pending"
SLOW_DOWN = "slow_down"
EXPIRED_TOKEN = "expired_token"  # the device code, not an access token
ACCESS_DENIED = "access_denied"
INVALID_GRANT = "invalid_grant"
SSO_NOT_CONFIGURED = "sso_not_configured"


class DevyardError(Exception):
    """Base class of the errors a user may see: ``str(error)`` is one sentence meant for them."""


class ApiError(DevyardError):
    """An error answer of the API or a develop server: ``status``, ``code``, ``message`` and the
    error object's other fields in ``extra``."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra

    def body(self) -> dict[str, Any]:
        """The JSON body that carries this error."""
        return error_body(self.code, self.message, **self.extra)


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    """The JSON body of an error."""
    return {"error": {"code": code, "message": message, **extra}}


def parse_error(body: Any) -> tuple[str, str, dict[str, Any]] | None:
    """``(code, message, extra)`` of an error body, or None when ``body`` is not one."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict) or not isinstance(error.get("code"), str):
        return None
    extra = {k: v for k, v in error.items() if k not in ("code", "message")}
    return error["code"], str(error.get("message") or ""), extra
