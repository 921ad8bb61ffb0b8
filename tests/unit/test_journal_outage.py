"""The database connection dies in the middle of a call, and comes back.

A TCP proxy stands between the store and the machine's PostgreSQL; cutting it
drops every open connection and refuses new ones, as a failed link or a
database host going away would. The call goes on, its writes are journaled,
and when the link is back the replayer delivers every incident and turn once,
in order, with nobody doing anything.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from dispatch import SqlCallStore
from dispatch.journal import JournaledStore
from tests.unit.test_store import BOT_TURN, CALLER_TURN, INCIDENT, T0, _info, database_url

__all__ = ["database_url"]

pytestmark = pytest.mark.component


class CuttableProxy:
    """Forwards TCP to `target`; `cut()` drops every connection and refuses new ones."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        self.up = True
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def cut(self) -> None:
        self.up = False
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    def restore(self) -> None:
        self.up = True

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.up:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        await asyncio.gather(
            self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True
        )

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                if not self.up:
                    break
                writer.write(data)
                await writer.drain()
        finally:
            self._writers.discard(writer)
            writer.transport.abort()


@pytest.fixture
async def proxy(database_url: str) -> AsyncIterator[CuttableProxy]:
    url = make_url(database_url)
    running = CuttableProxy(url.host or "127.0.0.1", url.port or 5432)
    await running.start()
    yield running
    await running.close()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_connection_killed_mid_call_loses_and_duplicates_nothing(
    database_url: str, proxy: CuttableProxy, tmp_path: Path
) -> None:
    proxied = make_url(database_url).set(host="127.0.0.1", port=proxy.port)
    store = SqlCallStore(proxied.render_as_string(hide_password=False), timeout_s=1.0)
    await store.create_schema()
    journaled = JournaledStore(store, tmp_path / "journal", retry_initial_s=0.1, retry_max_s=0.5)
    replayer = asyncio.create_task(journaled.run_replayer())
    try:
        # the call starts with the database there
        await journaled.start_call(_info(), T0)
        await journaled.add_turn("call-1", CALLER_TURN)
        await journaled.upsert_incident(INCIDENT, actor="bot:rasa")
        assert not journaled.pending

        proxy.cut()  # mid-call: the link to the database dies
        await journaled.add_turn("call-1", BOT_TURN)
        await journaled.add_turn("call-1", replace(CALLER_TURN, text="Có, hai người bị thương"))
        await journaled.upsert_incident(replace(INCIDENT, injured=2), actor="bot:rasa")
        # a second caller reports during the outage
        await journaled.start_call(_info("call-2"), T0 + timedelta(seconds=5))
        await journaled.upsert_incident(
            replace(INCIDENT, id="inc-2", call_id="call-2"), actor="bot:rasa"
        )
        await journaled.end_call("call-1", "completed", "caller_hangup", T0 + timedelta(seconds=40))
        assert journaled.pending  # nothing reached the call as an error

        proxy.restore()
        deadline = time.monotonic() + 20
        while journaled.pending and time.monotonic() < deadline:  # noqa: ASYNC110 (no event for "drained")
            await asyncio.sleep(0.1)
        assert not journaled.pending, "the journal was not replayed after the link came back"

        view = await store.get_call("call-1")
        assert view is not None and view.status == "completed"
        assert [(t.seq, t.turn.speaker, t.turn.text) for t in view.turns] == [
            (1, "caller", CALLER_TURN.text),
            (2, "bot", BOT_TURN.text),
            (3, "caller", "Có, hai người bị thương"),
        ]
        first = await store.get_incident("inc-1")
        assert first is not None and (first.incident.injured, first.version) == (2, 2)
        assert await store.get_incident("inc-2") is not None
    finally:
        replayer.cancel()
        await asyncio.gather(replayer, return_exceptions=True)
        await journaled.close()

    engine = create_engine(database_url)
    with engine.connect() as conn:
        counts = conn.execute(
            text(
                "select (select count(*) from incidents), (select count(*) from turns), "
                "(select count(*) from calls)"
            )
        ).one()
    engine.dispose()
    assert tuple(counts) == (2, 3, 2)  # every incident and turn exactly once
