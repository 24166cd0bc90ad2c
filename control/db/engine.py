"""Engine creation, sessions and schema migration for SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DisconnectionError, OperationalError
from sqlalchemy.pool import NullPool
from sqlmodel import Session


class DatabaseProblem(Exception):
    """The database cannot be used; the message is one sentence for the user."""


def normalize_url(url: str) -> str:
    """Use psycopg 3 for plain ``postgresql://`` URLs (psycopg2 is not a dependency)."""
    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain):
            return "postgresql+psycopg://" + url[len(plain) :]
    return url


def redact(url: str) -> str:
    """The URL with any password hidden, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable database URL>"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers proceed while the single writer commits; busy_timeout turns lock
    # contention into a short wait instead of "database is locked".
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_engine(url: str, *, pool: bool = True) -> Engine:
    """Create an engine for ``url``; raises :class:`DatabaseProblem` for a malformed URL."""
    url = normalize_url(url)
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise DatabaseProblem(f"The database URL '{url}' is not a valid SQLAlchemy URL.") from exc
    kwargs: dict[str, Any] = {}
    if not pool:
        kwargs["poolclass"] = NullPool
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            folder = Path(parsed.database).parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise DatabaseProblem(
                    f"Cannot create the SQLite database's folder {folder} ({exc.strerror or exc}); "
                    "pass --data-dir with a folder you can write."
                ) from exc
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 10}
        if pool:
            kwargs["pool_size"] = 20
            kwargs["max_overflow"] = 80
    elif parsed.get_backend_name() == "postgresql":
        kwargs["connect_args"] = {"connect_timeout": 5}
        if pool:
            kwargs.update(pool_size=20, max_overflow=30)
    else:
        raise DatabaseProblem(f"Unsupported database '{parsed.get_backend_name()}'; use sqlite:/// or postgresql://.")
    try:
        engine = create_engine(url, **kwargs)
    except (ArgumentError, ImportError) as exc:
        raise DatabaseProblem(f"Cannot use the database URL {redact(url)}: {exc}.") from exc
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    elif pool:
        event.listen(engine, "checkin", _note_idle)
        event.listen(engine, "checkout", _ping_if_idle)
    return engine


# A pooled PostgreSQL connection that sat unused this long is checked before it is handed out.
# SQLAlchemy's pool_pre_ping checks on every checkout: one more round trip per request, a third
# of the database time of a busy list endpoint. A connection reused within a second of its last
# use was working a moment ago; one that sat idle may have been closed by a server restart, a
# failover or an idle timeout, and that is when a check pays.
PING_AFTER_IDLE_S = 1.0


def _note_idle(_dbapi_connection: Any, record: Any) -> None:
    record.info["idle_since"] = time.monotonic()


def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    idle_since = record.info.pop("idle_since", None)
    if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_S:
        return  # just opened, or in use a moment ago
    try:
        # Autocommit for the check, so it leaves no transaction open (and costs one round trip).
        dbapi_connection.autocommit = True
        try:
            with dbapi_connection.cursor() as cursor:
                cursor.execute("SELECT 1")
        finally:
            dbapi_connection.autocommit = False
    except Exception as exc:
        # The pool discards this connection and retries the checkout with a fresh one.
        raise DisconnectionError(f"stale pooled connection: {type(exc).__name__}") from exc


def check_connection(engine: Engine) -> None:
    """Open one connection, raising :class:`DatabaseProblem` with the reason if it fails."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise DatabaseProblem(
            f"Cannot connect to the database {redact(str(engine.url.render_as_string(hide_password=False)))}: {reason}."
        ) from exc


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def begin_write(session: Session) -> None:
    """Start a read-then-write transaction safely: on SQLite take the write lock up front.

    A deferred SQLite transaction that reads and later writes fails with "database is locked"
    when another connection committed in between; ``BEGIN IMMEDIATE`` waits for the lock instead.
    PostgreSQL needs nothing here (row locks do the work). Must be the session's first statement.
    """
    if session.get_bind().dialect.name == "sqlite":
        session.connection().exec_driver_sql("BEGIN IMMEDIATE")


def new_session(engine: Engine) -> Session:
    """A session whose objects stay usable after commit (for callers outside ``control``)."""
    return Session(engine, expire_on_commit=False)
