"""Personal data and the life of call records: the access log, retention, and calls
left open by a node that died.

Blocking functions on an `Engine`, run by `SqlCallStore` in a worker thread.
Every purge is itself written to the access log (actor "system:retention").
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import Engine, delete, insert, or_, select, update

from dispatch.models import AccessLogRecord, Base, CallRecord, TurnRecord, utcnow
from dispatch.records import AccessEntry

MAX_PURGE_BATCH = 5000


def insert_row(engine: Engine, model: type[Base], values: Mapping[str, object]) -> None:
    with engine.begin() as conn:
        conn.execute(insert(model), [dict(values)])


def access_log(engine: Engine, subject: str | None, limit: int, offset: int) -> list[AccessEntry]:
    log = AccessLogRecord.__table__
    query = select(log).order_by(log.c.at.desc(), log.c.id.desc())
    if subject is not None:
        query = query.where(log.c.subject == subject)
    with engine.connect() as conn:
        rows = conn.execute(query.limit(limit).offset(offset)).mappings().all()
    return [
        AccessEntry(
            at=row["at"],
            actor=row["actor"],
            role=row["role"],
            action=row["action"],
            subject=row["subject"],
        )
        for row in rows
    ]


def purge_transcripts(engine: Engine, ended_before: datetime, actor: str) -> list[str]:
    calls, turns = CallRecord.__table__, TurnRecord.__table__
    with engine.begin() as conn:
        has_turns = select(turns.c.id).where(turns.c.call_id == calls.c.id).exists()
        ids = list(
            conn.execute(
                select(calls.c.id)
                .where(calls.c.ended_at < ended_before)
                .where(or_(has_turns, calls.c.caller_number.is_not(None)))
                .limit(5000)
            ).scalars()
        )
        if not ids:
            return []
        conn.execute(delete(TurnRecord).where(TurnRecord.call_id.in_(ids)))
        conn.execute(update(CallRecord).where(CallRecord.id.in_(ids)).values(caller_number=None))
        at = utcnow()
        conn.execute(
            insert(AccessLogRecord),
            [
                {
                    "at": at,
                    "actor": actor,
                    "role": "system",
                    "action": "purge_transcript",
                    "subject": f"call:{call_id}",
                }
                for call_id in ids
            ],
        )
    return ids


def forget_recordings(engine: Engine, paths: list[str], actor: str) -> int:
    calls = CallRecord.__table__
    with engine.begin() as conn:
        ids = list(conn.execute(select(calls.c.id).where(calls.c.recording.in_(paths))).scalars())
        if not ids:
            return 0
        conn.execute(
            update(CallRecord)
            .where(CallRecord.id.in_(ids))
            .values(recording=None, recording_s=None)
        )
        at = utcnow()
        conn.execute(
            insert(AccessLogRecord),
            [
                {
                    "at": at,
                    "actor": actor,
                    "role": "system",
                    "action": "purge_recording",
                    "subject": f"call:{call_id}",
                }
                for call_id in ids
            ],
        )
        return len(ids)


def close_orphans(
    engine: Engine, node: str, started_before: datetime, reason: str
) -> list[tuple[str, str | None]]:
    """Mark `node`'s calls still in progress from before `started_before` as handed
    off; (call id, incident id) of each."""
    with engine.begin() as conn:
        rows = conn.execute(
            select(CallRecord.id, CallRecord.incident_id).where(
                CallRecord.node == node,
                CallRecord.status == "in_progress",
                CallRecord.started_at < started_before,
            )
        ).all()
        if rows:
            conn.execute(
                update(CallRecord)
                .where(CallRecord.id.in_([row[0] for row in rows]))
                .values(
                    status="handed_off",
                    handoff=True,
                    handoff_reason=reason,
                    end_reason="service restarted mid-call",
                    ended_at=utcnow(),
                )
            )
    return [(str(row[0]), row[1]) for row in rows]
