"""The synchronous client: every endpoint, plus the streams (logs, events, artifacts, develop
server bodies) a program reads as they come."""

from __future__ import annotations

import ssl
from collections.abc import Iterable, Iterator
from typing import IO, Any, TypeVar

import httpx

from control import profiles, reach
from control.client.calls import Call, SyncSender
from control.client.endpoints import Endpoints
from control.client.errors import ConnectionFailed, connection_failed, raise_for_error
from control.client.session_auth import SessionAuth
from control.client.streams import LogFrame, LogFrameDecoder, SSEDecoder, SSEEvent
from control.trust import Trust, TrustProblem, check_plain_http, client_context

T = TypeVar("T")

# Connecting includes the TLS handshake, which waits for an API process to take the connection
# from its queue: one that is (re)starting on a busy machine can take several seconds, and a
# plain-HTTP request would wait for it under the read timeout.
CONNECT_S = 10.0
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=CONNECT_S)
STREAM_TIMEOUT = httpx.Timeout(None, connect=CONNECT_S)
LOG_READ_TIMEOUT = httpx.Timeout(300.0, connect=CONNECT_S)


def headers(token: str | None) -> dict[str, str]:
    """The headers every request carries."""
    out = {"User-Agent": "devyard-client"}
    if token:
        out["Authorization"] = f"Bearer {token}"
    return out


def verify_for(url: str, token: str | None, trust: Trust | None) -> tuple[ssl.SSLContext | bool, str | None]:
    """httpx's ``verify`` for ``url`` and ``trust``, and the sentence every request is refused with
    (a token that would go over plain HTTP to another machine, an unusable CA file), if any."""
    try:
        check_plain_http(url, token, trust)
        # Plain HTTP needs no TLS context, and building one costs ~50 ms of start-up.
        return (client_context(trust) if url.startswith("https://") else False), None
    except TrustProblem as exc:
        return False, str(exc)


