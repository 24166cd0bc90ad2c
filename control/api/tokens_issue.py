"""Creating a token row: shared by the token routes, user creation and `yard up`'s bootstrap."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session

from control.auth import display_prefix, hash_token, new_token
from control.clock import utcnow
from control.db.tables import ApiToken, User


def issue_token(session: Session, user: User, name: str, *, expires_in_days: int | None = None) -> tuple[ApiToken, str]:
    """Add a token for ``user`` to the session; returns the row and the secret (shown once)."""
    assert user.id is not None
    secret = new_token()
    row = ApiToken(
        user_id=user.id,
        name=name,
        token_hash=hash_token(secret),
        prefix=display_prefix(secret),
        expires_at=utcnow() + timedelta(days=expires_in_days) if expires_in_days else None,
    )
    session.add(row)
    session.flush()
    return row, secret
