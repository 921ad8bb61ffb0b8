"""The JSON shape of an incident for dispatchers: the API's answers and the live events."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from pydantic import BaseModel
from pydantic import JsonValue as AnyJson

from dispatch.records import (
    AuditEntry,
    IncidentStatus,
    IncidentView,
    JsonValue,
    incident_status,
)


class ResolvedPlace(BaseModel):
    code: str | None
    name: str | None
    old_district: str | None
    landmark: str | None


class Location(BaseModel):
    said: str | None
    confirmed: bool
    resolved: ResolvedPlace | None


class Caller(BaseModel):
    name: str | None
    callback_number: str | None


class IncidentOut(BaseModel):
    id: str
    version: int
    line: str
    status: IncidentStatus
    category: str | None
    priority: int | None
    call_id: str | None
    call_in_progress: bool
    what_happened: str | None
    location: Location
    caller: Caller
    injured: int | None
    trapped: str | None
    red_flags: list[str]
    handoff_requested: bool
    created_at: datetime
    updated_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    dispatched_at: datetime | None
    units: list[str]
    closed_at: datetime | None
    closed_by: str | None
    outcome: str | None
    merged_into: str | None
    merged_from: list[str]
    taken_over_by: str | None  # the dispatcher talking to the caller now
    waiting_for_dispatcher: bool
    # per field the bot filled: the utterance, confidences, model, confirmations
    evidence: dict[str, dict[str, AnyJson]]


class AuditOut(BaseModel):
    version: int
    at: datetime
    actor: str
    field: str
    old: AnyJson
    new: AnyJson


def incident_out(view: IncidentView) -> IncidentOut:
    data, life = view.incident, view.lifecycle
    details = data.details
    code, name = _text(details, "location_unit_code"), _text(details, "location_unit_name")
    old_district, landmark = (
        _text(details, "location_old_district"),
        _text(details, "location_landmark"),
    )
    resolved = (
        ResolvedPlace(code=code, name=name, old_district=old_district, landmark=landmark)
        if any((code, name, old_district, landmark))
        else None
    )
    return IncidentOut(
        id=data.id,
        version=view.version,
        line=data.line.value,
        status=view_status(view),
        category=data.category,
        priority=data.priority,
        call_id=data.call_id,
        call_in_progress=view.call_status == "in_progress",
        what_happened=_text(details, "what_happened"),
        location=Location(
            said=data.location_text,
            confirmed=_text(details, "location_confirmed") in ("true", "True", "yes"),
            resolved=resolved,
        ),
        caller=Caller(name=data.caller_name, callback_number=data.callback_number),
        injured=data.injured if data.injured is not None else _int(details, "injured"),
        trapped=_text(details, "trapped"),
        red_flags=_strings(details.get("red_flags")),
        handoff_requested=details.get("handoff") is True,
        created_at=view.created_at,
        updated_at=view.updated_at,
        acknowledged_at=life.acknowledged_at,
        acknowledged_by=life.acknowledged_by,
        dispatched_at=life.dispatched_at,
        units=list(life.units),
        closed_at=life.closed_at,
        closed_by=life.closed_by,
        outcome=life.outcome,
        merged_into=life.merged_into,
        merged_from=_strings(details.get("merged_from")),
        taken_over_by=_text(details, "taken_over_by"),
        waiting_for_dispatcher=details.get("waiting_for_dispatcher") is True,
        evidence=_evidence(details.get("evidence")),
    )


def audit_out(entry: AuditEntry) -> AuditOut:
    return AuditOut(
        version=entry.version,
        at=entry.at,
        actor=entry.actor,
        field=entry.field,
        old=entry.old,
        new=entry.new,
    )


def view_status(view: IncidentView) -> IncidentStatus:
    return incident_status(view.incident.status)


def _text(details: Mapping[str, JsonValue], key: str) -> str | None:
    value = details.get(key)
    if value is None or value == "":
        return None
    return str(value)


def _int(details: Mapping[str, JsonValue], key: str) -> int | None:
    value = _text(details, key)
    return int(value) if value is not None and value.isdigit() else None


def _evidence(value: JsonValue) -> dict[str, dict[str, AnyJson]]:
    if not isinstance(value, dict):
        return {}
    return {name: dict(item) for name, item in value.items() if isinstance(item, dict)}


def _strings(value: JsonValue) -> list[str]:
    return [str(item) for item in value] if isinstance(value, list) else []
