"""Preview links: a browser's way into one port of one develop server, without the API token.

A link carries its own secret (``dyp_...``), stored only as a hash, scoped to one server and
port, short-lived (hours) and revocable. Opening it sets a cookie scoped to that port's path and
redirects to the same address without the secret, so the secret leaves the address bar, the
history and the Referer header, and the previewed app never sees it. A link works only while
its maker may still reach the server (not disabled, still its owner or an admin).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from control.auth import hash_token
from control.clock import utcnow
from control.db.tables import DevServer, PreviewLink, User
from control.wire.errors import ApiError
from control.wire.ports import PREVIEW_EXPIRED, PreviewOut
from control.wire.resources import Role

LINK_PREFIX = "dyp_"
COOKIE = "devyard_preview"
QUERY = "preview"


def prefix(server_id: int, port: int) -> str:
    """Where a port's preview lives on the API; everything under it goes to the app."""
    return f"/api/v1/devservers/{server_id}/ports/{port}"


def out(link: PreviewLink) -> PreviewOut:
    assert link.id is not None
    return PreviewOut(
        id=link.id,
        server_id=link.server_id,
        port=link.port,
        path=prefix(link.server_id, link.port) + "/",
        created_at=link.created_at,
        expires_at=link.expires_at,
        revoked_at=link.revoked_at,
    )


def create(session: Session, server: DevServer, port: int, user_id: int, ttl_s: int) -> tuple[PreviewLink, str]:
    """A new link and its secret (shown once)."""
    assert server.id is not None
    secret = LINK_PREFIX + secrets.token_urlsafe(32)
    now = utcnow()
    link = PreviewLink(
        server_id=server.id,
        port=port,
        user_id=user_id,
        token_hash=hash_token(secret),
        created_at=now,
        expires_at=now + timedelta(seconds=ttl_s),
    )
    session.add(link)
    session.commit()
    session.refresh(link)
    return link, secret


def active(session: Session, server_id: int) -> list[PreviewLink]:
    """The server's links that still work, newest first."""
    query = (
        select(PreviewLink)
        .where(PreviewLink.server_id == server_id, col(PreviewLink.revoked_at).is_(None))
        .where(PreviewLink.expires_at > utcnow())
        .order_by(col(PreviewLink.id).desc())
    )
    return list(session.exec(query))


def revoke(session: Session, link: PreviewLink) -> PreviewLink:
    if link.revoked_at is None:
        link.revoked_at = utcnow()
        session.add(link)
        session.commit()
        session.refresh(link)
    return link


@dataclass(frozen=True)
class Grant:
    """What a valid link lets its holder do: reach ``port`` of ``server_id`` until ``expires_at``."""

    server_id: int
    port: int
    expires_at: datetime


def check(session: Session, secret: str, server_id: int, port: int) -> Grant:
    """The grant of a link secret for this server and port; 403 ``preview_expired`` otherwise
    (the same answer for an unknown, expired, revoked or misdirected link: nothing to probe)."""
    refused = ApiError(
        403,
        PREVIEW_EXPIRED,
        "This preview link is expired, revoked or not for this port; ask for a new one with `yard dev preview`.",
    )
    if not secret.startswith(LINK_PREFIX):
        raise refused
    link = session.exec(select(PreviewLink).where(PreviewLink.token_hash == hash_token(secret))).first()
    if link is None or link.server_id != server_id or link.port != port:
        raise refused
    if link.revoked_at is not None or link.expires_at <= utcnow():
        raise refused
    maker = session.get(User, link.user_id)
    server = session.get(DevServer, server_id)
    if maker is None or maker.disabled or server is None:
        raise refused
    if server.user_id != maker.id and maker.role != Role.admin.value:
        raise refused
    return Grant(server_id, port, link.expires_at)
