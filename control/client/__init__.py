"""The HTTP client SDK of the control API, used by the CLI, the TUI, agents and sync.

Every endpoint is described once (:mod:`control.client.endpoints`) and answers with its model
from :mod:`control.wire`; :class:`ControlClient` runs the calls synchronously and
:class:`AsyncControlClient` asynchronously. A connection or API problem becomes one exception
with a one-sentence message and, for API answers, the error's code (:mod:`control.client.errors`).
"""

from control.client.aio import AsyncControlClient
from control.client.errors import (
    ApiError,
    AuthFailed,
    Conflict,
    ConnectionFailed,
    DevyardError,
    Forbidden,
    NotFound,
    UnexpectedAnswer,
    raise_for_error,
)
from control.client.streams import LogFrame, LogFrameDecoder, SSEDecoder, SSEEvent
from control.client.sync import DEFAULT_TIMEOUT, ControlClient

__all__ = [
    "DEFAULT_TIMEOUT",
    "ApiError",
    "AsyncControlClient",
    "AuthFailed",
    "Conflict",
    "ConnectionFailed",
    "ControlClient",
    "DevyardError",
    "Forbidden",
    "LogFrame",
    "LogFrameDecoder",
    "NotFound",
    "SSEDecoder",
    "SSEEvent",
    "UnexpectedAnswer",
    "raise_for_error",
]
