"""First start of an embedded stack: migrate, create the first admin, hand the CLI a token."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlmodel import col, select

from control import audit
from control.api.tokens_issue import issue_token
from control.auth import hash_token
from control.db.engine import check_connection, session_scope
from control.db.migrate import upgrade
from control.db.tables import ApiToken, Role, User
from control.db.types import utcnow

LOCAL_TOKEN_NAME = "yard up (local profile)"
LOCAL_AGENT_USER = "local-agent"
LOCAL_AGENT_TOKEN_NAME = "yard up (in-process agent)"


def prepare_database(engine: Engine) -> None:
    """Check the connection and apply pending migrations."""
    check_connection(engine)
    upgrade(engine)


def local_admin_token(engine: Engine, admin_name: str, current: str | None) -> str:
    """Return a valid admin token for the local profile, keeping ``current`` when it still works.

    Creates the admin user ``admin_name`` when the database has no admin yet.
    """
    with session_scope(engine) as session:
        if current:
            row = session.exec(
                select(ApiToken, User).join(User).where(ApiToken.token_hash == hash_token(current))
            ).first()
            if row is not None:
                token, user = row
                usable = token.revoked_at is None and (token.expires_at is None or token.expires_at > utcnow())
                if usable and user.role == Role.admin and not user.disabled:
                    return current
        admin = session.exec(
            select(User).where(User.role == Role.admin, User.disabled == False).order_by(User.id)  # type: ignore[arg-type]  # noqa: E712
        ).first()
        if admin is None:
            admin = session.exec(select(User).where(User.name == admin_name)).first()
            if admin is None:
                admin = User(name=admin_name, role=Role.admin.value)
                session.add(admin)
                session.flush()
                audit.record(
                    session, None, "user.create", "user", admin.id, name=admin_name, role="admin", via="bootstrap"
                )
            else:
                admin.role, admin.disabled = Role.admin.value, False
        issued, secret = issue_token(session, admin, LOCAL_TOKEN_NAME)
        audit.record(session, None, "token.create", "token", issued.id, user=admin.name, via="bootstrap")
        return secret


def local_agent_token(engine: Engine) -> str:
    """A fresh token for the in-process agent of `yard up`; earlier ones are revoked."""
    with session_scope(engine) as session:
        user = session.exec(select(User).where(User.name == LOCAL_AGENT_USER)).first()
        if user is None:
            user = User(name=LOCAL_AGENT_USER, role=Role.agent.value)
            session.add(user)
            session.flush()
            audit.record(
                session, None, "user.create", "user", user.id, name=LOCAL_AGENT_USER, role="agent", via="bootstrap"
            )
        now = utcnow()
        for old in session.exec(
            select(ApiToken).where(
                ApiToken.user_id == user.id, ApiToken.name == LOCAL_AGENT_TOKEN_NAME, col(ApiToken.revoked_at).is_(None)
            )
        ):
            old.revoked_at = now
            session.add(old)
        row, secret = issue_token(session, user, LOCAL_AGENT_TOKEN_NAME)
        audit.record(session, None, "token.create", "token", row.id, user=user.name, via="bootstrap")
        return secret
