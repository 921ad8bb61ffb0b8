"""A caller for the media-stream WebSocket (Twilio Media Streams JSON format).

Used by the `callbot call` CLI, the benchmarks and the end-to-end tests. It
behaves like a phone: once the call is up it sends a 20 ms frame of 8 kHz µ-law
every 20 ms (silence when nobody speaks, so the service's endpointer hears the
caller stop), plays the bot's audio on a simulated loudspeaker and echoes each
of the service's marks once the audio before it has been played. Everything it
receives is recorded with its monotonic arrival time.

    async with MediaStreamCall(url, line="114", lang="en") as call:
        await call.wait_for_mark("greeting", timeout_s=10)
        end_s = await call.speak(pcm16k)
        reply = await call.wait_for_mark(None, timeout_s=15, after_s=end_s)
        latency_s = call.first_media_after(end_s) - end_s

Needs `websockets>=13` (the `websockets.asyncio` API).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import contextlib
import itertools
import json
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self, TypeVar

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from callcenter.audio import (
    mulaw_decode,
    mulaw_encode,
    pcm_to_array,
    resample,
    rms_dbfs,
)
from callcenter.events import INTERNAL_RATE_HZ, CallbotError

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

LINE_RATE_HZ = 8000
FRAME_S = 0.020
LINE_FRAME_BYTES = 160  # 20 ms of 8 kHz µ-law
MULAW_SILENCE = b"\xff" * LINE_FRAME_BYTES
VOICED_FLOOR_DBFS = -45.0  # a 20 ms frame this loud or louder counts as speech...
VOICED_BELOW_PEAK_DB = 35.0  # ...unless it is this far below the loudest frame
_MAX_LAG_S = 0.2  # a sender this late restarts its clock instead of bursting


class MediaStreamError(CallbotError):
    """The media-stream call failed: could not connect, timed out, or closed."""


@dataclass(frozen=True, slots=True)
class BotMedia:
    """One chunk of the bot's voice as received (8 kHz µ-law)."""

    payload: bytes
    received_s: float  # time.monotonic()

    @property
    def duration_s(self) -> float:
        return len(self.payload) / LINE_RATE_HZ


@dataclass(slots=True)
class BotMark:
    """A mark the service sent after an utterance; `played_s` is when we echoed it."""

    name: str
    received_s: float
    played_s: float | None = None


@dataclass(frozen=True, slots=True)
class BotClear:
    """The service told us to drop queued bot audio (the caller barged in)."""

    received_s: float


@dataclass(slots=True)
class CallRecord:
    """Everything that happened on one call, in monotonic seconds."""

    stream_sid: str
    call_sid: str
    start_sent_s: float | None = None
    media: list[BotMedia] = field(default_factory=list)
    marks: list[BotMark] = field(default_factory=list)
    clears: list[BotClear] = field(default_factory=list)
    frames_sent: int = 0
    close_code: int | None = None
    closed_s: float | None = None
    closed_by_service: bool = False
    protocol_errors: int = 0


# ---------------------------------------------------------------- pure helpers


def line_frames(pcm16k: bytes) -> list[bytes]:
    """16 kHz int16 PCM to 160-byte µ-law 8 kHz frames (the last one padded)."""
    samples = pcm_to_array(pcm16k[: len(pcm16k) - len(pcm16k) % 2])
    if samples.size == 0:
        return []
    ulaw = mulaw_encode(resample(samples, INTERNAL_RATE_HZ, LINE_RATE_HZ))
    remainder = len(ulaw) % LINE_FRAME_BYTES
    if remainder:
        ulaw += MULAW_SILENCE[: LINE_FRAME_BYTES - remainder]
    return [ulaw[i : i + LINE_FRAME_BYTES] for i in range(0, len(ulaw), LINE_FRAME_BYTES)]


