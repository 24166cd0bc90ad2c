"""The FastAPI application factory."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from fastapi import FastAPI

from control import __version__
from control.api import errors, paging
from control.api.deps import BEARER_SCHEME
from control.api.housekeeping import housekeeping_loop
from control.api.limits import BodySizeLimit
from control.api.routes import (
    agents,
    artifacts,
    audit,
    auth,
    device_pages,
    devservers,
    environments,
    events,
    gateway,
    health,
    hooks,
    jobs,
    members,
    notifications,
    previews,
    projects,
    run_logs,
    run_worker,
    runs,
    schedules,
    tokens,
    tunnels,
    users,
)
from control.api.routing import API_PREFIX
from control.api.services import Services
from control.notifications.dispatcher import delivery_loop

THREADS = 1100
MAX_CONCURRENT_REQUESTS = 1000  # uvicorn's limit_concurrency: over it, 503 instead of a stall


def create_app(services: Services) -> FastAPI:
    """Build the API around ready services (engine, store, event bus)."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # A request holds its database connection between thread hops (dependency, endpoint,
        # response validation). With fewer threads than concurrent requests, threads waiting
        # for a connection can starve the requests that hold one: keep threads plentiful
        # (they are created only when needed) and cap concurrency below it in the server.
        anyio.to_thread.current_default_thread_limiter().total_tokens = THREADS
        task = asyncio.create_task(housekeeping_loop(services))
        deliveries = asyncio.create_task(delivery_loop(services))
        yield
        task.cancel()
        deliveries.cancel()
        for gateway_http in services.extras.pop("gateway_http", {}).values():
            await gateway_http.aclose()
        await paging.close_read_pool(services)
        services.events.close()
        services.hub.close()

    app = FastAPI(
        title="devyard control API",
        version=__version__,
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.services = services
    errors.install(app)
    for module in (
        health,
        auth,
        users,
        tokens,
        projects,
        members,
        environments,
        notifications,
        hooks,
        audit,
        events,
        runs,
        run_logs,
        run_worker,
        artifacts,
        agents,
        schedules,
        jobs,
        devservers,
        tunnels,  # before the gateway, whose catch-all would take their paths
        previews,
        gateway,  # after devservers: its catch-all path must not shadow /devservers/{id}/stop
    ):
        app.include_router(module.router, prefix=API_PREFIX)
    app.include_router(device_pages.router)  # browser pages, outside the API's prefix
    _declare_bearer_auth(app)
    app.add_middleware(
        BodySizeLimit,
        max_bytes=services.settings.max_request_bytes,
        max_upload_bytes=services.settings.max_artifact_bytes,
    )
    return app


def _declare_bearer_auth(app: FastAPI) -> None:
    """Every operation takes a bearer token unless it says ``security: []`` (health does): one
    declaration for the whole document, so no endpoint needs a dependency just for the docs."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            schema.setdefault("components", {}).setdefault("securitySchemes", {})["HTTPBearer"] = BEARER_SCHEME
            schema["security"] = [{"HTTPBearer": []}]
            _declare_error_responses(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


ERROR_BODY = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "description": "What went wrong; clients branch on it."},
                "message": {"type": "string", "description": "One sentence for a person."},
                "details": {
                    "type": "array",
                    "description": "invalid_request: each field that is wrong.",
                    "items": {
                        "type": "object",
                        "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
                    },
                },
            },
        }
    },
}


def _declare_error_responses(schema: dict[str, Any]) -> None:
    """Every operation may answer an error status with the JSON error body (control.api.errors):
    declared once as each operation's ``default`` response, so clients and schema checks know it."""
    schema["components"].setdefault("schemas", {})["ErrorBody"] = ERROR_BODY
    error = {
        "description": "An error: 4xx for the caller's mistake, 5xx for the server's.",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
    }
    invalid = {
        "description": "The request is invalid: `invalid_request`, with one `details` entry per field.",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
    }
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            if isinstance(operation, dict) and "responses" in operation:
                operation["responses"].setdefault("default", error)
                if "422" in operation["responses"]:  # FastAPI declares its own body; ours is the error body
                    operation["responses"]["422"] = invalid
    schema["components"]["schemas"].pop("HTTPValidationError", None)
    schema["components"]["schemas"].pop("ValidationError", None)
