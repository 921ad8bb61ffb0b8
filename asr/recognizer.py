"""One call's speech recogniser: endpointing on the event loop, decoding in workers.

`CallRecognizer.run` reads the caller's frames, runs the (cheap, pure)
endpointer inline, emits `SpeechStarted` at once (barge-in), and hands the
utterance's audio to the call's decoder through a small in-order work lane: a
second task that makes every decoder call (`accept`, `finish`, `close`) in the
executor, one at a time. Audio accumulates while the previous decoder call
runs, so feeding keeps up in real time with few executor hops; at the
endpoint the lane finishes the utterance and emits a final `Transcript`.

Speculative early decoding, for decoders that can `peek` (Whisper, which
decodes only at the end and takes most of a second to do it): when the caller
has been silent for `speculative_after_ms` inside an utterance (the
endpointer's `SpeechPaused`), the lane decodes the audio so far. If the
endpoint follows with no voiced audio in between, that result is the
utterance's transcript and the decoder is only reset, so the transcript comes
`endpoint_silence_ms - speculative_after_ms` sooner. If the caller speaks
again first, the result is dropped (never emitted) and the decoder, which
kept all the audio, goes on; a later pause may speculate again. A dropped
speculation costs CPU and can delay the lane by what is left of its decode.

`SpeechStarted` of the next utterance may reach `emit` before the
`Transcript` of the previous one while that is still decoding: the times in
both events say which utterance is which.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from asr.base import Recognition, SpeculativeDecoder, Transcriber, UtteranceDecoder
from asr.endpointer import (
    Endpointer,
    EndpointerConfig,
    EndpointEvent,
    SpeechBegan,
    SpeechContinues,
    SpeechEnded,
    SpeechPaused,
)
from asr.errors import AsrError
from callcenter.events import INTERNAL_RATE_HZ, AudioFrame, Language, SpeechStarted, Transcript

log = logging.getLogger(__name__)

Emit = Callable[[SpeechStarted | Transcript], Awaitable[None]]
_T = TypeVar("_T")

# Audio is handed to the decoder in batches of at least this much; viet-asr
# keeps up better with 100 ms chunks when a busy Python thread shares the GIL.
ACCEPT_BATCH_MS = 100
_BATCH_BYTES = ACCEPT_BATCH_MS * INTERNAL_RATE_HZ * 2 // 1000

# Silence inside an utterance after which a speculative decode starts.
DEFAULT_SPECULATIVE_AFTER_MS = 200


@dataclass(slots=True)
class SpeculationStats:
    """How one call's speculative decodes went; updated while the call runs."""

    decoded: int = 0  # early decodes made
    used: int = 0  # utterances whose transcript came from an early decode

    @property
    def wasted(self) -> int:
        """Early decodes dropped because the caller spoke on."""
        return self.decoded - self.used


@dataclass(slots=True)
class _Speculation:
    """An early decode of the utterance so far, asked for when the caller paused.

    Only the event loop touches it: the reader marks it abandoned when voiced
    audio follows; the lane stores the result.
    """

    paused_at_ms: int
    silence_to_endpoint_ms: int  # decoded as if this much more silence followed
    abandoned: bool = False
    result: Recognition | None = None


@dataclass(frozen=True, slots=True)
class _Endpoint:
    start_ms: int
    end_ms: int
    reason: str
    detected_at_s: float  # time.perf_counter() when the end was detected
    speculation: _Speculation | None  # still valid: no voiced audio since its pause


class _Stop:
    """No more jobs: the frames ended."""


_Job = bytes | _Speculation | _Endpoint | _Stop


