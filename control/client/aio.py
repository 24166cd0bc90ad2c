"""The asynchronous client: the same endpoints as awaitables, and the streams the TUI follows."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from typing import Any, TypeVar

import httpx

from control import profiles, reach
from control.client.calls import AsyncSender, Call
from control.client.endpoints import Endpoints
from control.client.errors import ConnectionFailed, connection_failed, raise_for_error
from control.client.session_auth import SessionAuth
from control.client.streams import LogFrame, LogFrameDecoder, SSEDecoder, SSEEvent
from control.client.sync import DEFAULT_TIMEOUT, LOG_READ_TIMEOUT, STREAM_TIMEOUT, headers, verify_for
from control.trust import Trust

T = TypeVar("T")


class AsyncControlClient(Endpoints, AsyncSender):
    """Asynchronous client with the same calls (each returns an awaitable)."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
        trust: Trust | None = None,
        profile: profiles.Profile | None = None,
    ) -> None:
        """``profile``: a single sign-on profile, renewed when its access token expires."""
        self.url = url.rstrip("/")
        self.token_from_environment = False  # a refused token then points at DEVYARD_TOKEN
        self.trust = trust or Trust()
        verify, refusal = verify_for(self.url, token, self.trust)
        self.ssl_context = verify if isinstance(verify, ssl.SSLContext) else None

        async def refuse(_request: httpx.Request) -> None:
            raise ConnectionFailed(refusal or "")

        session = SessionAuth(profile) if profile is not None and profile.refresh_token else None
        self._http = httpx.AsyncClient(
            base_url=self.url + "/api/v1",
            headers=headers(None if session else token),
            timeout=timeout,
            transport=transport,
            verify=verify,
            event_hooks={"request": [refuse]} if refusal else None,
            auth=session,
        )

    @classmethod
    def from_profile(cls, name: str | None = None) -> AsyncControlClient:
        profile = profiles.resolve(name)
        client = cls(profile.url, profile.token, trust=profile.trust, profile=profile)
        client.token_from_environment = reach.token_from_environment(name)
        return client

    async def __aenter__(self) -> AsyncControlClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    def websocket_url(self, path: str) -> str:
        """``ws://`` (or ``wss://``) URL of an API path, for WebSocket clients."""
        base = self.url.replace("http://", "ws://", 1).replace("https://", "wss://", 1)
        return f"{base}/api/v1/{path.lstrip('/')}"

    @property
    def auth_headers(self) -> dict[str, str]:
        return {k: v for k, v in self._http.headers.items() if k.lower() == "authorization"}

    async def send(self, call: Call[T]) -> T:
        try:
            response = await self._http.request(
                call.method, call.path, params=call.params, json=call.json, content=call.content
            )
        except httpx.TransportError as exc:
            raise connection_failed(self.url, exc) from exc
        raise_for_error(response, self.token_from_environment)
        return call.decode(None if response.status_code == 204 else response.json())

    async def events(self, types: list[str] | None = None, after: int | None = None) -> AsyncIterator[SSEEvent]:
        """Yield live events until the server closes the stream."""
        params: dict[str, Any] = {}
        if types:
            params["types"] = ",".join(types)
        if after is not None:
            params["after"] = after
        async for event in self._sse("/events", params):
            yield event

    async def follow_logs(self, run_id: int, from_seq: int = 1) -> AsyncIterator[SSEEvent]:
        """Yield ``chunk`` events (JSON with base64 ``data``) and finally one ``end`` event."""
        async for event in self._sse(f"/runs/{run_id}/logs", {"follow": "true", "from_seq": from_seq}):
            yield event

    async def read_logs(
        self, run_id: int, from_seq: int = 1, tail: int | None = None, to_seq: int | None = None
    ) -> tuple[bytes, int]:
        """Stored log records of a run (framed, see control.logformat) and the last chunk seq."""
        params: dict[str, Any] = {"from_seq": from_seq}
        if tail is not None:
            params["tail"] = tail
        if to_seq is not None:
            params["to_seq"] = to_seq
        try:
            response = await self._http.get(f"/runs/{run_id}/logs", params=params, timeout=LOG_READ_TIMEOUT)
        except httpx.TransportError as exc:
            raise connection_failed(self.url, exc) from exc
        raise_for_error(response, self.token_from_environment)
        return response.content, int(response.headers.get("x-devyard-log-seq", "0"))

    async def stream_logs(self, run_id: int, from_seq: int = 1, to_seq: int | None = None) -> AsyncIterator[bytes]:
        """Stored log records of a run as they come off the wire (pieces end anywhere)."""
        params: dict[str, Any] = {"from_seq": from_seq}
        if to_seq is not None:
            params["to_seq"] = to_seq
        async for piece in self._stream(f"/runs/{run_id}/logs", params, LOG_READ_TIMEOUT):
            yield piece

    async def follow_log_frames(self, run_id: int, from_seq: int = 1) -> AsyncIterator[LogFrame]:
        """Yield ``(event, seq, payload)`` like :meth:`ControlClient.follow_log_frames`: ``chunk``
        with the raw stored records, then ``error`` or ``end`` with JSON."""
        params: dict[str, Any] = {"follow": "true", "from_seq": from_seq, "format": "frames"}
        decoder = LogFrameDecoder()
        async for piece in self._stream(f"/runs/{run_id}/logs", params, STREAM_TIMEOUT):
            for frame in decoder.feed(piece):
                yield frame

    async def _stream(self, path: str, params: dict[str, Any], timeout: httpx.Timeout) -> AsyncIterator[bytes]:
        """A GET response body as sent, piece by piece; errors raised first."""
        try:
            async with self._http.stream("GET", path, params=params, timeout=timeout) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise_for_error(response, self.token_from_environment)
                async for piece in response.aiter_raw():
                    yield piece
        except httpx.TransportError as exc:
            raise connection_failed(self.url, exc) from exc

    async def _sse(self, path: str, params: dict[str, Any]) -> AsyncIterator[SSEEvent]:
        try:
            async with self._http.stream("GET", path, params=params, timeout=STREAM_TIMEOUT) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise_for_error(response, self.token_from_environment)
                decoder = SSEDecoder()
                async for line in response.aiter_lines():
                    event = decoder.feed(line)
                    if event is not None:
                        yield event
        except httpx.TransportError as exc:
            raise connection_failed(self.url, exc) from exc
