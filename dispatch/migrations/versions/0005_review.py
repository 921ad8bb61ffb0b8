"""Supervisor review: searchable transcripts, quality checks, reviews, annotations.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from dispatch.models import BigIntId, JsonType, UtcDateTime
from dispatch.text import fold

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("turns") as batch:
        batch.add_column(sa.Column("text_folded", sa.Text(), nullable=True))
    with op.batch_alter_table("calls") as batch:
        batch.add_column(sa.Column("qa", JsonType, nullable=True))
        batch.add_column(sa.Column("qa_failed", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("review_reason", sa.String(16), nullable=True))
        batch.add_column(sa.Column("min_asr_confidence", sa.Float(), nullable=True))
    op.create_index(op.f("ix_calls_review_reason"), "calls", ["review_reason"])
    # Fold the transcripts already stored, so that old calls are found too.
    conn = op.get_bind()
    turns = sa.table(
        "turns",
        sa.column("id", sa.Integer()),
        sa.column("text", sa.Text()),
        sa.column("text_folded", sa.Text()),
    )
    rows = conn.execute(sa.select(turns.c.id, turns.c.text)).all()
    for turn_id, text in rows:
        conn.execute(
            turns.update().where(turns.c.id == turn_id).values(text_folded=fold(text or ""))
        )
    op.create_table(
        "reviews",
        sa.Column("id", BigIntId, autoincrement=True, nullable=False),
        sa.Column("call_id", sa.String(64), nullable=False),
        sa.Column("reviewer", sa.String(160), nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column("answers", JsonType, nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reviews")),
    )
    op.create_index(op.f("ix_reviews_call_id"), "reviews", ["call_id"])
    op.create_table(
        "annotations",
        sa.Column("id", BigIntId, autoincrement=True, nullable=False),
        sa.Column("call_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("author", sa.String(160), nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_annotations")),
    )
    op.create_index(op.f("ix_annotations_call_id"), "annotations", ["call_id"])


def downgrade() -> None:
    op.drop_table("annotations")
    op.drop_table("reviews")
    op.drop_index(op.f("ix_calls_review_reason"), table_name="calls")
    with op.batch_alter_table("calls") as batch:
        for name in ("min_asr_confidence", "review_reason", "qa_failed", "qa"):
            batch.drop_column(name)
    with op.batch_alter_table("turns") as batch:
        batch.drop_column("text_folded")
