"""One caller turn as the form's validation action sees it, and what it decides."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from callcenter.events import Language

ORDER: Final[tuple[str, ...]] = (
    "what_happened",
    "incident_location",
    "location_confirmed",
    "callback_number",
    "caller_name",
    "injured",
    "trapped",
)
UNKNOWN: Final[str] = "unknown"
UNSET: Final[object] = object()


@dataclass(frozen=True, slots=True)
class Turn:
    """One caller turn as the validation action sees it."""

    text: str
    intent: str | None
    confidence: float
    requested: str | None
    slots: Mapping[str, Any]
    ranking: tuple[tuple[str, float], ...] = ()  # the classifier's intents, best first

    @property
    def language(self) -> Language:
        return Language.EN if self.slots.get("lang") == "en" else Language.VI


@dataclass(frozen=True, slots=True)
class Say:
    """A domain response by name, or a text composed here."""

    response: str | None = None
    text: str | None = None
    args: Mapping[str, Any] = field(default_factory=dict)  # values for the response's {slots}


@dataclass(slots=True)
class Outcome:
    turn: Turn
    slots: dict[str, Any] = field(default_factory=dict)
    say: list[Say] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)
    next_slot: object = UNSET  # str, None (end the form), or UNSET (ask what is missing)

    def get(self, slot: str) -> Any:
        return self.slots[slot] if slot in self.slots else self.turn.slots.get(slot)

    def set(self, slot: str, value: Any) -> None:
        self.slots[slot] = value

    def utter(self, response: str, **args: Any) -> None:
        self.say.append(Say(response=response, args=args))

    def text(self, text: str) -> None:
        self.say.append(Say(text=text))

    def fill(self, slot: str, value: Any) -> None:
        """A successful answer: keep it and reset the failure count."""
        self.slots[slot] = value
        self.state["fails"] = 0
        self.state["last_filled"] = slot

    def ask(self, slot: str, mode: str = "plain") -> None:
        self.slots[slot] = None  # the from_text value is only a candidate
        self.slots["ask_mode"] = mode
        self.next_slot = slot

    def end(self, reason: str) -> None:
        self.state["end"] = reason
        self.next_slot = None

    @property
    def requested(self) -> str | None:
        return None if self.next_slot is UNSET else self.next_slot  # type: ignore[return-value]
