"""Incident lifecycle (version, acknowledged/dispatched/closed) and the audit trail.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from dispatch.models import BigIntId, JsonType, UtcDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("incidents") as batch:
        batch.add_column(sa.Column("version", sa.Integer(), server_default="1", nullable=False))
        batch.add_column(sa.Column("acknowledged_at", UtcDateTime(), nullable=True))
        batch.add_column(sa.Column("acknowledged_by", sa.String(120), nullable=True))
        batch.add_column(sa.Column("dispatched_at", UtcDateTime(), nullable=True))
        batch.add_column(sa.Column("units", JsonType, nullable=True))
        batch.add_column(sa.Column("closed_at", UtcDateTime(), nullable=True))
        batch.add_column(sa.Column("closed_by", sa.String(120), nullable=True))
        batch.add_column(sa.Column("outcome", sa.Text(), nullable=True))
    op.create_index("ix_incidents_queue", "incidents", ["status", "priority", "created_at"])
    op.create_table(
        "incident_audit",
        sa.Column("id", BigIntId, autoincrement=True, nullable=False),
        sa.Column("incident_id", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column("actor", sa.String(160), nullable=False),
        sa.Column("field", sa.String(64), nullable=False),
        sa.Column("old", JsonType, nullable=True),
        sa.Column("new", JsonType, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incident_audit")),
    )
    op.create_index(op.f("ix_incident_audit_incident_id"), "incident_audit", ["incident_id"])


def downgrade() -> None:
    op.drop_table("incident_audit")
    op.drop_index("ix_incidents_queue", table_name="incidents")
    with op.batch_alter_table("incidents") as batch:
        for name in (
            "outcome",
            "closed_by",
            "closed_at",
            "units",
            "dispatched_at",
            "acknowledged_by",
            "acknowledged_at",
            "version",
        ):
            batch.drop_column(name)
