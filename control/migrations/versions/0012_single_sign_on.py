"""single sign-on: device codes, OIDC logins, SSO tokens with refresh, users' IdP subject

Revision ID: 0012
Revises: 0008
Create Date: 2026-12-06 22:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from control.db.types import UTCDateTime

revision: str = '0012'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMN and unique indexes: a batch (copy-and-move) of `users` on SQLite would
    # drop a table that other tables' foreign keys point at.
    op.add_column('users', sa.Column('sso_subject', sa.String(length=255), nullable=True))
    op.create_index('ix_users_sso_subject', 'users', ['sso_subject'], unique=True)
    op.add_column('api_tokens', sa.Column('kind', sa.String(length=8), nullable=False, server_default='api'))
    op.add_column('api_tokens', sa.Column('refresh_hash', sa.String(length=64), nullable=True))
    op.add_column('api_tokens', sa.Column('refresh_expires_at', UTCDateTime(timezone=True), nullable=True))
    op.create_index('ix_api_tokens_refresh_hash', 'api_tokens', ['refresh_hash'], unique=True)
    op.add_column('api_tokens', sa.Column('previous_refresh_hash', sa.String(length=64), nullable=True))
    op.create_index('ix_api_tokens_previous_refresh_hash', 'api_tokens', ['previous_refresh_hash'])
    op.create_table(
        'device_codes',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('device_code_hash', sa.String(length=64), nullable=False),
        sa.Column('user_code_hash', sa.String(length=64), nullable=False),
        sa.Column('client_name', sa.String(length=64), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=True),
        sa.Column('created_at', UTCDateTime(timezone=True), nullable=False),
        sa.Column('expires_at', UTCDateTime(timezone=True), nullable=False),
        sa.Column('interval_s', sa.Float(), nullable=False),
        sa.Column('last_polled_at', UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['user_id'], ['users.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('device_code_hash'),
        sa.UniqueConstraint('user_code_hash'),
        sqlite_autoincrement=True,
    )
    op.create_index('ix_device_codes_expires_at', 'device_codes', ['expires_at'])
    op.create_table(
        'oidc_logins',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('state_hash', sa.String(length=64), nullable=False),
        sa.Column('nonce', sa.String(length=128), nullable=False),
        sa.Column('code_verifier', sa.String(length=128), nullable=False),
        sa.Column('redirect_uri', sa.String(length=1000), nullable=False),
        sa.Column('device_code_id', sa.Integer(), nullable=False),
        sa.Column('expires_at', UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['device_code_id'], ['device_codes.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('state_hash'),
        sqlite_autoincrement=True,
    )
    op.create_index('ix_oidc_logins_device_code_id', 'oidc_logins', ['device_code_id'])


def downgrade() -> None:
    op.drop_index('ix_oidc_logins_device_code_id', table_name='oidc_logins')
    op.drop_table('oidc_logins')
    op.drop_index('ix_device_codes_expires_at', table_name='device_codes')
    op.drop_table('device_codes')
    op.drop_index('ix_api_tokens_previous_refresh_hash', table_name='api_tokens')
    op.drop_column('api_tokens', 'previous_refresh_hash')
    op.drop_index('ix_api_tokens_refresh_hash', table_name='api_tokens')
    op.drop_column('api_tokens', 'refresh_expires_at')
    op.drop_column('api_tokens', 'refresh_hash')
    op.drop_column('api_tokens', 'kind')
    op.drop_index('ix_users_sso_subject', table_name='users')
    op.drop_column('users', 'sso_subject')