def last_voiced_frame(frames: Sequence[bytes]) -> int | None:
    """Index of the last frame loud enough to be speech (trailing silence trimmed).

    A frame is voiced above `VOICED_FLOOR_DBFS` and within `VOICED_BELOW_PEAK_DB`
    of the loudest frame, so a quiet recording's noise floor is not speech.
    """
    if not frames:
        return None
    levels = [rms_dbfs(mulaw_decode(frame)) for frame in frames]
    threshold = max(VOICED_FLOOR_DBFS, max(levels) - VOICED_BELOW_PEAK_DB)
    for index in range(len(levels) - 1, -1, -1):
        if levels[index] >= threshold and levels[index] > -100.0:
            return index
    return None


def mulaw_to_pcm16k(payload: bytes) -> bytes:
    """8 kHz µ-law to 16 kHz int16 PCM."""
    samples = resample(mulaw_decode(payload), LINE_RATE_HZ, INTERNAL_RATE_HZ)
    return bytes(samples.astype("<i2").tobytes())


# ---------------------------------------------------------------- the call


@dataclass(slots=True)
class _Utterance:
    frames: list[bytes]
    voiced_index: int | None
    realtime: bool
    done: asyncio.Future[float]
    next_index: int = 0
    voiced_sent_s: float | None = None