class CallRecognizer:
    """Turns one call's audio frames into `SpeechStarted` and final `Transcript` events."""

    def __init__(
        self,
        transcriber: Transcriber,
        language: Language,
        executor: concurrent.futures.Executor,
        *,
        endpoint_silence_ms: int,
        min_utterance_ms: int,
        max_utterance_s: float,
        speculative_after_ms: int | None = DEFAULT_SPECULATIVE_AFTER_MS,
        call_id: str = "-",
    ) -> None:
        """`speculative_after_ms`: silence after which to decode early; None or 0: never.

        It applies only to decoders that implement `SpeculativeDecoder`, and only
        when shorter than `endpoint_silence_ms`.
        """
        self._transcriber = transcriber
        self._language = language
        self._executor = executor
        self._config = EndpointerConfig(
            endpoint_silence_ms=endpoint_silence_ms,
            min_utterance_ms=min_utterance_ms,
            max_utterance_s=max_utterance_s,
        )
        self._speculative_after_ms = speculative_after_ms or None
        self._log = logging.LoggerAdapter(log, {"call_id": call_id})
        self.speculation = SpeculationStats()

    async def run(self, frames: AsyncIterator[AudioFrame], emit: Emit) -> None:
        """Consume `frames` until they end; raises AsrError when the decoder fails.

        A decoder failure is noticed at the next frame; the decoder is always
        closed, after any decoder call still running in a worker.
        """
        decoder = await _in_worker(self._executor, self._transcriber.open_decoder, self._language)
        speculative = isinstance(decoder, SpeculativeDecoder)
        config = dataclasses.replace(
            self._config, pause_after_ms=self._speculative_after_ms if speculative else None
        )
        lane = _DecoderLane(decoder, self._executor, emit, self._log, self.speculation)
        task = asyncio.create_task(lane.run(), name="asr-decoder-lane")
        try:
            await self._read(frames, emit, lane, task, Endpointer(config))
            lane.push(_Stop())
            await task
        finally:
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            await lane.close()
            if self.speculation.decoded:
                self._log.info(
                    "speculative decodes: %d, used %d, wasted %d",
                    self.speculation.decoded,
                    self.speculation.used,
                    self.speculation.wasted,
                )

    async def _read(
        self,
        frames: AsyncIterator[AudioFrame],
        emit: Emit,
        lane: _DecoderLane,
        task: asyncio.Task[None],
        endpointer: Endpointer,
    ) -> None:
        pending = bytearray()
        speech_start_ms = 0
        speculation: _Speculation | None = None

        async def handle(events: list[EndpointEvent]) -> None:
            nonlocal speech_start_ms, speculation
            for event in events:
                if isinstance(event, SpeechBegan):
                    speech_start_ms = event.start_ms
                    pending.extend(event.preroll)
                    await emit(SpeechStarted(start_ms=event.start_ms))
                elif isinstance(event, SpeechContinues):
                    pending.extend(event.pcm)
                    if event.voiced and speculation is not None:
                        self._log.debug(
                            "caller spoke on after the pause at %d ms: early decode dropped",
                            speculation.paused_at_ms,
                        )
                        speculation.abandoned = True
                        speculation = None
                elif isinstance(event, SpeechPaused):
                    lane.push(bytes(pending))
                    pending.clear()
                    speculation = _Speculation(
                        event.at_ms, endpointer.config.endpoint_silence_ms - event.silence_ms
                    )
                    lane.push(speculation)
                else:
                    lane.push(bytes(pending))
                    pending.clear()
                    lane.push(_endpoint(speech_start_ms, event, speculation))
                    speculation = None
            if len(pending) >= _BATCH_BYTES:
                lane.push(bytes(pending))
                pending.clear()

        async for frame in frames:
            if task.done():
                return  # the lane failed; awaiting it raises the error
            await handle(endpointer.process(frame.pcm, frame.start_ms))
        await handle(endpointer.flush())


def _endpoint(start_ms: int, ended: SpeechEnded, speculation: _Speculation | None) -> _Endpoint:
    return _Endpoint(start_ms, ended.end_ms, ended.reason, time.perf_counter(), speculation)


