"""G.711 codecs and resampling: what a caller would hear if they were wrong."""

from __future__ import annotations

import numpy as np
import pytest

from callcenter.audio import (
    StreamResampler,
    alaw_decode,
    alaw_encode,
    mulaw_decode,
    mulaw_encode,
    resample,
    rms_dbfs,
)

pytestmark = pytest.mark.unit


def _tone(freq_hz: float, rate_hz: int, seconds: float, amplitude: float = 8000) -> np.ndarray:
    t = np.arange(int(rate_hz * seconds)) / rate_hz
    return (amplitude * np.sin(2 * np.pi * freq_hz * t)).astype(np.int16)


def _dominant_hz(samples: np.ndarray, rate_hz: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64)))
    return float(np.fft.rfftfreq(samples.size, 1 / rate_hz)[np.argmax(spectrum)])


@pytest.mark.parametrize(
    "encode,decode", [(mulaw_encode, mulaw_decode), (alaw_encode, alaw_decode)]
)
def test_g711_round_trip_keeps_speech_level_signal(encode, decode) -> None:
    tone = _tone(440, 8000, 0.5)
    coded = encode(tone)
    assert len(coded) == tone.size  # one byte per sample
    back = decode(coded)
    error = back.astype(np.float64) - tone
    snr_db = 10 * np.log10(np.mean(tone.astype(np.float64) ** 2) / np.mean(error**2))
    assert snr_db > 30  # G.711 gives ~38 dB on a speech-level tone


def test_mulaw_known_codes() -> None:
    # Silence encodes to 0xFF, full-scale positive and negative to 0x80 and 0x00.
    assert mulaw_encode(np.array([0, 32767, -32768], dtype=np.int16)) == b"\xff\x80\x00"
    assert list(mulaw_decode(b"\xff\x7f")) == [0, 0]


def test_alaw_known_codes() -> None:
    assert alaw_encode(np.array([0, 32767, -32768], dtype=np.int16)) == b"\xd5\xaa\x2a"


def test_mulaw_decode_every_code_is_monotonic_within_a_sign() -> None:
    values = mulaw_decode(bytes(range(128)))  # negative half, loudest first
    assert np.all(np.diff(values.astype(np.int32)) >= 0)


@pytest.mark.parametrize(
    "from_hz,to_hz", [(22050, 16000), (24000, 16000), (16000, 8000), (8000, 16000)]
)
def test_resample_keeps_pitch_and_length(from_hz: int, to_hz: int) -> None:
    tone = _tone(700, from_hz, 1.0)
    out = resample(tone, from_hz, to_hz)
    assert abs(out.size - to_hz) <= 1
    assert abs(_dominant_hz(out, to_hz) - 700) < 5


def test_downsampling_removes_what_the_phone_band_cannot_carry() -> None:
    # 6 kHz is above the 4 kHz Nyquist limit of 8 kHz audio: it must not alias in.
    tone = _tone(6000, 16000, 0.5)
    out = resample(tone, 16000, 8000)
    assert rms_dbfs(out) < rms_dbfs(tone) - 30


def test_stream_resampler_joins_20ms_chunks_without_clicks() -> None:
    tone = _tone(500, 8000, 1.0)
    up = StreamResampler(8000, 16000)
    chunks = [up.process(tone[i : i + 160]) for i in range(0, tone.size, 160)]
    assert all(chunk.size == 320 for chunk in chunks)
    joined = np.concatenate(chunks)[200:]  # skip the filter's start-up
    # A click would show as a jump far larger than the tone's own slope.
    max_step = np.max(np.abs(np.diff(joined.astype(np.int32))))
    assert max_step < 8000 * 2 * np.pi * 500 / 16000 * 1.5
    assert abs(_dominant_hz(joined, 16000) - 500) < 5


def test_stream_resampler_down_then_up_is_close_to_the_original() -> None:
    tone = _tone(300, 16000, 1.0)
    down, up = StreamResampler(16000, 8000), StreamResampler(8000, 16000)
    out = np.concatenate(
        [up.process(down.process(tone[i : i + 320])) for i in range(0, tone.size, 320)]
    )
    assert out.size == tone.size
    assert abs(rms_dbfs(out[400:]) - rms_dbfs(tone[400:])) < 1.0


def test_stream_resampler_rejects_other_ratios() -> None:
    with pytest.raises(ValueError):
        StreamResampler(44100, 16000)


def test_rms_of_silence_and_empty() -> None:
    assert rms_dbfs(np.zeros(320, dtype=np.int16)) == -100.0
    assert rms_dbfs(np.zeros(0, dtype=np.int16)) == -100.0
