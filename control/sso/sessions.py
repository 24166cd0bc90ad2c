"""Single sign-on sessions: one ``api_tokens`` row of kind ``sso`` holding the hashes of a
short-lived access token and of the refresh token that renews it.

Every refresh replaces both secrets in one conditional update on the old refresh token's hash,
so a refresh token works once: of two refreshes racing with the same one, exactly one wins. The
one it replaced, presented again, ends the session: someone else holds a copy (RFC 9700
section 4.14.2). Clients sharing a profile renew under a lock (control/renewal.py), so they
never do that by themselves. The
row, and so the session, keeps its id: `yard tokens ls` shows it and `yard tokens revoke` ends it
(access and refresh token at once); disabling the user revokes it.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from sqlalchemy import update
from sqlmodel import Session, col, select

from control import audit
from control.auth import display_prefix, hash_token, new_token
from control.clock import utcnow
from control.db.tables import ApiToken, User
from control.settings import Settings
from control.sso.problem import SsoProblem
from control.wire.errors import INVALID_GRANT, USER_DISABLED
from control.wire.sso import TokenGrant

REFRESH_PREFIX = "dys_"
SSO = "sso"


def open_session(session: Session, settings: Settings, user: User, name: str) -> tuple[ApiToken, TokenGrant]:
    """Add a new session for ``user`` (the caller commits); its first grant."""
    assert user.id is not None
    access, refresh = new_token(), REFRESH_PREFIX + secrets.token_urlsafe(32)
    now = utcnow()
    row = ApiToken(
        user_id=user.id,
        name=name[:64],
        kind=SSO,
        token_hash=hash_token(access),
        prefix=display_prefix(access),
        expires_at=now + timedelta(seconds=settings.sso_access_token_ttl_s),
        refresh_hash=hash_token(refresh),
        refresh_expires_at=now + timedelta(days=settings.sso_refresh_token_ttl_days),
    )
    session.add(row)
    session.flush()
    return row, _grant(settings, row, access, refresh)


def refresh(session: Session, settings: Settings, refresh_token: str) -> TokenGrant:
    """New access and refresh tokens for a live session; ``invalid_grant`` otherwise."""
    old_hash = hash_token(refresh_token)
    found = session.exec(select(ApiToken, User).join(User).where(ApiToken.refresh_hash == old_hash)).first()
    if found is None:
        _end_if_replayed(session, old_hash)
        raise SsoProblem(INVALID_GRANT, "The refresh token is not valid (it may have been used already).")
    if found[0].kind != SSO:
        raise SsoProblem(INVALID_GRANT, "The refresh token is not valid (it may have been used already).")
    row, user = found
    now = utcnow()
    if row.revoked_at is not None:
        raise SsoProblem(INVALID_GRANT, "This sign-in has been revoked.")
    if row.refresh_expires_at is None or row.refresh_expires_at <= now:
        raise SsoProblem(INVALID_GRANT, "This sign-in has ended.")
    if user.disabled:
        raise SsoProblem(USER_DISABLED, f"User {user.name} is disabled.", 403)
    access, new_refresh = new_token(), REFRESH_PREFIX + secrets.token_urlsafe(32)
    expires_at = now + timedelta(seconds=settings.sso_access_token_ttl_s)
    refresh_expires_at = now + timedelta(days=settings.sso_refresh_token_ttl_days)
    changed = session.exec(  # type: ignore[call-overload]
        update(ApiToken)
        .where(col(ApiToken.id) == row.id, col(ApiToken.refresh_hash) == old_hash, col(ApiToken.revoked_at).is_(None))
        .values(
            token_hash=hash_token(access),
            prefix=display_prefix(access),
            expires_at=expires_at,
            refresh_hash=hash_token(new_refresh),
            refresh_expires_at=refresh_expires_at,
            previous_refresh_hash=old_hash,
        )
    )
    if changed.rowcount != 1:
        session.rollback()
        raise SsoProblem(INVALID_GRANT, "The refresh token is not valid (it may have been used already).")
    session.commit()
    row.expires_at, row.refresh_expires_at = expires_at, refresh_expires_at
    return _grant(settings, row, access, new_refresh)


def _end_if_replayed(session: Session, presented_hash: str) -> None:
    """A live session whose previous refresh token this is gets revoked (and the change committed)."""
    replayed = session.exec(
        select(ApiToken).where(
            ApiToken.previous_refresh_hash == presented_hash, ApiToken.kind == SSO, col(ApiToken.revoked_at).is_(None)
        )
    ).first()
    if replayed is None:
        return
    replayed.revoked_at = utcnow()
    session.add(replayed)
    audit.record(session, None, "token.revoke", "token", replayed.id, reason="refresh token used twice")
    session.commit()
    raise SsoProblem(
        INVALID_GRANT,
        "This refresh token was used before, so the sign-in has been ended as a precaution.",
        ended_session=True,
    )


def revoke_all(session: Session, user_id: int) -> int:
    """Revoke every live single sign-on session of a user (the caller commits); how many."""
    result = session.exec(  # type: ignore[call-overload]
        update(ApiToken)
        .where(col(ApiToken.user_id) == user_id, col(ApiToken.kind) == SSO, col(ApiToken.revoked_at).is_(None))
        .values(revoked_at=utcnow())
    )
    return int(result.rowcount)


def _grant(settings: Settings, row: ApiToken, access: str, refresh: str) -> TokenGrant:
    assert row.id is not None
    return TokenGrant(
        access_token=access,
        expires_in=settings.sso_access_token_ttl_s,
        refresh_token=refresh,
        refresh_expires_in=int(settings.sso_refresh_token_ttl_days * 86400),
        token_id=row.id,
    )
