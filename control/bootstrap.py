"""First start of an embedded stack: migrate, seal secrets, create the first admin, hand the CLI a token."""

from __future__ import annotations

import logging

from sqlalchemy import JSON, Connection, Engine, String, Table, type_coerce, update
from sqlmodel import col, select

from control import audit
from control.api.tokens_issue import issue_token
from control.auth import hash_token
from control.clock import utcnow
from control.db.engine import check_connection, session_scope
from control.db.migrate import upgrade
from control.db.tables import ApiToken, DevServer, Environment, Project, User
from control.db.types import SEALED, SEALED_TEXT
from control.secretbox import SecretBox, SecretsUnreadable, bind, box_for
from control.settings import Settings
from control.wire.resources import Role

log = logging.getLogger("devyard.bootstrap")

LOCAL_TOKEN_NAME = "yard up (local profile)"
LOCAL_AGENT_USER = "local-agent"
LOCAL_AGENT_TOKEN_NAME = "yard up (in-process agent)"


def prepare_database(engine: Engine, settings: Settings | None = None) -> None:
    """Check the connection and apply pending migrations; with ``settings``, also
    :func:`prepare_secrets` (the API does that when it starts in any case)."""
    check_connection(engine)
    upgrade(engine)
    if settings is not None:
        prepare_secrets(engine, settings)


def prepare_secrets(engine: Engine, settings: Settings) -> int:
    """Bind the secret keys of ``settings`` to ``engine``, :func:`seal_secrets` and
    :func:`seal_devserver_secrets`."""
    box = box_for(settings)
    bind(engine, box)
    seal_devserver_secrets(engine)
    return seal_secrets(engine, box)


def seal_devserver_secrets(engine: Engine) -> int:
    """Seal develop server secrets an earlier version stored in plain text; returns how many.
    A stopped server's is dropped (the next start makes a new one). Idempotent."""
    table: Table = DevServer.__table__  # type: ignore[attr-defined]
    raw = type_coerce(table.c.secret, String)  # compared and read as stored, not unsealed
    plain = raw.isnot(None) & raw.notlike(SEALED_TEXT + "%")
    with engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA secure_delete = ON")
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        rows = conn.execute(select(table.c.id, table.c.state, raw).where(plain)).all()
        for server_id, state, secret in rows:
            value = secret if state in ("pending", "starting", "running", "stopping") else None
            conn.execute(update(table).where(table.c.id == server_id).values(secret=value))
    if rows:
        log.info("Sealed the secrets of %d develop server(s).", len(rows))
    return len(rows)


def seal_secrets(engine: Engine, box: SecretBox) -> int:
    """Encrypt plaintext secrets left by earlier versions and re-encrypt those under an older
    key; returns how many environments changed. Idempotent, so every API process may run it."""
    with engine.connect() as conn:
        if not _stale_secrets(conn, box, warn=True):
            return 0
    table: Table = Environment.__table__  # type: ignore[attr-defined]
    with engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            # Freed space is zeroed, so the plaintext does not linger in the file; and the write
            # lock is taken up front, as API processes starting together may all get here.
            conn.exec_driver_sql("PRAGMA secure_delete = ON")
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        stale = _stale_secrets(conn, box, warn=False)
        for env_id, plain in stale:
            conn.execute(update(table).where(table.c.id == env_id).values(secrets=plain))
    if stale and engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            # Fold the write-ahead log (which may hold the old pages) into the database file.
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    if stale:
        log.info("Encrypted the secrets of %d environment(s) with the current key.", len(stale))
    return len(stale)


def _stale_secrets(conn: Connection, box: SecretBox, warn: bool) -> list[tuple[int, dict[str, str]]]:
    """(id, secrets) of the environments whose secrets are plaintext or under an older key."""
    table: Table = Environment.__table__  # type: ignore[attr-defined]
    projects: Table = Project.__table__  # type: ignore[attr-defined]
    query = (
        select(table.c.id, projects.c.name, table.c.name, type_coerce(table.c.secrets, JSON))
        .join(projects, projects.c.id == table.c.project_id)
        .order_by(table.c.id)
    )
    stale = []
    for env_id, project, name, stored in conn.execute(query).all():
        if not stored or (SEALED in stored and box.is_current(str(stored[SEALED]))):
            continue
        try:
            stale.append((env_id, box.open(str(stored[SEALED])) if SEALED in stored else dict(stored)))
        except SecretsUnreadable:
            if warn:
                log.warning(
                    "The secrets of environment %s/%s cannot be decrypted with the configured keys.", project, name
                )
    return stale


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


def prepare_stack(settings: Settings) -> None:
    """What a server needs before it starts: the database at head with its secrets sealed, and
    an object store that answers; raises DatabaseProblem, SecretKeyProblem or ObjectStoreProblem
    with one sentence (a lost or damaged key is said here, not by a server that fails to start)."""
    from control.db.engine import make_engine
    from control.objectstore import ObjectStore

    engine = make_engine(settings.effective_database_url, pool=False)
    try:
        prepare_database(engine, settings)
    finally:
        engine.dispose()
    ObjectStore.from_url(
        settings.effective_object_store_url, s3_endpoint=settings.s3_endpoint, s3_region=settings.s3_region
    )


def new_admin_token(settings: Settings, name: str) -> str:
    """A fresh admin token for ``name``, created as an admin if needed (a cluster's first admin)."""
    from control.db.engine import make_engine

    engine = make_engine(settings.effective_database_url, pool=False)
    try:
        return local_admin_token(engine, name, None)
    finally:
        engine.dispose()
