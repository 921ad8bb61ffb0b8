"""The recogniser interface every engine implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from callcenter.events import Language


@dataclass(frozen=True, slots=True)
class Recognition:
    """What an engine heard in one utterance.

    `confidence` is 0..1; an empty `text` means nothing was recognised.
    """

    text: str
    confidence: float
    engine: str
    language: Language


class UtteranceDecoder(Protocol):
    """One call's recogniser state.

    Always driven by one worker at a time, in order; never from the event loop.
    """

    def accept(self, pcm: bytes) -> None:
        """Take 16 kHz mono int16 little-endian audio of any length (usually 20 ms)."""
        ...

    def finish(self) -> Recognition:
        """Decode what was accepted since the last finish, then reset for the next utterance."""
        ...

    def close(self) -> None:
        """Release the decoder; idempotent."""
        ...


class Transcriber(Protocol):
    """A loaded engine, shared by every call."""

    name: str

    def open_decoder(self, language: Language) -> UtteranceDecoder:
        """A decoder for one call (blocking: run it in a worker)."""
        ...

    def transcribe(self, pcm: bytes, language: Language) -> Recognition:
        """Recognise a whole utterance at 16 kHz (blocking: run it in a worker)."""
        ...

    def close(self) -> None:
        """Release the engine, after every decoder it opened."""
        ...
