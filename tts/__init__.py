"""Speech synthesis: the `Synthesizer` interface, the pyttsx3/espeak-ng engine
(one engine on one thread) and a prompt cache.

Importing this package starts nothing; `Pyttsx3Synthesizer.start()` does.
"""

from tts.base import Synthesizer
from tts.cache import PromptCache
from tts.errors import TtsError
from tts.pyttsx3_engine import Pyttsx3Synthesizer

__all__ = ["PromptCache", "Pyttsx3Synthesizer", "Synthesizer", "TtsError"]
