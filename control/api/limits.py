"""Refuse request bodies over the configured size with 413, before they reach a handler."""

from __future__ import annotations

import json
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

GATEWAY = re.compile(r"^/api/v1/devservers/\d+/(?!stop$).+")


class BodySizeLimit:
    """Pure ASGI middleware: checks Content-Length up front and counts streamed bodies."""

    def __init__(self, app: ASGIApp, max_bytes: int, max_upload_bytes: int | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_upload_bytes = max_upload_bytes or max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or GATEWAY.match(scope["path"]):
            # The gateway streams bodies through (file batches may be gigabytes); the develop
            # server reads them incrementally and owns their limits.
            await self.app(scope, receive, send)
            return
        # Artifact uploads stream to a temporary file, so they may be much larger.
        upload = scope["method"] == "PUT" and scope["path"].endswith("/artifacts")
        limit = self.max_upload_bytes if upload else self.max_bytes
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await self._reject(send, 400, "bad_request", "Content-Length is not a number.")
                    return
                if declared > limit:
                    await self._too_large(send, limit)
                    return
        if any(name == b"content-length" for name, _ in scope.get("headers", [])):
            # Uvicorn never delivers more than the declared length, so the check above is enough.
            await self.app(scope, receive, send)
            return
        # A chunked body has no declared size: read it here, bounded by the limit, then replay
        # it. Failing inside the app would surface as the framework's 400, not a 413.
        parts: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > limit:
                await self._too_large(send, limit)
                return
            parts.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(parts)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, send: Send, limit: int) -> None:
        await self._reject(send, 413, "too_large", f"Request body is larger than the limit of {limit} bytes.")

    @staticmethod
    async def _reject(send: Send, status: int, code: str, message: str) -> None:
        body = json.dumps({"error": {"code": code, "message": message}}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})
