"""The endpointer cuts caller audio into utterances the way a call-taker would hear them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from asr.endpointer import (
    Endpointer,
    EndpointerConfig,
    EndpointEvent,
    SpeechBegan,
    SpeechContinues,
    SpeechEnded,
    SpeechPaused,
)
from bench.corpus import espeak_pcm, phone_band, silence_pcm
from callcenter.events import FRAME_BYTES, FRAME_MS, INTERNAL_RATE_HZ

pytestmark = pytest.mark.unit

RATE = INTERNAL_RATE_HZ


@dataclass(frozen=True, slots=True)
class Utterance:
    start_ms: int
    end_ms: int
    reason: str
    audio_bytes: int


def segment(pcm: bytes, config: EndpointerConfig | None = None) -> list[Utterance]:
    """Feed `pcm` in 20 ms frames, then flush; collect the utterances."""
    endpointer = Endpointer(config)
    found: list[Utterance] = []
    start_ms: int | None = None
    audio = 0

    def take(events: list[EndpointEvent]) -> None:
        nonlocal start_ms, audio
        for event in events:
            if isinstance(event, SpeechBegan):
                assert start_ms is None, "speech began twice"
                start_ms, audio = event.start_ms, len(event.preroll)
            elif isinstance(event, SpeechContinues):
                assert start_ms is not None, "audio outside an utterance"
                audio += len(event.pcm)
            elif isinstance(event, SpeechPaused):
                assert start_ms is not None, "a pause outside an utterance"
            else:
                assert start_ms is not None, "speech ended before it began"
                found.append(Utterance(start_ms, event.end_ms, event.reason, audio))
                start_ms = None

    whole = len(pcm) // FRAME_BYTES * FRAME_BYTES
    for offset in range(0, whole, FRAME_BYTES):
        take(endpointer.process(pcm[offset : offset + FRAME_BYTES], offset // FRAME_BYTES * 20))
    take(endpointer.flush())
    return found


def tone(duration_ms: int, level_dbfs: float = -20.0, freq_hz: float = 220.0) -> bytes:
    """A vowel-like harmonic tone with a syllable rhythm (4 Hz amplitude wobble)."""
    t = np.arange(duration_ms * RATE // 1000) / RATE
    wave = sum(np.sin(2 * np.pi * freq_hz * k * t) / k for k in range(1, 6))
    wave *= 0.6 + 0.4 * np.sin(2 * np.pi * 4 * t)
    wave /= np.sqrt(np.mean(wave**2))
    amplitude = 32768 * 10 ** (level_dbfs / 20)
    return bytes(np.clip(wave * amplitude, -32768, 32767).astype("<i2").tobytes())


def syllables(duration_ms: int, level_dbfs: float = -20.0) -> bytes:
    """Speech-like rhythm: 220 ms voiced syllables separated by 80 ms gaps."""
    out = b""
    while len(out) < duration_ms * 32:
        out += tone(220, level_dbfs) + silence_pcm(80)
    return out[: duration_ms * 32]


def noise(duration_ms: int, level_dbfs: float, seed: int = 1) -> bytes:
    rng = np.random.default_rng(seed)
    amplitude = 32768 * 10 ** (level_dbfs / 20)
    samples = rng.normal(0.0, amplitude, duration_ms * RATE // 1000)
    return bytes(np.clip(samples, -32768, 32767).astype("<i2").tobytes())


def mix(a: bytes, b: bytes) -> bytes:
    x = np.frombuffer(a, dtype="<i2").astype(np.int32)
    y = np.frombuffer(b, dtype="<i2").astype(np.int32)
    n = min(x.size, y.size)
    return bytes(np.clip(x[:n] + y[:n], -32768, 32767).astype("<i2").tobytes())


@pytest.fixture(scope="module")
def fire_sentence() -> bytes:
    return espeak_pcm("There is a fire on the third floor of my building")


@pytest.fixture(scope="module")
def breathing_sentence() -> bytes:
    return espeak_pcm("My neighbour is not breathing, please come quickly")


def test_one_tone_between_silences_is_one_utterance_with_its_times() -> None:
    pcm = silence_pcm(1000) + tone(1200) + silence_pcm(1500)
    [utterance] = segment(pcm)
    assert utterance.reason == "silence"
    assert abs(utterance.start_ms - 1000) <= FRAME_MS
    assert abs(utterance.end_ms - 2200) <= FRAME_MS
    # Pre-roll (300 ms) + speech + the 500 ms hangover reach the decoder.
    assert utterance.audio_bytes >= (300 + 1200 + 500 - FRAME_MS) * 32


def test_end_is_declared_after_the_configured_silence() -> None:
    config = EndpointerConfig(endpoint_silence_ms=800)
    endpointer = Endpointer(config)
    pcm = tone(600) + silence_pcm(2000)
    ended_at_ms = None
    for index in range(len(pcm) // FRAME_BYTES):
        frame = pcm[index * FRAME_BYTES : (index + 1) * FRAME_BYTES]
        events = endpointer.process(frame, index * FRAME_MS)
        if any(isinstance(e, SpeechEnded) for e in events):
            ended_at_ms = (index + 1) * FRAME_MS
            break
    assert ended_at_ms == 600 + 800


def test_a_short_pause_inside_speech_does_not_split_it() -> None:
    pcm = silence_pcm(500) + tone(800) + silence_pcm(300) + tone(800) + silence_pcm(1000)
    [utterance] = segment(pcm)
    assert abs(utterance.end_ms - 2400) <= FRAME_MS


def test_clicks_shorter_than_min_utterance_are_ignored() -> None:
    click = tone(60, level_dbfs=-10.0)
    pcm = silence_pcm(500) + click + silence_pcm(700) + click + silence_pcm(700)
    assert segment(pcm, EndpointerConfig(min_utterance_ms=200)) == []
    # The same burst counts once it is long enough.
    assert len(segment(silence_pcm(500) + tone(300) + silence_pcm(700))) == 1


def test_speech_longer_than_max_length_is_cut() -> None:
    pcm = silence_pcm(300) + syllables(7000) + silence_pcm(1000)
    utterances = segment(pcm, EndpointerConfig(max_utterance_s=3.0))
    assert [u.reason for u in utterances][:2] == ["max_length", "max_length"]
    assert all(u.end_ms - u.start_ms <= 3000 for u in utterances)
    assert utterances[-1].end_ms == pytest.approx(7300, abs=FRAME_MS)
    # No audio is handed over twice: the cut utterances together hold about the speech.
    assert sum(u.audio_bytes for u in utterances) <= (7300 + 300 + 500) * 32


def test_hang_up_mid_utterance_ends_it() -> None:
    [utterance] = segment(silence_pcm(400) + tone(900))
    assert utterance.reason == "end_of_input"
    assert abs(utterance.end_ms - 1300) <= FRAME_MS


def test_thirty_seconds_of_silence_is_not_speech() -> None:
    assert segment(silence_pcm(30_000)) == []


@pytest.mark.parametrize("level_dbfs", [-50.0, -35.0, -20.0])
def test_thirty_seconds_of_white_noise_is_no_endless_utterance(level_dbfs: float) -> None:
    utterances = segment(silence_pcm(500) + noise(30_000, level_dbfs))
    # Sudden steady noise may read as speech until the floor adapts (a few seconds).
    assert sum(u.end_ms - u.start_ms for u in utterances) <= 5000
    assert all(u.end_ms <= 6000 for u in utterances)


def test_speech_over_steady_line_noise_is_found() -> None:
    speech = silence_pcm(4000) + tone(1500, level_dbfs=-25.0) + silence_pcm(2000)
    pcm = mix(noise(len(speech) // 32, level_dbfs=-45.0, seed=2), speech)
    utterances = [u for u in segment(pcm) if u.end_ms > 3500]
    assert len(utterances) == 1
    assert abs(utterances[0].start_ms - 4000) <= 60
    assert abs(utterances[0].end_ms - 5500) <= 60


def test_espeak_sentences_are_two_utterances(
    fire_sentence: bytes, breathing_sentence: bytes
) -> None:
    pcm = silence_pcm(800) + fire_sentence + silence_pcm(1500) + breathing_sentence
    pcm += silence_pcm(1000)
    utterances = segment(pcm)
    assert [u.reason for u in utterances] == ["silence", "silence"]
    first_end_ms = 800 + len(fire_sentence) // 32
    second_start_ms = first_end_ms + 1500
    assert utterances[0].start_ms >= 800 - FRAME_MS
    assert utterances[0].end_ms <= first_end_ms + FRAME_MS
    assert utterances[1].start_ms >= second_start_ms - FRAME_MS
    assert utterances[1].end_ms <= second_start_ms + len(breathing_sentence) // 32 + FRAME_MS


def test_telephone_band_speech_is_segmented_like_wideband(
    fire_sentence: bytes, breathing_sentence: bytes
) -> None:
    pcm = silence_pcm(800) + fire_sentence + silence_pcm(1500) + breathing_sentence
    pcm += silence_pcm(1000)
    wide = segment(pcm)
    narrow = segment(phone_band(pcm))
    assert len(narrow) == len(wide) == 2
    for a, b in zip(wide, narrow, strict=True):
        assert abs(a.start_ms - b.start_ms) <= 60
        assert abs(a.end_ms - b.end_ms) <= 60


def test_quiet_telephone_line_with_hiss_and_speech(fire_sentence: bytes) -> None:
    pcm = mix(noise(6000, level_dbfs=-50.0, seed=3), silence_pcm(2000) + fire_sentence)
    pcm += noise(3000, level_dbfs=-50.0, seed=4)
    utterances = segment(phone_band(pcm))
    assert len(utterances) == 1
    assert abs(utterances[0].start_ms - 2000) <= 100


def test_frames_of_other_lengths_are_accepted() -> None:
    endpointer = Endpointer()
    pcm = silence_pcm(300) + tone(1000) + silence_pcm(1000)
    events = []
    chunk = 10 * 32  # 10 ms
    for offset in range(0, len(pcm), chunk):
        events += endpointer.process(pcm[offset : offset + chunk], offset // 32)
    assert sum(isinstance(e, SpeechBegan) for e in events) == 1
    assert sum(isinstance(e, SpeechEnded) for e in events) == 1


# -- pauses inside an utterance (for speculative decoding) ---------------------------


def events_of(pcm: bytes, config: EndpointerConfig) -> list[EndpointEvent]:
    endpointer = Endpointer(config)
    events: list[EndpointEvent] = []
    for index in range(len(pcm) // FRAME_BYTES):
        frame = pcm[index * FRAME_BYTES : (index + 1) * FRAME_BYTES]
        events += endpointer.process(frame, index * FRAME_MS)
    return events + endpointer.flush()


PAUSING = EndpointerConfig(endpoint_silence_ms=500, pause_after_ms=200)


def test_a_pause_mid_sentence_is_reported_once_and_the_sentence_stays_whole() -> None:
    # A caller says half a sentence, stops for 300 ms, finishes it, then is silent.
    pcm = silence_pcm(500) + tone(800) + silence_pcm(300) + tone(800) + silence_pcm(1000)
    events = events_of(pcm, PAUSING)
    pauses = [e for e in events if isinstance(e, SpeechPaused)]
    [ended] = [e for e in events if isinstance(e, SpeechEnded)]
    assert sum(isinstance(e, SpeechBegan) for e in events) == 1
    # Once in the mid-sentence pause, once in the final silence; never once per frame.
    assert len(pauses) == 2
    assert abs(pauses[0].speech_end_ms - 1300) <= FRAME_MS
    assert pauses[0].at_ms == pauses[0].speech_end_ms + 200
    assert pauses[1].speech_end_ms == ended.end_ms
    assert abs(ended.end_ms - 2400) <= FRAME_MS
    # The caller speaking on after the first pause is visible as voiced audio.
    after_first = events[events.index(pauses[0]) + 1 : events.index(pauses[1])]
    assert any(isinstance(e, SpeechContinues) and e.voiced for e in after_first)
    # ...and there is none between the last pause and the end.
    after_last = events[events.index(pauses[1]) + 1 : events.index(ended)]
    assert not any(isinstance(e, SpeechContinues) and e.voiced for e in after_last)


def test_the_audio_handed_over_at_a_pause_runs_up_to_the_pause() -> None:
    pcm = silence_pcm(500) + tone(800) + silence_pcm(1000)
    events = events_of(pcm, PAUSING)
    began = events[0]
    assert isinstance(began, SpeechBegan)
    handed = len(began.preroll)
    for event in events[1:]:
        if isinstance(event, SpeechPaused):
            break
        assert isinstance(event, SpeechContinues)
        handed += len(event.pcm)
    else:
        raise AssertionError("no pause reported")
    preroll_from_ms = began.start_ms - PAUSING.preroll_ms
    assert handed == (event.at_ms - preroll_from_ms) * 32


def test_gaps_between_syllables_are_not_pauses() -> None:
    events = events_of(silence_pcm(300) + syllables(3000) + silence_pcm(1000), PAUSING)
    pauses = [e for e in events if isinstance(e, SpeechPaused)]
    [ended] = [e for e in events if isinstance(e, SpeechEnded)]
    assert [p.speech_end_ms for p in pauses] == [ended.end_ms]


@pytest.mark.parametrize(
    "config",
    [
        EndpointerConfig(),
        EndpointerConfig(pause_after_ms=0),
        EndpointerConfig(endpoint_silence_ms=500, pause_after_ms=500),
        EndpointerConfig(endpoint_silence_ms=500, pause_after_ms=800),
    ],
)
def test_no_pause_is_reported_when_off_or_not_before_the_end(config: EndpointerConfig) -> None:
    pcm = silence_pcm(500) + tone(800) + silence_pcm(300) + tone(800) + silence_pcm(1000)
    events = events_of(pcm, config)
    assert not any(isinstance(e, SpeechPaused) for e in events)
    assert sum(isinstance(e, SpeechEnded) for e in events) == 1
