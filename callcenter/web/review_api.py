"""`/review` and `/api/v1/review`: supervisors find, hear, read, check and score calls.

Supervisor and admin only. Opening a call (its transcript) is written to the
access log first. Callers' numbers are shown in full to admins only;
supervisors see them masked (`091****678`), since reviewing a call does not
need them. Search text is matched as plain words, without diacritics.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from pydantic import JsonValue as AnyJson

from callcenter.auth.deps import SESSION_COOKIE, AuthStoreDep, SupervisorPrincipal
from callcenter.auth.errors import AuthStoreUnavailable
from callcenter.auth.models import Principal, Role
from callcenter.center import CallCenter
from callcenter.events import Line
from callcenter.web.dashboard import dashboard_figures
from callcenter.web.incident_json import AuditOut, IncidentOut, audit_out, incident_out
from callcenter.web.incidents_api import INVALID, Database, actor_name, check_time, refuse
from callcenter.web.pages import CONSOLE_CSP, PAGE_HEADERS, static_text
from dispatch.errors import DispatchError, UnknownCall
from dispatch.records import CallStatus
from dispatch.review import CallQuery, ReviewRow

CallId = Annotated[str, PathParam(min_length=1, max_length=64)]
REVIEWERS = frozenset({Role.SUPERVISOR, Role.ADMIN})

DEFAULT_FORM: list[dict[str, Any]] = [
    {
        "id": "greeting",
        "kind": "yes_no",
        "text": {
            "vi": "Chào và xưng danh đúng đường dây",
            "en": "Greeted and named the line correctly",
        },
    },
    {
        "id": "nature",
        "kind": "yes_no",
        "text": {
            "vi": "Xác định đúng loại sự việc",
            "en": "Identified the kind of emergency correctly",
        },
    },
    {
        "id": "location",
        "kind": "yes_no",
        "text": {"vi": "Lấy và đọc lại địa điểm", "en": "Got the location and read it back"},
    },
    {
        "id": "callback",
        "kind": "yes_no",
        "text": {"vi": "Lấy số gọi lại", "en": "Got a callback number"},
    },
    {
        "id": "instructions",
        "kind": "yes_no",
        "text": {"vi": "Hướng dẫn an toàn phù hợp", "en": "Gave fitting safety instructions"},
    },
    {
        "id": "handoff",
        "kind": "yes_no",
        "text": {
            "vi": "Chuyển cán bộ kịp thời khi cần",
            "en": "Handed to a human in time when needed",
        },
    },
    {
        "id": "courtesy",
        "kind": "score_1_5",
        "text": {"vi": "Thái độ, sự rõ ràng (1-5)", "en": "Manner and clarity (1-5)"},
    },
]


class CallRowOut(BaseModel):
    call_id: str
    line: str
    language: str
    channel: str
    status: str
    started_at: datetime
    ended_at: datetime | None
    duration_s: float | None
    category: str | None
    priority: int | None
    incident_id: str | None
    handoff: bool
    handoff_reason: str | None
    turn_count: int
    caller_number: str | None
    min_asr_confidence: float | None
    qa: dict[str, AnyJson]
    review: dict[str, AnyJson]
    match: str | None


class CallPage(BaseModel):
    items: list[CallRowOut]
    total: int
    limit: int
    offset: int


class AnnotationOut(BaseModel):
    id: int
    seq: int
    author: str
    at: datetime
    text: str


class ReviewTurn(BaseModel):
    seq: int
    speaker: str
    text: str
    at: datetime
    start_ms: int | None
    end_ms: int | None
    asr_engine: str | None
    asr_confidence: float | None
    intent: str | None
    intent_confidence: float | None
    slots: dict[str, str]
    reply_latency_ms: float | None
    annotations: list[AnnotationOut]


class ReviewOut(BaseModel):
    id: int
    reviewer: str
    at: datetime
    answers: dict[str, AnyJson]
    score: float | None
    notes: str | None


class CallDetail(BaseModel):
    call: CallRowOut
    turns: list[ReviewTurn]
    incident: IncidentOut | None
    audit: list[AuditOut]
    qa: dict[str, AnyJson]
    recording_url: str | None
    reviews: list[ReviewOut]


class ReviewBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    answers: dict[str, bool | int]
    notes: str | None = Field(default=None, max_length=4000)


class AnnotationBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=2000)


class CorrectionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    field: Literal[
        "category", "priority", "location_text", "callback_number", "caller_name", "injured"
    ]
    value: str | int | None
    expected_version: int | None = Field(default=None, ge=1)


def mask_number(number: str | None, principal: Principal) -> str | None:
    """Full for admins; otherwise the first three and last three digits only."""
    if number is None or principal.role is Role.ADMIN:
        return number
    if len(number) <= 6:
        return "*" * len(number)
    return number[:3] + "*" * (len(number) - 6) + number[-3:]


_NUMBER_SLOTS = frozenset({"caller_id", "callback_number"})


def masked_slots(slots: Mapping[str, str], principal: Principal) -> dict[str, str]:
    """The dialog's slots, with phone numbers masked as `mask_number` does."""
    return {
        name: (mask_number(value, principal) or "") if name in _NUMBER_SLOTS else value
        for name, value in slots.items()
    }


