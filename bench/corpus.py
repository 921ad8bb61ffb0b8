"""Test and benchmark audio: espeak-ng English, the telephone band, real Vietnamese clips.

All audio returned here is 16 kHz mono int16 little-endian PCM (the internal port).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from callcenter.audio import (
    StreamResampler,
    array_to_pcm,
    mulaw_decode,
    mulaw_encode,
    pcm_to_array,
)
from callcenter.audio import read_wav_16k as read_wav_16k  # re-exported
from callcenter.events import INTERNAL_RATE_HZ

PHONE_RATE_HZ = 8000
_ESPEAK_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class CallerTurn:
    """An English caller sentence and the words a recogniser must get for it to be usable."""

    text: str
    key_words: tuple[str, ...]


ENGLISH_CALLER_TURNS: tuple[CallerTurn, ...] = (
    CallerTurn("There is a fire on the third floor of my building", ("fire", "floor")),
    CallerTurn("My neighbour is not breathing", ("breathing",)),
    CallerTurn("Someone stole my motorbike on Hang Bai street", ("stole", "street")),
    CallerTurn("There was a car accident near the big market", ("accident", "market")),
    CallerTurn("Please send an ambulance, my father collapsed", ("ambulance", "father")),
    CallerTurn("I can see black smoke coming from the kitchen", ("smoke", "kitchen")),
    CallerTurn("Two men are fighting with knives outside my house", ("fighting", "knives")),
    CallerTurn("A child fell into the river and cannot swim", ("child", "river")),
    CallerTurn("My house was robbed while we were at work", ("robbed", "house")),
    CallerTurn("The old woman next door is bleeding from her head", ("bleeding", "head")),
    CallerTurn("I am trapped in the elevator with three other people", ("trapped", "elevator")),
    CallerTurn("My phone number is zero nine one two three four five", ("phone", "number")),
)


def espeak_pcm(text: str, voice: str = "en", rate_wpm: int = 150) -> bytes:
    """Synthesize `text` with espeak-ng and return it at 16 kHz."""
    executable = shutil.which("espeak-ng")
    if executable is None:
        raise RuntimeError("espeak-ng is not installed (apt-get install espeak-ng)")
    with tempfile.TemporaryDirectory(prefix="callbot-espeak-") as tmp:
        wav_path = Path(tmp) / "speech.wav"
        subprocess.run(
            [executable, "-v", voice, "-s", str(rate_wpm), "-w", str(wav_path), text],
            check=True,
            capture_output=True,
            timeout=_ESPEAK_TIMEOUT_S,
        )
        return read_wav_16k(wav_path)


def phone_band(pcm16k: bytes) -> bytes:
    """What a G.711 µ-law phone line makes of 16 kHz audio: 8 kHz, µ-law, back to 16 kHz."""
    narrow = StreamResampler(INTERNAL_RATE_HZ, PHONE_RATE_HZ).process(pcm_to_array(pcm16k))
    line = mulaw_decode(mulaw_encode(narrow))
    return array_to_pcm(StreamResampler(PHONE_RATE_HZ, INTERNAL_RATE_HZ).process(line))


def silence_pcm(duration_ms: int) -> bytes:
    """Digital silence at 16 kHz."""
    return bytes(duration_ms * INTERNAL_RATE_HZ // 1000 * 2)


def default_audio_dir() -> Path:
    return Path(os.environ.get("CALLBOT_TEST_AUDIO_DIR", "./var/test-audio"))


def vieneu_clips(directory: Path | None = None) -> list[tuple[Path, str]]:
    """The real Vietnamese clips (WAV) with their reference text, sorted by name.

    `directory` defaults to `$CALLBOT_TEST_AUDIO_DIR/vieneu` (else ./var/test-audio/vieneu);
    a clip without a same-name .txt is skipped.
    """
    folder = directory if directory is not None else default_audio_dir() / "vieneu"
    clips: list[tuple[Path, str]] = []
    for wav_path in sorted(folder.glob("*.wav")):
        text_path = wav_path.with_suffix(".txt")
        if text_path.is_file():
            clips.append((wav_path, text_path.read_text(encoding="utf-8").strip()))
    return clips
