"""The one clock of the control plane: aware UTC datetimes (standard library only, so the run
worker can use it without importing the database layer)."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)
