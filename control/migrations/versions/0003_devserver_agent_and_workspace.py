"""develop servers: owning agent and workspace path

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 08:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('dev_servers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('agent_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('workspace', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True))
        batch_op.create_index(batch_op.f('ix_dev_servers_agent_id'), ['agent_id'], unique=False)
        batch_op.create_foreign_key('fk_dev_servers_agent_id_agents', 'agents', ['agent_id'], ['id'])


def downgrade() -> None:
    with op.batch_alter_table('dev_servers', schema=None) as batch_op:
        batch_op.drop_constraint('fk_dev_servers_agent_id_agents', type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_dev_servers_agent_id'))
        batch_op.drop_column('workspace')
        batch_op.drop_column('agent_id')
