"""Merged incidents (`merged_into`) and the access log of personal-data reads.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from dispatch.models import BigIntId, UtcDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("incidents") as batch:
        batch.add_column(sa.Column("merged_into", sa.String(64), nullable=True))
    op.create_table(
        "access_log",
        sa.Column("id", BigIntId, autoincrement=True, nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column("actor", sa.String(160), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(160), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_access_log")),
    )
    op.create_index(op.f("ix_access_log_at"), "access_log", ["at"])
    op.create_index(op.f("ix_access_log_subject"), "access_log", ["subject"])


def downgrade() -> None:
    op.drop_table("access_log")
    with op.batch_alter_table("incidents") as batch:
        batch.drop_column("merged_into")