class ControlClient(Endpoints, SyncSender):
    """Synchronous client. Use as a context manager or call :meth:`close`."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
        trust: Trust | None = None,
        profile: profiles.Profile | None = None,
    ) -> None:
        """``profile``: a single sign-on profile, whose access token is renewed when it expires
        (``token`` is then its first one)."""
        self.url = url.rstrip("/")
        self.token_from_environment = False  # a refused token then points at DEVYARD_TOKEN
        self._session = SessionAuth(profile) if profile is not None and profile.refresh_token else None
        self._token = token
        self.trust = trust or Trust()  # callers that open their own connection trust what this client trusts
        verify, refusal = verify_for(self.url, token, self.trust)
        self.ssl_context = verify if isinstance(verify, ssl.SSLContext) else None

        def refuse(_request: httpx.Request) -> None:
            raise ConnectionFailed(refusal or "")

        self._http = httpx.Client(
            base_url=self.url + "/api/v1",
            headers=headers(None if self._session else token),
            timeout=timeout,
            transport=transport,
            verify=verify,
            event_hooks={"request": [refuse]} if refusal else None,
            auth=self._session,
        )

    @property
    def token(self) -> str | None:
        """The current token, for callers that open their own connection (sync.probe)."""
        return self._session.fresh_token() if self._session else self._token

    @classmethod
    def from_profile(cls, name: str | None = None) -> ControlClient:
        profile = profiles.resolve(name)
        client = cls(profile.url, profile.token, trust=profile.trust, profile=profile)
        client.token_from_environment = reach.token_from_environment(name)
        return client

    def __enter__(self) -> ControlClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def send(self, call: Call[T]) -> T:
        try:
            response = self._http.request(
                call.method, call.path, params=call.params, json=call.json, content=call.content
            )
        except httpx.TransportError as exc:
            raise connection_failed(self.url, exc) from exc
        raise_for_error(response, self.token_from_environment)
        return call.decode(None if response.status_code == 204 else response.json())

    def read_logs(self, run_id: int, from_seq: int = 1, tail: int | None = None) -> tuple[bytes, int]:
        """Stored log records of a run (framed, see control.logformat) and the last chunk seq."""
        params: dict[str, Any] = {"from_seq": from_seq}
        if tail is not None:
            params["tail"] = tail
        try:
            response = self._http.get(f"/runs/{run_id}/logs", params=params, timeout=LOG_READ_TIMEOUT)
        except httpx.TransportError as exc:
            raise connection_failed(self.url, exc) from exc
        raise_for_error(response, self.token_from_environment)
        return response.content, int(response.headers.get("x-devyard-log-seq", "0"))

    def follow_logs(self, run_id: int, from_seq: int = 1) -> Iterator[SSEEvent]:
        """Yield ``chunk`` events (JSON with base64 ``data``) and finally one ``end`` event."""
        yield from self._sse(f"/runs/{run_id}/logs", {"follow": "true", "from_seq": from_seq})

    def follow_log_frames(self, run_id: int, from_seq: int = 1) -> Iterator[LogFrame]:
        """Yield ``(event, seq, payload)``: ``chunk`` with the raw stored records (no base64),
        ``error`` or ``end`` with JSON. The cheap way to follow a busy log from a program."""
        params: dict[str, Any] = {"follow": "true", "from_seq": from_seq, "format": "frames"}
        decoder = LogFrameDecoder()
        for piece in self._stream("GET", f"/runs/{run_id}/logs", params=params):
            yield from decoder.feed(piece)

    def download_artifact(self, run_id: int, artifact_id: int, target: IO[bytes]) -> int:
        """Stream an artifact into the binary file object ``target``; returns the byte count."""
        written = 0
        for piece in self._stream("GET", f"/runs/{run_id}/artifacts/{artifact_id}/content", raw=False):
            target.write(piece)
            written += len(piece)
        return written

    def events(self, types: list[str] | None = None, after: int | None = None) -> Iterator[SSEEvent]:
        """Yield live events until the server closes the stream."""
        params: dict[str, Any] = {}
        if types:
            params["types"] = ",".join(types)
        if after is not None:
            params["after"] = after
        yield from self._sse("/events", params)

    def devserver_stream(
        self,
        server_id: int,
        method: str,
        path: str,
        *,
        json: Any = None,
        content: Any = None,
        headers: dict[str, str] | None = None,
        params: dict[str, Any] | None = None,
    ) -> Iterator[bytes]:
        """Stream a develop server's response body through the gateway (exec output, file reads)."""
        yield from self._stream(
            method,
            f"/devservers/{server_id}/{path.lstrip('/')}",
            json=json,
            content=content,
            headers=headers,
            params=params,
        )

    def devserver_upload(
        self,
        server_id: int,
        path: str,
        body: Iterable[bytes],
        *,
        media_type: str = "application/octet-stream",
        params: dict[str, Any] | None = None,
        timeout_s: float = 300.0,
    ) -> Any:
        """Stream ``body`` (chunks, never held whole) to a develop server through the gateway;
        its JSON answer. A refusal's fields beyond code and message (a refused batch entry's
        ``path`` and ``applied``) are in ``ApiError.extra``."""
        try:
            response = self._http.post(
                f"/devservers/{server_id}/{path.lstrip('/')}",
                content=body,
                headers={"content-type": media_type},
                params=params,
                timeout=httpx.Timeout(timeout_s, connect=CONNECT_S),
            )
        except httpx.TransportError as exc:
            raise connection_failed(self.url, exc) from exc
        raise_for_error(response, self.token_from_environment)
        return response.json()

    def websocket_url(self, path: str) -> str:
        """``ws://`` (or ``wss://``) URL of an API path, for WebSocket clients."""
        base = self.url.replace("http://", "ws://", 1).replace("https://", "wss://", 1)
        return f"{base}/api/v1/{path.lstrip('/')}"

    @property
    def auth_headers(self) -> dict[str, str]:
        """The Authorization header, for connections made outside this client (WebSockets)."""
        token = self.token
        return {"Authorization": f"Bearer {token}"} if token else {}

    def _stream(self, method: str, path: str, *, raw: bool = True, **request: Any) -> Iterator[bytes]:
        """A response body as it arrives (``raw``: as sent, else decoded); errors raised first."""
        try:
            with self._http.stream(method, path, timeout=STREAM_TIMEOUT, **request) as response:
                if response.status_code >= 400:
                    response.read()
                    raise_for_error(response, self.token_from_environment)
                yield from response.iter_raw() if raw else response.iter_bytes()
        except httpx.TransportError as exc:
            raise connection_failed(self.url, exc) from exc

    def _sse(self, path: str, params: dict[str, Any]) -> Iterator[SSEEvent]:
        try:
            with self._http.stream("GET", path, params=params, timeout=STREAM_TIMEOUT) as response:
                if response.status_code >= 400:
                    response.read()
                    raise_for_error(response, self.token_from_environment)
                decoder = SSEDecoder()
                for line in response.iter_lines():
                    event = decoder.feed(line)
                    if event is not None:
                        yield event
        except httpx.TransportError as exc:
            raise connection_failed(self.url, exc) from exc
