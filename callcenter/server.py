"""The HTTP server, with a graceful stop for calls in progress."""

from __future__ import annotations

import asyncio
from types import FrameType

import uvicorn

from callcenter.center import CallCenter


class GracefulServer(uvicorn.Server):
    """On SIGTERM or Ctrl-C, first hand every call in progress to a human (the
    caller hears the hold prompt; new calls are refused so that a balancer sends
    them elsewhere), then stop. A second signal stops at once."""

    def __init__(self, config: uvicorn.Config, center: CallCenter) -> None:
        super().__init__(config)
        self._center = center
        self._draining = False
        self._drain_task: asyncio.Task[None] | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._draining:
            super().handle_exit(sig, frame)
            return
        self._draining = True
        loop = asyncio.get_event_loop()
        loop.call_soon_threadsafe(self._start_drain, sig, frame)

    def _start_drain(self, sig: int, frame: FrameType | None) -> None:
        self._drain_task = asyncio.get_running_loop().create_task(self._drain(sig, frame))

    async def _drain(self, sig: int, frame: FrameType | None) -> None:
        try:
            await self._center.hand_off_all()
        finally:
            super().handle_exit(sig, frame)
