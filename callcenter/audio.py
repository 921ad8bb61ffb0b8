"""Pure audio helpers: G.711 µ-law/A-law, resampling, framing.

A leaf module (numpy only) that every package may use, like `events`.
Everything here is synchronous and side-effect free so it is trivially tested.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt

Int16Array = npt.NDArray[np.int16]
FloatArray = npt.NDArray[np.float64]

_MULAW_BIAS = 0x84


def _build_mulaw_decode_table() -> Int16Array:
    codes = np.arange(256, dtype=np.int32)
    u = ~codes & 0xFF
    sign = u & 0x80
    exponent = (u >> 4) & 0x07
    mantissa = u & 0x0F
    magnitude = (((mantissa << 3) + _MULAW_BIAS) << exponent) - _MULAW_BIAS
    return np.where(sign != 0, -magnitude, magnitude).astype(np.int16)


def _build_mulaw_encode_table() -> npt.NDArray[np.uint8]:
    """Encode table indexed by the 16-bit sample + 32768 (14-bit G.711 domain)."""
    samples = np.arange(-32768, 32768, dtype=np.int32) >> 2
    sign = np.where(samples < 0, 0x00, 0x80)
    magnitude = np.minimum(np.abs(samples), 8159) + 0x21
    raw_exponent = np.floor(np.log2(magnitude)).astype(np.int32) - 5
    exponent = np.clip(raw_exponent, 0, 7)
    mantissa = np.where(raw_exponent > 7, 0x0F, (magnitude >> (exponent + 1)) & 0x0F)
    code = (sign | (exponent << 4) | mantissa) ^ 0x7F
    return np.asarray(code, dtype=np.uint8)


def _build_alaw_decode_table() -> Int16Array:
    codes = np.arange(256, dtype=np.int32) ^ 0x55
    sign = codes & 0x80
    exponent = (codes >> 4) & 0x07
    mantissa = codes & 0x0F
    magnitude = np.where(
        exponent == 0,
        (mantissa << 4) + 8,
        ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0),
    )
    return np.where(sign != 0, magnitude, -magnitude).astype(np.int16)


def _build_alaw_encode_table() -> npt.NDArray[np.uint8]:
    samples = np.arange(-32768, 32768, dtype=np.int32)
    sign = np.where(samples >= 0, 0x80, 0x00)
    magnitude = np.minimum(np.where(samples >= 0, samples, -samples - 1), 32767) >> 3
    exponent = np.where(magnitude < 32, 0, np.floor(np.log2(np.maximum(magnitude, 1))) - 4)
    exponent = np.clip(exponent, 0, 7).astype(np.int32)
    mantissa = np.where(exponent == 0, magnitude >> 1, magnitude >> exponent) & 0x0F
    code = (sign | (exponent << 4) | mantissa) ^ 0x55
    return np.asarray(code, dtype=np.uint8)


_MULAW_DECODE = _build_mulaw_decode_table()
_MULAW_ENCODE = _build_mulaw_encode_table()
_ALAW_DECODE = _build_alaw_decode_table()
_ALAW_ENCODE = _build_alaw_encode_table()


def mulaw_decode(payload: bytes) -> Int16Array:
    """G.711 µ-law bytes to int16 samples."""
    return _MULAW_DECODE[np.frombuffer(payload, dtype=np.uint8)]


def mulaw_encode(samples: Int16Array) -> bytes:
    """int16 samples to G.711 µ-law bytes."""
    index = samples.astype(np.int32) + 32768
    return bytes(_MULAW_ENCODE[index].tobytes())


def alaw_decode(payload: bytes) -> Int16Array:
    """G.711 A-law bytes to int16 samples."""
    return _ALAW_DECODE[np.frombuffer(payload, dtype=np.uint8)]


def alaw_encode(samples: Int16Array) -> bytes:
    """int16 samples to G.711 A-law bytes."""
    index = samples.astype(np.int32) + 32768
    return bytes(_ALAW_ENCODE[index].tobytes())


def pcm_to_array(pcm: bytes) -> Int16Array:
    return np.frombuffer(pcm, dtype="<i2").astype(np.int16)


def array_to_pcm(samples: Int16Array) -> bytes:
    return bytes(samples.astype("<i2").tobytes())


def _lowpass_taps(cutoff: float, taps: int) -> FloatArray:
    """Windowed-sinc low-pass; `cutoff` is a fraction of the sample rate."""
    n = np.arange(taps) - (taps - 1) / 2
    h = 2 * cutoff * np.sinc(2 * cutoff * n) * np.blackman(taps)
    return np.asarray(h / h.sum(), dtype=np.float64)


def resample(samples: Int16Array, from_rate_hz: int, to_rate_hz: int) -> Int16Array:
    """Resample a whole buffer (not streaming) with an anti-aliasing filter."""
    if from_rate_hz == to_rate_hz or samples.size == 0:
        return samples.astype(np.int16)
    x = samples.astype(np.float64)
    if to_rate_hz < from_rate_hz:
        x = np.convolve(x, _lowpass_taps(0.45 * to_rate_hz / from_rate_hz, 63), mode="same")
    out_len = round(samples.size * to_rate_hz / from_rate_hz)
    positions = np.arange(out_len) * (from_rate_hz / to_rate_hz)
    y = np.interp(positions, np.arange(samples.size), x)
    return np.asarray(np.clip(np.round(y), -32768, 32767), dtype=np.int16)


class StreamResampler:
    """Streaming resampler for the 2:1 ratios of the phone band (8 <-> 16 kHz).

    Keeps filter history between calls so 20 ms chunks join without clicks.
    """

    _TAPS = 47

    def __init__(self, from_rate_hz: int, to_rate_hz: int) -> None:
        if {from_rate_hz, to_rate_hz} != {8000, 16000} and from_rate_hz != to_rate_hz:
            raise ValueError(f"unsupported ratio {from_rate_hz} -> {to_rate_hz}")
        self.from_rate_hz = from_rate_hz
        self.to_rate_hz = to_rate_hz
        self._taps = _lowpass_taps(0.23, self._TAPS)
        self._history = np.zeros(self._TAPS - 1, dtype=np.float64)

    def process(self, samples: Int16Array) -> Int16Array:
        if self.from_rate_hz == self.to_rate_hz:
            return samples.astype(np.int16)
        x = samples.astype(np.float64)
        if self.to_rate_hz > self.from_rate_hz:
            up = np.zeros(x.size * 2, dtype=np.float64)
            up[::2] = x * 2.0
            x = up
        buffered = np.concatenate([self._history, x])
        filtered = np.convolve(buffered, self._taps, mode="valid")
        self._history = buffered[-(self._TAPS - 1) :]
        if self.to_rate_hz < self.from_rate_hz:
            filtered = filtered[::2]
        return np.clip(np.round(filtered), -32768, 32767).astype(np.int16)


def rms_dbfs(samples: Int16Array) -> float:
    """Level of a chunk in dB relative to full scale (-100 for silence)."""
    if samples.size == 0:
        return -100.0
    rms = float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))
    if rms < 1e-3:
        return -100.0
    return 20.0 * float(np.log10(rms / 32768.0))


def read_wav(path: Path) -> tuple[Int16Array, int]:
    """A 16-bit PCM WAV file as mono int16 samples and its rate."""
    with wave.open(str(path), "rb") as wav:
        if wav.getsampwidth() != 2:
            raise ValueError(f"{path}: only 16-bit PCM WAV is supported")
        channels = wav.getnchannels()
        rate = wav.getframerate()
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1)
    return samples.astype(np.int16), rate


def read_wav_16k(path: Path) -> bytes:
    """A WAV file as 16 kHz mono int16 PCM bytes, the internal format."""
    samples, rate = read_wav(path)
    return array_to_pcm(resample(samples, rate, 16_000))


def write_wav(path: Path, pcm: bytes, rate_hz: int = 16_000) -> None:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate_hz)
        wav.writeframes(pcm)
