"""Writes survive a database outage: journaled on disk, replayed once, in order."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from sqlalchemy import create_engine

from dispatch import SqlCallStore
from dispatch.journal import JOURNAL_FILE, JournaledStore
from tests.unit.test_store import BOT_TURN, CALLER_TURN, INCIDENT, T0, _info, database_url

__all__ = ["database_url"]  # fixture shared with test_store

DOWN_URL = "postgresql+psycopg://postgres@127.0.0.1:1/test"  # nothing listens on port 1


async def _call_during_outage(journaled: JournaledStore) -> None:
    await journaled.start_call(_info(), T0)
    await journaled.mark_answered("call-1", T0 + timedelta(milliseconds=200))
    await journaled.add_turn("call-1", CALLER_TURN)
    await journaled.upsert_incident(INCIDENT, actor="bot:rasa")
    await journaled.add_turn("call-1", BOT_TURN)
    await journaled.add_turn("call-1", replace(CALLER_TURN, text="Có, hai người"))
    await journaled.upsert_incident(replace(INCIDENT, injured=2), actor="bot:rasa")
    await journaled.end_call("call-1", "completed", "caller_hangup", T0 + timedelta(seconds=30))


async def test_outage_is_journaled_then_replayed_once_in_order(
    database_url: str, tmp_path: Path
) -> None:
    journal_dir = tmp_path / "journal"
    down = JournaledStore(SqlCallStore(DOWN_URL, timeout_s=1.0), journal_dir)

    await _call_during_outage(down)  # no error reaches the call

    assert down.pending
    lines = (journal_dir / JOURNAL_FILE).read_text(encoding="utf-8").splitlines()
    assert len(lines) == 8
    await down.close()

    # The database is back (and the node restarted): the journal is replayed.
    store = SqlCallStore(database_url)
    await store.create_schema()
    back = JournaledStore(store, journal_dir)
    assert back.pending
    try:
        assert await back.replay() == 8
        assert not back.pending
        assert await back.replay() == 0

        view = await back.get_call("call-1")
        assert view is not None
        assert [(t.seq, t.turn.text) for t in view.turns] == [
            (1, CALLER_TURN.text),
            (2, BOT_TURN.text),
            (3, "Có, hai người"),
        ]
        assert view.status == "completed"
        assert view.answered_at == T0 + timedelta(milliseconds=200)
        assert view.incident_id == "inc-1"
        incident = await back.get_incident("inc-1")
        assert incident is not None
        assert (incident.incident.injured, incident.version) == (2, 2)
        trail = await store.audit_trail("inc-1")
        assert {e.version for e in trail} == {1, 2}
        assert not (journal_dir / JOURNAL_FILE).exists()
    finally:
        await back.close()


async def test_replay_after_a_crash_mid_replay_duplicates_nothing(
    database_url: str, tmp_path: Path
) -> None:
    journal_dir = tmp_path / "journal"
    down = JournaledStore(SqlCallStore(DOWN_URL, timeout_s=1.0), journal_dir)
    await _call_during_outage(down)
    await down.close()
    store = SqlCallStore(database_url)
    await store.create_schema()
    # A node applied every entry but died before recording it: all applied twice.
    for twice in range(2):
        again = JournaledStore(store, journal_dir)
        for entry in again._read_entries():
            await again._apply(entry)
        assert twice in (0, 1)
    back = JournaledStore(store, journal_dir)
    try:
        assert await back.replay() == 8
        view = await back.get_call("call-1")
        assert view is not None and [t.seq for t in view.turns] == [1, 2, 3]
        incident = await back.get_incident("inc-1")
        assert incident is not None and incident.incident.injured == 2
    finally:
        await back.close()


async def test_writes_go_straight_through_when_the_database_answers(
    database_url: str, tmp_path: Path
) -> None:
    store = SqlCallStore(database_url)
    await store.create_schema()
    journaled = JournaledStore(store, tmp_path / "journal")
    try:
        await journaled.start_call(_info(), T0)
        await journaled.add_turn("call-1", CALLER_TURN)
        assert not journaled.pending
        assert not (tmp_path / "journal" / JOURNAL_FILE).exists()
        view = await store.get_call("call-1")
        assert view is not None and len(view.turns) == 1
    finally:
        await journaled.close()


@contextmanager
def _connection_lost(store: SqlCallStore) -> Iterator[None]:
    """The store's database stops answering (its engine now points at a closed port)."""
    working = store._engine
    store._engine = create_engine(DOWN_URL, connect_args={"connect_timeout": 1})
    try:
        yield
    finally:
        store._engine.dispose()
        store._engine = working


async def test_writes_while_journal_pending_keep_their_order(
    database_url: str, tmp_path: Path
) -> None:
    store = SqlCallStore(database_url)
    await store.create_schema()
    journaled = JournaledStore(store, tmp_path / "journal")
    try:
        await journaled.start_call(_info(), T0)
        with _connection_lost(store):
            await journaled.add_turn("call-1", CALLER_TURN)
            await journaled.upsert_incident(INCIDENT)
        # The database answers again but the journal is not replayed yet:
        await journaled.add_turn("call-1", BOT_TURN)  # queued behind the others
        assert journaled.pending
        assert (await store.get_call("call-1")).turns == ()  # type: ignore[union-attr]
        assert await journaled.replay() == 3
        view = await store.get_call("call-1")
        assert view is not None
        assert [(t.seq, t.turn.speaker) for t in view.turns] == [(1, "caller"), (2, "bot")]
        assert view.incident_id == "inc-1"
    finally:
        await journaled.close()


async def test_background_replayer_drains_the_journal(database_url: str, tmp_path: Path) -> None:
    store = SqlCallStore(database_url)
    await store.create_schema()
    journaled = JournaledStore(store, tmp_path / "journal", retry_initial_s=0.05)
    replayer = asyncio.create_task(journaled.run_replayer())
    try:
        with _connection_lost(store):
            await journaled.start_call(_info(), T0)
            await journaled.add_turn("call-1", CALLER_TURN)
            await asyncio.sleep(0.3)  # the replayer retries and backs off meanwhile
            assert journaled.pending
        for _ in range(100):
            if not journaled.pending:
                break
            await asyncio.sleep(0.05)
        assert not journaled.pending
        view = await store.get_call("call-1")
        assert view is not None and [t.seq for t in view.turns] == [1]
    finally:
        replayer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await replayer
        await journaled.close()
