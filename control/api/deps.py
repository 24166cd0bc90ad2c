"""Request dependencies: the database session and the authenticated principal."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Annotated

from fastapi import Depends, Request
from sqlmodel import Session, select
from starlette.concurrency import run_in_threadpool

from control.api.services import Services
from control.auth import AGENTS, Principal, hash_token
from control.clock import utcnow
from control.db.tables import ApiToken, User
from control.wire.errors import TOKEN_EXPIRED, USER_DISABLED, ApiError
from control.wire.resources import Role

# Writing last_used_at on every request would turn every read into a write.
LAST_USED_RESOLUTION = timedelta(minutes=1)


async def services_dep(request: Request) -> Services:
    return services(request)


def services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


async def db_session(svc: Annotated[Services, Depends(services_dep)]) -> AsyncIterator[Session]:
    """A session for the endpoint. Opening and closing it happen on the event loop (no thread
    hop): a Session connects lazily, and closing only hands the connection back."""
    session = Session(svc.engine, expire_on_commit=False)
    try:
        yield session
    finally:
        session.close()


# The bearer scheme is declared once for the whole OpenAPI document (see control.api.app), not as
# a dependency: every level of dependencies costs FastAPI work on every request.
BEARER_SCHEME = {"type": "http", "scheme": "bearer", "description": "An API token: `Authorization: Bearer dy_...`."}
PRINCIPAL_KEY = "devyard.principal"  # the caller, once known, in the request scope


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "unauthenticated", "Missing bearer token; pass 'Authorization: Bearer <token>'.")
    return token.strip()


def authenticate(svc: Services, token: str) -> Principal:
    """Look a token up (blocking: call it in a thread); raises the 401 for a bad token."""
    token_hash = hash_token(token)
    with Session(svc.engine, expire_on_commit=False) as session:
        row = session.exec(select(ApiToken, User).join(User).where(ApiToken.token_hash == token_hash)).first()
        if row is None:
            raise ApiError(401, "unauthenticated", "The token is not valid.")
        api_token, user = row
        now = utcnow()
        if api_token.revoked_at is not None:
            raise ApiError(401, "unauthenticated", "The token has been revoked.")
        if api_token.expires_at is not None and api_token.expires_at <= now:
            raise ApiError(401, TOKEN_EXPIRED, "The token has expired.")
        if user.disabled:
            raise ApiError(401, USER_DISABLED, f"User {user.name} is disabled.")
        if api_token.last_used_at is None or now - api_token.last_used_at > LAST_USED_RESOLUTION:
            api_token.last_used_at = now
            session.add(api_token)
            session.commit()
    assert user.id is not None and api_token.id is not None
    who = Principal(user_id=user.id, name=user.name, role=Role(user.role), token_id=api_token.id)
    valid_until = None
    if api_token.expires_at is not None:
        valid_until = time.monotonic() + (api_token.expires_at - now).total_seconds()
    svc.principals.put(token_hash, who, valid_until)
    return who


async def principal(request: Request) -> Principal:
    """The caller. A recently verified token is answered from memory on the event loop; otherwise
    the lookup runs in a worker thread with its own short-lived connection."""
    known: Principal | None = request.scope.get(PRINCIPAL_KEY)
    if known is not None:
        return known
    token = _bearer(request)
    svc = services(request)
    who = svc.principals.get(hash_token(token))
    if who is None:
        who = await run_in_threadpool(authenticate, svc, token)
    request.scope[PRINCIPAL_KEY] = who
    return who


Caller = Annotated[Principal, Depends(principal)]
DB = Annotated[Session, Depends(db_session)]
Svc = Annotated[Services, Depends(services_dep)]


async def reader(request: Request) -> Principal:
    # Not Depends(principal): one level of dependencies less on every request.
    who = await principal(request)
    if not who.can_read():
        raise ApiError(403, "forbidden", f"The {who.role} role cannot use this endpoint.")
    return who


async def writer(request: Request) -> Principal:
    who = await principal(request)
    if who.role is Role.viewer:
        raise ApiError(403, "forbidden", "Viewers have read-only access.")
    if not who.can_write():
        raise ApiError(403, "forbidden", f"The {who.role} role cannot use this endpoint.")
    return who


async def admin(request: Request) -> Principal:
    who = await principal(request)
    if not who.is_admin:
        raise ApiError(403, "forbidden", "Only admins can do this.")
    return who


async def agent(request: Request) -> Principal:
    who = await principal(request)
    if who.role not in AGENTS:
        raise ApiError(403, "forbidden", "Only agent tokens can use this endpoint.")
    return who


Reader = Annotated[Principal, Depends(reader)]
Writer = Annotated[Principal, Depends(writer)]
Admin = Annotated[Principal, Depends(admin)]
AgentCaller = Annotated[Principal, Depends(agent)]
