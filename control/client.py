"""The HTTP client SDK of the control API, used by the CLI, the TUI, agents and workers.

Every endpoint is described once in :class:`_Endpoints`; :class:`ControlClient` runs the calls
synchronously and :class:`AsyncControlClient` asynchronously. A connection or auth problem
becomes one exception with a one-sentence message (:class:`DevyardError` and subclasses).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import httpx

from control import profiles, reach
from control.transport import refusal

R = TypeVar("R")

DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=5.0)


class DevyardError(Exception):
    """Base class: ``str(error)`` is one sentence meant for the user."""


class ConnectionFailed(DevyardError):
    """The control API could not be reached."""


class ApiError(DevyardError):
    """The API answered with an error status."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details


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
    if response.status_code < 400:
        return
    code, message, details = refusal(response.status_code, response.content, token_from_environment)
    raise _BY_STATUS.get(response.status_code, ApiError)(response.status_code, code, message, details)


def _connection_error(url: str, exc: Exception) -> ConnectionFailed:
    return ConnectionFailed(reach.unreachable(url, exc))


@dataclass
class SSEEvent:
    event: str = "message"
    data: str = ""
    id: str | None = None

    def json(self) -> Any:
        return json.loads(self.data) if self.data else None


@dataclass
class SSEDecoder:
    """Incremental Server-Sent Events parser fed line by line."""

    _event: SSEEvent = field(default_factory=SSEEvent)
    _data: list[str] = field(default_factory=list)

    def feed(self, line: str) -> SSEEvent | None:
        if line == "":
            if not self._data and self._event.id is None:
                self._event = SSEEvent()
                return None
            done = self._event
            done.data = "\n".join(self._data)
            self._event, self._data = SSEEvent(), []
            return done
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            self._event.event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id":
            self._event.id = value
        return None


