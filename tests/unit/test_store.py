"""The dispatch store on SQLite (a temp file) and on the machine's PostgreSQL.

PostgreSQL tests run in a fresh schema per test (dropped afterwards) and are
skipped when the server at CALLBOT_TEST_POSTGRES_URL (default
postgresql+psycopg://postgres@127.0.0.1:5432/test) does not answer.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from callcenter.events import CallInfo, Language, Line
from dispatch import (
    DispatchError,
    IncidentData,
    SqlCallStore,
    StoreUnavailable,
    TurnData,
    UnknownCall,
)
from dispatch.models import IncidentRecord, TurnRecord

PG_URL = os.environ.get(
    "CALLBOT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
T0 = datetime(2025, 7, 1, 8, 30, tzinfo=UTC)


def _postgres_unreachable_reason() -> str | None:
    try:
        engine = create_engine(PG_URL, connect_args={"connect_timeout": 2})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # any failure means: no server to test against
        return f"PostgreSQL at {make_url(PG_URL).render_as_string()} unreachable: {exc!r}"[:300]
    return None


@pytest.fixture(
    params=[
        pytest.param("sqlite", marks=pytest.mark.unit),
        pytest.param("postgresql", marks=pytest.mark.component),
    ]
)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'callbot.db'}"
        return
    reason = _postgres_unreachable_reason()
    if reason is not None:
        pytest.skip(reason)
    schema = f"test_store_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{PG_URL}?options={quote(f'-csearch_path={schema}')}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[SqlCallStore]:
    calls = SqlCallStore(database_url)
    await calls.create_schema()
    yield calls
    await calls.close()


def _info(call_id: str = "call-1") -> CallInfo:
    return CallInfo(
        call_id=call_id,
        line=Line.FIRE,
        language=Language.VI,
        caller_number="0912345678",
        channel="sip",
    )


CALLER_TURN = TurnData(
    speaker="caller",
    text="Cháy nhà ở số 12 phố Huế",
    start_ms=1200,
    end_ms=3400,
    asr_engine="viet-asr",
    asr_confidence=0.82,
    decode_ms=71.5,
    intent="report_fire",
    intent_confidence=0.93,
    slots={"address": "12 phố Huế"},
)
BOT_TURN = TurnData(
    speaker="bot",
    text="Có ai bị thương không?",
    start_ms=4100,
    end_ms=5600,
    reply_latency_ms=640.0,
)
INCIDENT = IncidentData(
    id="inc-1",
    line=Line.FIRE,
    call_id="call-1",
    category="fire",
    priority=1,
    location_text="12 phố Huế",
    callback_number="0912345678",
    injured=0,
    details={"red_flags": ["trapped"], "read_back": True},
)


def _count(database_url: str, model: type[TurnRecord] | type[IncidentRecord]) -> int:
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(model)).scalar_one())
    finally:
        engine.dispose()


async def test_call_with_turns_round_trips(store: SqlCallStore) -> None:
    await store.start_call(_info(), T0)
    await store.mark_answered("call-1", T0 + timedelta(milliseconds=180))
    await store.add_turn("call-1", CALLER_TURN)
    await store.add_turn("call-1", BOT_TURN)
    await store.upsert_incident(INCIDENT)
    await store.end_call("call-1", "completed", "caller_hangup", T0 + timedelta(seconds=40))

    view = await store.get_call("call-1")

    assert view is not None
    assert view.info == _info()
    assert view.status == "completed"
    assert view.started_at == T0
    assert view.answered_at == T0 + timedelta(milliseconds=180)
    assert view.ended_at == T0 + timedelta(seconds=40)
    assert view.end_reason == "caller_hangup"
    assert not view.handoff
    assert (view.incident_id, view.category, view.priority) == ("inc-1", "fire", 1)
    assert [(t.seq, t.turn) for t in view.turns] == [(1, CALLER_TURN), (2, BOT_TURN)]
    assert all(t.created_at.tzinfo is not None for t in view.turns)

    [summary] = await store.list_calls()
    assert (summary.call_id, summary.turn_count, summary.status) == (
        "call-1",
        2,
        "completed",
    )
    incident = await store.get_incident("inc-1")
    assert incident is not None
    assert incident.incident == INCIDENT
    assert await store.get_call("no-such-call") is None


async def test_handed_off_call_is_flagged(store: SqlCallStore) -> None:
    await store.start_call(_info(), T0)
    await store.end_call(
        "call-1", "handed_off", "transfer", T0 + timedelta(seconds=9), "caller asked"
    )

    view = await store.get_call("call-1")

    assert view is not None
    assert (view.status, view.handoff, view.handoff_reason) == (
        "handed_off",
        True,
        "caller asked",
    )


async def test_retries_do_not_duplicate(store: SqlCallStore, database_url: str) -> None:
    await store.start_call(_info(), T0)
    await store.start_call(_info(), T0 + timedelta(seconds=5))  # a retried start
    for _ in range(3):
        await store.add_turn("call-1", CALLER_TURN, seq=1)
    await store.add_turn("call-1", BOT_TURN)  # numbered after the explicit one
    await store.upsert_incident(INCIDENT)
    first = await store.get_incident("inc-1")
    updated = replace(INCIDENT, injured=2, priority=0)
    await store.upsert_incident(updated)
    await store.upsert_incident(updated)

    view = await store.get_call("call-1")
    incident = await store.get_incident("inc-1")

    assert view is not None and view.started_at == T0
    assert [(t.seq, t.turn.speaker) for t in view.turns] == [(1, "caller"), (2, "bot")]
    assert _count(database_url, TurnRecord) == 2
    assert _count(database_url, IncidentRecord) == 1
    assert incident is not None and first is not None
    assert incident.incident == updated
    assert incident.created_at == first.created_at
    assert incident.updated_at >= first.updated_at
    assert view.priority == 0


async def test_concurrent_add_turn_keeps_order_and_count(store: SqlCallStore) -> None:
    call_ids = ["call-a", "call-b", "call-c"]
    for call_id in call_ids:
        await store.start_call(_info(call_id), T0)

    async def speak(call_id: str, n: int) -> None:
        await store.add_turn(call_id, TurnData(speaker="caller", text=f"{call_id} {n}"))

    # Tasks are created (and so call add_turn) in order n = 0..19 for each call.
    await asyncio.gather(*(speak(call_id, n) for n in range(20) for call_id in call_ids))

    for call_id in call_ids:
        view = await store.get_call(call_id)
        assert view is not None
        assert [t.seq for t in view.turns] == list(range(1, 21))
        assert [t.turn.text for t in view.turns] == [f"{call_id} {n}" for n in range(20)]


async def test_data_survive_reopening(database_url: str) -> None:
    first = SqlCallStore(database_url)
    await first.create_schema()
    await first.start_call(_info(), T0)
    await first.add_turn("call-1", CALLER_TURN)
    await first.upsert_incident(INCIDENT)
    await first.close()

    second = SqlCallStore(database_url)
    await second.create_schema()  # idempotent on an existing database
    await second.add_turn("call-1", BOT_TURN)  # numbering resumes from the database
    view = await second.get_call("call-1")
    incident = await second.get_incident("inc-1")
    await second.close()

    assert view is not None
    assert [(t.seq, t.turn) for t in view.turns] == [(1, CALLER_TURN), (2, BOT_TURN)]
    assert incident is not None and incident.incident == INCIDENT


@contextmanager
def _write_lock_held(database_url: str) -> Iterator[None]:
    """Another client holds the write lock on the calls table."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        assert url.database is not None
        conn = sqlite3.connect(url.database, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()
        return
    engine = create_engine(url)
    try:
        with engine.begin() as locked:
            locked.execute(text("LOCK TABLE calls IN ACCESS EXCLUSIVE MODE"))
            yield
    finally:
        engine.dispose()


async def test_locked_database_fails_within_the_timeout(database_url: str) -> None:
    calls = SqlCallStore(database_url, timeout_s=0.5, busy_timeout_s=0.3)
    await calls.create_schema()
    await calls.start_call(_info(), T0)
    try:
        with _write_lock_held(database_url):
            started = time.perf_counter()
            with pytest.raises(StoreUnavailable):
                await calls.end_call("call-1", "failed", "test", T0)
            assert time.perf_counter() - started < 2.5  # not the 5 s default; slack for a busy CI
        await calls.end_call("call-1", "failed", "test", T0)  # works again
    finally:
        await calls.close()


async def test_unknown_call_is_refused_not_unavailable(store: SqlCallStore) -> None:
    with pytest.raises(UnknownCall):
        await store.end_call("ghost", "dropped", "hangup", T0)
    with pytest.raises(DispatchError) as refused:
        await store.add_turn("ghost", BOT_TURN)
    assert not isinstance(refused.value, StoreUnavailable)


async def test_naive_times_are_rejected(store: SqlCallStore) -> None:
    with pytest.raises(ValueError, match="naive"):
        await store.start_call(_info(), datetime(2025, 7, 1, 8, 30))


@pytest.mark.unit
@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://postgres@127.0.0.1:1/test",  # nothing listens on port 1
        "sqlite:////nonexistent-dir/for/sure/callbot.db",
    ],
)
async def test_unreachable_database_raises_store_unavailable_quickly(url: str) -> None:
    store = SqlCallStore(url, timeout_s=3.0)
    started = time.perf_counter()
    with pytest.raises(StoreUnavailable, match="create_schema"):
        await store.create_schema()
    assert time.perf_counter() - started < 3.5
    await store.close()


@pytest.mark.unit
@pytest.mark.parametrize("url", ["not a url", "mysql://x@localhost/db", "nosuchdb://x"])
def test_unusable_url_raises_store_unavailable(url: str) -> None:
    with pytest.raises(StoreUnavailable, match="database URL"):
        SqlCallStore(url)
