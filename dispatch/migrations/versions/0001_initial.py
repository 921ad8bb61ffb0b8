"""The schema as `Base.metadata.create_all` made it before migrations: calls, turns, incidents.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from dispatch.models import BigIntId, JsonType, UtcDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "calls",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("line", sa.String(8), nullable=False),
        sa.Column("language", sa.String(8), nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("caller_number", sa.String(32), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", UtcDateTime(), nullable=False),
        sa.Column("answered_at", UtcDateTime(), nullable=True),
        sa.Column("ended_at", UtcDateTime(), nullable=True),
        sa.Column("end_reason", sa.String(64), nullable=True),
        sa.Column("handoff", sa.Boolean(), nullable=False),
        sa.Column("handoff_reason", sa.String(200), nullable=True),
        sa.Column("category", sa.String(64), nullable=True),
        sa.Column("priority", sa.Integer(), nullable=True),
        sa.Column("incident_id", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calls")),
    )
    op.create_index(op.f("ix_calls_status"), "calls", ["status"])
    op.create_index(op.f("ix_calls_started_at"), "calls", ["started_at"])
    op.create_index(op.f("ix_calls_incident_id"), "calls", ["incident_id"])
    op.create_table(
        "turns",
        sa.Column("id", BigIntId, autoincrement=True, nullable=False),
        sa.Column("call_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("speaker", sa.String(8), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("start_ms", sa.Integer(), nullable=True),
        sa.Column("end_ms", sa.Integer(), nullable=True),
        sa.Column("asr_engine", sa.String(32), nullable=True),
        sa.Column("asr_confidence", sa.Float(), nullable=True),
        sa.Column("decode_ms", sa.Float(), nullable=True),
        sa.Column("reply_latency_ms", sa.Float(), nullable=True),
        sa.Column("intent", sa.String(64), nullable=True),
        sa.Column("intent_confidence", sa.Float(), nullable=True),
        sa.Column("slots", JsonType, nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["call_id"], ["calls.id"], name=op.f("fk_turns_call_id_calls"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_turns")),
        sa.UniqueConstraint("call_id", "seq", name=op.f("uq_turns_call_id_seq")),
    )
    op.create_table(
        "incidents",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("call_id", sa.String(64), nullable=True),
        sa.Column("line", sa.String(8), nullable=False),
        sa.Column("category", sa.String(64), nullable=True),
        sa.Column("priority", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("location_text", sa.Text(), nullable=True),
        sa.Column("callback_number", sa.String(32), nullable=True),
        sa.Column("caller_name", sa.String(120), nullable=True),
        sa.Column("injured", sa.Integer(), nullable=True),
        sa.Column("details", JsonType, nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incidents")),
    )
    op.create_index(op.f("ix_incidents_call_id"), "incidents", ["call_id"])
    op.create_index(op.f("ix_incidents_status"), "incidents", ["status"])


def downgrade() -> None:
    op.drop_table("incidents")
    op.drop_table("turns")
    op.drop_table("calls")
