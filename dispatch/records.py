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
IncidentStatus: TypeAlias = Literal["new", "acknowledged", "dispatched", "closed", "merged"]

CALL_STATUSES: tuple[CallStatus, ...] = get_args(CallStatus)
SPEAKERS: tuple[Speaker, ...] = get_args(Speaker)
INCIDENT_STATUSES: tuple[IncidentStatus, ...] = get_args(IncidentStatus)
OPEN_STATUSES: tuple[IncidentStatus, ...] = ("new", "acknowledged", "dispatched")


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


def incident_status(value: str) -> IncidentStatus:
    """`value` as an `IncidentStatus`, or ValueError."""
    for known in INCIDENT_STATUSES:
        if value == known:
            return known
    raise ValueError(f"unknown incident status {value!r}; expected one of {INCIDENT_STATUSES}")


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
class Lifecycle:
    """Who moved an incident along new -> acknowledged -> dispatched -> closed, and when."""

    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    dispatched_at: datetime | None = None
    units: tuple[str, ...] = ()
    closed_at: datetime | None = None
    closed_by: str | None = None
    outcome: str | None = None
    merged_into: str | None = None  # status "merged": the incident that took this one over


@dataclass(frozen=True, slots=True)
class IncidentView:
    """A stored incident; `version` goes up by one with every change (from 1).

    `call_status` is the status of the call that reported it (None: no call
    recorded, e.g. written by another system)."""

    incident: IncidentData
    created_at: datetime
    updated_at: datetime
    version: int = 1
    lifecycle: Lifecycle = field(default_factory=Lifecycle)
    call_status: CallStatus | None = None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One changed field: `actor` is e.g. "bot:rasa" or "dispatcher:lan"."""

    incident_id: str
    version: int
    at: datetime
    actor: str
    field: str
    old: JsonValue
    new: JsonValue


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
    recording: str | None = None  # path under the recordings directory
    recording_s: float | None = None


@dataclass(frozen=True, slots=True)
class AccessEntry:
    """One read of personal data: who (`actor`, `role`), what (`action` on `subject`), when."""

    at: datetime
    actor: str
    role: str
    action: str
    subject: str


@dataclass(frozen=True, slots=True)
class StoreChange:
    """Something changed: an incident (`version`), a call's turns (`seq`), or a call
    ended (`kind="call"`, published on the node that ended it only).

    Published after the write committed, on this node and (PostgreSQL) every node.
    """

    kind: Literal["incident", "turn", "call"]
    incident_id: str | None = None
    call_id: str | None = None
    version: int | None = None  # incidents: the version now stored
    seq: int | None = None  # turns: the turn written
    created: bool = False  # incidents: this write created it
