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
    "jobs",
    "job_triggers",
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


def test_every_schedule_becomes_a_job_with_a_cron_trigger(database_url: str) -> None:
    """Data written at 0007: a schedule with its command, environment and tty becomes a job of the
    same name whose cron trigger is that schedule (next fire time kept); its runs name the job."""
    from sqlalchemy import text

    from control.db.tables import Job, Run, Schedule

    engine = make_engine(database_url, pool=False)
    upgrade(engine, "0007")
    now = "2026-01-01 00:00:00"
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO users (name, role, disabled, created_at) VALUES ('al', 'developer', false, :t)"),
            {"t": now},
        )
        conn.execute(
            text(
                "INSERT INTO projects (name, description, owner_id, created_at, updated_at) VALUES ('p', '', 1, :t, :t)"
            ),
            {"t": now},
        )
        conn.execute(
            text(
                "INSERT INTO environments (project_id, name, variables, secrets, agent_queue, resources, protected,"
                " created_at, updated_at) VALUES (1, 'prod', '{}', '{}', 'default', '{}', false, :t, :t)"
            ),
            {"t": now},
        )
        conn.execute(
            text(
                "INSERT INTO schedules (name, project_id, environment_id, user_id, command, cron, timezone, enabled,"
                " catchup, catchup_cap, overlap, tty, next_fire_at, created_at, updated_at) VALUES ('nightly', 1, 1, 1,"
                " :cmd, '30 2 * * *', 'UTC', true, 'latest', 10, 'skip', true, '2026-01-02 02:30:00', :t, :t)"
            ),
            {"cmd": '["dbt", "build"]', "t": now},
        )
        conn.execute(
            text(
                "INSERT INTO runs (project_id, environment_id, user_id, schedule_id, command, state, trigger,"
                " trigger_info, attempt, max_retries, artifact_globs, log_seq, log_bytes, log_lines, logs_compacted,"
                " queued_at) VALUES (1, 1, 1, 1, :cmd, 'succeeded', 'schedule', '{}', 1, 0, '[]', 0, 0, 0, false, :t)"
            ),
            {"cmd": '["dbt", "build"]', "t": now},
        )
    upgrade(engine)
    with Session(engine) as session:
        job = session.exec(select(Job)).one()
        assert (job.name, job.project_id, job.environment_id, job.user_id, job.tty) == ("nightly", 1, 1, 1, True)
        assert job.steps == [{"name": "dbt build", "command": ["dbt", "build"]}]
        schedule = session.exec(select(Schedule)).one()
        assert schedule.job_id == job.id and schedule.cron == "30 2 * * *" and schedule.next_fire_at is not None
        assert schedule.next_fire_at.isoformat() == "2026-01-02T02:30:00+00:00"
        run = session.exec(select(Run)).one()
        assert run.job_id == job.id and run.chain_pending is False
    engine.dispose()
