"""preview_links: browser links to a port of a develop server (yard dev preview)

Revision ID: 0013
Revises: 0011
Create Date: 2026-12-06 23:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import sqlmodel

import control.db.types

revision: str = '0013'
down_revision: str | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'preview_links',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('server_id', sa.Integer(), nullable=False),
        sa.Column('port', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('token_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('created_at', control.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column('expires_at', control.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column('revoked_at', control.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['server_id'], ['dev_servers.id']),
        sa.ForeignKeyConstraint(['user_id'], ['users.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('token_hash'),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table('preview_links', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_preview_links_server_id'), ['server_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('preview_links', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_preview_links_server_id'))
    op.drop_table('preview_links')
