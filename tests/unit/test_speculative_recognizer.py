"""Speculative early decoding in CallRecognizer, driven by a scripted decoder.

The fake decoder "hears" one word per burst of tone in the audio it holds, so
a transcript shows exactly which audio was decoded. The frame source waits on
the decoder at chosen call times, which makes each timeline deterministic
without depending on the machine's speed.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np
import pytest

from asr.base import Recognition, SpeculativeDecoder, UtteranceDecoder
from asr.errors import AsrError
from asr.recognizer import CallRecognizer, SpeculationStats
from bench.corpus import silence_pcm
from callcenter.events import FRAME_BYTES, FRAME_MS, AudioFrame, Language, SpeechStarted, Transcript
from tests.unit.test_endpointer import tone

pytestmark = pytest.mark.unit

WORDS = ("fire", "upstairs", "hurry")
_WAIT_S = 10.0  # only guards against a hang; no test waits this long when it passes


def words_in(pcm: bytes) -> str:
    """One word per burst of sound (bursts split by 200 ms or more of silence)."""
    samples = np.frombuffer(pcm[: len(pcm) // FRAME_BYTES * FRAME_BYTES], dtype="<i2")
    frames = samples.reshape(-1, FRAME_BYTES // 2).astype(np.float64)
    loud = np.sqrt((frames**2).mean(axis=1)) > 300 if frames.size else np.zeros(0, bool)
    bursts, gap = 0, 10
    for voiced in loud:
        if voiced:
            bursts += gap >= 10
            gap = 0
        else:
            gap += 1
    return " ".join(WORDS[:bursts])


class ScriptedDecoder:
    """A `SpeculativeDecoder` that records its calls and can hold a `peek` until released."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.peeked: list[str] = []
        self.peek_padding_ms: list[int] = []
        self.peek_started = threading.Event()
        self.hold_first_peek: threading.Event | None = None
        self.fail_peek = False
        self._audio = bytearray()
        self._busy = threading.Lock()

    def accept(self, pcm: bytes) -> None:
        with self._one_at_a_time("accept"):
            self._audio += pcm

    def finish(self) -> Recognition:
        with self._one_at_a_time("finish"):
            text = words_in(bytes(self._audio))
            self._audio.clear()
            return _recognition(text)

    def peek(self, silence_after_ms: int) -> Recognition:
        with self._one_at_a_time("peek"):
            self.peek_started.set()
            self.peek_padding_ms.append(silence_after_ms)
            hold, self.hold_first_peek = self.hold_first_peek, None
            if hold is not None and not hold.wait(_WAIT_S):
                raise AssertionError("the held peek was never released")
            if self.fail_peek:
                raise RuntimeError("decoder crashed")
            text = words_in(bytes(self._audio))
            self.peeked.append(text)
            return _recognition(text)

    def reset(self) -> None:
        with self._one_at_a_time("reset"):
            self._audio.clear()

    def close(self) -> None:
        with self._one_at_a_time("close"):
            self._audio.clear()

    @contextmanager
    def _one_at_a_time(self, name: str) -> Iterator[None]:
        # Every decoder call runs in a worker, never two at once, never on the loop.
        assert threading.current_thread() is not threading.main_thread(), name
        assert self._busy.acquire(blocking=False), f"{name} overlapped another decoder call"
        try:
            self.calls.append(name)
            yield
        finally:
            self._busy.release()


class PlainDecoder:
    """A decoder without `peek`, like viet-asr's streaming one."""

    def __init__(self) -> None:
        self.inner = ScriptedDecoder()
        self.calls = self.inner.calls

    def accept(self, pcm: bytes) -> None:
        self.inner.accept(pcm)

    def finish(self) -> Recognition:
        return self.inner.finish()

    def close(self) -> None:
        self.inner.close()


class FakeTranscriber:
    name = "fake"

    def __init__(self, decoder: UtteranceDecoder) -> None:
        self.decoder = decoder

    def open_decoder(self, language: Language) -> UtteranceDecoder:
        return self.decoder

    def transcribe(self, pcm: bytes, language: Language) -> Recognition:
        raise AssertionError("not used by CallRecognizer")

    def close(self) -> None:
        pass


def _recognition(text: str) -> Recognition:
    return Recognition(
        text=text, confidence=0.9 if text else 0.0, engine="fake", language=Language.EN
    )


async def until(condition: Callable[[], bool]) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _WAIT_S
    while not condition():
        assert loop.time() < deadline, "timed out waiting on the decoder"
        await asyncio.sleep(0.002)


Waits = dict[int, Callable[[], bool]]


