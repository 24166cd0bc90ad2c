"""Migrations build exactly the schema the tables describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlmodel import SQLModel

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
