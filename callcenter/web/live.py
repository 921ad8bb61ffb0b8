"""`/api/v1/events`: live updates for dispatcher pages (Server-Sent Events).

One `LiveEvents` per service reads each store change once (the incident as it
is now, in the API's JSON shape), renders it once, and hands the text to every
open page. Events:

- `ready`: the stream is open (sent first);
- `incident`: `{"kind": "created" | "updated", "incident": {...}}`;
- `turn`: `{"call_id", "incident_id", "seq"}`: a call has a new turn (the page
  fetches the transcript itself, so that the read is access-logged);
- `resync`: changes may have been missed (this page fell behind, or another
  node's notifications were interrupted): read the queue again.

A page that falls behind by `_QUEUE_SIZE` messages gets `resync` instead of the
backlog. A stream is closed after `_MAX_STREAM_S`; the browser reconnects at
once, which checks the session again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Final

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from callcenter.auth.deps import StaffPrincipal
from callcenter.incidents import incident_id_for
from callcenter.web.incident_json import incident_out
from dispatch.errors import DispatchError
from dispatch.feed import ChangeFeed, offer
from dispatch.records import StoreChange
from dispatch.store import SqlCallStore

log = logging.getLogger(__name__)

_QUEUE_SIZE: Final = 500
_KEEPALIVE_S: Final = 15.0
_MAX_STREAM_S: Final = 600.0
RESYNC_MESSAGE: Final = "event: resync\ndata: {}\n\n"


def sse(event: str, data: object) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


class LiveEvents:
    """Renders store changes once and fans them out to every open page."""

    def __init__(self, feed: ChangeFeed, database: Callable[[], SqlCallStore]) -> None:
        self._feed = feed
        self._database = database
        self._pages: set[asyncio.Queue[str]] = set()

    @property
    def pages(self) -> int:
        return len(self._pages)

    async def run(self) -> None:
        """Render and forward changes until cancelled."""
        async for change in self._feed.changes():
            if not self._pages or change.kind == "call":
                continue
            message = await self._render(change)
            for page in self._pages:
                offer(page, message, RESYNC_MESSAGE)

    @contextlib.contextmanager
    def subscribe(self) -> Iterator[asyncio.Queue[str]]:
        page: asyncio.Queue[str] = asyncio.Queue(_QUEUE_SIZE)
        self._pages.add(page)
        try:
            yield page
        finally:
            self._pages.discard(page)

    async def _render(self, change: StoreChange) -> str:
        if change.kind == "turn" and change.call_id is not None:
            data = {
                "call_id": change.call_id,
                "incident_id": incident_id_for(change.call_id),
                "seq": change.seq,
            }
            return sse("turn", data)
        if change.incident_id is None:
            return RESYNC_MESSAGE
        try:
            view = await self._database().get_incident(change.incident_id)
        except DispatchError as exc:
            log.warning("live update not rendered (%s); pages will resync", exc)
            return RESYNC_MESSAGE
        if view is None:
            return RESYNC_MESSAGE
        kind = "created" if change.created else "updated"
        incident = incident_out(view).model_dump(mode="json")
        return sse("incident", {"kind": kind, "incident": incident})


def live_router(live: LiveEvents) -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["incidents"])

    @router.get(
        "/events",
        response_class=StreamingResponse,
        responses={
            200: {
                "content": {"text/event-stream": {}},
                "description": "Server-Sent Events: ready, incident, turn, resync",
            },
            401: {"description": "not logged in, or a bad token"},
            403: {"description": "this role may not watch the queue"},
        },
    )
    async def events(request: Request, principal: StaffPrincipal) -> StreamingResponse:
        """Every change to the queue, live, as Server-Sent Events."""
        return StreamingResponse(
            _stream(live),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    return router


async def _stream(live: LiveEvents) -> AsyncIterator[str]:
    with live.subscribe() as page:
        yield "retry: 1000\n" + sse("ready", {})
        ends_at = time.monotonic() + _MAX_STREAM_S
        while (left_s := ends_at - time.monotonic()) > 0:
            try:
                yield await asyncio.wait_for(page.get(), min(_KEEPALIVE_S, left_s))
            except TimeoutError:
                yield ": keep-alive\n\n"
