"""`/api/v1/incidents`: the dispatch queue over HTTP, for the console and other systems.

Every route needs a staff member (dispatcher, supervisor or admin): a bearer
token, or the console's session cookie with its CSRF token on writes. Reading
a transcript is written to the access log first; if that write fails, the
transcript is not shown. Lifecycle actions take the `expected_version` the
dispatcher saw, so an action on a stale screen is refused (409) rather than
applied to something the dispatcher has not seen.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from datetime import datetime
from typing import Annotated, Any, Literal, NoReturn

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field

from callcenter.auth.deps import AdminPrincipal, StaffPrincipal
from callcenter.auth.models import Principal
from callcenter.center import CallCenter, NotReady
from callcenter.events import Line
from callcenter.web.incident_json import AuditOut, IncidentOut, audit_out, incident_out
from dispatch.errors import (
    AlreadyClaimed,
    DispatchError,
    InvalidTransition,
    StaleVersion,
    StoreUnavailable,
    UnknownIncident,
)
from dispatch.records import INCIDENT_STATUSES, OPEN_STATUSES, IncidentStatus, IncidentView
from dispatch.store import SqlCallStore

log = logging.getLogger(__name__)

IncidentId = Annotated[str, Path(min_length=1, max_length=64)]
StatusFilter = Literal["new", "acknowledged", "dispatched", "closed", "merged", "open", "all"]


class Problem(BaseModel):
    """An error answer: a sentence, or (malformed input) FastAPI's list of problems."""

    detail: str | list[dict[str, Any]]


INVALID: dict[int | str, dict[str, Any]] = {
    422: {"model": Problem, "description": "malformed or out-of-range input"}
}
EARLIEST_YEAR, LATEST_YEAR = 2000, 2100