class MediaStreamCall:
    """One call to the media-stream gateway, as an async context manager.

    `continuous=True` (the default) sends silence frames whenever nothing is
    being said, like a phone line; with `False` frames flow only during
    `speak`/`silence`. `simulate_playback=True` echoes each mark once the bot
    audio received before it would have finished playing; with `False` marks
    are echoed as soon as they arrive.
    """

    def __init__(
        self,
        url: str,
        *,
        line: str = "113",
        lang: str = "vi",
        caller_number: str | None = "0912345678",
        continuous: bool = True,
        simulate_playback: bool = True,
        connect_timeout_s: float = 5.0,
        close_timeout_s: float = 2.0,
    ) -> None:
        self.url = url
        self.line = line
        self.lang = lang
        self.caller_number = caller_number
        self.continuous = continuous
        self.simulate_playback = simulate_playback
        self.connect_timeout_s = connect_timeout_s
        self.close_timeout_s = close_timeout_s
        self.record = CallRecord(
            stream_sid="MZ" + uuid.uuid4().hex, call_sid="CA" + uuid.uuid4().hex
        )
        self._ws: ClientConnection | None = None
        self._sequence = itertools.count(1)
        self._chunk = 0
        self._send_lock = asyncio.Lock()
        self._changed = asyncio.Condition()
        self._queue: collections.deque[_Utterance] = collections.deque()
        self._queued = asyncio.Event()
        self._pending_marks: collections.deque[tuple[BotMark, float]] = collections.deque()
        self._marks_changed = asyncio.Event()
        self._play_end_s = 0.0
        self._hung_up = False
        self._tasks: list[asyncio.Task[None]] = []

    # -- lifecycle

    async def __aenter__(self) -> Self:
        await self.dial()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.hangup()

    async def dial(self) -> None:
        """Connect, send `connected` and `start`, and start the background tasks."""
        try:
            self._ws = await asyncio.wait_for(
                connect(
                    self.url,
                    open_timeout=self.connect_timeout_s,
                    close_timeout=self.close_timeout_s,
                    compression=None,
                    proxy=None,
                    max_size=1 << 20,
                ),
                timeout=self.connect_timeout_s + 1.0,
            )
        except (OSError, TimeoutError, WebSocketException) as exc:
            raise MediaStreamError(f"cannot connect to {self.url}: {exc}") from exc
        try:
            await self._send_opening()
        except (ConnectionClosed, OSError) as exc:
            await self._ws.close()
            self._hung_up = True
            raise MediaStreamError(f"{self.url} dropped the call at once: {exc}") from exc
        self.record.start_sent_s = time.monotonic()
        self._tasks = [
            asyncio.create_task(self._receive_loop(), name="media-client-receive"),
            asyncio.create_task(self._send_loop(), name="media-client-send"),
            asyncio.create_task(self._mark_loop(), name="media-client-marks"),
        ]

    async def _send_opening(self) -> None:
        """`connected`, then `start` with the call's custom parameters."""
        await self._send_json({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        parameters = {"line": self.line, "lang": self.lang}
        if self.caller_number is not None:
            parameters["from"] = self.caller_number
        sid = self.record.stream_sid
        await self._send_json(
            {
                "event": "start",
                "sequenceNumber": str(next(self._sequence)),
                "streamSid": sid,
                "start": {
                    "streamSid": sid,
                    "callSid": self.record.call_sid,
                    "accountSid": "local",
                    "tracks": ["inbound"],
                    "mediaFormat": {
                        "encoding": "audio/x-mulaw",
                        "sampleRate": LINE_RATE_HZ,
                        "channels": 1,
                    },
                    "customParameters": parameters,
                },
            }
        )

    async def hangup(self) -> None:
        """Stop sending, send `stop` (if the line is still open), close, end the tasks."""
        if self._hung_up:
            return
        self._hung_up = True
        senders = [t for t in self._tasks if t.get_name() != "media-client-receive"]
        for task in senders:  # no frame may follow `stop`
            task.cancel()
        if senders:  # bounded: on 3.11 a wait_for can swallow a cancellation
            await asyncio.wait(senders, timeout=2.0)
        ws = self._ws
        if ws is not None and self.record.closed_s is None:
            with contextlib.suppress(ConnectionClosed, OSError, TimeoutError):
                await asyncio.wait_for(
                    self._send_json(
                        {
                            "event": "stop",
                            "sequenceNumber": str(next(self._sequence)),
                            "streamSid": self.record.stream_sid,
                            "stop": {"accountSid": "local", "callSid": self.record.call_sid},
                        }
                    ),
                    timeout=self.close_timeout_s,
                )
            with contextlib.suppress(ConnectionClosed, OSError, TimeoutError):
                await asyncio.wait_for(ws.close(), timeout=self.close_timeout_s + 1.0)
        receivers = [t for t in self._tasks if t.get_name() == "media-client-receive"]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*receivers, return_exceptions=True), 1.0)
        for task in receivers:
            task.cancel()
        if receivers:
            await asyncio.wait(receivers, timeout=2.0)
        self._fail_queued(MediaStreamError("the call was hung up"))
        if self.record.closed_s is None:
            self.record.close_code = None if ws is None else ws.close_code
            self.record.closed_s = time.monotonic()
        async with self._changed:
            self._changed.notify_all()

    # -- caller side

    async def speak(self, pcm16k: bytes, *, realtime: bool = True) -> float:
        """Say `pcm16k` (16 kHz mono int16); return when the last voiced frame was sent.

        Frames are paced to the wall clock (20 ms apart) unless `realtime` is
        False. The returned monotonic time is the end of speech as the service
        can first know it: trailing silence in the clip is sent but not counted.
        An utterance with no voiced frame returns the time its last frame went.
        """
        frames = line_frames(pcm16k)
        return await self._say(frames, last_voiced_frame(frames), realtime=realtime)

    async def silence(self, seconds: float, *, realtime: bool = True) -> None:
        """Send `seconds` of silence frames explicitly (also with `continuous=False`)."""
        count = max(0, round(seconds / FRAME_S))
        await self._say([MULAW_SILENCE] * count, None, realtime=realtime)

    async def _say(self, frames: list[bytes], voiced_index: int | None, *, realtime: bool) -> float:
        if self._ws is None or self._hung_up:
            raise MediaStreamError("the call is not connected")
        if self.record.closed_s is not None:
            raise MediaStreamError(f"the service closed the call ({self.record.close_code})")
        if not frames:
            return time.monotonic()
        done: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._queue.append(_Utterance(frames, voiced_index, realtime, done))
        self._queued.set()
        queued_s = sum(len(u.frames) - u.next_index for u in self._queue) * FRAME_S
        bound_s = (queued_s if realtime else 0.0) + 10.0
        try:
            return await asyncio.wait_for(asyncio.shield(done), timeout=bound_s)
        except TimeoutError as exc:
            raise MediaStreamError(
                f"sending {len(frames)} frames took over {bound_s:.1f} s"
            ) from exc

    # -- waiting for the bot

    async def wait_for_mark(
        self,
        name: str | None,
        timeout_s: float,
        *,
        after_s: float | None = None,
        played: bool = True,
        skip: Sequence[str] = (),
    ) -> BotMark:
        """Wait for the service's mark `name` (None: any mark not in `skip`).

        Only marks received after `after_s` count (all marks when None). With
        `played` the wait lasts until the mark is echoed, i.e. the audio before
        it has been played. Raises `MediaStreamError` on timeout or when the
        call ends first.
        """

        def found() -> BotMark | None:
            for mark in self.record.marks:
                if after_s is not None and mark.received_s <= after_s:
                    continue
                wanted = (name is None and mark.name not in skip) or mark.name == name
                if wanted and (not played or mark.played_s is not None):
                    return mark
            return None

        return await self._wait_until(found, timeout_s, f"mark {name or 'any'!r}")

    async def wait_for_media(self, after_s: float, timeout_s: float) -> float:
        """Wait for the first bot audio received after `after_s`; return its arrival time."""
        return await self._wait_until(
            lambda: self.first_media_after(after_s), timeout_s, "bot audio"
        )

    async def wait_closed(self, timeout_s: float) -> int | None:
        """Wait until the socket closes (by either side); return the close code."""
        await self._wait_until(
            lambda: True if self.record.closed_s is not None else None, timeout_s, "close"
        )
        return self.record.close_code

    async def _wait_until(self, probe: Callable[[], _T | None], timeout_s: float, what: str) -> _T:
        async def wait() -> _T:
            async with self._changed:
                while True:
                    value = probe()
                    if value is not None:
                        return value
                    if self.record.closed_s is not None or self._hung_up:
                        raise MediaStreamError(
                            f"the call ended (code {self.record.close_code}) before {what}"
                        )
                    await self._changed.wait()

        try:
            return await asyncio.wait_for(wait(), timeout=timeout_s)
        except TimeoutError as exc:
            raise MediaStreamError(f"no {what} within {timeout_s:.1f} s") from exc

    # -- what was received

    def first_media_after(self, t_s: float) -> float | None:
        """Arrival time of the first bot audio chunk received after `t_s`, if any."""
        for chunk in self.record.media:
            if chunk.received_s > t_s:
                return chunk.received_s
        return None

    def bot_audio_pcm16k(self) -> bytes:
        """All bot audio received so far, back to back, as 16 kHz int16 PCM."""
        return mulaw_to_pcm16k(b"".join(chunk.payload for chunk in self.record.media))

    def time_to_greeting_s(self) -> float | None:
        """From `start` sent to the first bot audio received."""
        start = self.record.start_sent_s
        if start is None:
            return None
        first = self.first_media_after(start)
        return None if first is None else first - start

    # -- background tasks

    async def _send_json(self, message: dict[str, object]) -> None:
        if self._ws is None:
            raise MediaStreamError("the call is not connected")
        async with self._send_lock:
            await self._ws.send(json.dumps(message, separators=(",", ":")))

    async def _send_frame(self, frame: bytes) -> float:
        self._chunk += 1
        start = self.record.start_sent_s or time.monotonic()
        timestamp_ms = round((time.monotonic() - start) * 1000)
        await self._send_json(
            {
                "event": "media",
                "sequenceNumber": str(next(self._sequence)),
                "streamSid": self.record.stream_sid,
                "media": {
                    "track": "inbound",
                    "chunk": str(self._chunk),
                    "timestamp": str(timestamp_ms),
                    "payload": base64.b64encode(frame).decode("ascii"),
                },
            }
        )
        self.record.frames_sent += 1
        return time.monotonic()

    async def _send_loop(self) -> None:
        """One frame per 20 ms tick: the head utterance's next frame, else silence."""
        next_tick = time.monotonic()
        try:
            while True:
                utterance = self._queue[0] if self._queue else None
                if utterance is None:
                    if not self.continuous:
                        self._queued.clear()
                        await self._queued.wait()
                        next_tick = time.monotonic()
                        continue
                    await self._send_frame(MULAW_SILENCE)
                else:
                    index = utterance.next_index
                    sent_s = await self._send_frame(utterance.frames[index])
                    utterance.next_index += 1
                    if index == utterance.voiced_index:
                        utterance.voiced_sent_s = sent_s
                    if utterance.next_index == len(utterance.frames):
                        self._queue.popleft()
                        if not utterance.done.done():
                            utterance.done.set_result(utterance.voiced_sent_s or sent_s)
                    if not utterance.realtime:
                        next_tick = time.monotonic()
                        await asyncio.sleep(0)
                        continue
                next_tick += FRAME_S
                now = time.monotonic()
                if now - next_tick > _MAX_LAG_S:
                    next_tick = now
                await asyncio.sleep(max(0.0, next_tick - now))
        except (ConnectionClosed, OSError) as exc:
            self._fail_queued(MediaStreamError(f"the call closed while sending: {exc}"))

    def _fail_queued(self, error: MediaStreamError) -> None:
        while self._queue:
            utterance = self._queue.popleft()
            if not utterance.done.done():
                utterance.done.set_exception(error)
                utterance.done.exception()  # retrieved: nobody may be awaiting it

    async def _receive_loop(self) -> None:
        assert self._ws is not None
        try:
            async for message in self._ws:
                self._handle(message)
                async with self._changed:
                    self._changed.notify_all()
        except (ConnectionClosed, OSError):
            pass
        finally:
            self.record.close_code = self._ws.close_code
            self.record.closed_s = time.monotonic()
            self.record.closed_by_service = not self._hung_up
            self._marks_changed.set()
            async with self._changed:
                self._changed.notify_all()

    def _handle(self, message: str | bytes) -> None:
        now = time.monotonic()
        try:
            event = json.loads(message)
            kind = event["event"]
            if kind == "media":
                payload = base64.b64decode(event["media"]["payload"], validate=True)
                self.record.media.append(BotMedia(payload, now))
                self._play_end_s = max(self._play_end_s, now) + len(payload) / LINE_RATE_HZ
            elif kind == "mark":
                mark = BotMark(str(event["mark"]["name"]), now)
                self.record.marks.append(mark)
                due_s = self._play_end_s if self.simulate_playback else now
                self._pending_marks.append((mark, due_s))
                self._marks_changed.set()
            elif kind == "clear":
                self.record.clears.append(BotClear(now))
                self._play_end_s = now  # queued bot audio is dropped, marks come back now
                self._marks_changed.set()
            else:
                self.record.protocol_errors += 1
        except (ValueError, KeyError, TypeError, binascii.Error):
            self.record.protocol_errors += 1
            logger.warning("unreadable message from the service (%d bytes)", len(message))

    async def _mark_loop(self) -> None:
        """Echo each mark once the audio received before it has been played."""
        try:
            while True:
                if not self._pending_marks:
                    self._marks_changed.clear()
                    await self._marks_changed.wait()
                    continue
                mark, due_s = self._pending_marks[0]
                # after a `clear` the play-out end moves back to now: echo at once
                wait_s = min(due_s, self._play_end_s) - time.monotonic()
                if wait_s > 0:
                    self._marks_changed.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._marks_changed.wait(), timeout=wait_s)
                    continue
                await self._send_json(
                    {
                        "event": "mark",
                        "sequenceNumber": str(next(self._sequence)),
                        "streamSid": self.record.stream_sid,
                        "mark": {"name": mark.name},
                    }
                )
                self._pending_marks.popleft()
                mark.played_s = time.monotonic()
                async with self._changed:
                    self._changed.notify_all()
        except (ConnectionClosed, OSError):
            pass
