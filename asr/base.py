"""The recogniser interface every engine implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

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


@runtime_checkable
class SpeculativeDecoder(UtteranceDecoder, Protocol):
    """A decoder that can decode early, while the caller pauses (optional capability).

    For engines that decode only at the end (Whisper): the recogniser calls
    `peek` when the caller pauses and, if the pause turns out to be the end of
    the utterance, uses its result and calls `reset` instead of `finish`.
    Streaming engines whose `finish` is cheap need not implement it.
    Same threading rule as `UtteranceDecoder`: one worker at a time, in order.
    """

    def peek(self, silence_after_ms: int) -> Recognition:
        """Decode what was accepted since the last finish, keeping it (more may follow).

        Decode it as if `silence_after_ms` of silence followed, so that the result
        matches what `finish` would return once the endpoint silence has passed.
        """
        ...

    def reset(self) -> None:
        """Drop what was accepted since the last finish, for the next utterance."""
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
