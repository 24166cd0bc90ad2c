"""projects: default branch, credential secret; environments: kind, branch; runs: their code

Revision ID: 0008
Revises: 0013
Create Date: 2026-12-06 22:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = "0008"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "default_branch", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False, server_default="main"
            )
        )
        batch_op.add_column(sa.Column("repo_secret", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True))
    with op.batch_alter_table("environments", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False, server_default="development")
        )
        batch_op.add_column(sa.Column("branch", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True))
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("code_source", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True))
        batch_op.add_column(sa.Column("code_repo_url", sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=True))
        batch_op.add_column(sa.Column("code_ref", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True))
        batch_op.add_column(sa.Column("code_commit", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("code_commit")
        batch_op.drop_column("code_ref")
        batch_op.drop_column("code_repo_url")
        batch_op.drop_column("code_source")
    with op.batch_alter_table("environments", schema=None) as batch_op:
        batch_op.drop_column("branch")
        batch_op.drop_column("kind")
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.drop_column("repo_secret")
        batch_op.drop_column("default_branch")
