"""The `Dialog` interface every dialog engine implements."""

from __future__ import annotations

from typing import Protocol

from callcenter.events import CallbotError, CallInfo, DialogTurn, Language


class DialogError(CallbotError):
    """The dialog engine failed or did not answer in time."""


class Dialog(Protocol):
    name: str

    async def start(self, call: CallInfo) -> DialogTurn:
        """Open a conversation; the turn's reply is the greeting."""
        ...

    async def respond(self, call_id: str, text: str) -> DialogTurn:
        """One caller utterance in, the bot's next turn out."""
        ...

    async def end(self, call_id: str) -> None:
        """Forget the conversation (the call ended)."""
        ...

    def fixed_prompts(self, language: Language) -> list[str]:
        """Replies known in advance, synthesised once at start-up."""
        ...
