"""Plays the bot's speech to a call, paced to the clock, interruptible."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from callcenter.events import FRAME_BYTES, FRAME_MS, Speech

log = logging.getLogger(__name__)


class CallOutput(Protocol):
    """What a gateway offers the session for the bot's side of the call."""

    async def send_audio(self, pcm: bytes) -> None:
        """One 20 ms frame of 16 kHz int16 audio."""
        ...

    async def send_mark(self, name: str) -> None: ...

    async def clear(self) -> None:
        """Drop audio already sent but not yet played (barge-in)."""
        ...

    async def close(self, reason: str) -> None: ...


@dataclass(frozen=True, slots=True)
class _Utterance:
    speech: Speech
    mark: str
    on_first_audio: Callable[[float], None] | None


class Player:
    """Sends queued utterances frame by frame, at most `lead_ms` ahead of real time."""

    def __init__(
        self,
        output: CallOutput,
        *,
        lead_ms: int = 100,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._output = output
        self._lead_s = lead_ms / 1000
        self._clock = clock
        self._queue: asyncio.Queue[_Utterance] = asyncio.Queue(maxsize=32)
        self._playing = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._interrupted = False
        self.finished_at = clock()

    @property
    def speaking(self) -> bool:
        return not self._idle.is_set()

    def enqueue(
        self,
        speech: Speech,
        mark: str,
        on_first_audio: Callable[[float], None] | None = None,
    ) -> None:
        self._idle.clear()
        self._queue.put_nowait(_Utterance(speech, mark, on_first_audio))

    async def interrupt(self) -> bool:
        """Stop what is playing and drop the queue; True if anything was playing."""
        if not self.speaking:
            return False
        while not self._queue.empty():
            self._queue.get_nowait()
        self._interrupted = True
        await self._output.clear()
        return True

    async def wait_idle(self) -> None:
        await self._idle.wait()

    async def wait_heard(self) -> None:
        """Until everything queued was sent and has had time to play (we send up to
        `lead_ms` ahead): call this before hanging up, so the last words are heard."""
        await self._idle.wait()
        await asyncio.sleep(self._lead_s + 0.1)

    async def run(self) -> None:
        while True:
            utterance = await self._queue.get()
            self._interrupted = False
            await self._play(utterance)
            if self._queue.empty():
                self.finished_at = self._clock()
                self._idle.set()

    async def _play(self, utterance: _Utterance) -> None:
        pcm = utterance.speech.pcm
        started = self._clock()
        for index, offset in enumerate(range(0, len(pcm), FRAME_BYTES)):
            if self._interrupted:
                log.debug("playback of %s interrupted", utterance.mark)
                return
            due = started + index * FRAME_MS / 1000 - self._lead_s
            delay = due - self._clock()
            if delay > 0:
                await asyncio.sleep(delay)
                if self._interrupted:  # interrupted while waiting for the frame's time
                    return
            frame = pcm[offset : offset + FRAME_BYTES]
            if len(frame) < FRAME_BYTES:
                frame = frame + bytes(FRAME_BYTES - len(frame))
            await self._output.send_audio(frame)
            if index == 0 and utterance.on_first_audio is not None:
                utterance.on_first_audio(self._clock())
        if not self._interrupted:
            await self._output.send_mark(utterance.mark)