class _DecoderLane:
    """Makes one call's decoder calls in the executor, strictly one after another."""

    def __init__(
        self,
        decoder: UtteranceDecoder,
        executor: concurrent.futures.Executor,
        emit: Emit,
        logger: logging.LoggerAdapter[logging.Logger],
        stats: SpeculationStats,
    ) -> None:
        self._decoder = decoder
        self._speculative = decoder if isinstance(decoder, SpeculativeDecoder) else None
        self._stats = stats
        self._executor = executor
        self._emit = emit
        self._log = logger
        self._jobs: deque[_Job] = deque()
        self._wakeup = asyncio.Event()
        self._last_call: concurrent.futures.Future[Any] | None = None

    def push(self, job: _Job) -> None:
        if isinstance(job, bytes) and not job:
            return
        self._jobs.append(job)
        self._wakeup.set()

    async def run(self) -> None:
        while True:
            job = await self._next_job()
            if isinstance(job, _Stop):
                return
            if isinstance(job, bytes):
                await self._call(self._decoder.accept, job + self._take_queued_audio())
            elif isinstance(job, _Speculation):
                await self._speculate(job)
            else:
                recognition, early = await self._finish(job)
                await self._emit_transcript(job, recognition, early)

    async def _speculate(self, speculation: _Speculation) -> None:
        if speculation.abandoned or self._speculative is None:
            return  # the caller spoke on before the lane got to it
        self._stats.decoded += 1
        speculation.result = await self._call(
            self._speculative.peek, speculation.silence_to_endpoint_ms
        )

    async def _finish(self, endpoint: _Endpoint) -> tuple[Recognition, bool]:
        """The utterance's recognition, and whether it came from an early decode."""
        speculation = endpoint.speculation
        if (
            self._speculative is not None
            and speculation is not None
            and not speculation.abandoned
            and speculation.result is not None
        ):
            # Nothing voiced since the pause: the decoder holds only silence more.
            await self._call(self._speculative.reset)
            self._stats.used += 1
            return speculation.result, True
        return await self._call(self._decoder.finish), False

    async def close(self) -> None:
        """Close the decoder once any call still running in a worker is over."""
        previous = self._last_call
        decoder = self._decoder

        def close_after_previous() -> None:
            if previous is not None:
                concurrent.futures.wait([previous])
            decoder.close()

        future = self._executor.submit(close_after_previous)
        try:
            await asyncio.shield(asyncio.wrap_future(future))
        except Exception:  # closing must not hide the error that ended the call
            self._log.warning("closing the ASR decoder failed", exc_info=True)

    async def _next_job(self) -> _Job:
        while not self._jobs:
            self._wakeup.clear()
            await self._wakeup.wait()
        return self._jobs.popleft()

    def _take_queued_audio(self) -> bytes:
        """Audio that queued up while the previous decoder call ran goes in one batch."""
        chunks: list[bytes] = []
        while self._jobs:
            head = self._jobs[0]
            if not isinstance(head, bytes):
                break
            chunks.append(head)
            self._jobs.popleft()
        return b"".join(chunks)

    async def _call(self, function: Callable[..., _T], *args: object) -> _T:
        future = _submit(self._executor, function, *args)
        self._last_call = future
        return await asyncio.wrap_future(future)

    async def _emit_transcript(
        self, endpoint: _Endpoint, recognition: Recognition, early: bool
    ) -> None:
        decode_ms = (time.perf_counter() - endpoint.detected_at_s) * 1000.0
        if not recognition.text:
            self._log.debug(
                "empty recognition for speech %d-%d ms (%s), not emitted",
                endpoint.start_ms,
                endpoint.end_ms,
                endpoint.reason,
            )
            return
        self._log.info(
            "utterance %d-%d ms (%s): %d chars, confidence %.2f, %.0f ms after the end, %s%s",
            endpoint.start_ms,
            endpoint.end_ms,
            endpoint.reason,
            len(recognition.text),
            recognition.confidence,
            decode_ms,
            recognition.engine,
            " (speculative)" if early else "",
        )
        self._log.debug("transcript: %s", recognition.text)
        await self._emit(
            Transcript(
                text=recognition.text,
                language=recognition.language,
                is_final=True,
                confidence=recognition.confidence,
                start_ms=endpoint.start_ms,
                end_ms=endpoint.end_ms,
                engine=recognition.engine,
                decode_ms=decode_ms,
            )
        )


def _submit(
    executor: concurrent.futures.Executor, function: Callable[..., _T], *args: object
) -> concurrent.futures.Future[_T]:
    """Submit one decoder call; any error it raises reaches the caller as AsrError."""

    def call() -> _T:
        try:
            return function(*args)
        except AsrError:
            raise
        except Exception as exc:  # an engine bug must reach the session as an ASR failure
            raise AsrError(f"ASR decoder call failed: {exc!r}") from exc

    return executor.submit(call)


async def _in_worker(
    executor: concurrent.futures.Executor, function: Callable[..., _T], *args: object
) -> _T:
    return await asyncio.wrap_future(_submit(executor, function, *args))
