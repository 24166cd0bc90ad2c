"""develop servers: when their environment's values were read

A server keeps the variables it started with; comparing this time with the environment's
updated_at says when they are stale. Existing servers get none (not known to be stale).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 20:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import control.db.types

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('dev_servers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('environment_read_at', control.db.types.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('dev_servers', schema=None) as batch_op:
        batch_op.drop_column('environment_read_at')
