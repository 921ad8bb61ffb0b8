"""Load the engines the settings ask for, once, at start-up."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from asr.base import Transcriber
from asr.errors import AsrError, ModelError
from asr.vietasr_engine import VietAsrTranscriber
from asr.whisper_engine import WhisperTranscriber
from callcenter.events import Language
from callcenter.settings import AsrEngineName, Settings

log = logging.getLogger(__name__)


class AsrEngines:
    """The loaded engines and which one serves each language."""

    def __init__(
        self,
        by_language: Mapping[Language, Transcriber],
        status: Mapping[str, str],
    ) -> None:
        self._by_language = dict(by_language)
        self._status = dict(status)
        self._closed = False

    def for_language(self, language: Language) -> Transcriber:
        if self._closed:
            raise AsrError("the ASR engines are closed")
        try:
            return self._by_language[language]
        except KeyError:
            raise AsrError(f"no ASR engine for language {language.value!r}") from None

    def status(self) -> dict[str, str]:
        """Per engine: "ok", or why it failed and what replaces it."""
        return dict(self._status)

    def close(self) -> None:
        """Close every engine once; call after every call's recogniser stopped."""
        if self._closed:
            return
        self._closed = True
        unique = {id(engine): engine for engine in self._by_language.values()}
        for engine in unique.values():
            engine.close()


def load_engines(settings: Settings, whisper_model_dir: Path) -> AsrEngines:
    """Load the engines for `settings.asr_engine_vi` / `asr_engine_en` (blocking).

    viet-asr failing to load is not fatal: Vietnamese falls back to Whisper
    with a WARNING. Whisper failing to load raises ModelError.
    """
    wanted: dict[Language, AsrEngineName] = {
        Language.VI: settings.asr_engine_vi,
        Language.EN: settings.asr_engine_en,
    }
    for language, engine_name in wanted.items():
        if engine_name == "viet-asr" and language is not Language.VI:
            raise AsrError(
                f"viet-asr recognises Vietnamese only; set CALLBOT_ASR_ENGINE_{language.name}"
                "=whisper"
            )
    status: dict[str, str] = {}
    by_language: dict[Language, Transcriber] = {}
    if "viet-asr" in wanted.values():
        try:
            by_language[Language.VI] = VietAsrTranscriber()
            status["viet-asr"] = "ok"
        except ModelError as exc:
            log.warning("viet-asr failed to load, Vietnamese falls back to whisper: %s", exc)
            status["viet-asr"] = f"failed: {exc} (vi falls back to whisper)"
            wanted[Language.VI] = "whisper"
    if "whisper" in wanted.values():
        try:
            whisper = WhisperTranscriber.from_settings(settings, whisper_model_dir)
        except ModelError:
            for engine in by_language.values():
                engine.close()
            raise
        status["whisper"] = "ok"
        for language, engine_name in wanted.items():
            if engine_name == "whisper":
                by_language[language] = whisper
    return AsrEngines(by_language, status)
