"""API tokens: everyone manages their own; admins manage anyone's. Viewers only list theirs."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query
from sqlmodel import select

from control import audit
from control.api import paging
from control.api.deps import DB, Reader, Svc, Writer
from control.api.errors import not_found
from control.api.routes.users import find_user
from control.api.routing import SegmentRouter
from control.api.tokens_issue import issue_token
from control.clock import utcnow
from control.db.tables import ApiToken, User
from control.wire.errors import ApiError
from control.wire.resources import Page, TokenCreate, TokenIssued, TokenOut

router = SegmentRouter(tags=["tokens"])


def token_out(row: tuple[ApiToken, User] | ApiToken, user: User | None = None) -> TokenOut:
    token, owner = row if isinstance(row, tuple) else (row, user)
    assert token.id is not None and owner is not None
    return TokenOut(
        id=token.id,
        user_id=token.user_id,
        user=owner.name,
        name=token.name,
        prefix=token.prefix,
        created_at=token.created_at,
        expires_at=token.expires_at,
        revoked_at=token.revoked_at,
        last_used_at=token.last_used_at,
        kind="sso" if token.kind == "sso" else "api",
        refresh_expires_at=token.refresh_expires_at,
    )


@router.get("/tokens", response_model=Page[TokenOut])
def list_tokens(
    session: DB,
    who: Reader,
    params: Annotated[paging.PageParams, Depends(paging.page_params)],
    user: Annotated[str | None, Query(max_length=64, description="Admins: list this user's tokens.")] = None,
    all: Annotated[bool, Query(description="Admins: list every user's tokens.")] = False,
) -> dict[str, object]:
    statement = select(ApiToken, User).join(User)
    if user is not None or all:
        if not who.is_admin:
            raise ApiError(403, "forbidden", "Only admins can list other users' tokens.")
        if user is not None:
            statement = statement.where(ApiToken.user_id == find_user(session, user).id)
    else:
        statement = statement.where(ApiToken.user_id == who.user_id)
    rows = list(session.exec(paging.apply(statement, ApiToken.id, params)))
    page = paging.build([r[0] for r in rows], params, lambda t: t)
    owners = {t.id: u for t, u in rows}
    page["items"] = [token_out(t, owners[t.id]) for t in page["items"]]  # type: ignore[attr-defined]
    return page


@router.post("/tokens", response_model=TokenIssued, status_code=201)
def create_token(body: TokenCreate, session: DB, who: Writer, svc: Svc) -> TokenIssued:
    if body.user is not None and body.user != who.name:
        if not who.is_admin:
            raise ApiError(403, "forbidden", "Only admins can create tokens for other users.")
        owner = find_user(session, body.user)
    else:
        me = session.get(User, who.user_id)
        assert me is not None
        owner = me
    days = body.expires_in_days or svc.settings.token_ttl_days
    token, secret = issue_token(session, owner, body.name, expires_in_days=days)
    audit.record(session, who, "token.create", "token", token.id, user=owner.name, name=body.name)
    session.commit()
    return TokenIssued(**token_out(token, owner).model_dump(), token=secret)


@router.delete("/tokens/{token_id}", response_model=TokenOut)
def revoke_token(token_id: int, session: DB, who: Writer, svc: Svc) -> TokenOut:
    """Revoke one of your tokens (admins: anyone's). Viewers ask an admin, like every change."""
    token = session.get(ApiToken, token_id)
    if token is None or (token.user_id != who.user_id and not who.is_admin):
        raise not_found("Token", token_id)
    owner = session.get(User, token.user_id)
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        session.add(token)
        audit.record(session, who, "token.revoke", "token", token.id, user=owner.name if owner else None)
        session.commit()
        svc.principals.clear()
    return token_out(token, owner)
