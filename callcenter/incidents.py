"""What a dialog turn contributes to the incident, shared by voice and chat."""

from __future__ import annotations

from callcenter.events import CallInfo, DialogTurn
from dispatch.records import JsonValue
from dispatch.store import IncidentData


def incident_id_for(call_id: str) -> str:
    return f"inc-{call_id}"


def incident_from_turn(info: CallInfo, turn: DialogTurn) -> IncidentData | None:
    """The incident as the dialog knows it after `turn`; None before any detail."""
    if turn.category is None and not turn.slots and not turn.red_flags:
        return None
    slots = dict(turn.slots)
    details: dict[str, JsonValue] = dict(slots)
    if turn.red_flags:
        details["red_flags"] = list(turn.red_flags)
    if turn.handoff:
        details["handoff"] = True
    return IncidentData(
        id=incident_id_for(info.call_id),
        call_id=info.call_id,
        line=info.line,
        category=turn.category,
        priority=turn.priority,
        location_text=slots.get("incident_location") or slots.get("location"),
        callback_number=slots.get("callback_number") or info.caller_number,
        caller_name=slots.get("caller_name"),
        details=details,
    )
