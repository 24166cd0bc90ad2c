"""Migrations build exactly the schema the tables describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlmodel import Session, SQLModel, select

import control.db.tables  # noqa: F401
from control.db.engine import make_engine
from control.db.migrate import current_revision, head_revision, upgrade

TABLES = {
    "users",
    "api_tokens",
    "projects",
    "environments",
    "dev_servers",
    "runs",
    "log_chunks",
    "artifacts",
    "schedules",
    "schedule_ticks",
    "agents",
    "work_items",
    "audit_events",
    "project_members",
    "preview_links",
}


def test_upgrade_creates_every_table_and_matches_models(database_url: str) -> None:
    engine = make_engine(database_url, pool=False)
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    assert set(inspect(engine).get_table_names()) >= TABLES
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, SQLModel.metadata)
    assert diff == [], f"tables and migrations disagree; add a migration: {diff}"
    upgrade(engine)  # idempotent
    engine.dispose()


def test_existing_rows_survive_the_access_and_sealing_upgrades(database_url: str, tmp_path: Path) -> None:
    """Data written at 0003: environments become unprotected with no members; a running develop
    server's plain secret is sealed at API start (and still opens), a stopped one's is dropped."""
    from sqlalchemy import text

    from control.bootstrap import prepare_secrets
    from control.db.tables import DevServer, Environment, ProjectMember
    from control.settings import load_settings

    engine = make_engine(database_url, pool=False)
    upgrade(engine, "0003")
    now = "2026-01-01 00:00:00"
    with engine.begin() as conn:
        for name in ("al", "bo"):
            conn.execute(
                text("INSERT INTO users (name, role, disabled, created_at) VALUES (:n, 'developer', false, :t)"),
                {"n": name, "t": now},
            )
        conn.execute(
            text(
                "INSERT INTO projects (name, description, owner_id, created_at, updated_at) VALUES ('p', '', 1, :t, :t)"
            ),
            {"t": now},
        )
        conn.execute(
            text(
                "INSERT INTO environments (project_id, name, variables, secrets, agent_queue, resources, created_at, updated_at)"
                " VALUES (1, 'prod', '{}', '{}', 'default', '{}', :t, :t)"
            ),
            {"t": now},
        )
        for user_id, state, secret in ((1, "running", "plain-running-secret"), (2, "stopped", "plain-stopped-secret")):
            conn.execute(
                text(
                    "INSERT INTO dev_servers (user_id, project_id, state, substrate, secret, idle_timeout_s,"
                    " restart_count, created_at) VALUES (:u, 1, :s, 'local', :secret, 60, 0, :t)"
                ),
                {"u": user_id, "s": state, "secret": secret, "t": now},
            )
    upgrade(engine)
    prepare_secrets(engine, load_settings(tmp_path / "data"))
    with engine.connect() as conn:
        raw: dict[str, str | None] = {
            str(state): None if secret is None else str(secret)
            for state, secret in conn.execute(text("SELECT state, secret FROM dev_servers"))
        }
    running_secret = raw["running"]
    assert running_secret is not None and running_secret.startswith("$fernet:") and "plain" not in running_secret
    assert raw["stopped"] is None
    with Session(engine) as session:
        running = session.exec(select(DevServer).where(DevServer.state == "running")).one()
        assert running.secret == "plain-running-secret"
        assert session.exec(select(Environment)).one().protected is False
        assert session.exec(select(ProjectMember)).all() == []
    engine.dispose()
