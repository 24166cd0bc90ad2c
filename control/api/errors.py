"""JSON errors: every failure is the body of :mod:`control.wire.errors` with a 4xx/5xx status."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from control.access import AccessRefused
from control.objectstore import ObjectNotFound, ObjectStoreProblem
from control.secretbox import SecretsUnreadable
from control.wire.errors import ApiError, error_body
from control.wire.fields import NAME_PATTERN

log = logging.getLogger("devyard.api")


def not_found(what: str, ident: object) -> ApiError:
    return ApiError(404, "not_found", f"{what} {ident!s} does not exist.")


def forbidden(message: str) -> ApiError:
    return ApiError(403, "forbidden", message)


def conflict(message: str) -> ApiError:
    return ApiError(409, "conflict", message)


RESTORE_KEY = "restore the key that encrypted them (DEVYARD_SECRET_KEYS or the data dir's state/secret.key)"


class SecretsLocked(ApiError):
    """The secrets of an environment cannot be decrypted with the configured keys (a server problem)."""

    def __init__(self, environment: str) -> None:
        super().__init__(
            500,
            "secrets_unreadable",
            f"The secrets of environment {environment} cannot be decrypted with the configured keys; {RESTORE_KEY}.",
        )


def _location(loc: Any) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "request"


OUT_OF_RANGE = "A number in the request is out of range: integers must lie between -2^63 and 2^63-1."
UNSTORABLE = "A value in the request cannot be stored (a number out of range, or text too long or holding NUL)."
UNPARSABLE_BODY = "There was an error parsing the body"  # FastAPI's 400: a 100k-deep JSON body hit it


def _explain(error: Any) -> str:
    """Pydantic's message, except for patterns, which users should not have to decode."""
    if error.get("type") == "string_pattern_mismatch":
        if error.get("ctx", {}).get("pattern") == NAME_PATTERN:
            return "use 1-64 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit"
        return "it has characters that are not allowed here"
    return str(error.get("msg", "invalid value")).removeprefix("Value error, ")


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse(error_body(exc.code, exc.message, **exc.extra), exc.status, headers=headers)

    @app.exception_handler(AccessRefused)
    async def _refused(_: Request, exc: AccessRefused) -> JSONResponse:
        return JSONResponse(error_body("forbidden", str(exc)), 403)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {"loc": (), "msg": "invalid request", "type": ""}
        message = f"Invalid {_location(first['loc'])}: {_explain(first)}."
        details = [{"field": _location(e["loc"]), "message": _explain(e)} for e in errors]
        return JSONResponse(error_body("invalid_request", message, details=details), 422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "too_large"}.get(
            exc.status_code, "http_error"
        )
        message = exc.detail if isinstance(exc.detail, str) else "Request failed."
        if message == UNPARSABLE_BODY:  # FastAPI's words for anything but a JSON syntax error
            message = "The request body could not be parsed; JSON may nest at most a few hundred levels."
        elif exc.status_code == 404 and message == "Not Found":
            message = "No such API route."
        elif exc.status_code == 405:
            message = "This method is not allowed on this route."
        return JSONResponse(error_body(code, message), exc.status_code, headers=exc.headers)

    @app.exception_handler(OverflowError)
    async def _overflow(_: Request, exc: OverflowError) -> JSONResponse:
        # SQLite cannot bind an integer outside 64 bits (OverflowError); it only ever comes
        # from a number the client sent (an id in the path, a field of the body).
        log.info("number out of range: %s", exc)
        return JSONResponse(error_body("invalid_request", OUT_OF_RANGE), 422)

    @app.exception_handler(DataError)
    async def _bad_data(_: Request, exc: DataError) -> JSONResponse:
        # PostgreSQL's refusal of a value it cannot store (a number out of range, a NUL in a
        # text): also the client's input, never worth a 500.
        log.info("value refused by the database: %s", str(exc.orig).splitlines()[0] if exc.orig else exc)
        return JSONResponse(error_body("invalid_request", UNSTORABLE), 422)

    @app.exception_handler(ObjectStoreProblem)
    async def _store_down(_: Request, exc: ObjectStoreProblem) -> JSONResponse:
        log.warning("object store problem: %s", exc)
        return JSONResponse(error_body("store_unavailable", f"{str(exc).rstrip('.')}; try again later."), 503)

    @app.exception_handler(ObjectNotFound)
    async def _object_missing(_: Request, exc: ObjectNotFound) -> JSONResponse:
        return JSONResponse(
            error_body("object_missing", f"Stored object {exc.args[0]} is missing from the object store."), 404
        )

    @app.exception_handler(SecretsUnreadable)
    async def _secrets_unreadable(_: Request, exc: SecretsUnreadable) -> JSONResponse:
        return JSONResponse(error_body("secrets_unreadable", f"{str(exc).rstrip('.')}; {RESTORE_KEY}."), 500)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return JSONResponse(error_body("internal", "Internal server error; see the server log."), 500)
