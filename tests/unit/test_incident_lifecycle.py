"""Incident lifecycle, claims, versions, audit trail, queue and migrations (SQLite, PostgreSQL)."""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect

from callcenter.events import Line
from dispatch import IncidentData, SqlCallStore
from dispatch.errors import (
    AlreadyClaimed,
    InvalidTransition,
    StaleVersion,
    UnknownIncident,
)
from dispatch.models import utcnow
from dispatch.schema import current_revision, head_revision
from tests.unit.test_store import INCIDENT, T0, _info, database_url, store

__all__ = ["database_url", "store"]  # fixtures shared with test_store


async def test_lifecycle_happy_path(store: SqlCallStore) -> None:
    await store.upsert_incident(INCIDENT)

    acked = await store.acknowledge_incident("inc-1", "lan", expected_version=1)
    sent = await store.dispatch_incident("inc-1", "lan", ["PCCC Hoàn Kiếm 1", "115-02"])
    closed = await store.close_incident("inc-1", "minh", "fire out, 1 injured to hospital")

    assert (acked.incident.status, acked.version, acked.lifecycle.acknowledged_by) == (
        "acknowledged",
        2,
        "lan",
    )
    assert sent.lifecycle.units == ("PCCC Hoàn Kiếm 1", "115-02")
    assert (closed.incident.status, closed.version) == ("closed", 4)
    assert closed.lifecycle.outcome == "fire out, 1 injured to hospital"
    assert closed.lifecycle.closed_by == "minh"
    life = closed.lifecycle
    assert life.acknowledged_at and life.dispatched_at and life.closed_at
    assert life.acknowledged_at <= life.dispatched_at <= life.closed_at
    assert await store.get_incident("inc-1") == closed
    assert await store.queue() == []  # closed incidents leave the queue
    assert [v.incident.id for v in await store.queue(status="closed")] == ["inc-1"]


async def test_invalid_transitions_change_nothing(store: SqlCallStore) -> None:
    await store.upsert_incident(INCIDENT)
    before = await store.get_incident("inc-1")

    with pytest.raises(InvalidTransition, match="is new"):
        await store.close_incident("inc-1", "lan", "prank")
    with pytest.raises(InvalidTransition):
        await store.dispatch_incident("inc-1", "lan", ["unit-1"])
    with pytest.raises(UnknownIncident):
        await store.acknowledge_incident("ghost", "lan")
    with pytest.raises(ValueError):
        await store.dispatch_incident("inc-1", "lan", [])
    assert await store.get_incident("inc-1") == before

    await store.acknowledge_incident("inc-1", "lan")
    await store.close_incident("inc-1", "lan", "duplicate of inc-0")
    with pytest.raises(InvalidTransition, match="is closed"):
        await store.acknowledge_incident("inc-1", "minh")
    with pytest.raises(InvalidTransition):
        await store.dispatch_incident("inc-1", "lan", ["unit-1"])


async def test_two_claimers_exactly_one_wins(store: SqlCallStore) -> None:
    await store.upsert_incident(INCIDENT)

    results = await asyncio.gather(
        store.acknowledge_incident("inc-1", "lan"),
        store.acknowledge_incident("inc-1", "minh"),
        return_exceptions=True,
    )

    won = [r for r in results if not isinstance(r, BaseException)]
    lost = [r for r in results if isinstance(r, BaseException)]
    assert len(won) == 1 and len(lost) == 1
    assert isinstance(lost[0], AlreadyClaimed)
    view = await store.get_incident("inc-1")
    assert view is not None and view.version == 2
    assert view.lifecycle.acknowledged_by == won[0].lifecycle.acknowledged_by
    trail = await store.audit_trail("inc-1")
    assert [e.field for e in trail if e.field == "status" and e.new == "acknowledged"] == ["status"]


