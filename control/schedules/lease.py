"""A named lease in the database: one holder at a time, renewed while alive, taken over when it lapses."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import Session

from control.db.engine import begin_write
from control.db.tables import Lease


def hold(session: Session, name: str, holder: str, now: datetime, ttl: timedelta) -> bool:
    """Take or renew the lease; False if someone else holds it and it has not expired. Commits."""
    begin_write(session)
    lease = session.get(Lease, name, with_for_update=True)
    if lease is None:
        session.add(Lease(name=name, holder=holder, expires_at=now + ttl))
    elif lease.holder == holder or lease.expires_at <= now:
        lease.holder, lease.expires_at = holder, now + ttl
        session.add(lease)
    else:
        session.commit()
        return False
    session.commit()
    return True


def release(session: Session, name: str, holder: str) -> None:
    begin_write(session)
    lease = session.get(Lease, name)
    if lease is not None and lease.holder == holder:
        session.delete(lease)
    session.commit()
