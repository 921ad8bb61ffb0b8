"""Typed events that flow between the packages.

Every package may import this module; it imports nothing of the project.
Audio inside the service is always 16 kHz mono signed 16-bit little-endian
PCM ("the internal port"), cut into 20 ms frames.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

INTERNAL_RATE_HZ = 16_000
FRAME_MS = 20
FRAME_SAMPLES = INTERNAL_RATE_HZ * FRAME_MS // 1000  # 320
FRAME_BYTES = FRAME_SAMPLES * 2  # 640


class CallbotError(Exception):
    """Base of every error the project raises; each package subclasses it."""


class Line(StrEnum):
    POLICE = "113"
    FIRE = "114"


class Language(StrEnum):
    VI = "vi"
    EN = "en"


@dataclass(frozen=True, slots=True)
class CallInfo:
    """Who called which line, in which language, over which channel."""

    call_id: str
    line: Line
    language: Language
    caller_number: str | None
    channel: str  # "media-stream", "sip", "webrtc", "chat", ...


@dataclass(frozen=True, slots=True)
class AudioFrame:
    """20 ms of caller audio at the internal rate; `start_ms` is call time."""

    pcm: bytes
    start_ms: int


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """The endpointer heard the caller start to speak (used for barge-in)."""

    start_ms: int


@dataclass(frozen=True, slots=True)
class Transcript:
    """What the recogniser heard in one caller utterance.

    `start_ms`/`end_ms` are call times of the speech; `decode_ms` is the
    recogniser's own time after the end of speech was detected.
    """

    text: str
    language: Language
    is_final: bool
    confidence: float
    start_ms: int
    end_ms: int
    engine: str
    decode_ms: float = 0.0


@dataclass(frozen=True, slots=True)
class DialogTurn:
    """What the dialog decided after one caller turn."""

    reply: str
    category: str | None = None
    priority: int | None = None
    slots: Mapping[str, str] = field(default_factory=dict)
    requested_slot: str | None = None
    red_flags: tuple[str, ...] = ()
    handoff: bool = False
    done: bool = False
    intent_confidence: float | None = None


@dataclass(frozen=True, slots=True)
class Dtmf:
    digit: str
    at_ms: int


@dataclass(frozen=True, slots=True)
class Hangup:
    reason: str
    at_ms: int


@dataclass(frozen=True, slots=True)
class BargeIn:
    """Caller speech interrupted the bot; the gateway must drop queued audio."""

    at_ms: int


@dataclass(frozen=True, slots=True)
class Transfer:
    """The call is handed to a human dispatcher."""

    reason: str
    at_ms: int


@dataclass(frozen=True, slots=True)
class Speech:
    """Synthesised bot audio at the internal rate."""

    pcm: bytes
    text: str
    language: Language

    @property
    def duration_ms(self) -> int:
        return len(self.pcm) // 2 * 1000 // INTERNAL_RATE_HZ