async def test_two_nodes_claiming_many_incidents_never_share_one(database_url: str) -> None:
    nodes = [SqlCallStore(database_url), SqlCallStore(database_url)]
    await nodes[0].create_schema()
    await nodes[1].create_schema()
    ids = [f"inc-{n}" for n in range(10)]
    for incident_id in ids:
        await nodes[0].upsert_incident(replace(INCIDENT, id=incident_id, call_id=None))

    async def claim(node: int, incident_id: str) -> str | None:
        try:
            await nodes[node].acknowledge_incident(incident_id, f"node{node}")
        except AlreadyClaimed:
            return None
        return f"node{node}"

    try:
        results = await asyncio.gather(
            *(claim(node, incident_id) for incident_id in ids for node in (0, 1))
        )
        for n, incident_id in enumerate(ids):
            pair = results[2 * n : 2 * n + 2]
            assert sum(r is not None for r in pair) == 1, incident_id
            view = await nodes[1].get_incident(incident_id)
            assert view is not None and view.version == 2
            assert view.lifecycle.acknowledged_by in pair
    finally:
        for node in nodes:
            await node.close()


async def test_stale_version_is_refused(store: SqlCallStore) -> None:
    await store.upsert_incident(INCIDENT)
    read = await store.get_incident("inc-1")
    assert read is not None and read.version == 1
    await store.upsert_incident(replace(INCIDENT, injured=3))  # the bot learns more: v2

    with pytest.raises(StaleVersion, match="version 2"):
        await store.acknowledge_incident("inc-1", "lan", expected_version=read.version)

    view = await store.get_incident("inc-1")
    assert view is not None and (view.incident.status, view.version) == ("new", 2)
    acked = await store.acknowledge_incident("inc-1", "lan", expected_version=2)
    assert acked.version == 3


async def test_audit_trail_records_who_changed_what(store: SqlCallStore) -> None:
    await store.start_call(_info(), T0)
    await store.upsert_incident(INCIDENT, actor="bot:rasa")
    await store.upsert_incident(INCIDENT, actor="bot:rasa")  # a retry: no new version
    await store.upsert_incident(replace(INCIDENT, injured=2, priority=0), actor="bot:rasa")
    await store.acknowledge_incident("inc-1", "lan")
    await store.dispatch_incident("inc-1", "lan", ["unit-7"])

    trail = await store.audit_trail("inc-1")

    created = [e for e in trail if e.version == 1]
    assert {e.field for e in created} >= {"category", "priority", "location_text", "status"}
    assert all(e.actor == "bot:rasa" and e.old is None for e in created)
    assert {(e.field, e.old, e.new) for e in trail if e.version == 2} == {
        ("injured", 0, 2),
        ("priority", 1, 0),
    }
    assert {(e.actor, e.field, e.old, e.new) for e in trail if e.version == 3} == {
        ("dispatcher:lan", "status", "new", "acknowledged"),
        ("dispatcher:lan", "acknowledged_by", None, "lan"),
    }
    assert sorted((e.field, str(e.new)) for e in trail if e.version == 4) == [
        ("status", "dispatched"),
        ("units", "['unit-7']"),
    ]
    assert max(e.version for e in trail) == 4
    assert all(e.at.tzinfo is not None for e in trail)
    assert await store.audit_trail("ghost") == []


async def test_bot_cannot_move_an_acknowledged_incident_back(store: SqlCallStore) -> None:
    await store.upsert_incident(INCIDENT)
    await store.acknowledge_incident("inc-1", "lan")

    later = replace(INCIDENT, status="new", caller_name="Nguyễn Văn A")
    await store.upsert_incident(later)

    view = await store.get_incident("inc-1")
    assert view is not None
    assert view.incident.status == "acknowledged"
    assert view.incident.caller_name == "Nguyễn Văn A"  # the detail still arrives
    assert view.lifecycle.acknowledged_by == "lan"
    assert view.version == 3


async def test_queue_orders_by_priority_then_age_and_filters(store: SqlCallStore) -> None:
    rows = [
        ("old-p2", Line.FIRE, 2, "fire"),
        ("p1", Line.POLICE, 1, "robbery"),
        ("none", Line.FIRE, None, None),
        ("new-p2", Line.FIRE, 2, "fire"),
    ]
    for incident_id, line, priority, category in rows:
        await store.upsert_incident(
            IncidentData(id=incident_id, line=line, priority=priority, category=category)
        )
        await asyncio.sleep(0.01)  # distinct creation times
    await store.acknowledge_incident("p1", "lan")

    async def ids(**filters: object) -> list[str]:
        return [v.incident.id for v in await store.queue(**filters)]  # type: ignore[arg-type]

    assert await ids() == ["p1", "old-p2", "new-p2", "none"]
    assert await ids(status="new") == ["old-p2", "new-p2", "none"]
    assert await ids(line=Line.POLICE) == ["p1"]
    assert await ids(category="fire", priority=2) == ["old-p2", "new-p2"]
    assert await ids(limit=2, offset=1) == ["old-p2", "new-p2"]
    assert await ids(since=utcnow() + timedelta(minutes=1)) == []
    with pytest.raises(ValueError):
        await store.queue(status="lost")  # type: ignore[arg-type]


