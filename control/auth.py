"""API tokens and roles.

A token is ``dy_`` followed by 32 random bytes in URL-safe base64. Only its SHA-256 is stored:
the token has 256 bits of entropy, so a fast hash is enough (a slow password hash would only
cost every request time) and lookup is a single indexed equality.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass

from control.wire.resources import Role

TOKEN_PREFIX = "dy_"

READERS = frozenset({Role.admin, Role.developer, Role.viewer})
WRITERS = frozenset({Role.admin, Role.developer})
AGENTS = frozenset({Role.admin, Role.agent})


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def display_prefix(token: str) -> str:
    """The first characters of a token, enough to recognise it in a listing."""
    return token[:10]


@dataclass(frozen=True)
class Principal:
    """Who is asking: the user behind a valid token."""

    user_id: int
    name: str
    role: Role
    token_id: int

    @property
    def is_admin(self) -> bool:
        return self.role is Role.admin

    def can_read(self) -> bool:
        return self.role in READERS

    def can_write(self) -> bool:
        return self.role in WRITERS


class PrincipalCache:
    """Recently verified tokens, so a burst of requests does not look the same token up each time.

    Entries live ``ttl`` seconds. This process forgets everything at once when a token is
    revoked or a user changes; other API replicas notice within ``ttl`` (2 s by default).
    """

    def __init__(self, ttl: float = 2.0, size: int = 10_000) -> None:
        self.ttl = ttl
        self.size = size
        self._entries: dict[str, tuple[Principal, float]] = {}
        self._lock = threading.Lock()

    def get(self, token_hash: str) -> Principal | None:
        entry = self._entries.get(token_hash)
        if entry is None or entry[1] < time.monotonic():
            return None
        return entry[0]

    def put(self, token_hash: str, who: Principal, valid_until: float | None = None) -> None:
        expires = time.monotonic() + self.ttl
        if valid_until is not None:
            expires = min(expires, valid_until)
        with self._lock:
            if len(self._entries) >= self.size:
                self._entries.clear()
            self._entries[token_hash] = (who, expires)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
