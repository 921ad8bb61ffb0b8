"""Conversions between the store's rows and the values it takes and returns."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.exc import SQLAlchemyError

from callcenter.events import CallInfo, Language, Line
from dispatch.models import CallRecord, TurnRecord, utcnow
from dispatch.records import CallSummary, CallView, TurnData, TurnView, call_status, speaker
from dispatch.text import fold


def aware(at: datetime) -> datetime:
    if at.tzinfo is None:
        raise ValueError("naive datetime: pass a timezone-aware time (UTC)")
    return at.astimezone(UTC)


def person_name(dispatcher: str) -> str:
    name = dispatcher.strip()
    if not name:
        raise ValueError("a dispatcher name is needed")
    return name


def reason(exc: SQLAlchemyError) -> str:
    """The driver's message, without SQL (parameters are hidden by the engine)."""
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def turn_values(call_id: str, seq: int, turn: TurnData) -> dict[str, object]:
    return {
        "call_id": call_id,
        "seq": seq,
        "speaker": speaker(turn.speaker),
        "text": turn.text,
        "text_folded": fold(turn.text),
        "start_ms": turn.start_ms,
        "end_ms": turn.end_ms,
        "asr_engine": turn.asr_engine,
        "asr_confidence": turn.asr_confidence,
        "decode_ms": turn.decode_ms,
        "reply_latency_ms": turn.reply_latency_ms,
        "intent": turn.intent,
        "intent_confidence": turn.intent_confidence,
        "slots": dict(turn.slots),
        "created_at": utcnow(),
    }


def turn_view(record: TurnRecord) -> TurnView:
    turn = TurnData(
        speaker=speaker(record.speaker),
        text=record.text,
        start_ms=record.start_ms,
        end_ms=record.end_ms,
        asr_engine=record.asr_engine,
        asr_confidence=record.asr_confidence,
        decode_ms=record.decode_ms,
        reply_latency_ms=record.reply_latency_ms,
        intent=record.intent,
        intent_confidence=record.intent_confidence,
        slots=dict(record.slots),
    )
    return TurnView(seq=record.seq, turn=turn, created_at=record.created_at)


def call_view(record: CallRecord, turns: list[TurnView]) -> CallView:
    info = CallInfo(
        call_id=record.id,
        line=Line(record.line),
        language=Language(record.language),
        caller_number=record.caller_number,
        channel=record.channel,
    )
    return CallView(
        info=info,
        status=call_status(record.status),
        started_at=record.started_at,
        answered_at=record.answered_at,
        ended_at=record.ended_at,
        end_reason=record.end_reason,
        handoff=record.handoff,
        handoff_reason=record.handoff_reason,
        category=record.category,
        priority=record.priority,
        incident_id=record.incident_id,
        turns=tuple(turns),
        recording=record.recording,
        recording_s=record.recording_s,
    )


def call_summary(record: CallRecord, turn_count: int) -> CallSummary:
    return CallSummary(
        call_id=record.id,
        line=Line(record.line),
        language=Language(record.language),
        status=call_status(record.status),
        channel=record.channel,
        started_at=record.started_at,
        ended_at=record.ended_at,
        handoff=record.handoff,
        category=record.category,
        priority=record.priority,
        incident_id=record.incident_id,
        turn_count=turn_count,
    )
