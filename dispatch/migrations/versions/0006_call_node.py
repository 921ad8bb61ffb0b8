"""Which service node answered each call (to hand a restarted node's calls to humans).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("calls") as batch:
        batch.add_column(sa.Column("node", sa.String(64), nullable=True))
    op.create_index(op.f("ix_calls_node"), "calls", ["node"])


def downgrade() -> None:
    op.drop_index(op.f("ix_calls_node"), table_name="calls")
    with op.batch_alter_table("calls") as batch:
        batch.drop_column("node")
