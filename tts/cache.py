"""Prompt cache: fixed prompts synthesised once at start-up, plus a small LRU.

The dialog asks the same questions on every call ("Where is the fire?"); with
their audio cached a form question costs no synthesis time.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Iterable

from callcenter.events import Language, Speech
from tts.base import Synthesizer

logger = logging.getLogger(__name__)

_Key = tuple[str, Language]


class PromptCache:
    """Wraps a `Synthesizer`; `speak()` serves known prompts from memory.

    Prompts given to `warm()` stay for the life of the cache; other texts go to
    an LRU of at most `max_recent` entries (a repeated read-back, a reprompt).
    """

    def __init__(self, synth: Synthesizer, *, max_recent: int = 64) -> None:
        if max_recent < 0:
            raise ValueError("max_recent must be >= 0")
        self._synth = synth
        self._max_recent = max_recent
        self._prompts: dict[_Key, Speech] = {}
        self._recent: OrderedDict[_Key, Speech] = OrderedDict()

    async def warm(self, prompts: Iterable[tuple[str, Language]]) -> None:
        """Synthesise every prompt not yet cached; raises `TtsError` on failure."""
        started = time.perf_counter()
        added = 0
        for text, language in prompts:
            key = (text, language)
            if key in self._prompts:
                continue
            speech = self._recent.pop(key, None) or await self._synth.synthesize(text, language)
            self._prompts[key] = speech
            added += 1
        logger.info(
            "prompt cache warmed: %d new prompts in %.0f ms (%d cached)",
            added,
            (time.perf_counter() - started) * 1000,
            len(self._prompts),
        )

    async def speak(self, text: str, language: Language) -> Speech:
        key = (text, language)
        prompt = self._prompts.get(key)
        if prompt is not None:
            return prompt
        recent = self._recent.get(key)
        if recent is not None:
            self._recent.move_to_end(key)
            return recent
        speech = await self._synth.synthesize(text, language)
        if self._max_recent:
            self._recent[key] = speech
            while len(self._recent) > self._max_recent:
                self._recent.popitem(last=False)
        return speech

    def is_prompt(self, text: str, language: Language) -> bool:
        return (text, language) in self._prompts

    def __len__(self) -> int:
        """Cached entries: prompts plus recent texts."""
        return len(self._prompts) + len(self._recent)

    async def synthesize(self, text: str, language: Language) -> Speech:
        """The `Synthesizer` interface, so a cache can stand in for an engine."""
        return await self.speak(text, language)
