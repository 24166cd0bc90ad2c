"""develop server secrets sealed: room for the Fernet token

The values are sealed by the API at start (control.bootstrap.seal_secrets), which holds the keys.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 19:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('dev_servers', schema=None) as batch_op:
        batch_op.alter_column(
            'secret',
            existing_type=sqlmodel.sql.sqltypes.AutoString(length=128),
            type_=sa.String(length=500),
            existing_nullable=True,
        )


def downgrade() -> None:
    with op.batch_alter_table('dev_servers', schema=None) as batch_op:
        batch_op.alter_column(
            'secret',
            existing_type=sa.String(length=500),
            type_=sa.String(length=128),
            existing_nullable=True,
        )
