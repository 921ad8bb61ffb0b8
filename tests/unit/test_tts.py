"""Speech synthesis: the real pyttsx3/espeak-ng engine and the prompt cache."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import numpy as np
import pytest

from callcenter.audio import pcm_to_array
from callcenter.events import INTERNAL_RATE_HZ, Language, Speech
from tts import PromptCache, Pyttsx3Synthesizer, Synthesizer, TtsError

VI_SENTENCE = "Xin chào, đây là tổng đài cứu hỏa 114. Bạn cần giúp gì?"
EN_SENTENCE = "Hello, this is the fire and rescue line. What is your emergency?"


@pytest.fixture
def synth() -> Iterator[Pyttsx3Synthesizer]:
    engine = Pyttsx3Synthesizer(timeout_s=5.0)
    engine.start()
    yield engine
    engine.close()


def _audible(speech: Speech) -> bool:
    samples = pcm_to_array(speech.pcm)
    return bool(np.abs(samples.astype(np.int32)).max() > 1000)


@pytest.mark.component
@pytest.mark.parametrize(
    ("text", "language"), [(VI_SENTENCE, Language.VI), (EN_SENTENCE, Language.EN)]
)
async def test_sentence_gives_audible_16k_speech(
    synth: Pyttsx3Synthesizer, text: str, language: Language
) -> None:
    speech = await synth.synthesize(text, language)

    assert speech.language is language
    assert speech.text == text
    assert len(speech.pcm) % 2 == 0
    # A two-clause sentence lasts seconds, not a click and not a minute.
    assert 1500 < speech.duration_ms < 15_000
    assert _audible(speech)


@pytest.mark.component
async def test_vietnamese_voice_differs_from_english(synth: Pyttsx3Synthesizer) -> None:
    vi = await synth.synthesize(VI_SENTENCE, Language.VI)
    en = await synth.synthesize(VI_SENTENCE, Language.EN)

    assert synth.voice_ids[Language.VI].endswith("/vi")
    assert vi.pcm != en.pcm
    assert abs(vi.duration_ms - en.duration_ms) > 50 or vi.pcm[:32000] != en.pcm[:32000]


@pytest.mark.component
async def test_twenty_concurrent_requests_all_succeed(synth: Pyttsx3Synthesizer) -> None:
    texts = [f"Xe cứu hỏa số {i} đang đến." for i in range(20)]

    results = await asyncio.gather(*(synth.synthesize(t, Language.VI) for t in texts))

    assert [r.text for r in results] == texts
    assert all(r.duration_ms > 500 and _audible(r) for r in results)


@pytest.mark.component
async def test_closed_synthesizer_fails_fast(synth: Pyttsx3Synthesizer) -> None:
    synth.close()

    started = time.perf_counter()
    with pytest.raises(TtsError, match="not running"):
        await synth.synthesize("hello", Language.EN)
    assert time.perf_counter() - started < 0.5


@pytest.mark.component
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
async def test_dead_engine_thread_fails_fast(
    synth: Pyttsx3Synthesizer, monkeypatch: pytest.MonkeyPatch
) -> None:
    def die(*_args: object) -> bytes:
        raise SystemExit  # ends the engine thread like a fatal error would

    monkeypatch.setattr(synth, "_render", die)
    started = time.perf_counter()
    with pytest.raises(TtsError):
        await synth.synthesize("first", Language.EN)
    with pytest.raises(TtsError, match="not running"):
        await synth.synthesize("second", Language.EN)
    assert time.perf_counter() - started < 1.0


@pytest.mark.component
async def test_stuck_engine_times_out_then_fails_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    synth = Pyttsx3Synthesizer(timeout_s=0.3)
    synth.start()

    def hang(*_args: object) -> bytes:
        time.sleep(1.0)
        return b""

    monkeypatch.setattr(synth, "_render", hang)
    try:
        with pytest.raises(TtsError, match="timed out"):
            await synth.synthesize("first", Language.EN)
        await asyncio.sleep(0.05)
        started = time.perf_counter()
        with pytest.raises(TtsError, match="stuck"):
            await synth.synthesize("second", Language.EN)
        assert time.perf_counter() - started < 0.1
    finally:
        synth.close()


@pytest.mark.component
def test_only_one_engine_per_process(synth: Pyttsx3Synthesizer) -> None:
    with pytest.raises(TtsError, match="one engine per process"):
        Pyttsx3Synthesizer().start()


@pytest.mark.component
def test_unknown_voice_fails_at_start() -> None:
    synth = Pyttsx3Synthesizer(voices={Language.VI: "vi-klingon", Language.EN: "en"})
    with pytest.raises(TtsError, match="no voice 'vi-klingon'"):
        synth.start()
    synth.close()


# -- the prompt cache, with a fake engine --------------------------------------


class CountingSynth:
    """A `Synthesizer` that returns 100 ms of silence and counts its calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Language]] = []

    async def synthesize(self, text: str, language: Language) -> Speech:
        self.calls.append((text, language))
        pcm = bytes(2 * INTERNAL_RATE_HZ // 10)
        return Speech(pcm=pcm, text=text, language=language)


@pytest.mark.unit
async def test_cache_serves_prompts_without_the_engine() -> None:
    fake = CountingSynth()
    engine: Synthesizer = fake
    cache = PromptCache(engine)
    await cache.warm([("Địa chỉ ở đâu?", Language.VI), ("Where is it?", Language.EN)])
    assert len(fake.calls) == 2

    first = await cache.speak("Địa chỉ ở đâu?", Language.VI)
    again = await cache.speak("Địa chỉ ở đâu?", Language.VI)

    assert len(fake.calls) == 2
    assert first is again
    assert len(cache) == 2


@pytest.mark.unit
async def test_cache_keys_on_language_and_keeps_a_bounded_lru() -> None:
    fake = CountingSynth()
    cache = PromptCache(fake, max_recent=2)
    await cache.warm([("OK", Language.EN)])

    await cache.speak("OK", Language.VI)  # same text, other language: not the prompt
    await cache.speak("a", Language.EN)
    await cache.speak("OK", Language.VI)  # recent hit, becomes most recent
    await cache.speak("b", Language.EN)  # evicts "a"
    await cache.speak("a", Language.EN)  # synthesised again

    assert fake.calls == [
        ("OK", Language.EN),
        ("OK", Language.VI),
        ("a", Language.EN),
        ("b", Language.EN),
        ("a", Language.EN),
    ]
    assert len(cache) == 3  # one prompt + two recent


@pytest.mark.component
async def test_cache_over_real_engine_returns_prompt_instantly(
    synth: Pyttsx3Synthesizer,
) -> None:
    cache = PromptCache(synth)
    await cache.warm([(VI_SENTENCE, Language.VI)])

    started = time.perf_counter()
    speech = await cache.speak(VI_SENTENCE, Language.VI)

    assert time.perf_counter() - started < 0.005
    assert speech.duration_ms > 1500
