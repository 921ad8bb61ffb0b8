"""Audio between pjsip's media clock and asyncio, one `CallAudio` per call leg.

pjsip calls `received` and `next_frame` from its media clock thread every
20 ms; both only touch a deque or hand bytes to the event loop with
`call_soon_threadsafe`, so they cost microseconds. Everything else runs on the
event loop. Frames are 16 kHz mono int16 (pjsip's conference bridge resamples
G.711's 8 kHz), 640 bytes.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from callcenter.events import FRAME_BYTES

log = logging.getLogger(__name__)

_V = TypeVar("_V")  # what the media port hands back to pjsip (a pjsua2 ByteVector)

INBOUND_FRAMES = 100  # 2 s of caller audio waiting for the session before frames are dropped
OUTBOUND_FRAMES = 500  # 10 s of bot audio queued before the oldest is dropped
PRIME_FRAMES = 2  # an utterance starts playing once this many frames wait (absorbs jitter)


@dataclass(slots=True)
class AudioCounters:
    """What one call leg's audio did, logged when the call ends."""

    frames_in: int = 0
    dropped_in: int = 0  # the session was more than INBOUND_FRAMES behind
    frames_out: int = 0  # frames of bot audio played
    underruns: int = 0  # frames of silence inserted in the middle of an utterance
    dropped_out: int = 0


class CallAudio(Generic[_V]):
    """Frames in both directions for one call leg.

    `to_vector` turns 640 bytes into what the media port returns to pjsip; it
    runs on the event loop so that the media clock thread only pops a ready
    object.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        to_vector: Callable[[bytes], _V],
        *,
        inbound_frames: int = INBOUND_FRAMES,
        outbound_frames: int = OUTBOUND_FRAMES,
    ) -> None:
        self._loop = loop
        self._to_vector = to_vector
        self.inbound: asyncio.Queue[bytes] = asyncio.Queue(maxsize=inbound_frames)
        self._outbound: deque[_V] = deque()
        self._outbound_max = outbound_frames
        self._speaking = False  # between the first frame of an utterance and its mark
        self._priming = False  # holding back the start of an utterance until PRIME_FRAMES wait
        self.counters = AudioCounters()
        self.closed = False

    # ----- media clock thread -----------------------------------------
    def received(self, pcm: bytes) -> None:
        """One frame of the far end's audio (media clock thread)."""
        if self.closed:
            return
        try:
            self._loop.call_soon_threadsafe(self._deliver, pcm)
        except RuntimeError:  # the event loop is closed: the service is stopping
            self.closed = True

    def next_frame(self) -> _V | None:
        """The next frame to send, or None for silence (media clock thread)."""
        if self._priming:
            if len(self._outbound) < PRIME_FRAMES:
                return None
            self._priming = False
        try:
            frame = self._outbound.popleft()
        except IndexError:
            if self._speaking:
                self.counters.underruns += 1
                self._priming = True  # the audio came late: buffer a little again
            return None
        self.counters.frames_out += 1
        return frame

    # ----- event loop ----------------------------------------------------
    def _deliver(self, pcm: bytes) -> None:
        self.counters.frames_in += 1
        try:
            self.inbound.put_nowait(pcm)
        except asyncio.QueueFull:
            self.counters.dropped_in += 1
            if self.counters.dropped_in in (1, 50, 500):
                log.warning(
                    "caller audio dropped: the call is %d frames behind (%d dropped so far)",
                    self.inbound.qsize(),
                    self.counters.dropped_in,
                )

    def play(self, pcm: bytes) -> None:
        """Queue one 20 ms frame of audio for the far end."""
        if len(pcm) != FRAME_BYTES:
            pcm = pcm[:FRAME_BYTES].ljust(FRAME_BYTES, b"\0")
        if len(self._outbound) >= self._outbound_max:
            self._outbound.popleft()
            self.counters.dropped_out += 1
        if not self._speaking and not self._outbound:
            self._priming = True
        self._outbound.append(self._to_vector(pcm))
        self._speaking = True

    def end_of_utterance(self) -> None:
        """The last frame of an utterance is queued: silence after it is no gap."""
        self._speaking = False
        self._priming = False  # a short utterance plays out whole

    def clear(self) -> None:
        """Drop what is queued and not yet played (barge-in)."""
        self._speaking = False
        self._priming = False
        self._outbound.clear()

    @property
    def queued_frames(self) -> int:
        return len(self._outbound)


class SipCallOutput(Generic[_V]):
    """The bot's side of a SIP call, as the session's `CallOutput`."""

    def __init__(
        self,
        audio: CallAudio[_V],
        hang_up: Callable[[str], None],
        on_first_audio: Callable[[], None] | None = None,
    ) -> None:
        self._audio = audio
        self._hang_up = hang_up
        self._on_first_audio = on_first_audio
        self.closed = False

    async def send_audio(self, pcm: bytes) -> None:
        if self.closed:
            return
        self._audio.play(pcm)
        if self._on_first_audio is not None:
            first, self._on_first_audio = self._on_first_audio, None
            first()

    async def send_mark(self, name: str) -> None:
        self._audio.end_of_utterance()

    async def clear(self) -> None:
        self._audio.clear()

    async def close(self, reason: str) -> None:
        """The bot ends the call: BYE from our side (once)."""
        if not self.closed:
            self.closed = True
            self._hang_up(reason)
