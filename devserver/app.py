"""Assembling the develop server's ASGI app: routes, bearer auth, activity and JSON errors."""

from __future__ import annotations

import hmac
import json
import logging
import os
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from control.wire.batch import BatchFormatError
from devserver.execute import ExecApi
from devserver.files import FilesApi
from devserver.gitapi import GitApi
from devserver.logs import LogsApi
from devserver.paths import BadPath
from devserver.preview import PreviewApi
from devserver.responses import ApiError, error_body, error_response, json_response
from devserver.state import ServerState, iso_utc, version
from devserver.terminal import TerminalApi
from devserver.tunnel import PortsApi

log = logging.getLogger("devyard.devserver")

UNAUTHORIZED = "unauthorized"
UNAUTHORIZED_MESSAGE = "A valid 'Authorization: Bearer <secret>' header is required."
WS_UNAUTHORIZED_CLOSE = 4401


class BearerAuth:
    """Checks the per-server secret on every HTTP request and WebSocket, and records activity."""

    def __init__(self, app: ASGIApp, state: ServerState) -> None:
        self.app = app
        self.state = state
        self.expected = b"Bearer " + state.secret

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        header = next((value for name, value in scope["headers"] if name == b"authorization"), b"")
        if not hmac.compare_digest(header, self.expected):
            await self._refuse(scope, receive, send)
            return
        if not (scope["type"] == "http" and scope["path"] == "/health"):
            self.state.touch()
        await self.app(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = json.dumps(error_body(UNAUTHORIZED, UNAUTHORIZED_MESSAGE)).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        if scope["type"] == "http":
            headers.append((b"www-authenticate", b"Bearer"))
            await send({"type": "http.response.start", "status": 401, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await receive()  # websocket.connect
        if "websocket.http.response" in scope.get("extensions", {}):
            await send({"type": "websocket.http.response.start", "status": 401, "headers": headers})
            await send({"type": "websocket.http.response.body", "body": body})
        else:
            await send({"type": "websocket.close", "code": WS_UNAUTHORIZED_CLOSE})


def health_route(state: ServerState) -> Route:
    """``GET /health``: liveness plus the facts the agent and the idle stop need."""

    async def health(request: Request) -> Response:
        return json_response(
            {
                "ok": True,
                "workspace": state.workspace.root,
                "pid": os.getpid(),
                "started_at": iso_utc(state.started_at),
                "last_activity_at": iso_utc(state.last_activity),
                "version": version(),
            }
        )

    return Route("/health", health, methods=["GET"])


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message, **exc.extra)


async def _bad_path(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, BadPath)
    return error_response(exc.status, exc.code, exc.message, path=exc.path)


async def _bad_batch(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, BatchFormatError)
    return error_response(400, exc.code, exc.message, path=exc.path)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return error_response(404, "not_found", f"There is no endpoint at {request.url.path}.")
    if exc.status_code == 405:
        return error_response(405, "method_not_allowed", f"{request.method} is not allowed on {request.url.path}.")
    return error_response(exc.status_code, "http_error", str(exc.detail))


async def _client_gone(request: Request, exc: Exception) -> Response:
    # Nobody will read this answer; it only keeps a vanished client out of the error log.
    log.info("%s %s: the client went away mid-request", request.method, request.url.path)
    return error_response(400, "client_disconnected", "The client disconnected before the request was complete.")


async def _unexpected(request: Request, exc: Exception) -> Response:
    # The traceback goes to the log, never to the client.
    log.error("unexpected error in %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal", "The develop server hit an unexpected error; its log has the details.")


def create_app(state: ServerState) -> ASGIApp:
    """The whole develop server as one ASGI app."""
    routes: list[BaseRoute] = [health_route(state)]
    routes += FilesApi(state).routes()
    routes += ExecApi(state).routes()
    routes += TerminalApi(state).routes()
    routes += PortsApi(state).routes()
    routes += PreviewApi(state).routes()
    routes += GitApi(state).routes()
    routes += LogsApi(state).routes()
    handlers: dict[Any, Any] = {
        ApiError: _api_error,
        BadPath: _bad_path,
        BatchFormatError: _bad_batch,
        HTTPException: _http_error,
        ClientDisconnect: _client_gone,
        Exception: _unexpected,
    }
    return BearerAuth(Starlette(routes=routes, exception_handlers=handlers), state)