def check_time(value: datetime | None, name: str) -> datetime | None:
    """A query time with a zone, between 2000 and 2100 (else 422)."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise HTTPException(422, f"{name} needs a time zone, e.g. 2026-11-30T08:00:00+07:00")
    if not EARLIEST_YEAR <= value.year <= LATEST_YEAR:
        raise HTTPException(422, f"{name} must be between {EARLIEST_YEAR} and {LATEST_YEAR}")
    return value


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")

    expected_version: int | None = Field(
        default=None, ge=1, description="the version the dispatcher saw; 409 if it changed"
    )


class AckBody(_Body):
    pass


class DispatchBody(_Body):
    units: list[Annotated[str, Field(min_length=1, max_length=120)]] = Field(
        min_length=1, max_length=20
    )


class CloseBody(_Body):
    outcome: str = Field(min_length=1, max_length=2000)


class MergeBody(_Body):
    into: str = Field(min_length=1, max_length=64, description="the incident that remains")


class IncidentPage(BaseModel):
    items: list[IncidentOut]
    limit: int
    offset: int


class IncidentDetail(BaseModel):
    incident: IncidentOut
    audit: list[AuditOut]


class DuplicateOut(BaseModel):
    incident: IncidentOut
    reason: str
    score: float


class DuplicatePage(BaseModel):
    items: list[DuplicateOut]


class TurnOut(BaseModel):
    seq: int
    speaker: Literal["caller", "bot"]
    text: str
    at: datetime
    start_ms: int | None
    asr_confidence: float | None


class TranscriptOut(BaseModel):
    call_id: str
    call_status: str
    language: str
    channel: str
    turns: list[TurnOut]


class AccessOut(BaseModel):
    at: datetime
    actor: str
    role: str
    action: str
    subject: str


class AccessPage(BaseModel):
    items: list[AccessOut]
    limit: int
    offset: int


def _database(request: Request) -> SqlCallStore:
    center: CallCenter = request.app.state.center
    try:
        return center.store.store
    except NotReady as exc:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, str(exc), headers={"Retry-After": "5"}
        ) from exc


Database = Annotated[SqlCallStore, Depends(_database)]

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "not logged in, or a bad token"},
    403: {"description": "this role may not do this, or the CSRF token is missing"},
    503: {"description": "the database is unreachable; try again"},
}
_WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    **_ERRORS,
    404: {"description": "no such incident"},
    409: {
        "description": "not allowed in the incident's status, claimed by someone else, "
        "or changed since `expected_version`"
    },
    413: {"description": "body too large"},
    422: {"description": "malformed body"},
}

_READ_ONE_ERRORS: dict[int | str, dict[str, Any]] = {
    **_ERRORS,
    404: {"description": "no such incident"},
}


def actor_name(principal: Principal) -> str:
    """How a person or token is named in the audit trail and the access log."""
    return principal.name if principal.kind == "session" else f"token:{principal.name}"


def refuse(exc: DispatchError | ValueError) -> NoReturn:
    """The HTTP answer for a refused store operation."""
    if isinstance(exc, UnknownIncident):
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    if isinstance(exc, AlreadyClaimed | InvalidTransition | StaleVersion):
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    if isinstance(exc, StoreUnavailable):
        log.error("incidents API: %s", exc)
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "the incident database is unreachable; try again shortly",
            headers={"Retry-After": "5"},
        ) from exc
    if isinstance(exc, ValueError):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc


async def _act(action: Awaitable[IncidentView]) -> IncidentOut:
    """Run a lifecycle action; the incident as it now is, or the refusal."""
    try:
        return incident_out(await action)
    except (DispatchError, ValueError) as exc:
        refuse(exc)


def _statuses(wanted: list[StatusFilter] | None) -> tuple[IncidentStatus, ...]:
    if not wanted:
        return OPEN_STATUSES
    chosen: list[IncidentStatus] = []
    for value in wanted:
        if value == "all":
            return INCIDENT_STATUSES
        extra = OPEN_STATUSES if value == "open" else (value,)
        chosen.extend(item for item in extra if item not in chosen)
    return tuple(chosen)


def incidents_router() -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["incidents"])

    @router.get("/incidents", responses={**_ERRORS, **INVALID})
    async def list_incidents(
        principal: StaffPrincipal,
        database: Database,
        status_: Annotated[list[StatusFilter] | None, Query(alias="status")] = None,
        line: Line | None = None,
        category: Annotated[str | None, Query(max_length=64)] = None,
        priority: Annotated[int | None, Query(ge=1, le=9)] = None,
        since: datetime | None = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
        offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    ) -> IncidentPage:
        """The queue: most urgent first (priority 1), then oldest first. Default: open ones."""
        since = check_time(since, "since")
        try:
            views = await database.queue(
                status=_statuses(status_),
                line=line,
                category=category,
                priority=priority,
                since=since,
                limit=limit,
                offset=offset,
            )
        except (DispatchError, ValueError) as exc:
            refuse(exc)
        return IncidentPage(items=[incident_out(v) for v in views], limit=limit, offset=offset)

    @router.get("/incidents/{incident_id}", responses=_READ_ONE_ERRORS)
    async def get_incident(
        incident_id: IncidentId, principal: StaffPrincipal, database: Database
    ) -> IncidentDetail:
        """One incident and its audit trail (who changed which field, when)."""
        try:
            view = await database.get_incident(incident_id)
            if view is None:
                raise UnknownIncident(f"no incident {incident_id!r}")
            trail = await database.audit_trail(incident_id)
        except DispatchError as exc:
            refuse(exc)
        return IncidentDetail(incident=incident_out(view), audit=[audit_out(e) for e in trail])

    @router.get("/incidents/{incident_id}/transcript", responses=_READ_ONE_ERRORS)
    async def get_transcript(
        incident_id: IncidentId, principal: StaffPrincipal, database: Database
    ) -> TranscriptOut:
        """What was said on the call that reported the incident (logged as a read)."""
        try:
            view = await database.get_incident(incident_id)
            if view is None:
                raise UnknownIncident(f"no incident {incident_id!r}")
            call_id = view.incident.call_id
            call = None if call_id is None else await database.get_call(call_id)
            if call is None:
                raise HTTPException(404, f"incident {incident_id!r} has no recorded call")
            await database.record_access(
                actor_name(principal), principal.role.value, "read_transcript", f"call:{call_id}"
            )
        except DispatchError as exc:
            refuse(exc)
        return TranscriptOut(
            call_id=call.info.call_id,
            call_status=call.status,
            language=call.info.language.value,
            channel=call.info.channel,
            turns=[
                TurnOut(
                    seq=t.seq,
                    speaker=t.turn.speaker,
                    text=t.turn.text,
                    at=t.created_at,
                    start_ms=t.turn.start_ms,
                    asr_confidence=t.turn.asr_confidence,
                )
                for t in call.turns
            ],
        )

    @router.get("/incidents/{incident_id}/duplicates", responses=_READ_ONE_ERRORS)
    async def get_duplicates(
        incident_id: IncidentId, principal: StaffPrincipal, database: Database
    ) -> DuplicatePage:
        """Open incidents that may report the same emergency (same line, time and place)."""
        try:
            found = await database.duplicate_candidates(incident_id)
        except DispatchError as exc:
            refuse(exc)
        return DuplicatePage(
            items=[
                DuplicateOut(
                    incident=incident_out(c.incident), reason=c.reason, score=round(c.score, 3)
                )
                for c in found
            ]
        )

    @router.post("/incidents/{incident_id}/ack", responses=_WRITE_ERRORS)
    async def acknowledge(
        incident_id: IncidentId, body: AckBody, principal: StaffPrincipal, database: Database
    ) -> IncidentOut:
        """Claim a new incident; 409 if another dispatcher claimed it first."""
        return await _act(
            database.acknowledge_incident(incident_id, actor_name(principal), body.expected_version)
        )

    @router.post("/incidents/{incident_id}/dispatch", responses=_WRITE_ERRORS)
    async def dispatch(
        incident_id: IncidentId, body: DispatchBody, principal: StaffPrincipal, database: Database
    ) -> IncidentOut:
        """Note the units sent to an acknowledged incident."""
        name = actor_name(principal)
        return await _act(
            database.dispatch_incident(incident_id, name, body.units, body.expected_version)
        )

    @router.post("/incidents/{incident_id}/close", responses=_WRITE_ERRORS)
    async def close(
        incident_id: IncidentId, body: CloseBody, principal: StaffPrincipal, database: Database
    ) -> IncidentOut:
        """Close an acknowledged or dispatched incident with its outcome."""
        name = actor_name(principal)
        return await _act(
            database.close_incident(incident_id, name, body.outcome, body.expected_version)
        )

    @router.post("/incidents/{incident_id}/merge", responses=_WRITE_ERRORS)
    async def merge(
        incident_id: IncidentId, body: MergeBody, principal: StaffPrincipal, database: Database
    ) -> IncidentOut:
        """Merge this duplicate into `into`; answers the incident that remains."""
        name = actor_name(principal)
        return await _act(
            database.merge_incident(incident_id, body.into, name, body.expected_version)
        )

    @router.get("/access-log", tags=["audit"], responses=_ERRORS)
    async def access_log(
        principal: AdminPrincipal,
        database: Database,
        subject: Annotated[str | None, Query(max_length=160)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    ) -> AccessPage:
        """Who read which transcript or recording, newest first (admins only)."""
        try:
            entries = await database.access_log(subject=subject, limit=limit, offset=offset)
        except (DispatchError, ValueError) as exc:
            refuse(exc)
        items = [
            AccessOut(at=e.at, actor=e.actor, role=e.role, action=e.action, subject=e.subject)
            for e in entries
        ]
        return AccessPage(items=items, limit=limit, offset=offset)

    return router
