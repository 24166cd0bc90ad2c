"""develop servers: the fingerprint of their own TLS certificate

The agent reports it with the endpoint; the gateway accepts exactly that certificate. Existing
rows get none (a plain-HTTP endpoint of an older agent, reached as before until it restarts).

Revision ID: 0014
Revises: 0010
Create Date: 2026-12-06 23:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import sqlmodel

revision: str = '0014'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('dev_servers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('tls_fingerprint', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('dev_servers', schema=None) as batch_op:
        batch_op.drop_column('tls_fingerprint')
