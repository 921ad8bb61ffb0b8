"""Live updates: every committed change reaches the pages of this node and of other nodes.

The cross-node tests use the machine's PostgreSQL (two stores standing for two
service nodes, each with its own feed and NOTIFY listener, sharing one schema);
they are skipped with the reason when it does not answer.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import psycopg
import pytest

from callcenter.events import CallInfo, Language, Line
from callcenter.web.live import LiveEvents
from dispatch import IncidentData, SqlCallStore, TurnData
from dispatch.feed import CHANNEL, RESYNC, ChangeFeed, PgChangeListener, decode, encode, libpq_url
from dispatch.records import StoreChange
from tests.unit.test_store import database_url  # noqa: F401  (fixture: sqlite and postgresql)

WAIT_S = 5.0


def info(call_id: str) -> CallInfo:
    return CallInfo(
        call_id=call_id,
        line=Line.FIRE,
        language=Language.VI,
        caller_number="0912345678",
        channel="media-stream",
    )


async def next_change(queue: asyncio.Queue[StoreChange]) -> StoreChange:
    return await asyncio.wait_for(queue.get(), WAIT_S)


@pytest.fixture
async def node_a(database_url: str) -> AsyncIterator[SqlCallStore]:  # noqa: F811
    store = SqlCallStore(database_url, feed=ChangeFeed("node-a"))
    await store.create_schema()
    yield store
    await store.close()


async def test_changes_are_published_once_committed_and_not_on_identical_retries(
    node_a: SqlCallStore,
) -> None:
    with node_a.feed.subscribe() as changes:
        await node_a.start_call(info("c1"), datetime.now(UTC))
        await node_a.add_turn("c1", TurnData(speaker="caller", text="cháy"), seq=1)
        assert await next_change(changes) == StoreChange("turn", call_id="c1", seq=1)
        await node_a.add_turn("c1", TurnData(speaker="caller", text="cháy"), seq=1)  # retry
        incident = IncidentData(id="inc-c1", call_id="c1", line=Line.FIRE, category="fire")
        await node_a.upsert_incident(incident)
        assert await next_change(changes) == StoreChange(
            "incident", incident_id="inc-c1", version=1, created=True
        )
        await node_a.upsert_incident(incident)  # identical: nothing changed, nothing sent
        await node_a.acknowledge_incident("inc-c1", "lan")
        assert await next_change(changes) == StoreChange(
            "incident", incident_id="inc-c1", version=2
        )
        await node_a.end_call("c1", "completed", "caller hung up", datetime.now(UTC))
        assert await next_change(changes) == StoreChange("incident", incident_id="inc-c1")
        assert await next_change(changes) == StoreChange("call", call_id="c1")
        assert changes.empty()


async def test_a_page_that_falls_behind_is_told_to_resync() -> None:
    feed = ChangeFeed()
    with feed.subscribe(size=3) as slow:
        for seq in range(1, 6):
            feed.publish(StoreChange("turn", call_id="c", seq=seq))
        # the backlog is dropped for one RESYNC; what comes after is delivered
        assert [slow.get_nowait() for _ in range(slow.qsize())] == [
            RESYNC,
            StoreChange("turn", call_id="c", seq=5),
        ]


def test_notification_payloads_carry_ids_only_and_bad_ones_are_refused() -> None:
    change = StoreChange("incident", incident_id="inc-1", version=3, created=True)
    payload = encode(change, "node-a")
    assert json.loads(payload) == {
        "node": "node-a",
        "kind": "incident",
        "incident_id": "inc-1",
        "version": 3,
        "created": True,
    }
    assert decode(payload) == ("node-a", change)
    for bad in ("[]", '{"kind": "call"}', '{"kind": "turn", "seq": "3"}', "not json"):
        with pytest.raises(ValueError):
            decode(bad)


async def test_pages_get_the_incident_as_it_is_now(node_a: SqlCallStore) -> None:
    live = LiveEvents(node_a.feed, lambda: node_a)
    fanning_out = asyncio.create_task(live.run())
    try:
        with live.subscribe() as page:
            await asyncio.sleep(0)  # let the fan-out subscribe to the feed
            await node_a.start_call(info("c2"), datetime.now(UTC))
            await node_a.upsert_incident(
                IncidentData(id="inc-c2", call_id="c2", line=Line.FIRE, priority=1)
            )
            message = await asyncio.wait_for(page.get(), WAIT_S)
            event, data = message.splitlines()[:2]
            assert event == "event: incident"
            body = json.loads(data.removeprefix("data: "))
            assert body["kind"] == "created"
            assert body["incident"]["id"] == "inc-c2" and body["incident"]["priority"] == 1
            assert body["incident"]["call_in_progress"] is True
    finally:
        fanning_out.cancel()


@pytest.mark.component
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # SQLite: one node
async def test_a_change_on_one_node_reaches_the_other_node(
    node_a: SqlCallStore, database_url: str  # noqa: F811
) -> None:
    node_b = SqlCallStore(database_url, feed=ChangeFeed("node-b"))
    listeners = [PgChangeListener(database_url, node.feed) for node in (node_a, node_b)]
    listening = [asyncio.create_task(listener.run()) for listener in listeners]
    try:
        for listener in listeners:
            await asyncio.wait_for(listener.listening.wait(), WAIT_S)
        with node_b.feed.subscribe() as on_b, node_a.feed.subscribe() as on_a:
            await node_a.start_call(info("c3"), datetime.now(UTC))
            await node_a.upsert_incident(IncidentData(id="inc-c3", call_id="c3", line=Line.FIRE))
            expected = StoreChange("incident", incident_id="inc-c3", version=1, created=True)
            assert await next_change(on_b) == expected
            assert await next_change(on_a) == expected
            # node B's dispatcher acts; node A hears of it, and nobody hears it twice
            await node_b.acknowledge_incident("inc-c3", "lan")
            acked = StoreChange("incident", incident_id="inc-c3", version=2)
            assert await next_change(on_a) == acked
            assert await next_change(on_b) == acked
            await asyncio.sleep(0.3)
            assert on_a.empty() and on_b.empty()

            # a rolled-back write is never announced
            async with await psycopg.AsyncConnection.connect(
                libpq_url(database_url), autocommit=False
            ) as conn:
                await conn.execute(
                    "SELECT pg_notify(%s, %s)",
                    (CHANNEL, encode(StoreChange("turn", call_id="c3", seq=9), "node-a")),
                )
                await conn.rollback()
            await asyncio.sleep(0.3)
            assert on_b.empty()
    finally:
        for task in listening:
            task.cancel()
        await asyncio.gather(*listening, return_exceptions=True)
        await node_b.close()
