"""The values the dispatch store takes and returns: frozen dataclasses, no ORM.

Times are timezone-aware UTC `datetime`s; the store refuses naive ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, TypeAlias, get_args

from callcenter.events import CallInfo, Language, Line

JsonValue: TypeAlias = "str | int | float | bool | list[JsonValue] | dict[str, JsonValue] | None"


CallStatus: TypeAlias = Literal["in_progress", "completed", "handed_off", "dropped", "failed"]
Speaker: TypeAlias = Literal["caller", "bot"]

CALL_STATUSES: tuple[CallStatus, ...] = get_args(CallStatus)
SPEAKERS: tuple[Speaker, ...] = get_args(Speaker)


def call_status(value: str) -> CallStatus:
    """`value` as a `CallStatus`, or ValueError."""
    for status in CALL_STATUSES:
        if value == status:
            return status
    raise ValueError(f"unknown call status {value!r}; expected one of {CALL_STATUSES}")


def speaker(value: str) -> Speaker:
    """`value` as a `Speaker`, or ValueError."""
    for known in SPEAKERS:
        if value == known:
            return known
    raise ValueError(f"unknown speaker {value!r}; expected one of {SPEAKERS}")


@dataclass(frozen=True, slots=True)
class TurnData:
    """One utterance of a call, as written to the store.

    Caller turns carry the recogniser's figures (`asr_*`, `decode_ms`) and the
    dialog's reading (`intent*`, `slots`); bot turns carry `reply_latency_ms`,
    from the end of the caller's speech to the first audio of the reply.
    `start_ms`/`end_ms` are call times.
    """

    speaker: Speaker
    text: str
    start_ms: int | None = None
    end_ms: int | None = None
    asr_engine: str | None = None
    asr_confidence: float | None = None
    decode_ms: float | None = None
    reply_latency_ms: float | None = None
    intent: str | None = None
    intent_confidence: float | None = None
    slots: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TurnView:
    """A stored turn: its place in the call (`seq`, from 1) and when it was written."""

    seq: int
    turn: TurnData
    created_at: datetime


@dataclass(frozen=True, slots=True)
class IncidentData:
    """A minimal incident, upserted by `id` as details arrive during a call."""

    id: str
    line: Line
    call_id: str | None = None
    category: str | None = None
    priority: int | None = None
    status: str = "new"
    location_text: str | None = None
    callback_number: str | None = None
    caller_name: str | None = None
    injured: int | None = None
    details: Mapping[str, JsonValue] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class IncidentView:
    incident: IncidentData
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class CallSummary:
    """One row of the call list (no caller number, no transcript)."""

    call_id: str
    line: Line
    language: Language
    status: CallStatus
    channel: str
    started_at: datetime
    ended_at: datetime | None
    handoff: bool
    category: str | None
    priority: int | None
    incident_id: str | None
    turn_count: int


@dataclass(frozen=True, slots=True)
class CallView:
    """A whole call: who called, what happened, and every turn in order."""

    info: CallInfo
    status: CallStatus
    started_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None
    end_reason: str | None
    handoff: bool
    handoff_reason: str | None
    category: str | None
    priority: int | None
    incident_id: str | None
    turns: tuple[TurnView, ...]
