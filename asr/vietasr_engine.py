"""viet-asr engine: streaming Vietnamese recognition (ONNX, offline, CPU).

One `vietasr.Pipeline` serves every call; each call gets its own streaming
session, which decodes as audio arrives, so `finish` only flushes the tail.
Measured in the spike: sessions on one pipeline run from several threads without
cross-talk and release the GIL, but freeing the pipeline while a session is open
crashes the process, and a session must be fed by one thread at a time. So the
transcriber tracks its open decoders and closes them before the pipeline, and
each decoder serialises its own calls with a lock (uncontended in normal use).

Output is lower-case Vietnamese without punctuation, numbers as words.
The engine reports no confidence score (its result carries only the text), so
a non-empty recognition gets confidence 1.0 meaning "not scored", and an empty
one 0.0; a `confidence` field is used if a later release adds one.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from asr.base import Recognition
from asr.errors import AsrError, ModelError
from callcenter.events import INTERNAL_RATE_HZ, Language

log = logging.getLogger(__name__)

ENGINE_NAME = "viet-asr"
PRESET = "transcribe"
_QUIET_LOG_LEVEL = 5  # the C library logs straight to stderr below this
_UNSCORED_CONFIDENCE = 1.0


class VietAsrTranscriber:
    """The loaded viet-asr pipeline; Vietnamese only."""

    name: str = ENGINE_NAME

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._decoders: set[VietAsrDecoder] = set()
        self._closed = False
        try:
            from vietasr import Pipeline
            from vietasr.ffi import native

            native.lib.vietasr_set_log_level(_QUIET_LOG_LEVEL)
            self._pipeline: Any = Pipeline.preset(PRESET)
        except (ImportError, OSError, RuntimeError) as exc:
            raise ModelError(f"cannot load viet-asr ({PRESET!r} preset): {exc}") from exc
        log.info("viet-asr pipeline loaded (preset %s)", PRESET)

    def open_decoder(self, language: Language) -> VietAsrDecoder:
        _require_vietnamese(language)
        with self._lock:
            if self._closed:
                raise AsrError("the viet-asr engine is closed")
            try:
                session = self._pipeline.stream(float(INTERNAL_RATE_HZ))
            except RuntimeError as exc:
                raise AsrError(f"viet-asr could not open a stream: {exc}") from exc
            decoder = VietAsrDecoder(self, session)
            self._decoders.add(decoder)
        return decoder

    def transcribe(self, pcm: bytes, language: Language) -> Recognition:
        """Whole utterance through a short-lived stream (same text as the batch API)."""
        decoder = self.open_decoder(language)
        try:
            decoder.accept(pcm)
            return decoder.finish()
        finally:
            decoder.close()

    def close(self) -> None:
        """Close every open decoder, then free the pipeline; idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            decoders = list(self._decoders)
            self._decoders.clear()
        for decoder in decoders:
            decoder.close()
        self._pipeline.close()

    def _forget(self, decoder: VietAsrDecoder) -> None:
        with self._lock:
            self._decoders.discard(decoder)

    @property
    def open_decoders(self) -> int:
        with self._lock:
            return len(self._decoders)


class VietAsrDecoder:
    """One call's streaming session; `accept` decodes as audio arrives."""

    def __init__(self, transcriber: VietAsrTranscriber, session: Any) -> None:
        self._transcriber = transcriber
        # Held so the pipeline object outlives this session even if dropped elsewhere.
        self._pipeline: Any = transcriber._pipeline
        self._session: Any = session
        self._lock = threading.Lock()

    def accept(self, pcm: bytes) -> None:
        if not pcm:
            return
        with self._lock:
            session = self._open_session()
            try:
                session.accept(pcm)
            except (RuntimeError, ValueError, TypeError) as exc:
                raise AsrError(f"viet-asr accept failed: {exc}") from exc

    def finish(self) -> Recognition:
        with self._lock:
            session = self._open_session()
            try:
                payload = session.final().payload
                session.reset()
            except (RuntimeError, ValueError) as exc:
                raise AsrError(f"viet-asr final failed: {exc}") from exc
        return _recognition(payload)

    def close(self) -> None:
        with self._lock:
            session, self._session = self._session, None
            if session is not None:
                session.close()
        self._transcriber._forget(self)

    def _open_session(self) -> Any:
        if self._session is None:
            raise AsrError("the viet-asr decoder is closed")
        return self._session


def _recognition(payload: object) -> Recognition:
    text = ""
    confidence = _UNSCORED_CONFIDENCE
    if isinstance(payload, dict):
        raw_text = payload.get("text")
        text = raw_text.strip() if isinstance(raw_text, str) else ""
        raw_confidence = payload.get("confidence")
        if isinstance(raw_confidence, int | float):
            confidence = min(max(float(raw_confidence), 0.0), 1.0)
    return Recognition(
        text=text,
        confidence=confidence if text else 0.0,
        engine=ENGINE_NAME,
        language=Language.VI,
    )


def _require_vietnamese(language: Language) -> None:
    if language is not Language.VI:
        raise AsrError(f"viet-asr recognises Vietnamese only, not {language.value!r}")
