"""gap records carry the agent's id, for deduplication

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("gaps", schema=None) as batch_op:
        batch_op.add_column(sa.Column("gap_id", sa.String(length=64), nullable=True))
        batch_op.create_index("ux_gaps_agent_gap", ["site", "agent", "gap_id"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("gaps", schema=None) as batch_op:
        batch_op.drop_index("ux_gaps_agent_gap")
        batch_op.drop_column("gap_id")
