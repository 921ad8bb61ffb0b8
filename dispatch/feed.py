"""Live fan-out of store changes: in this process, and across nodes over PostgreSQL.

`ChangeFeed` hands every `StoreChange` to each subscriber's bounded queue. A
subscriber that falls behind (its queue full) is not allowed to slow anyone
down: its queue is emptied and it gets a single `RESYNC`, meaning "read the
queue again, you missed something".

Across nodes, `SqlCallStore` writes each change with `pg_notify` in the same
transaction as the change itself, so a notification is sent exactly when the
change commits. `PgChangeListener` LISTENs on one connection per node and
publishes other nodes' changes into the local feed (this node's own were
published directly). Payloads carry ids and numbers only, never personal data.
When the listening connection breaks, the listener reconnects with back-off and
publishes `RESYNC`, since notifications sent meanwhile are lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import AsyncIterator, Iterator
from typing import Final, Literal, TypeVar

import psycopg
from sqlalchemy.engine import make_url

from dispatch.records import StoreChange

logger = logging.getLogger(__name__)
_T = TypeVar("_T")

CHANNEL: Final = "callbot_changes"
RESYNC: Final = StoreChange(kind="incident")  # no id: "reload everything"
_QUEUE_SIZE: Final = 1000


def offer(queue: asyncio.Queue[_T], item: _T, resync: _T) -> None:
    """Put `item` without waiting; a full queue is emptied for one `resync` instead."""
    try:
        queue.put_nowait(item)
    except asyncio.QueueFull:
        while not queue.empty():
            queue.get_nowait()
        queue.put_nowait(resync)


def new_node_id() -> str:
    return secrets.token_hex(6)


class ChangeFeed:
    """In-process publish/subscribe of `StoreChange`s; publish never blocks."""

    def __init__(self, node_id: str | None = None) -> None:
        self.node_id = node_id or new_node_id()
        self._queues: set[asyncio.Queue[StoreChange]] = set()

    @property
    def subscribers(self) -> int:
        return len(self._queues)

    def publish(self, change: StoreChange) -> None:
        for queue in self._queues:
            offer(queue, change, RESYNC)

    @contextlib.contextmanager
    def subscribe(self, size: int = _QUEUE_SIZE) -> Iterator[asyncio.Queue[StoreChange]]:
        queue: asyncio.Queue[StoreChange] = asyncio.Queue(size)
        self._queues.add(queue)
        try:
            yield queue
        finally:
            self._queues.discard(queue)

    async def changes(self) -> AsyncIterator[StoreChange]:
        """Every change from now on, until the consumer stops iterating."""
        with self.subscribe() as queue:
            while True:
                yield await queue.get()


def encode(change: StoreChange, node_id: str) -> str:
    """The NOTIFY payload: ids and numbers only (well under PostgreSQL's 8,000 bytes)."""
    fields = {
        "node": node_id,
        "kind": change.kind,
        "incident_id": change.incident_id,
        "call_id": change.call_id,
        "version": change.version,
        "seq": change.seq,
        "created": change.created,
    }
    return json.dumps({key: value for key, value in fields.items() if value is not None})


def decode(payload: str) -> tuple[str, StoreChange]:
    """`(node_id, change)` from a NOTIFY payload; ValueError if it is not one of ours."""
    data = json.loads(payload)
    if not isinstance(data, dict):
        raise ValueError("payload is not an object")
    kind: Literal["incident", "turn", "call"]
    if data.get("kind") == "incident":
        kind = "incident"
    elif data.get("kind") == "turn":
        kind = "turn"
    else:
        raise ValueError(f"unknown change kind {data.get('kind')!r}")
    change = StoreChange(
        kind=kind,
        incident_id=_optional(data, "incident_id", str),
        call_id=_optional(data, "call_id", str),
        version=_optional(data, "version", int),
        seq=_optional(data, "seq", int),
        created=data.get("created") is True,
    )
    return str(data.get("node", "")), change


def _optional(data: dict[str, object], key: str, kind: type[_T]) -> _T | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise ValueError(f"{key} must be {kind.__name__}")
    return value


def libpq_url(database_url: str) -> str:
    """A SQLAlchemy PostgreSQL URL as a plain libpq one (for psycopg.connect)."""
    url = make_url(database_url)
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


class PgChangeListener:
    """Feeds other nodes' changes into `feed`, from PostgreSQL NOTIFY on `CHANNEL`."""

    def __init__(
        self,
        database_url: str,
        feed: ChangeFeed,
        *,
        connect_timeout_s: float = 5.0,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 10.0,
    ) -> None:
        self._conninfo = libpq_url(database_url)
        self._feed = feed
        self._connect_timeout_s = connect_timeout_s
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self.listening = asyncio.Event()

    async def run(self) -> None:
        """Listen until cancelled, reconnecting after any failure."""
        delay = self._retry_initial_s
        first = True
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._conninfo,
                    autocommit=True,
                    connect_timeout=max(1, int(self._connect_timeout_s)),
                ) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self.listening.set()
                    if not first:
                        logger.info("live updates from other nodes resumed")
                        self._feed.publish(RESYNC)
                    first = False
                    delay = self._retry_initial_s
                    async for notify in conn.notifies():
                        self._deliver(notify.payload)
            except (psycopg.Error, OSError) as exc:
                self.listening.clear()
                logger.warning(
                    "live updates from other nodes interrupted (%s); retrying in %.1f s",
                    type(exc).__name__,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._retry_max_s)

    def _deliver(self, payload: str) -> None:
        try:
            node, change = decode(payload)
        except ValueError as exc:
            logger.warning("ignored a malformed change notification: %s", exc)
            return
        if node != self._feed.node_id:
            self._feed.publish(change)