async def frames_of(pcm: bytes, waits: Waits | None = None) -> AsyncIterator[AudioFrame]:
    """20 ms frames; before the frame starting at a key of `waits`, wait for its condition."""
    for index in range(len(pcm) // FRAME_BYTES):
        start_ms = index * FRAME_MS
        if waits and start_ms in waits:
            await until(waits[start_ms])
        yield AudioFrame(pcm[index * FRAME_BYTES : (index + 1) * FRAME_BYTES], start_ms)
        await asyncio.sleep(0)


async def recognise(
    decoder: UtteranceDecoder,
    pcm: bytes,
    waits: Waits | None = None,
    speculative_after_ms: int | None = 200,
) -> tuple[list[SpeechStarted], list[Transcript], SpeculationStats]:
    started: list[SpeechStarted] = []
    transcripts: list[Transcript] = []

    async def emit(event: SpeechStarted | Transcript) -> None:
        if isinstance(event, SpeechStarted):
            started.append(event)
        else:
            transcripts.append(event)

    with ThreadPoolExecutor(2, thread_name_prefix="asr-test") as executor:
        recognizer = CallRecognizer(
            FakeTranscriber(decoder),
            Language.EN,
            executor,
            endpoint_silence_ms=500,
            min_utterance_ms=200,
            max_utterance_s=15.0,
            speculative_after_ms=speculative_after_ms,
        )
        await recognizer.run(frames_of(pcm, waits), emit)
    return started, transcripts, recognizer.speculation


# A caller's sentence: speech from 500 to 1300 ms, then silence. The pause is
# reported at 1500 ms (200 ms of silence), the end at 1800 ms (500 ms).
ONE_BURST = silence_pcm(500) + tone(800) + silence_pcm(1000)


def test_the_scripted_decoder_is_a_speculative_decoder() -> None:
    assert isinstance(ScriptedDecoder(), SpeculativeDecoder)
    assert not isinstance(PlainDecoder(), SpeculativeDecoder)


async def test_a_pause_that_ends_the_sentence_gives_the_early_result_without_decoding_again() -> (
    None
):
    decoder = ScriptedDecoder()
    # The early decode is done before the endpoint (as when decoding takes < 300 ms).
    started, transcripts, stats = await recognise(
        decoder, ONE_BURST, {1600: lambda: bool(decoder.peeked)}
    )
    assert [t.text for t in transcripts] == ["fire"]
    assert len(started) == 1
    assert transcripts[0].start_ms == started[0].start_ms
    # Decoded once, while the caller was silent; at the endpoint only a reset.
    after_peek = decoder.calls[decoder.calls.index("peek") + 1 :]
    assert "finish" not in decoder.calls
    assert "peek" not in after_peek
    assert "reset" in after_peek
    # Decoded as if the rest of the endpoint silence (500 - 200 ms) had followed.
    assert decoder.peek_padding_ms == [300]
    assert (stats.decoded, stats.used, stats.wasted) == (1, 1, 0)


async def test_a_caller_who_pauses_mid_sentence_gets_one_transcript_with_both_halves() -> None:
    # "fire" (500-1300 ms), a 300 ms pause, "upstairs" (1600-2400 ms), silence.
    pcm = silence_pcm(500) + tone(800) + silence_pcm(300) + tone(800) + silence_pcm(1000)
    decoder = ScriptedDecoder()
    release = threading.Event()
    decoder.hold_first_peek = release

    def release_after_resuming() -> bool:
        release.set()  # the half-sentence decode finishes after the caller spoke on
        return True

    waits: Waits = {
        1600: decoder.peek_started.is_set,  # the early decode of "fire" is under way
        2000: release_after_resuming,
    }
    started, transcripts, stats = await recognise(decoder, pcm, waits)
    assert decoder.peeked[0] == "fire"  # the speculative half-result existed...
    assert [t.text for t in transcripts] == ["fire upstairs"]  # ...and was never emitted
    assert len(started) == 1
    assert stats.wasted == 1


async def test_the_decoder_starts_afresh_after_an_early_result() -> None:
    decoder = ScriptedDecoder()
    pcm = ONE_BURST + tone(800) + silence_pcm(1000)  # a second sentence at 2300-3100 ms
    _, transcripts, stats = await recognise(decoder, pcm)
    assert [t.text for t in transcripts] == ["fire", "fire"]  # not "fire upstairs"
    assert stats.used == 2


async def test_a_hang_up_during_the_pause_still_gives_one_transcript() -> None:
    decoder = ScriptedDecoder()
    pcm = silence_pcm(500) + tone(800) + silence_pcm(260)
    _, transcripts, _ = await recognise(decoder, pcm)
    assert [t.text for t in transcripts] == ["fire"]


async def test_a_caller_who_pauses_then_hangs_up_while_speaking_gets_both_halves() -> None:
    # No pause closes this utterance: it ends when the frames stop, mid-word.
    pcm = silence_pcm(500) + tone(800) + silence_pcm(300) + tone(600)
    decoder = ScriptedDecoder()
    _, transcripts, _ = await recognise(decoder, pcm, {1600: lambda: bool(decoder.peeked)})
    assert decoder.peeked == ["fire"]
    assert [t.text for t in transcripts] == ["fire upstairs"]


@pytest.mark.parametrize(
    ("make_decoder", "speculative_after_ms"),
    [(ScriptedDecoder, None), (ScriptedDecoder, 0), (PlainDecoder, 200)],
    ids=["off", "zero", "decoder-cannot-peek"],
)
async def test_without_speculation_the_utterance_is_decoded_at_the_end(
    make_decoder: Callable[[], ScriptedDecoder | PlainDecoder], speculative_after_ms: int | None
) -> None:
    decoder = make_decoder()
    pcm = silence_pcm(500) + tone(800) + silence_pcm(300) + tone(800) + silence_pcm(1000)
    _, transcripts, stats = await recognise(decoder, pcm, speculative_after_ms=speculative_after_ms)
    assert [t.text for t in transcripts] == ["fire upstairs"]
    assert "peek" not in decoder.calls
    assert decoder.calls.count("finish") == 1
    assert stats.decoded == 0


async def test_a_failing_early_decode_reaches_the_session_as_asr_error() -> None:
    decoder = ScriptedDecoder()
    decoder.fail_peek = True
    with pytest.raises(AsrError, match="decoder crashed"):
        await recognise(decoder, ONE_BURST + silence_pcm(1000))
    assert decoder.calls[-1] == "close"