async def test_migrations_from_empty_and_rerun_is_noop(database_url: str) -> None:
    store = SqlCallStore(database_url)
    await store.create_schema()
    engine = create_engine(database_url)
    try:
        tables = set(inspect(engine).get_table_names())
        assert {"calls", "turns", "incidents", "incident_audit", "alembic_version"} <= tables
        assert current_revision(engine) == head_revision()
        columns_before = {c["name"] for c in inspect(engine).get_columns("incidents")}

        await store.create_schema()  # again: nothing to do

        assert current_revision(engine) == head_revision()
        assert {c["name"] for c in inspect(engine).get_columns("incidents")} == columns_before
    finally:
        engine.dispose()
        await store.close()


_OLD_SCHEMA = """
CREATE TABLE calls (id VARCHAR(64) NOT NULL, line VARCHAR(8) NOT NULL,
  language VARCHAR(8) NOT NULL, channel VARCHAR(32) NOT NULL, caller_number VARCHAR(32),
  status VARCHAR(16) NOT NULL, started_at DATETIME NOT NULL, answered_at DATETIME,
  ended_at DATETIME, end_reason VARCHAR(64), handoff BOOLEAN NOT NULL,
  handoff_reason VARCHAR(200), category VARCHAR(64), priority INTEGER,
  incident_id VARCHAR(64), CONSTRAINT pk_calls PRIMARY KEY (id));
CREATE TABLE turns (id INTEGER NOT NULL, call_id VARCHAR(64) NOT NULL, seq INTEGER NOT NULL,
  speaker VARCHAR(8) NOT NULL, text TEXT NOT NULL, start_ms INTEGER, end_ms INTEGER,
  asr_engine VARCHAR(32), asr_confidence FLOAT, decode_ms FLOAT, reply_latency_ms FLOAT,
  intent VARCHAR(64), intent_confidence FLOAT, slots JSON NOT NULL, created_at DATETIME NOT NULL,
  CONSTRAINT pk_turns PRIMARY KEY (id),
  CONSTRAINT uq_turns_call_id_seq UNIQUE (call_id, seq),
  CONSTRAINT fk_turns_call_id_calls FOREIGN KEY(call_id) REFERENCES calls (id) ON DELETE CASCADE);
CREATE TABLE incidents (id VARCHAR(64) NOT NULL, call_id VARCHAR(64), line VARCHAR(8) NOT NULL,
  category VARCHAR(64), priority INTEGER, status VARCHAR(16) NOT NULL, location_text TEXT,
  callback_number VARCHAR(32), caller_name VARCHAR(120), injured INTEGER, details JSON NOT NULL,
  created_at DATETIME NOT NULL, updated_at DATETIME NOT NULL,
  CONSTRAINT pk_incidents PRIMARY KEY (id));
INSERT INTO incidents VALUES ('inc-old', NULL, '114', 'fire', 1, 'new', 'chợ Đồng Xuân',
  NULL, NULL, NULL, '{}', '2025-07-01 08:30:00.000000', '2025-07-01 08:30:00.000000');
"""


@pytest.mark.unit
async def test_database_made_by_create_all_is_stamped_and_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(_OLD_SCHEMA)
    store = SqlCallStore(f"sqlite:///{path}")
    try:
        await store.create_schema()
        old = await store.get_incident("inc-old")
        assert old is not None and (old.version, old.incident.status) == (1, "new")
        acked = await store.acknowledge_incident("inc-old", "lan", expected_version=1)
        assert acked.version == 2
    finally:
        await store.close()
