"""Errors of the speech synthesis package."""

from __future__ import annotations

from callcenter.events import CallbotError


class TtsError(CallbotError):
    """Synthesis failed, timed out, or the engine is not running."""
