"""How an API process serves HTTP: uvicorn, told to end long-polls before its graceful shutdown,
and a garbage collector tuned for many short-lived objects."""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

from control.settings import Settings


def tune_gc() -> None:
    """Collect cycles rarely: a request allocates many short-lived objects, and at the default
    generation-0 threshold (700) the collector runs thousands of times a second under load, its
    older-generation passes showing as 100+ ms stalls in p99 latency."""
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)


def api_server(app: Any, settings: Settings, on_stopping: Callable[[], None] | None = None) -> Any:
    """A uvicorn server for ``app`` that calls ``on_stopping`` when it stops accepting connections."""
    import uvicorn

    from control.api.app import MAX_CONCURRENT_REQUESTS
    from control.api.connections import protected_protocol

    class Server(uvicorn.Server):  # type: ignore[misc]
        async def shutdown(self, sockets: Any = None) -> None:
            # uvicorn waits (up to timeout_graceful_shutdown) for requests in flight; long-polls
            # and streams would hold it the whole time, so tell them to finish first.
            if on_stopping is not None:
                on_stopping()
            await super().shutdown(sockets=sockets)

    ssl_context = None
    if settings.tls_cert and settings.tls_key:
        from compose.stack.tls import ReloadingCertificate

        ssl_context = ReloadingCertificate(settings.tls_cert, settings.tls_key).context

    class Config(uvicorn.Config):  # type: ignore[misc]
        def load(self) -> None:
            super().load()
            if ssl_context is not None:
                # Our context, not one uvicorn builds from file names: it follows renewed files.
                self.ssl = ssl_context

    config = Config(
        app,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=2,
        lifespan="on",
        limit_concurrency=MAX_CONCURRENT_REQUESTS,
        http=protected_protocol(settings.header_timeout_s, settings.max_connections_per_client),
    )
    return Server(config)


def exit_on_signal(signum: int, _frame: Any) -> None:
    """A signal handler that ends the process through SystemExit, so ``finally`` blocks run."""
    raise SystemExit(128 + signum)
