"""Speech recognition: endpointing and the engines (faster-whisper, viet-asr).

Nothing is loaded at import time: engines load in `load_engines` (blocking,
run it in a thread), and every decoder call runs in a worker.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from asr.base import Recognition, SpeculativeDecoder, Transcriber, UtteranceDecoder
from asr.endpointer import (
    Endpointer,
    EndpointerConfig,
    EndpointEvent,
    SpeechBegan,
    SpeechContinues,
    SpeechEnded,
    SpeechPaused,
)
from asr.errors import AsrError, ModelError
from asr.factory import AsrEngines, load_engines
from asr.recognizer import CallRecognizer, SpeculationStats
from asr.vietasr_engine import VietAsrTranscriber
from asr.wer import word_error_rate
from asr.whisper_engine import WhisperTranscriber

if TYPE_CHECKING:
    from asr.model import ensure_whisper_model

__all__ = [
    "AsrEngines",
    "AsrError",
    "CallRecognizer",
    "EndpointEvent",
    "Endpointer",
    "EndpointerConfig",
    "ModelError",
    "Recognition",
    "SpeculationStats",
    "SpeculativeDecoder",
    "SpeechBegan",
    "SpeechContinues",
    "SpeechEnded",
    "SpeechPaused",
    "Transcriber",
    "UtteranceDecoder",
    "VietAsrTranscriber",
    "WhisperTranscriber",
    "ensure_whisper_model",
    "load_engines",
    "word_error_rate",
]


def __getattr__(name: str) -> object:
    # Imported lazily so that `python -m asr.model` does not import itself twice.
    if name == "ensure_whisper_model":
        from asr.model import ensure_whisper_model

        return ensure_whisper_model
    raise AttributeError(f"module 'asr' has no attribute {name!r}")
