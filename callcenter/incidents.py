"""What a dialog turn contributes to the incident, shared by voice and chat.

Every field the bot fills carries its evidence in `details["evidence"]`: the
caller's words that set it, when, how sure the recogniser and the classifier
were, which dialog model produced it, and whether it was confirmed (read back
to the caller and accepted; a dispatcher's confirmation is recorded by the
dispatch side). A supervisor can then see why the bot believed what it wrote.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

from callcenter.events import CallInfo, DialogTurn
from dispatch.records import JsonValue
from dispatch.store import IncidentData

# Incident fields and the dialog slot each comes from ("category" is the turn's own).
EVIDENCED_SLOTS: Final = {
    "location_text": "incident_location",
    "callback_number": "callback_number",
    "caller_name": "caller_name",
    "what_happened": "what_happened",
    "injured": "injured",
    "trapped": "trapped",
    "location_unit": "location_unit_code",
}
_CONFIRMED_BY: Final = {
    "location_text": "location_confirmed",
    "location_unit": "location_confirmed",
}


def incident_id_for(call_id: str) -> str:
    return f"inc-{call_id}"


@dataclass(frozen=True, slots=True)
class Utterance:
    """The caller's words a dialog turn answered, with the recogniser's figures."""

    text: str
    asr_engine: str | None = None  # None for chat (typed text)
    asr_confidence: float | None = None


@dataclass(slots=True)
class EvidenceLog:
    """Per call: which utterance set each incident field (newest value wins)."""

    model: str  # e.g. "rasa 3.6.21, model sha256:1f2e3d..."
    _values: dict[str, str] = field(default_factory=dict)
    _evidence: dict[str, dict[str, JsonValue]] = field(default_factory=dict)
    _turns: int = 0

    def note(self, turn: DialogTurn, said: Utterance) -> None:
        """Record, for every field `turn` changed, that `said` is why."""
        self._turns += 1
        values = dict(_field_values(turn))
        for name, value in values.items():
            if self._values.get(name) == value:
                continue
            self._values[name] = value
            self._evidence[name] = {
                "value": value,
                "utterance": said.text,
                "caller_turn": self._turns,
                "at": datetime.now(UTC).isoformat(),
                "asr_engine": said.asr_engine,
                "asr_confidence": _rounded(said.asr_confidence),
                "intent_confidence": _rounded(turn.intent_confidence),
                "model": self.model,
                "confirmed_by_caller": False,
                "confirmed_by_human": False,
            }
        for name, slot in _CONFIRMED_BY.items():
            if name in self._evidence:
                self._evidence[name]["confirmed_by_caller"] = _yes(turn.slots.get(slot))

    def as_json(self) -> dict[str, JsonValue]:
        return {name: dict(item) for name, item in self._evidence.items()}


def incident_from_turn(
    info: CallInfo, turn: DialogTurn, evidence: EvidenceLog | None = None
) -> IncidentData | None:
    """The incident as the dialog knows it after `turn`; None before any detail."""
    if turn.category is None and not turn.slots and not turn.red_flags:
        return None
    slots = dict(turn.slots)
    details: dict[str, JsonValue] = dict(slots)
    if turn.red_flags:
        details["red_flags"] = list(turn.red_flags)
    if turn.handoff:
        details["handoff"] = True
    if evidence is not None:
        details["evidence"] = evidence.as_json()
    callback = slots.get("callback_number")
    if not callback and info.caller_number:
        callback = info.caller_number
        details["callback_source"] = "caller_id"
    return IncidentData(
        id=incident_id_for(info.call_id),
        call_id=info.call_id,
        line=info.line,
        category=turn.category,
        priority=turn.priority,
        location_text=slots.get("incident_location") or slots.get("location"),
        callback_number=callback,
        caller_name=slots.get("caller_name"),
        details=details,
    )


def _field_values(turn: DialogTurn) -> list[tuple[str, str]]:
    found = [
        (name, turn.slots[slot]) for name, slot in EVIDENCED_SLOTS.items() if turn.slots.get(slot)
    ]
    if turn.category:
        found.append(("category", turn.category))
    if turn.red_flags:
        found.append(("red_flags", ",".join(sorted(turn.red_flags))))
    return found


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _yes(value: str | None) -> bool:
    return value is not None and value.strip().lower() in ("true", "yes", "1")