class _Endpoints(Generic[R]):
    """Every API call, written once; ``_call`` decides whether it runs sync or async."""

    def _call(
        self, method: str, path: str, *, params: dict[str, Any] | None = None, json: Any = None, content: Any = None
    ) -> R:
        raise NotImplementedError

    @staticmethod
    def _page(limit: int | None, cursor: str | None, **extra: Any) -> dict[str, Any]:
        params = {"limit": limit, "cursor": cursor, **extra}
        return {k: v for k, v in params.items() if v is not None and v is not False}

    # health and identity
    def health(self) -> R:
        return self._call("GET", "/health")

    def status(self) -> R:
        return self._call("GET", "/status")

    def me(self) -> R:
        return self._call("GET", "/me")

    # users
    def list_users(self, limit: int | None = None, cursor: str | None = None) -> R:
        return self._call("GET", "/users", params=self._page(limit, cursor))

    def get_user(self, name: str) -> R:
        return self._call("GET", f"/users/{name}")

    def create_user(self, name: str, role: str = "developer", email: str | None = None, issue_token: bool = True) -> R:
        body = {"name": name, "role": role, "email": email, "issue_token": issue_token}
        return self._call("POST", "/users", json={k: v for k, v in body.items() if v is not None})

    def update_user(self, name: str, **changes: Any) -> R:
        return self._call("PATCH", f"/users/{name}", json=changes)

    # tokens
    def list_tokens(
        self, user: str | None = None, all: bool = False, limit: int | None = None, cursor: str | None = None
    ) -> R:
        return self._call("GET", "/tokens", params=self._page(limit, cursor, user=user, all=all))

    def create_token(self, name: str = "cli", user: str | None = None, expires_in_days: int | None = None) -> R:
        body = {"name": name, "user": user, "expires_in_days": expires_in_days}
        return self._call("POST", "/tokens", json={k: v for k, v in body.items() if v is not None})

    def revoke_token(self, token_id: int) -> R:
        return self._call("DELETE", f"/tokens/{token_id}")

    # projects and environments
    def list_projects(self, limit: int | None = None, cursor: str | None = None) -> R:
        return self._call("GET", "/projects", params=self._page(limit, cursor))

    def get_project(self, name: str) -> R:
        return self._call("GET", f"/projects/{name}")

    def create_project(self, name: str, description: str = "", repo_url: str | None = None) -> R:
        body = {"name": name, "description": description, "repo_url": repo_url}
        return self._call("POST", "/projects", json={k: v for k, v in body.items() if v is not None})

    def update_project(self, name: str, **changes: Any) -> R:
        return self._call("PATCH", f"/projects/{name}", json=changes)

    def delete_project(self, name: str, with_runs: bool = False) -> R:
        return self._call("DELETE", f"/projects/{name}", params={"with_runs": "true"} if with_runs else None)

    def list_members(self, project: str) -> R:
        return self._call("GET", f"/projects/{project}/members")

    def set_member(self, project: str, user: str, role: str = "developer") -> R:
        return self._call("PUT", f"/projects/{project}/members/{user}", json={"role": role})

    def remove_member(self, project: str, user: str) -> R:
        return self._call("DELETE", f"/projects/{project}/members/{user}")

    def list_environments(self, project: str) -> R:
        return self._call("GET", f"/projects/{project}/environments")

    def get_environment(self, project: str, name: str) -> R:
        return self._call("GET", f"/projects/{project}/environments/{name}")

    def create_environment(self, project: str, name: str, **fields: Any) -> R:
        return self._call("POST", f"/projects/{project}/environments", json={"name": name, **fields})

    def update_environment(self, project: str, name: str, **changes: Any) -> R:
        return self._call("PATCH", f"/projects/{project}/environments/{name}", json=changes)

    def delete_environment(self, project: str, name: str) -> R:
        return self._call("DELETE", f"/projects/{project}/environments/{name}")

    # runs
    def create_run(self, project: str, command: list[str], **fields: Any) -> R:
        body = {"project": project, "command": command, **{k: v for k, v in fields.items() if v is not None}}
        return self._call("POST", "/runs", json=body)

    def list_runs(
        self,
        limit: int | None = None,
        cursor: str | None = None,
        state: list[str] | None = None,
        project: str | None = None,
        trigger: str | None = None,
    ) -> R:
        return self._call(
            "GET", "/runs", params=self._page(limit, cursor, state=state, project=project, trigger=trigger)
        )

    def get_run(self, run_id: int) -> R:
        return self._call("GET", f"/runs/{run_id}")

    def cancel_run(self, run_id: int) -> R:
        return self._call("POST", f"/runs/{run_id}/cancel")

    def list_artifacts(self, run_id: int) -> R:
        return self._call("GET", f"/runs/{run_id}/artifacts")

    def list_agents(self) -> R:
        return self._call("GET", "/agents")

    # schedules
    def create_schedule(self, **body: Any) -> R:
        return self._call("POST", "/schedules", json={k: v for k, v in body.items() if v is not None})

    def list_schedules(self, project: str | None = None) -> R:
        return self._call("GET", "/schedules", params={"project": project} if project else None)

    def get_schedule(self, name: str) -> R:
        return self._call("GET", f"/schedules/{name}")

    def update_schedule(self, name: str, **changes: Any) -> R:
        return self._call("PATCH", f"/schedules/{name}", json=changes)

    def delete_schedule(self, name: str) -> R:
        return self._call("DELETE", f"/schedules/{name}")

    def trigger_schedule(self, name: str) -> R:
        return self._call("POST", f"/schedules/{name}/trigger")

    def schedule_next(self, name: str, count: int = 5) -> R:
        return self._call("GET", f"/schedules/{name}/next", params={"count": count})

    def schedule_ticks(self, name: str, limit: int = 50) -> R:
        return self._call("GET", f"/schedules/{name}/ticks", params={"limit": limit})

    # agents
    def register_agent(
        self, name: str, queue: str = "default", substrate: str = "local", hostname: str | None = None
    ) -> R:
        body = {"name": name, "queue": queue, "substrate": substrate, "hostname": hostname}
        return self._call("POST", "/agent/register", json={k: v for k, v in body.items() if v is not None})

    def claim_work(self, agent_id: int, wait_s: float = 25.0, max_items: int = 10) -> R:
        return self._call("POST", "/agent/work", json={"agent_id": agent_id, "wait_s": wait_s, "max_items": max_items})

    def report_launch(self, item_id: int, handle: str | None = None, error: str | None = None) -> R:
        body = {"handle": handle, "error": error}
        return self._call(
            "POST", f"/agent/work/{item_id}/launched", json={k: v for k, v in body.items() if v is not None}
        )

    def agent_heartbeat(self, agent_id: int, runs: list[int]) -> R:
        return self._call("POST", "/agent/heartbeat", json={"agent_id": agent_id, "runs": runs})

    def report_worker_killed(self, run_id: int, exit_code: int, error: str) -> R:
        body = {"outcome": "killed", "exit_code": exit_code, "error": error, "log_seq": 0}
        return self._call("POST", f"/runs/{run_id}/worker/finish", json=body)

    def report_devserver(self, server_id: int, state: str, **details: Any) -> R:
        body = {"state": state, **{k: v for k, v in details.items() if v is not None}}
        return self._call("POST", f"/agent/devservers/{server_id}/state", json=body)

    def agent_devservers(self, agent_id: int) -> R:
        return self._call("GET", f"/agent/{agent_id}/devservers")

    # develop servers
    def start_devserver(self, project: str, environment: str | None = None, idle_timeout_s: int | None = None) -> R:
        body = {"project": project, "environment": environment, "idle_timeout_s": idle_timeout_s}
        return self._call("POST", "/devservers", json={k: v for k, v in body.items() if v is not None})

    def list_devservers(self, project: str | None = None, all_users: bool = False) -> R:
        return self._call("GET", "/devservers", params=self._page(None, None, project=project, all=all_users))

    def get_devserver(self, server_id: int) -> R:
        return self._call("GET", f"/devservers/{server_id}")

    def stop_devserver(self, server_id: int) -> R:
        return self._call("POST", f"/devservers/{server_id}/stop")

    def devserver_call(self, server_id: int, method: str, path: str, **kwargs: Any) -> R:
        """A JSON call to the develop server through the gateway (``path`` as on the server)."""
        return self._call(method, f"/devservers/{server_id}/{path.lstrip('/')}", **kwargs)

    # audit
    def list_audit(self, limit: int | None = None, cursor: str | None = None, action: str | None = None) -> R:
        return self._call("GET", "/audit", params=self._page(limit, cursor, action=action))


