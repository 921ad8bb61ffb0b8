"""Errors of the speech-recognition package."""

from __future__ import annotations

from callcenter.events import CallbotError


class AsrError(CallbotError):
    """Speech recognition failed (decoding, a closed engine, an unsupported language)."""


class ModelError(AsrError):
    """A model is missing, corrupt, or could not be loaded."""
