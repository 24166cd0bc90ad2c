"""Single sign-on from a terminal: the device authorization grant (RFC 8628) and the refresh grant.

The field names are the RFC's (RFC 8628 section 3.2, RFC 6749 section 5.1); requests are JSON
and errors are the API's error body, with the RFC's error names as codes
(``authorization_pending``, ``slow_down``, ``expired_token``, ``access_denied``,
``invalid_grant``; see :mod:`control.wire.errors`).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, StringConstraints

from control.wire.fields import Strict

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
REFRESH_GRANT = "refresh_token"

Secret = Annotated[str, StringConstraints(min_length=1, max_length=256)]


class DeviceStart(Strict):
    """``POST /auth/device``: a client asks for a device code."""

    client_name: Annotated[str, StringConstraints(min_length=1, max_length=48)] = "yard"
    """Shown on the approval page and in the session's token name (the CLI sends its host name)."""


class DeviceAuthorization(BaseModel):
    """The answer: show ``user_code`` and ``verification_uri`` to the person; poll with ``device_code``."""

    device_code: str
    user_code: str
    verification_uri: str
    verification_uri_complete: str
    expires_in: int
    interval: float


class TokenRequest(Strict):
    """``POST /auth/token``: the device code once approved, or a refresh token."""

    grant_type: Literal["urn:ietf:params:oauth:grant-type:device_code", "refresh_token"]
    device_code: Secret | None = None
    refresh_token: Secret | None = None


class TokenGrant(BaseModel):
    """A single sign-on session's access token and the refresh token that renews it (both new
    on every grant; the refresh token it replaced no longer works)."""

    access_token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int
    refresh_token: str
    refresh_expires_in: int
    token_id: int
    """The session in `yard tokens ls`."""