def _headers(token: str | None) -> dict[str, str]:
    headers = {"User-Agent": "devyard-client"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


class ControlClient(_Endpoints[Any]):
    """Synchronous client. Use as a context manager or call :meth:`close`."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.token = token  # for callers that open their own connection (sync.probe)
        self.token_from_environment = False  # a refused token then points at DEVYARD_TOKEN
        self._http = httpx.Client(
            base_url=self.url + "/api/v1", headers=_headers(token), timeout=timeout, transport=transport
        )

    @classmethod
    def from_profile(cls, name: str | None = None) -> ControlClient:
        profile = profiles.resolve(name)
        client = cls(profile.url, profile.token)
        client.token_from_environment = reach.token_from_environment(name)
        return client

    def __enter__(self) -> ControlClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _call(
        self, method: str, path: str, *, params: dict[str, Any] | None = None, json: Any = None, content: Any = None
    ) -> Any:
        try:
            response = self._http.request(method, path, params=params, json=json, content=content)
        except httpx.TransportError as exc:
            raise _connection_error(self.url, exc) from exc
        raise_for_error(response, self.token_from_environment)
        return None if response.status_code == 204 else response.json()

    def read_logs(self, run_id: int, from_seq: int = 1, tail: int | None = None) -> tuple[bytes, int]:
        """Stored log records of a run (framed, see control.logformat) and the last chunk seq."""
        params: dict[str, Any] = {"from_seq": from_seq}
        if tail is not None:
            params["tail"] = tail
        try:
            response = self._http.get(f"/runs/{run_id}/logs", params=params, timeout=httpx.Timeout(300.0, connect=5.0))
        except httpx.TransportError as exc:
            raise _connection_error(self.url, exc) from exc
        raise_for_error(response, self.token_from_environment)
        return response.content, int(response.headers.get("x-devyard-log-seq", "0"))

    def follow_logs(self, run_id: int, from_seq: int = 1) -> Iterator[SSEEvent]:
        """Yield ``chunk`` events (JSON with base64 ``data``) and finally one ``end`` event."""
        yield from self._sse(f"/runs/{run_id}/logs", {"follow": "true", "from_seq": from_seq})

    def follow_log_frames(self, run_id: int, from_seq: int = 1) -> Iterator[tuple[str, int, bytes]]:
        """Yield ``(event, seq, payload)``: ``chunk`` with the raw stored records (no base64),
        ``error`` or ``end`` with JSON. The cheap way to follow a busy log from a program."""
        timeout = httpx.Timeout(None, connect=5.0)
        params: dict[str, Any] = {"follow": "true", "from_seq": from_seq, "format": "frames"}
        try:
            with self._http.stream("GET", f"/runs/{run_id}/logs", params=params, timeout=timeout) as response:
                if response.status_code >= 400:
                    response.read()
                    raise_for_error(response, self.token_from_environment)
                buffer = bytearray()
                for piece in response.iter_raw():
                    buffer += piece
                    while True:
                        newline = buffer.find(b"\n")
                        if newline < 0:
                            break
                        event, size, seq, _lines = bytes(buffer[:newline]).split()
                        end = newline + 1 + int(size)
                        if len(buffer) < end:
                            break
                        payload = bytes(buffer[newline + 1 : end])
                        del buffer[:end]
                        if event != b"keepalive":
                            yield event.decode(), int(seq), payload
        except httpx.TransportError as exc:
            raise _connection_error(self.url, exc) from exc

    def download_artifact(self, run_id: int, artifact_id: int, target: Any) -> int:
        """Stream an artifact into the binary file object ``target``; returns the byte count."""
        written = 0
        try:
            with self._http.stream(
                "GET", f"/runs/{run_id}/artifacts/{artifact_id}/content", timeout=httpx.Timeout(None, connect=5.0)
            ) as response:
                if response.status_code >= 400:
                    response.read()
                    raise_for_error(response, self.token_from_environment)
                for piece in response.iter_bytes():
                    target.write(piece)
                    written += len(piece)
        except httpx.TransportError as exc:
            raise _connection_error(self.url, exc) from exc
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
        timeout = httpx.Timeout(None, connect=5.0)
        try:
            with self._http.stream(
                method,
                f"/devservers/{server_id}/{path.lstrip('/')}",
                json=json,
                content=content,
                headers=headers,
                params=params,
                timeout=timeout,
            ) as response:
                if response.status_code >= 400:
                    response.read()
                    raise_for_error(response, self.token_from_environment)
                yield from response.iter_raw()
        except httpx.TransportError as exc:
            raise _connection_error(self.url, exc) from exc

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
        its JSON answer. On an error, ``ApiError.details`` is the whole error object, so fields
        beyond code and message (a refused batch entry's ``path`` and ``applied``) survive."""
        try:
            response = self._http.post(
                f"/devservers/{server_id}/{path.lstrip('/')}",
                content=body,
                headers={"content-type": media_type},
                params=params,
                timeout=httpx.Timeout(timeout_s, connect=5.0),
            )
        except httpx.TransportError as exc:
            raise _connection_error(self.url, exc) from exc
        try:
            raise_for_error(response, self.token_from_environment)
        except ApiError as exc:
            try:
                error = response.json().get("error")
            except (ValueError, AttributeError):
                error = None
            if exc.details is None and isinstance(error, dict):
                exc.details = error
            raise
        return response.json()

    def websocket_url(self, path: str) -> str:
        """``ws://`` (or ``wss://``) URL of an API path, for WebSocket clients."""
        base = self.url.replace("http://", "ws://", 1).replace("https://", "wss://", 1)
        return f"{base}/api/v1/{path.lstrip('/')}"

    @property
    def auth_headers(self) -> dict[str, str]:
        return {k: v for k, v in self._http.headers.items() if k.lower() == "authorization"}

    def _sse(self, path: str, params: dict[str, Any]) -> Iterator[SSEEvent]:
        timeout = httpx.Timeout(None, connect=5.0)
        try:
            with self._http.stream("GET", path, params=params, timeout=timeout) as response:
                if response.status_code >= 400:
                    response.read()
                    raise_for_error(response, self.token_from_environment)
                decoder = SSEDecoder()
                for line in response.iter_lines():
                    event = decoder.feed(line)
                    if event is not None:
                        yield event
        except httpx.TransportError as exc:
            raise _connection_error(self.url, exc) from exc


class AsyncControlClient(_Endpoints[Awaitable[Any]]):
    """Asynchronous client with the same calls (each returns an awaitable)."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.token_from_environment = False  # a refused token then points at DEVYARD_TOKEN
        self._http = httpx.AsyncClient(
            base_url=self.url + "/api/v1", headers=_headers(token), timeout=timeout, transport=transport
        )

    @classmethod
    def from_profile(cls, name: str | None = None) -> AsyncControlClient:
        profile = profiles.resolve(name)
        client = cls(profile.url, profile.token)
        client.token_from_environment = reach.token_from_environment(name)
        return client

    async def __aenter__(self) -> AsyncControlClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _request(
        self, method: str, path: str, params: dict[str, Any] | None, json: Any, content: Any = None
    ) -> Any:
        try:
            response = await self._http.request(method, path, params=params, json=json, content=content)
        except httpx.TransportError as exc:
            raise _connection_error(self.url, exc) from exc
        raise_for_error(response, self.token_from_environment)
        return None if response.status_code == 204 else response.json()

    def _call(
        self, method: str, path: str, *, params: dict[str, Any] | None = None, json: Any = None, content: Any = None
    ) -> Awaitable[Any]:
        return self._request(method, path, params, json, content)

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
            response = await self._http.get(
                f"/runs/{run_id}/logs", params=params, timeout=httpx.Timeout(300.0, connect=5.0)
            )
        except httpx.TransportError as exc:
            raise _connection_error(self.url, exc) from exc
        raise_for_error(response, self.token_from_environment)
        return response.content, int(response.headers.get("x-devyard-log-seq", "0"))

    async def stream_logs(self, run_id: int, from_seq: int = 1, to_seq: int | None = None) -> AsyncIterator[bytes]:
        """Stored log records of a run as they come off the wire (pieces end anywhere)."""
        params: dict[str, Any] = {"from_seq": from_seq}
        if to_seq is not None:
            params["to_seq"] = to_seq
        try:
            async with self._http.stream(
                "GET", f"/runs/{run_id}/logs", params=params, timeout=httpx.Timeout(300.0, connect=5.0)
            ) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise_for_error(response, self.token_from_environment)
                async for piece in response.aiter_raw():
                    yield piece
        except httpx.TransportError as exc:
            raise _connection_error(self.url, exc) from exc

    async def follow_log_frames(self, run_id: int, from_seq: int = 1) -> AsyncIterator[tuple[str, int, bytes]]:
        """Yield ``(event, seq, payload)`` like :meth:`ControlClient.follow_log_frames`: ``chunk``
        with the raw stored records, then ``error`` or ``end`` with JSON."""
        timeout = httpx.Timeout(None, connect=5.0)
        params: dict[str, Any] = {"follow": "true", "from_seq": from_seq, "format": "frames"}
        try:
            async with self._http.stream("GET", f"/runs/{run_id}/logs", params=params, timeout=timeout) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise_for_error(response, self.token_from_environment)
                buffer = bytearray()
                async for piece in response.aiter_raw():
                    buffer += piece
                    while True:
                        newline = buffer.find(b"\n")
                        if newline < 0:
                            break
                        event, size, seq, _lines = bytes(buffer[:newline]).split()
                        end = newline + 1 + int(size)
                        if len(buffer) < end:
                            break
                        payload = bytes(buffer[newline + 1 : end])
                        del buffer[:end]
                        if event != b"keepalive":
                            yield event.decode(), int(seq), payload
        except httpx.TransportError as exc:
            raise _connection_error(self.url, exc) from exc

    async def _sse(self, path: str, params: dict[str, Any]) -> AsyncIterator[SSEEvent]:
        timeout = httpx.Timeout(None, connect=5.0)
        try:
            async with self._http.stream("GET", path, params=params, timeout=timeout) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise_for_error(response, self.token_from_environment)
                decoder = SSEDecoder()
                async for line in response.aiter_lines():
                    event = decoder.feed(line)
                    if event is not None:
                        yield event
        except httpx.TransportError as exc:
            raise _connection_error(self.url, exc) from exc
