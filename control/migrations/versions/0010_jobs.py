"""jobs and job triggers; every schedule becomes a job with a cron trigger

Each schedule becomes a job of the same name in its project (one step: the schedule's command;
its environment, author and tty), and the schedule row stays as that job's cron trigger, so its
name, next fire time, ticks and runs keep working. Runs a schedule made are linked to the job.

Revision ID: 0010
Revises: 0012
Create Date: 2026-12-06 22:30:00
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
import sqlmodel
from alembic import op

import control.db.types

revision: str = "0010"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("description", sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=False),
        sa.Column("environment_id", sa.Integer(), nullable=True),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("steps", sa.JSON(), nullable=False),
        sa.Column("artifact_globs", sa.JSON(), nullable=False),
        sa.Column("timeout_s", sa.Integer(), nullable=True),
        sa.Column("max_retries", sa.Integer(), nullable=False),
        sa.Column("stop_signals", sa.JSON(), nullable=False),
        sa.Column("stop_grace_s", sa.Float(), nullable=True),
        sa.Column("tty", sa.Boolean(), nullable=False),
        sa.Column("created_at", control.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", control.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["environment_id"], ["environments.id"]),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"]),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("project_id", "name"),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_jobs_project_id"), ["project_id"], unique=False)
    op.create_table(
        "job_triggers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", control.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"]),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("job_triggers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_job_triggers_job_id"), ["job_id"], unique=False)
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("job_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("chain_pending", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.create_index(batch_op.f("ix_runs_job_id"), ["job_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_runs_chain_pending"), ["chain_pending"], unique=False)
        batch_op.create_foreign_key("fk_runs_job_id_jobs", "jobs", ["job_id"], ["id"])
    with op.batch_alter_table("schedules", schema=None) as batch_op:
        batch_op.add_column(sa.Column("job_id", sa.Integer(), nullable=True))
    _schedules_to_jobs()
    with op.batch_alter_table("schedules", schema=None) as batch_op:
        batch_op.alter_column("job_id", existing_type=sa.Integer(), nullable=False)
        batch_op.create_unique_constraint("uq_schedules_job_id", ["job_id"])
        batch_op.create_foreign_key("fk_schedules_job_id_jobs", "jobs", ["job_id"], ["id"])
        batch_op.drop_column("command")
        batch_op.drop_column("tty")
        batch_op.drop_column("user_id")
        batch_op.drop_column("environment_id")


def _schedules_to_jobs() -> None:
    conn = op.get_bind()
    schedules = sa.table(
        "schedules",
        sa.column("id", sa.Integer()),
        sa.column("name", sa.String()),
        sa.column("project_id", sa.Integer()),
        sa.column("environment_id", sa.Integer()),
        sa.column("user_id", sa.Integer()),
        sa.column("command", sa.JSON()),
        sa.column("tty", sa.Boolean()),
        sa.column("job_id", sa.Integer()),
    )
    jobs = sa.table(
        "jobs",
        sa.column("id", sa.Integer()),
        sa.column("project_id", sa.Integer()),
        sa.column("name", sa.String()),
        sa.column("description", sa.String()),
        sa.column("environment_id", sa.Integer()),
        sa.column("user_id", sa.Integer()),
        sa.column("steps", sa.JSON()),
        sa.column("artifact_globs", sa.JSON()),
        sa.column("timeout_s", sa.Integer()),
        sa.column("max_retries", sa.Integer()),
        sa.column("stop_signals", sa.JSON()),
        sa.column("stop_grace_s", sa.Float()),
        sa.column("tty", sa.Boolean()),
        sa.column("created_at", control.db.types.UTCDateTime(timezone=True)),
        sa.column("updated_at", control.db.types.UTCDateTime(timezone=True)),
    )
    runs = sa.table("runs", sa.column("schedule_id", sa.Integer()), sa.column("job_id", sa.Integer()))
    now = datetime.now(UTC)
    for row in conn.execute(sa.select(schedules)).mappings().all():
        command = list(row["command"] or [])
        conn.execute(
            jobs.insert().values(
                project_id=row["project_id"],
                name=row["name"],
                description="",
                environment_id=row["environment_id"],
                user_id=row["user_id"],
                steps=[{"name": " ".join(command)[:64] or "step 1", "command": command}],
                artifact_globs=[],
                timeout_s=None,
                max_retries=0,
                stop_signals=[],
                stop_grace_s=None,
                tty=bool(row["tty"]),
                created_at=now,
                updated_at=now,
            )
        )
        job_id = conn.execute(
            sa.select(jobs.c.id).where(jobs.c.project_id == row["project_id"], jobs.c.name == row["name"])
        ).scalar_one()
        conn.execute(schedules.update().where(schedules.c.id == row["id"]).values(job_id=job_id))
        conn.execute(runs.update().where(runs.c.schedule_id == row["id"]).values(job_id=job_id))


def downgrade() -> None:
    with op.batch_alter_table("schedules", schema=None) as batch_op:
        batch_op.add_column(sa.Column("environment_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("user_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("tty", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column("command", sa.JSON(), nullable=True))
    op.execute(
        "UPDATE schedules SET environment_id = (SELECT environment_id FROM jobs WHERE jobs.id = schedules.job_id),"
        " user_id = (SELECT user_id FROM jobs WHERE jobs.id = schedules.job_id),"
        " tty = (SELECT tty FROM jobs WHERE jobs.id = schedules.job_id)"
    )
    with op.batch_alter_table("schedules", schema=None) as batch_op:
        batch_op.drop_constraint("fk_schedules_job_id_jobs", type_="foreignkey")
        batch_op.drop_constraint("uq_schedules_job_id", type_="unique")
        batch_op.drop_column("job_id")
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_constraint("fk_runs_job_id_jobs", type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_runs_chain_pending"))
        batch_op.drop_index(batch_op.f("ix_runs_job_id"))
        batch_op.drop_column("chain_pending")
        batch_op.drop_column("job_id")
    with op.batch_alter_table("job_triggers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_job_triggers_job_id"))
    op.drop_table("job_triggers")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_jobs_project_id"))
    op.drop_table("jobs")
