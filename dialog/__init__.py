"""Dialog: what the bot says on every turn, and the incident it gathers."""

from dialog.base import Dialog, DialogError

__all__ = ["Dialog", "DialogError"]
