"""SQLAlchemy 2 models of the dispatch store (`calls`, `turns`, `incidents`, `incident_audit`).

The schema is created and evolved by the Alembic migrations in
`dispatch/migrations`; a change here needs a new revision there.

Columns hold plain strings for enumerations (no database ENUM types) so that
Alembic migrations can add values without DDL; constraint names follow a
naming convention so migrations can refer to them. Times are stored in UTC and
always come back timezone-aware, on SQLite too.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from dispatch.records import JsonValue

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and read back as an aware UTC `datetime`."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass a timezone-aware time")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:  # SQLite keeps no zone; we wrote UTC
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# SQLite autoincrements only an INTEGER PRIMARY KEY.
BigIntId = BigInteger().with_variant(Integer(), "sqlite")
JsonType = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class CallRecord(Base):
    """One call (or chat session), from arrival to hang-up."""

    __tablename__ = "calls"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # the call id
    line: Mapped[str] = mapped_column(String(8))
    language: Mapped[str] = mapped_column(String(8))
    channel: Mapped[str] = mapped_column(String(32))
    node: Mapped[str | None] = mapped_column(String(64), index=True)  # the node that answered
    caller_number: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), index=True, default="in_progress")
    started_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    answered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    end_reason: Mapped[str | None] = mapped_column(String(64))
    handoff: Mapped[bool] = mapped_column(default=False)
    handoff_reason: Mapped[str | None] = mapped_column(String(200))
    category: Mapped[str | None] = mapped_column(String(64))
    priority: Mapped[int | None] = mapped_column(Integer)
    incident_id: Mapped[str | None] = mapped_column(String(64), index=True)
    recording: Mapped[str | None] = mapped_column(String(255))  # under DATA_DIR/recordings
    recording_s: Mapped[float | None] = mapped_column()
    # quality checks once the call ended: {check: {"passed": bool | None, ...}}
    qa: Mapped[dict[str, JsonValue] | None] = mapped_column(JsonType)
    qa_failed: Mapped[int | None] = mapped_column(Integer)  # how many checks failed
    review_reason: Mapped[str | None] = mapped_column(String(16), index=True)
    min_asr_confidence: Mapped[float | None] = mapped_column()

    turns: Mapped[list[TurnRecord]] = relationship(
        back_populates="call", order_by="TurnRecord.seq", passive_deletes=True
    )


class TurnRecord(Base):
    """One utterance of a call; `(call_id, seq)` is unique so retries never duplicate."""

    __tablename__ = "turns"
    __table_args__ = (UniqueConstraint("call_id", "seq"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    speaker: Mapped[str] = mapped_column(String(8))  # "caller" | "bot"
    text: Mapped[str] = mapped_column(Text)
    text_folded: Mapped[str | None] = mapped_column(Text)  # for search without diacritics
    start_ms: Mapped[int | None] = mapped_column(Integer)
    end_ms: Mapped[int | None] = mapped_column(Integer)
    asr_engine: Mapped[str | None] = mapped_column(String(32))
    asr_confidence: Mapped[float | None] = mapped_column()
    decode_ms: Mapped[float | None] = mapped_column()
    reply_latency_ms: Mapped[float | None] = mapped_column()
    intent: Mapped[str | None] = mapped_column(String(64))
    intent_confidence: Mapped[float | None] = mapped_column()
    slots: Mapped[dict[str, str]] = mapped_column(JsonType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    call: Mapped[CallRecord] = relationship(back_populates="turns")


class IncidentRecord(Base):
    """An incident and where it stands in its lifecycle; `version` counts its changes."""

    __tablename__ = "incidents"
    __table_args__ = (Index("ix_incidents_queue", "status", "priority", "created_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    # No foreign key: incidents journaled during a database outage may be
    # replayed in any order relative to their call.
    call_id: Mapped[str | None] = mapped_column(String(64), index=True)
    line: Mapped[str] = mapped_column(String(8))
    category: Mapped[str | None] = mapped_column(String(64))
    priority: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), index=True, default="new")
    location_text: Mapped[str | None] = mapped_column(Text)
    callback_number: Mapped[str | None] = mapped_column(String(32))
    caller_name: Mapped[str | None] = mapped_column(String(120))
    injured: Mapped[int | None] = mapped_column(Integer)
    details: Mapped[dict[str, JsonValue]] = mapped_column(JsonType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    acknowledged_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    acknowledged_by: Mapped[str | None] = mapped_column(String(120))
    dispatched_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    units: Mapped[list[str] | None] = mapped_column(JsonType)
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    closed_by: Mapped[str | None] = mapped_column(String(120))
    outcome: Mapped[str | None] = mapped_column(Text)
    merged_into: Mapped[str | None] = mapped_column(String(64))


class IncidentAuditRecord(Base):
    """One changed field of one incident version: who or what changed it, and when."""

    __tablename__ = "incident_audit"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    # No foreign key, like `incidents.call_id`: the trail outlives merges and deletes.
    incident_id: Mapped[str] = mapped_column(String(64), index=True)
    version: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    actor: Mapped[str] = mapped_column(String(160))
    field: Mapped[str] = mapped_column(String(64))
    old: Mapped[JsonValue] = mapped_column(JsonType, nullable=True)
    new: Mapped[JsonValue] = mapped_column(JsonType, nullable=True)


class AccessLogRecord(Base):
    """One read of personal data (a transcript, a recording) by a member of staff."""

    __tablename__ = "access_log"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    actor: Mapped[str] = mapped_column(String(160))  # "dispatcher:lan", "token:cad-bridge"
    role: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(64))  # "read_transcript", "read_recording"
    subject: Mapped[str] = mapped_column(String(160), index=True)  # e.g. "call:ms-abc"


class ReviewRecord(Base):
    """A supervisor's quality review of one call: answers to the review form."""

    __tablename__ = "reviews"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(String(64), index=True)
    reviewer: Mapped[str] = mapped_column(String(160))
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    answers: Mapped[dict[str, JsonValue]] = mapped_column(JsonType)
    score: Mapped[float | None] = mapped_column()
    notes: Mapped[str | None] = mapped_column(Text)


class AnnotationRecord(Base):
    """A supervisor's note on one turn of a call."""

    __tablename__ = "annotations"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(String(64), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    author: Mapped[str] = mapped_column(String(160))
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    text: Mapped[str] = mapped_column(Text)
