"""``/preview/{port}/{path}``: HTTP requests and WebSockets passed to an app on this server's loopback.

The gateway has checked the caller and prepared the headers (see
:mod:`control.api.preview_headers`); here the request goes to ``localhost:{port}`` as the app
expects in development (Host ``localhost:{port}``), with the app's own Authorization header
restored. Bodies stream both ways. Nothing listening is 502 ``port_not_listening``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket

from control.wire.ports import BAD_PORT, PORT_NOT_LISTENING, port_problem
from control.wsrelay import relay
from devserver.responses import error_response, refuse_websocket
from devserver.state import ServerState

if TYPE_CHECKING:
    import httpx

log = logging.getLogger("devyard.devserver")

APP_AUTHORIZATION = "x-devyard-app-authorization"
DROP = frozenset({"authorization", "host", APP_AUTHORIZATION, "connection", "keep-alive", "transfer-encoding"})
DROP_ANSWER = frozenset({"connection", "keep-alive", "transfer-encoding"})
HANDSHAKE = frozenset({"sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions", "upgrade"})
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def _not_listening(port: int) -> str:
    return f"Nothing listens on port {port} in the develop server; start the program that serves it first."


class PreviewApi:
    """``/preview/{port}/{path}`` (HTTP) and the same path as a WebSocket."""

    def __init__(self, state: ServerState) -> None:
        self.state = state
        self._client: httpx.AsyncClient | None = None

    def routes(self) -> list[BaseRoute]:
        """The routes of this API."""
        return [
            Route("/preview/{port}/{path:path}", self.http, methods=METHODS),
            WebSocketRoute("/preview/{port}/{path:path}", self.websocket),
        ]

    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            import httpx

            # No read timeout: an app may stream (server-sent events) or think for a long time.
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(None, connect=5.0), limits=httpx.Limits(max_connections=None)
            )
        return self._client

    def _headers(self, raw: list[tuple[str, str]], port: int) -> list[tuple[str, str]]:
        out = [(k, v) for k, v in raw if k not in DROP]
        out += [("authorization", v) for k, v in raw if k == APP_AUTHORIZATION]
        out.append(("host", f"localhost:{port}"))
        return out

    async def http(self, request: Request) -> Response:
        """One request to the app; its answer as it comes."""
        import httpx

        raw_port = request.path_params["port"]
        if port_problem(raw_port):
            return error_response(400, BAD_PORT, str(port_problem(raw_port)))
        port = int(raw_port)
        path = request.path_params["path"]
        query = f"?{request.url.query}" if request.url.query else ""
        headers = self._headers(list(request.headers.items()), port)
        has_body = request.method not in ("GET", "HEAD", "OPTIONS") or "content-length" in request.headers
        # One stream for both tries: a connection that fails has not read any of it yet.
        body = request.stream() if has_body else None
        upstream = None
        for host in ("127.0.0.1", "[::1]"):
            outgoing = self.client().build_request(
                request.method, f"http://{host}:{port}/{path}{query}", headers=headers, content=body
            )
            try:
                upstream = await self.client().send(outgoing, stream=True)
                break
            except httpx.ConnectError:
                continue
            except httpx.HTTPError as exc:
                return error_response(502, "app_error", f"The app on port {port} did not answer properly: {exc}.")
        if upstream is None:
            return error_response(502, PORT_NOT_LISTENING, _not_listening(port), port=port)
        self.state.touch()
        response = StreamingResponse(
            _body(upstream), status_code=upstream.status_code, background=BackgroundTask(upstream.aclose)
        )
        response.raw_headers = [
            (k.encode("latin-1"), v.encode("latin-1"))
            for k, v in upstream.headers.multi_items()
            if k.lower() not in DROP_ANSWER
        ]
        return response

    async def websocket(self, websocket: WebSocket) -> None:
        """The app's WebSocket at this path, relayed message by message."""
        from websockets.asyncio.client import connect
        from websockets.exceptions import InvalidHandshake, InvalidStatus

        raw_port = websocket.path_params["port"]
        if port_problem(raw_port):
            await refuse_websocket(websocket, error_response(400, BAD_PORT, str(port_problem(raw_port))))
            return
        port = int(raw_port)
        path = websocket.path_params["path"]
        query = f"?{websocket.url.query}" if websocket.url.query else ""
        headers = [(k, v) for k, v in self._headers(list(websocket.headers.items()), port) if k not in HANDSHAKE]
        headers = [(k, v) for k, v in headers if k != "sec-websocket-protocol"]
        subprotocols: Any = list(websocket.scope.get("subprotocols") or []) or None
        upstream = None
        for host in ("127.0.0.1", "[::1]"):
            try:
                upstream = await connect(
                    f"ws://{host}:{port}/{path}{query}",
                    additional_headers=headers,
                    subprotocols=subprotocols,
                    compression=None,
                    max_size=None,
                    open_timeout=10,
                    close_timeout=2,
                    user_agent_header=None,
                )
                break
            except InvalidStatus as exc:
                status = exc.response.status_code
                message = f"The app on port {port} refused the WebSocket ({status})."
                await refuse_websocket(websocket, error_response(status, "app_refused", message), 4000 + status)
                return
            except (OSError, InvalidHandshake, TimeoutError):
                continue
        if upstream is None:
            await refuse_websocket(websocket, error_response(502, PORT_NOT_LISTENING, _not_listening(port)), 4502)
            return
        await websocket.accept(subprotocol=upstream.subprotocol)
        self.state.touch()
        await relay(websocket, upstream)


async def _body(upstream: httpx.Response) -> Any:
    import httpx

    try:
        async for chunk in upstream.aiter_raw():
            yield chunk
    except httpx.HTTPError:
        return  # the app went away mid-answer: the body ends short
