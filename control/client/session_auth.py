"""Bearer authentication that renews a single sign-on profile's access token by itself.

Before a request whose token is about to expire, and once after a 401 ``token_expired`` (or
``unauthenticated``: another process may have renewed the shared profile, replacing the token),
the profile is renewed through :mod:`control.renewal` and the request sent again. A profile
without a refresh token is sent as it is, like a plain API token.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, Generator

import httpx

from control import profiles, renewal
from control.client.errors import AuthFailed
from control.wire.errors import TOKEN_EXPIRED, UNAUTHENTICATED, parse_error

SESSION_ENDED = "session_ended"
RENEWABLE = (TOKEN_EXPIRED, UNAUTHENTICATED)


class SessionAuth(httpx.Auth):
    """``Authorization: Bearer`` from a profile, renewed when it expires."""

    def __init__(self, profile: profiles.Profile) -> None:
        self.profile = profile
        self._lock = threading.Lock()

    @property
    def token(self) -> str:
        return self.profile.token

    def fresh_token(self) -> str:
        """The access token, renewed first if it is about to expire (blocking)."""
        if renewal.due(self.profile):
            self._renew(self.profile.token)
        return self.profile.token

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        sent = self.fresh_token()
        request.headers["Authorization"] = f"Bearer {sent}"
        response = yield request
        if response.status_code != 401 or not self.profile.refresh_token:
            return
        response.read()
        if _code(response) in RENEWABLE and self._renew(sent):
            request.headers["Authorization"] = f"Bearer {self.profile.token}"
            yield request

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        sent = self.profile.token
        if renewal.due(self.profile):
            await asyncio.to_thread(self._renew, sent)
            sent = self.profile.token
        request.headers["Authorization"] = f"Bearer {sent}"
        response = yield request
        if response.status_code != 401 or not self.profile.refresh_token:
            return
        await response.aread()
        if _code(response) in RENEWABLE and await asyncio.to_thread(self._renew, sent):
            request.headers["Authorization"] = f"Bearer {self.profile.token}"
            yield request

    def _renew(self, sent: str) -> bool:
        """Renew unless another request of this process already did; whether the token changed."""
        with self._lock:
            if self.profile.token == sent:
                try:
                    self.profile = renewal.renew(self.profile)
                except renewal.SessionEnded as exc:
                    raise AuthFailed(401, SESSION_ENDED, str(exc)) from None
            return self.profile.token != sent


def _code(response: httpx.Response) -> str | None:
    try:
        parsed = parse_error(response.json())
    except ValueError:
        return None
    return parsed[0] if parsed else None
