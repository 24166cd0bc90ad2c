"""Column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, String
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from control.secretbox import box_of


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes everywhere.

    SQLite has no timezone support and hands back naive values; storing naive UTC and
    re-attaching UTC on the way out keeps comparisons and JSON output identical on both
    backends.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if not isinstance(value, datetime):
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


SEALED = "$fernet"
"""Key of a sealed secrets column value, ``{"$fernet": "<token>"}``; no variable name has a ``$``."""


class SealedSecrets(TypeDecorator[dict[str, str]]):
    """A ``dict[str, str]`` stored as one Fernet token under the engine's secret keys.

    A legacy plaintext mapping still reads (``bootstrap.seal_secrets`` re-encrypts it at start);
    an empty mapping is stored as ``{}``, having nothing to hide.
    """

    impl = JSON
    cache_ok = True

    def process_bind_param(self, value: dict[str, str] | None, dialect: Dialect) -> dict[str, str]:
        if not value:
            return {}
        return {SEALED: box_of(dialect).seal(dict(value))}

    def process_result_value(self, value: Any, dialect: Dialect) -> dict[str, str]:
        if not value:
            return {}
        if isinstance(value, dict) and SEALED in value:
            return box_of(dialect).open(str(value[SEALED]))
        return {str(k): str(v) for k, v in value.items()}


SEALED_TEXT = "$fernet:"
"""Prefix of a sealed text column value; a plain value (written by an earlier version) has none."""


class SealedText(TypeDecorator[str]):
    """A string stored as a Fernet token under the engine's secret keys (develop server secrets:
    a copy of the database must not be a key to the servers). A legacy plain value still reads;
    ``bootstrap.seal_secrets`` seals it at start."""

    impl = String(500)
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return SEALED_TEXT + box_of(dialect).seal({"v": value})

    def process_result_value(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        text = str(value)
        if not text.startswith(SEALED_TEXT):
            return text
        return box_of(dialect).open(text[len(SEALED_TEXT) :])["v"]
