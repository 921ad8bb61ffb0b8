"""Reads of calls and their turns (blocking; the store runs them in a worker thread)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from dispatch.models import CallRecord, TurnRecord
from dispatch.records import CallSummary, CallView
from dispatch.rows import call_summary, call_view, turn_view


def max_seq(engine: Engine, call_id: str) -> int:
    """The highest turn number stored for a call (0 without turns)."""
    with engine.connect() as conn:
        stored = conn.execute(
            select(func.max(TurnRecord.seq)).where(TurnRecord.call_id == call_id)
        ).scalar()
    return int(stored or 0)


def get_call(engine: Engine, call_id: str) -> CallView | None:
    """A call with its turns in order, or None."""
    with Session(engine) as session:
        call = session.get(CallRecord, call_id)
        if call is None:
            return None
        turns = session.scalars(
            select(TurnRecord).where(TurnRecord.call_id == call_id).order_by(TurnRecord.seq)
        ).all()
        return call_view(call, [turn_view(turn) for turn in turns])


def list_calls(engine: Engine, limit: int) -> list[CallSummary]:
    """The newest calls first, each with its number of turns."""
    turn_count = (
        select(func.count(TurnRecord.id))
        .where(TurnRecord.call_id == CallRecord.id)
        .correlate(CallRecord)
        .scalar_subquery()
    )
    with Session(engine) as session:
        rows = session.execute(
            select(CallRecord, turn_count)
            .order_by(CallRecord.started_at.desc(), CallRecord.id)
            .limit(limit)
        ).all()
        return [call_summary(call, int(count)) for call, count in rows]
