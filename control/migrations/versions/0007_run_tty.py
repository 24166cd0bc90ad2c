"""runs: pseudo-terminal size (--tty); schedules: tty

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 19:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('tty_cols', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('tty_rows', sa.Integer(), nullable=True))
    with op.batch_alter_table('schedules', schema=None) as batch_op:
        batch_op.add_column(sa.Column('tty', sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table('schedules', schema=None) as batch_op:
        batch_op.drop_column('tty')
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_column('tty_rows')
        batch_op.drop_column('tty_cols')
