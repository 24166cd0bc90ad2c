"""Ports of a develop server: what listens in it, TCP tunnels to them, and HTTP preview links.

A tunnel is one WebSocket per TCP connection (``WS /devservers/{id}/tunnel/{port}`` at the API,
``WS /tunnel/{port}`` at the develop server): binary messages carry the stream's bytes in order,
the text message :data:`EOF` says the sender will send no more bytes (a TCP half-close), and the
WebSocket closes once both sides have sent it (or with :data:`CLOSE_TARGET_FAILED` when the
connection to the port broke). No runtime imports beyond pydantic: the CLI and the develop server
read it too.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field

from control.wire.fields import Strict

EOF = '{"type":"eof"}'
"""Text message: the sender has shut its side for writing; bytes still flow the other way."""

CLOSE_TARGET_FAILED = 4502
"""WebSocket close code: the connection to the port in the develop server broke (reset, error)."""

# Error codes of the tunnel and preview endpoints (clients branch on them).
PORT_NOT_LISTENING = "port_not_listening"
BAD_PORT = "bad_port"
TOO_MANY_TUNNELS = "too_many_tunnels"
PREVIEW_EXPIRED = "preview_expired"

MIN_PORT, MAX_PORT = 1, 65535
Port = Annotated[int, Field(ge=MIN_PORT, le=MAX_PORT)]


def port_problem(raw: object) -> str | None:
    """One sentence about why ``raw`` is not a TCP port number, or None when it is one."""
    text = str(raw).strip()
    if not text.isdigit() or not MIN_PORT <= int(text) <= MAX_PORT:
        return f"Port {text or '(empty)'} is not a TCP port; give a number from {MIN_PORT} to {MAX_PORT}."
    return None


class ListeningPort(BaseModel):
    """A TCP socket listening inside the develop server."""

    port: int
    address: str
    """The address it is bound to (``0.0.0.0``, ``127.0.0.1``, ``::``, ...)."""
    pid: int | None
    process: str | None
    """The listening process's command line (shortened), when it can be read."""
    since: datetime | None
    """When the listening process started."""


class PreviewCreate(Strict):
    port: Port
    ttl_s: Annotated[int, Field(ge=60, le=7 * 24 * 3600)] = 8 * 3600
    """How long the link works (default eight hours, at most a week)."""


class PreviewOut(BaseModel):
    """A preview link as listed: never its secret."""

    id: int
    server_id: int
    port: int
    path: str
    """The preview's path on the API (``/api/v1/devservers/{id}/ports/{port}/``)."""
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None


class PreviewIssued(PreviewOut):
    """A new preview link: ``url`` holds its secret and is shown once."""

    url: str
