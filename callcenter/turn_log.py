"""A call's turns, written to the store in the order they happened.

The session hands each turn over without waiting (`caller`, `bot`, `prompt`);
`run` writes them one after another, so a slow store never holds up what the
caller hears, and a failing one never breaks the call (the journal behind the
store keeps what could not be written).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable

from callcenter.events import CallbotError, DialogTurn, Transcript
from callcenter.metrics import Metrics
from dispatch.store import CallStore, TurnData

log = logging.getLogger(__name__)


async def write_safely(write: Awaitable[None], what: str) -> None:
    """Run a store write; a failing store must never break the call."""
    try:
        await write
    except (CallbotError, TimeoutError) as exc:
        log.error("store write failed (%s): %r", what, exc)


class TurnLog:
    def __init__(self, call_id: str, store: CallStore, metrics: Metrics | None) -> None:
        self._call_id = call_id
        self._store = store
        self._metrics = metrics
        self._queue: asyncio.Queue[TurnData | None] = asyncio.Queue()

    def caller(self, transcript: Transcript) -> None:
        self._add(
            TurnData(
                speaker="caller",
                text=transcript.text,
                start_ms=transcript.start_ms,
                end_ms=transcript.end_ms,
                asr_engine=transcript.engine,
                asr_confidence=transcript.confidence,
                decode_ms=transcript.decode_ms,
            )
        )

    def bot(self, turn: DialogTurn, *, start_ms: int, latency_ms: float | None) -> None:
        self._add(
            TurnData(
                speaker="bot",
                text=turn.reply,
                start_ms=start_ms,
                end_ms=None,
                reply_latency_ms=latency_ms,
                intent=turn.category,
                intent_confidence=turn.intent_confidence,
                slots=dict(turn.slots),
            )
        )

    def prompt(self, text: str, *, start_ms: int) -> None:
        """A recorded prompt the bot played (hold, busy, re-prompt...)."""
        self._queue.put_nowait(TurnData(speaker="bot", text=text, start_ms=start_ms, end_ms=None))

    async def run(self) -> None:
        """Write turns until `close`, then return once the last one is written."""
        while (turn := await self._queue.get()) is not None:
            await write_safely(self._store.add_turn(self._call_id, turn), "add turn")

    def close(self) -> None:
        self._queue.put_nowait(None)

    def _add(self, turn: TurnData) -> None:
        if self._metrics is not None:
            self._metrics.turns.labels(turn.speaker).inc()
        self._queue.put_nowait(turn)
