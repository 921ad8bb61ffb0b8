"""Supervisor review in the store: find calls, keep quality results, reviews and notes.

`SqlReviewStore` shares the engine (and the timeout runner) of `SqlCallStore`.
Search matches the folded transcript (lower-case, no diacritics) with LIKE, its
wildcards escaped, so a query is always taken as plain text and works the same
on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any, Final, TypeVar

from sqlalchemy import (
    ColumnElement,
    Engine,
    Exists,
    RowMapping,
    Select,
    and_,
    exists,
    func,
    insert,
    select,
    update,
)

from callcenter.events import Line
from dispatch.errors import UnknownCall
from dispatch.models import AnnotationRecord, CallRecord, ReviewRecord, TurnRecord, utcnow
from dispatch.records import CallStatus, JsonValue, call_status
from dispatch.text import like_pattern

T = TypeVar("T")
Runner = Callable[[str, Callable[[], T]], Awaitable[T]]

LOW_CONFIDENCE: Final = 0.6  # a caller turn heard with less is "low confidence"
MAX_RANGE: Final = timedelta(days=366)
MAX_STATS_CALLS: Final = 100_000
_CALLS = CallRecord.__table__
_TURNS = TurnRecord.__table__
_REVIEWS = ReviewRecord.__table__
_NOTES = AnnotationRecord.__table__


@dataclass(frozen=True, slots=True)
class CallQuery:
    """Which calls a supervisor is looking for (all optional)."""

    text: str | None = None
    line: Line | None = None
    since: datetime | None = None
    until: datetime | None = None
    category: str | None = None
    priority: int | None = None
    status: CallStatus | None = None
    handoff: bool | None = None
    low_confidence: bool = False
    flagged: bool = False
    queue: bool = False  # in the review queue and not yet reviewed
    limit: int = 50
    offset: int = 0


@dataclass(frozen=True, slots=True)
class ReviewRow:
    call_id: str
    line: Line
    language: str
    channel: str
    status: CallStatus
    caller_number: str | None
    started_at: datetime
    ended_at: datetime | None
    category: str | None
    priority: int | None
    incident_id: str | None
    handoff: bool
    handoff_reason: str | None
    turn_count: int
    min_asr_confidence: float | None
    qa: Mapping[str, JsonValue] | None
    qa_failed: int | None
    review_reason: str | None
    reviewed: bool
    recording: str | None
    match: str | None  # the first turn matching the search, as said


@dataclass(frozen=True, slots=True)
class Review:
    id: int
    call_id: str
    reviewer: str
    at: datetime
    answers: Mapping[str, JsonValue]
    score: float | None
    notes: str | None


@dataclass(frozen=True, slots=True)
class Annotation:
    id: int
    call_id: str
    seq: int
    author: str
    at: datetime
    text: str


@dataclass(frozen=True, slots=True)
class StatsRows:
    """What the dashboard is computed from, for calls started in a range."""

    calls: list[tuple[datetime, str, str | None, bool, Mapping[str, JsonValue] | None]]
    reply_latencies_ms: list[float]
    asr_confidences: list[float]


class SqlReviewStore:
    def __init__(self, engine: Engine, run: Runner[object]) -> None:
        self._engine = engine
        self._run_any = run

    async def _run(self, what: str, work: Callable[[], T]) -> T:
        return await self._run_any(what, work)  # type: ignore[return-value]

    async def find_calls(self, query: CallQuery) -> tuple[list[ReviewRow], int]:
        """Matching calls, newest first, and how many match in all."""
        check_range(query.since, query.until)
        return await self._run("find_calls", partial(_find_calls, self._engine, query))

    async def row(self, call_id: str) -> ReviewRow | None:
        return await self._run("review_row", partial(_row, self._engine, call_id))

    async def set_quality(
        self,
        call_id: str,
        qa: Mapping[str, JsonValue],
        failed: int,
        review_reason: str | None,
        min_asr_confidence: float | None,
    ) -> None:
        values = {
            "qa": dict(qa),
            "qa_failed": failed,
            "review_reason": review_reason,
            "min_asr_confidence": min_asr_confidence,
        }
        await self._run("set_quality", partial(_update_call, self._engine, call_id, values))

    async def add_review(
        self,
        call_id: str,
        reviewer: str,
        answers: Mapping[str, JsonValue],
        score: float | None,
        notes: str | None,
    ) -> Review:
        row = {
            "call_id": call_id,
            "reviewer": reviewer,
            "at": utcnow(),
            "answers": dict(answers),
            "score": score,
            "notes": notes,
        }
        new_id = await self._run("add_review", partial(_insert, self._engine, _REVIEWS, row))
        return Review(id=new_id, **row)  # type: ignore[arg-type]

    async def reviews(self, call_id: str) -> list[Review]:
        return await self._run("reviews", partial(_reviews, self._engine, call_id))

    async def annotate(self, call_id: str, seq: int, author: str, text: str) -> Annotation:
        row = {"call_id": call_id, "seq": seq, "author": author, "at": utcnow(), "text": text}
        new_id = await self._run("annotate", partial(_insert, self._engine, _NOTES, row))
        return Annotation(id=new_id, **row)  # type: ignore[arg-type]

    async def annotations(self, call_id: str) -> list[Annotation]:
        return await self._run("annotations", partial(_annotations, self._engine, call_id))

    async def stats_rows(self, since: datetime, until: datetime, line: Line | None) -> StatsRows:
        check_range(since, until)
        return await self._run("stats", partial(_stats_rows, self._engine, since, until, line))


def check_range(since: datetime | None, until: datetime | None) -> None:
    if since is not None and until is not None:
        if until < since:
            raise ValueError("'until' is before 'since'")
        if until - since > MAX_RANGE:
            raise ValueError("ask for at most 366 days at a time")


# -- blocking work --------------------------------------------------------------------


def _reviewed() -> Exists:
    return exists().where(_REVIEWS.c.call_id == _CALLS.c.id)


def _find_calls(engine: Engine, query: CallQuery) -> tuple[list[ReviewRow], int]:
    conditions: list[ColumnElement[bool]] = []
    pattern = like_pattern(query.text) if query.text and query.text.strip() else None
    if pattern is not None:
        conditions.append(
            exists().where(
                _TURNS.c.call_id == _CALLS.c.id,
                _TURNS.c.text_folded.like(pattern, escape="\\"),
            )
        )
    if query.line is not None:
        conditions.append(_CALLS.c.line == Line(query.line).value)
    if query.since is not None:
        conditions.append(_CALLS.c.started_at >= query.since)
    if query.until is not None:
        conditions.append(_CALLS.c.started_at < query.until)
    if query.category is not None:
        conditions.append(_CALLS.c.category == query.category)
    if query.priority is not None:
        conditions.append(_CALLS.c.priority == query.priority)
    if query.status is not None:
        conditions.append(_CALLS.c.status == query.status)
    if query.handoff is not None:
        conditions.append(_CALLS.c.handoff == query.handoff)
    if query.low_confidence:
        conditions.append(_CALLS.c.min_asr_confidence < LOW_CONFIDENCE)
    if query.flagged:
        conditions.append(_CALLS.c.qa_failed > 0)
    if query.queue:
        conditions.append(_CALLS.c.review_reason.is_not(None))
        conditions.append(~_reviewed())
    where = and_(True, *conditions)
    with engine.connect() as conn:
        total = int(
            conn.execute(select(func.count()).select_from(_CALLS).where(where)).scalar() or 0
        )
        rows = (
            conn.execute(
                _row_query(pattern)
                .where(where)
                .order_by(_CALLS.c.started_at.desc(), _CALLS.c.id)
                .limit(query.limit)
                .offset(query.offset)
            )
            .mappings()
            .all()
        )
    return [_review_row(row) for row in rows], total


def _row(engine: Engine, call_id: str) -> ReviewRow | None:
    with engine.connect() as conn:
        row = conn.execute(_row_query(None).where(_CALLS.c.id == call_id)).mappings().first()
    return None if row is None else _review_row(row)


def _row_query(pattern: str | None) -> Select[Any]:
    turn_count = (
        select(func.count(_TURNS.c.id)).where(_TURNS.c.call_id == _CALLS.c.id).scalar_subquery()
    )
    if pattern is None:
        match = select(_TURNS.c.text).where(False).scalar_subquery()  # type: ignore[arg-type]
    else:
        match = (
            select(_TURNS.c.text)
            .where(_TURNS.c.call_id == _CALLS.c.id, _TURNS.c.text_folded.like(pattern, escape="\\"))
            .order_by(_TURNS.c.seq)
            .limit(1)
            .scalar_subquery()
        )
    return select(
        *_CALLS.c,
        turn_count.label("turn_count"),
        match.label("match"),
        _reviewed().label("reviewed"),
    )


def _review_row(row: RowMapping) -> ReviewRow:
    return ReviewRow(
        call_id=str(row["id"]),
        line=Line(str(row["line"])),
        language=str(row["language"]),
        channel=str(row["channel"]),
        status=call_status(str(row["status"])),
        caller_number=row["caller_number"],
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        category=row["category"],
        priority=row["priority"],
        incident_id=row["incident_id"],
        handoff=bool(row["handoff"]),
        handoff_reason=row["handoff_reason"],
        turn_count=int(row["turn_count"] or 0),
        min_asr_confidence=row["min_asr_confidence"],
        qa=row["qa"],
        qa_failed=row["qa_failed"],
        review_reason=row["review_reason"],
        reviewed=bool(row["reviewed"]),
        recording=row["recording"],
        match=row["match"],
    )


def _update_call(engine: Engine, call_id: str, values: Mapping[str, object]) -> None:
    with engine.begin() as conn:
        result = conn.execute(update(CallRecord).where(CallRecord.id == call_id).values(values))
        if result.rowcount == 0:
            raise UnknownCall(f"no call {call_id!r} in the store")


def _insert(engine: Engine, table: object, row: Mapping[str, object]) -> int:
    with engine.begin() as conn:
        call_id = row["call_id"]
        known = conn.execute(select(_CALLS.c.id).where(_CALLS.c.id == call_id)).first()
        if known is None:
            raise UnknownCall(f"no call {call_id!r} in the store")
        inserted = conn.execute(
            insert(table).values(dict(row)).returning(table.c.id)  # type: ignore[arg-type,attr-defined]
        )
        return int(inserted.scalar_one())


def _reviews(engine: Engine, call_id: str) -> list[Review]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(_REVIEWS).where(_REVIEWS.c.call_id == call_id).order_by(_REVIEWS.c.id)
        ).mappings()
        return [
            Review(
                id=row["id"],
                call_id=row["call_id"],
                reviewer=row["reviewer"],
                at=row["at"],
                answers=row["answers"],
                score=row["score"],
                notes=row["notes"],
            )
            for row in rows
        ]


def _annotations(engine: Engine, call_id: str) -> list[Annotation]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(_NOTES).where(_NOTES.c.call_id == call_id).order_by(_NOTES.c.seq, _NOTES.c.id)
        ).mappings()
        return [
            Annotation(
                id=row["id"],
                call_id=row["call_id"],
                seq=row["seq"],
                author=row["author"],
                at=row["at"],
                text=row["text"],
            )
            for row in rows
        ]


def _stats_rows(engine: Engine, since: datetime, until: datetime, line: Line | None) -> StatsRows:
    in_range = and_(_CALLS.c.started_at >= since, _CALLS.c.started_at < until)
    if line is not None:
        in_range = and_(in_range, _CALLS.c.line == Line(line).value)
    with engine.connect() as conn:
        calls = conn.execute(
            select(
                _CALLS.c.started_at, _CALLS.c.line, _CALLS.c.category, _CALLS.c.handoff, _CALLS.c.qa
            )
            .where(in_range)
            .limit(MAX_STATS_CALLS)
        ).all()
        joined = _TURNS.join(_CALLS, _TURNS.c.call_id == _CALLS.c.id)
        latencies = (
            conn.execute(
                select(_TURNS.c.reply_latency_ms)
                .select_from(joined)
                .where(in_range, _TURNS.c.reply_latency_ms.is_not(None))
                .limit(MAX_STATS_CALLS * 10)
            )
            .scalars()
            .all()
        )
        confidences = (
            conn.execute(
                select(_TURNS.c.asr_confidence)
                .select_from(joined)
                .where(in_range, _TURNS.c.asr_confidence.is_not(None))
                .limit(MAX_STATS_CALLS * 10)
            )
            .scalars()
            .all()
        )
    return StatsRows(
        calls=[(row[0], str(row[1]), row[2], bool(row[3]), row[4]) for row in calls],
        reply_latencies_ms=[float(v) for v in latencies],
        asr_confidences=[float(v) for v in confidences],
    )


__all__ = [
    "LOW_CONFIDENCE",
    "Annotation",
    "CallQuery",
    "Review",
    "ReviewRow",
    "SqlReviewStore",
    "StatsRows",
    "check_range",
]