def masked_incident(incident: IncidentOut, principal: Principal) -> IncidentOut:
    """The incident with its callback number (and that field's evidence) masked."""
    if principal.role is Role.ADMIN:
        return incident
    caller = incident.caller.model_copy(
        update={"callback_number": mask_number(incident.caller.callback_number, principal)}
    )
    evidence = dict(incident.evidence)
    if "callback_number" in evidence:
        entry = dict(evidence["callback_number"])
        entry["value"] = mask_number(str(entry.get("value") or ""), principal) or None
        evidence["callback_number"] = entry
    return incident.model_copy(update={"caller": caller, "evidence": evidence})


def masked_audit(entry: AuditOut, principal: Principal) -> AuditOut:
    """An audit entry, with a callback number's old and new values masked."""
    if entry.field != "callback_number" or principal.role is Role.ADMIN:
        return entry
    old = mask_number(entry.old, principal) if isinstance(entry.old, str) else entry.old
    new = mask_number(entry.new, principal) if isinstance(entry.new, str) else entry.new
    return entry.model_copy(update={"old": old, "new": new})


def review_form(path: Path | None) -> list[dict[str, Any]]:
    if path is None:
        return DEFAULT_FORM
    loaded = json.loads(path.read_text("utf-8"))
    if not isinstance(loaded, list) or not all(
        isinstance(q, dict) and q.get("kind") in ("yes_no", "score_1_5") and q.get("id")
        for q in loaded
    ):
        raise ValueError(f"{path}: a list of {{id, kind: yes_no|score_1_5, text: {{vi, en}}}}")
    return loaded


def row_out(row: ReviewRow, principal: Principal) -> CallRowOut:
    qa = row.qa or {}
    failed = [
        name
        for name, check in qa.items()
        if isinstance(check, dict) and check.get("passed") is False
    ]
    duration = (row.ended_at - row.started_at).total_seconds() if row.ended_at else None
    return CallRowOut(
        call_id=row.call_id,
        line=row.line.value,
        language=row.language,
        channel=row.channel,
        status=row.status,
        started_at=row.started_at,
        ended_at=row.ended_at,
        duration_s=None if duration is None else round(duration, 1),
        category=row.category,
        priority=row.priority,
        incident_id=row.incident_id,
        handoff=row.handoff,
        handoff_reason=row.handoff_reason,
        turn_count=row.turn_count,
        caller_number=mask_number(row.caller_number, principal),
        min_asr_confidence=row.min_asr_confidence,
        qa={"passed": None if row.qa is None else row.qa_failed == 0, "failed": list(failed)},
        review={"reason": row.review_reason, "reviewed": row.reviewed},
        match=row.match,
    )


def score(answers: dict[str, bool | int], form: list[dict[str, Any]]) -> float | None:
    """Share of the form's points earned, 0-100 (yes = 1 of 1; a 1-5 score = (n-1) of 4)."""
    earned = possible = 0.0
    for question in form:
        answer = answers.get(str(question["id"]))
        if answer is None:
            continue
        if question["kind"] == "yes_no":
            earned += 1.0 if answer is True else 0.0
            possible += 1.0
        else:
            earned += (int(answer) - 1) / 4
            possible += 1.0
    return None if possible == 0 else round(100 * earned / possible, 1)


def date_range(since: datetime | None, until: datetime | None) -> tuple[datetime, datetime]:
    """The range asked for (default: the 7 days up to now), checked (else 422)."""
    until = check_time(until, "until") or datetime.now(UTC)
    since = check_time(since, "since") or until - timedelta(days=7)
    return since, until


