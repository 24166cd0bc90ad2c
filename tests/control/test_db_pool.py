"""Pooled PostgreSQL connections: checked after idling, not on every checkout."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import OperationalError

from control.db import engine as db_engine
from control.db.engine import make_engine
from tests.conftest import create_postgres_database, drop_postgres_database


@pytest.fixture
def postgres_url(postgres_admin_url: str) -> Iterator[str]:
    url = create_postgres_database(postgres_admin_url)
    try:
        yield url
    finally:
        drop_postgres_database(postgres_admin_url, url)


def terminate_backends(admin_url: str, url: str) -> int:
    """What a server restart or failover does to the pool: every connection is closed."""
    name = url.rsplit("/", 1)[-1]
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            query = "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = :name"
            return int(conn.execute(text(query), {"name": name}).scalar_one())
    finally:
        admin.dispose()


def backend_pid(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def test_an_idle_connection_closed_by_the_server_is_replaced_unnoticed(
    postgres_admin_url: str, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db_engine, "PING_AFTER_IDLE_S", 0.05)
    engine = make_engine(postgres_url)
    try:
        before = backend_pid(engine)
        assert terminate_backends(postgres_admin_url, postgres_url) == 1
        time.sleep(0.1)  # longer than the idle threshold: the checkout checks the connection
        after = backend_pid(engine)
        assert after != before, "the dead connection was replaced by a fresh one"
    finally:
        engine.dispose()


def test_a_connection_in_steady_use_is_not_checked_on_every_checkout(
    postgres_admin_url: str, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db_engine, "PING_AFTER_IDLE_S", 60.0)
    engine = make_engine(postgres_url)
    try:
        backend_pid(engine)
        terminate_backends(postgres_admin_url, postgres_url)
        # Within the threshold there is no check, so the first use meets the closed connection
        # (the cost of skipping the round trip); SQLAlchemy then invalidates the pool...
        with pytest.raises(OperationalError):
            backend_pid(engine)
        # ...and the next request gets a working connection.
        assert backend_pid(engine) > 0
    finally:
        engine.dispose()
