"""The one interface of the package: text in, 16 kHz mono int16 speech out."""

from __future__ import annotations

from typing import Protocol

from callcenter.events import Language, Speech


class Synthesizer(Protocol):
    async def synthesize(self, text: str, language: Language) -> Speech:
        """Speak `text` in `language`; raise `TtsError` when that is impossible."""
        ...