def review_router(form_file: Path | None) -> APIRouter:
    router = APIRouter(tags=["review"], responses=INVALID)
    form = review_form(form_file)
    form_ids = {str(q["id"]): q["kind"] for q in form}

    async def page(request: Request, store: AuthStoreDep, name: str) -> Response:
        session_id = request.cookies.get(SESSION_COOKIE)
        try:
            principal = await store.session_principal(session_id) if session_id else None
        except AuthStoreUnavailable:
            return HTMLResponse("The account database is unavailable.", status_code=503)
        if principal is None:
            return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
        if principal.role not in REVIEWERS:
            return HTMLResponse(
                "Supervisors and admins only.", status_code=403, headers=PAGE_HEADERS
            )
        return HTMLResponse(
            static_text(name), headers={**PAGE_HEADERS, "Content-Security-Policy": CONSOLE_CSP}
        )

    @router.get("/review", include_in_schema=False)
    async def review_page(request: Request, store: AuthStoreDep) -> Response:
        return await page(request, store, "review.html")

    @router.get("/review/calls/{call_id}", include_in_schema=False)
    async def call_page(call_id: CallId, request: Request, store: AuthStoreDep) -> Response:
        return await page(request, store, "review-call.html")

    @router.get("/review/dashboard", include_in_schema=False)
    async def dashboard_page(request: Request, store: AuthStoreDep) -> Response:
        return await page(request, store, "dashboard.html")

    @router.get("/api/v1/review/calls")
    async def find_calls(
        principal: SupervisorPrincipal,
        database: Database,
        q: Annotated[str | None, Query(max_length=200)] = None,
        line: Line | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        category: Annotated[str | None, Query(max_length=64)] = None,
        priority: Annotated[int | None, Query(ge=1, le=9)] = None,
        status_: Annotated[CallStatus | None, Query(alias="status")] = None,
        handoff: bool | None = None,
        low_confidence: bool = False,
        flagged: bool = False,
        queue: bool = False,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    ) -> CallPage:
        """Calls, newest first: text search (with or without diacritics) and filters."""
        since, until = check_time(since, "since"), check_time(until, "until")
        query = CallQuery(
            text=q,
            line=line,
            since=since,
            until=until,
            category=category,
            priority=priority,
            status=status_,
            handoff=handoff,
            low_confidence=low_confidence,
            flagged=flagged,
            queue=queue,
            limit=limit,
            offset=offset,
        )
        try:
            rows, total = await database.review.find_calls(query)
        except (DispatchError, ValueError) as exc:
            refuse(exc)
        items = [row_out(row, principal) for row in rows]
        return CallPage(items=items, total=total, limit=limit, offset=offset)

    @router.get("/api/v1/review/calls/{call_id}", responses={404: {"description": "no such call"}})
    async def call_detail(
        call_id: CallId, request: Request, principal: SupervisorPrincipal, database: Database
    ) -> CallDetail:
        """One call: its turns with the bot's decisions, incident, checks, reviews."""
        center: CallCenter = request.app.state.center
        try:
            row = await database.review.row(call_id)
            view = await database.get_call(call_id)
            if row is None or view is None:
                raise HTTPException(404, "no such call (it may have been purged)")
            await database.record_access(
                actor_name(principal), principal.role.value, "read_transcript", f"call:{call_id}"
            )
            incident = await database.get_incident(view.incident_id) if view.incident_id else None
            audit = await database.audit_trail(view.incident_id) if view.incident_id else []
            notes = await database.review.annotations(call_id)
            reviews = await database.review.reviews(call_id)
        except DispatchError as exc:
            refuse(exc)
        by_seq: dict[int, list[AnnotationOut]] = {}
        for note in notes:
            by_seq.setdefault(note.seq, []).append(
                AnnotationOut(
                    id=note.id, seq=note.seq, author=note.author, at=note.at, text=note.text
                )
            )
        has_audio = (
            view.recording is not None
            and center.recorder is not None
            and (center.recorder.resolve(view.recording) is not None)
        )
        qa = dict(row.qa or {})
        return CallDetail(
            call=row_out(row, principal),
            turns=[
                ReviewTurn(
                    seq=t.seq,
                    speaker=t.turn.speaker,
                    text=t.turn.text,
                    at=t.created_at,
                    start_ms=t.turn.start_ms,
                    end_ms=t.turn.end_ms,
                    asr_engine=t.turn.asr_engine,
                    asr_confidence=t.turn.asr_confidence,
                    intent=t.turn.intent,
                    intent_confidence=t.turn.intent_confidence,
                    slots=masked_slots(t.turn.slots, principal),
                    reply_latency_ms=t.turn.reply_latency_ms,
                    annotations=by_seq.get(t.seq, []),
                )
                for t in view.turns
            ],
            incident=None
            if incident is None
            else masked_incident(incident_out(incident), principal),
            audit=[masked_audit(audit_out(entry), principal) for entry in audit],
            qa={
                "checks": [
                    {"name": name, **check} for name, check in qa.items() if isinstance(check, dict)
                ],
                "passed": None if row.qa is None else row.qa_failed == 0,
                "flagged": bool(row.qa_failed),
            },
            recording_url=f"/api/v1/calls/{call_id}/recording" if has_audio else None,
            reviews=[
                ReviewOut(
                    id=r.id,
                    reviewer=r.reviewer,
                    at=r.at,
                    answers=dict(r.answers),
                    score=r.score,
                    notes=r.notes,
                )
                for r in reviews
            ],
        )

    @router.get("/api/v1/review/form")
    async def get_form(principal: SupervisorPrincipal) -> dict[str, Any]:
        """The review form's questions (CALLBOT_REVIEW_FORM_FILE, or the default)."""
        return {"questions": form}

    @router.post("/api/v1/review/calls/{call_id}/reviews", status_code=201)
    async def add_review(
        call_id: CallId, body: ReviewBody, principal: SupervisorPrincipal, database: Database
    ) -> ReviewOut:
        """Score a call against the form; answers to unknown questions are refused."""
        for key, value in body.answers.items():
            kind = form_ids.get(key)
            if kind is None:
                raise HTTPException(422, f"no question {key!r} in the review form")
            if kind == "yes_no" and not isinstance(value, bool):
                raise HTTPException(422, f"{key}: answer true or false")
            if kind == "score_1_5" and (isinstance(value, bool) or not 1 <= value <= 5):
                raise HTTPException(422, f"{key}: answer 1 to 5")
        try:
            saved = await database.review.add_review(
                call_id,
                actor_name(principal),
                dict(body.answers),
                score(dict(body.answers), form),
                body.notes,
            )
        except UnknownCall as exc:
            raise HTTPException(404, str(exc)) from exc
        except DispatchError as exc:
            refuse(exc)
        return ReviewOut(
            id=saved.id,
            reviewer=saved.reviewer,
            at=saved.at,
            answers=dict(saved.answers),
            score=saved.score,
            notes=saved.notes,
        )

    @router.post("/api/v1/review/calls/{call_id}/turns/{seq}/annotations", status_code=201)
    async def annotate(
        call_id: CallId,
        seq: Annotated[int, PathParam(ge=1, le=100_000)],
        body: AnnotationBody,
        principal: SupervisorPrincipal,
        database: Database,
    ) -> AnnotationOut:
        """A note on one turn of a call."""
        try:
            call = await database.get_call(call_id)
            if call is None or all(t.seq != seq for t in call.turns):
                raise HTTPException(404, "no such call or turn")
            note = await database.review.annotate(call_id, seq, actor_name(principal), body.text)
        except DispatchError as exc:
            refuse(exc)
        return AnnotationOut(
            id=note.id, seq=note.seq, author=note.author, at=note.at, text=note.text
        )

    @router.post("/api/v1/review/incidents/{incident_id}/corrections")
    async def correct(
        incident_id: Annotated[str, PathParam(min_length=1, max_length=64)],
        body: CorrectionBody,
        principal: SupervisorPrincipal,
        database: Database,
    ) -> IncidentOut:
        """Correct (or confirm) a field the bot filled; recorded as a human confirmation."""
        try:
            view = await database.correct_incident(
                incident_id, body.field, body.value, actor_name(principal), body.expected_version
            )
        except (DispatchError, ValueError) as exc:
            refuse(exc)
        return incident_out(view)

    @router.get("/api/v1/review/stats")
    async def stats(
        principal: SupervisorPrincipal,
        database: Database,
        since: datetime | None = None,
        until: datetime | None = None,
        line: Line | None = None,
    ) -> dict[str, Any]:
        """Figures for the dashboard over a range (default: the last 7 days; at most 366)."""
        since, until = date_range(since, until)
        try:
            rows = await database.review.stats_rows(since, until, line)
        except (DispatchError, ValueError) as exc:
            refuse(exc)
        return dashboard_figures(rows.calls, rows.reply_latencies_ms, rows.asr_confidences)

    @router.get("/api/v1/review/export.csv", response_class=Response)
    async def export_csv(
        principal: SupervisorPrincipal,
        database: Database,
        since: datetime | None = None,
        until: datetime | None = None,
        line: Line | None = None,
    ) -> Response:
        """The calls of a range as CSV (no transcripts; numbers masked but for admins)."""
        since, until = date_range(since, until)
        out = io.StringIO()
        writer = csv.writer(out)
        columns = list(CallRowOut.model_fields)
        writer.writerow(columns)
        offset = 0
        try:
            while True:
                rows, total = await database.review.find_calls(
                    CallQuery(line=line, since=since, until=until, limit=500, offset=offset)
                )
                for row in rows:
                    data = row_out(row, principal).model_dump(mode="json")
                    writer.writerow(
                        [
                            json.dumps(data[c], ensure_ascii=False)
                            if isinstance(data[c], dict | list)
                            else data[c]
                            for c in columns
                        ]
                    )
                offset += len(rows)
                if not rows or offset >= total or offset >= 100_000:
                    break
        except (DispatchError, ValueError) as exc:
            refuse(exc)
        name = f"calls-{since:%Y%m%d}-{until:%Y%m%d}.csv"
        return Response(
            out.getvalue(),
            media_type="text/csv; charset=utf-8",
            headers={
                "Content-Disposition": f'attachment; filename="{name}"',
                "Cache-Control": "no-store",
            },
        )

    return router


__all__ = ["mask_number", "review_router", "score"]
