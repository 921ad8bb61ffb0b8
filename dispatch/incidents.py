"""Incidents in the store: bot upserts, the dispatcher lifecycle, the queue, the audit trail.

Blocking functions on an `Engine`, run by `SqlCallStore` in a worker thread.

Every change is a compare-and-swap on `version`: read the row, then update it
`WHERE version = <read> AND status = <read>`, and write one audit row per
changed field in the same transaction. On PostgreSQL the read is
`SELECT ... FOR UPDATE`, so a concurrent writer waits for the row lock and then
sees the new state; on SQLite (one writer at a time) the guarded update's row
count tells whether another writer came first, and the loser reads again. Either
way two dispatchers can never both acknowledge an incident.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import Connection, Engine, RowMapping, Select, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from callcenter.events import Line
from dispatch.errors import (
    AlreadyClaimed,
    InvalidTransition,
    StaleVersion,
    StoreUnavailable,
    UnknownIncident,
)
from dispatch.models import CallRecord, IncidentAuditRecord, IncidentRecord, utcnow
from dispatch.records import (
    OPEN_STATUSES,
    AuditEntry,
    IncidentData,
    IncidentStatus,
    IncidentView,
    JsonValue,
    Lifecycle,
    StoreChange,
    call_status,
    incident_status,
)

# Called inside the writing transaction with what changed (e.g. to NOTIFY other nodes).
Announce = Callable[[Connection, StoreChange], None]


def announce_nothing(conn: Connection, change: StoreChange) -> None:
    """An `Announce` for a store that nobody else watches."""


_ATTEMPTS: Final = 8  # compare-and-swap retries before reporting contention
_INCIDENTS = IncidentRecord.__table__
_CALLS = CallRecord.__table__
MERGEABLE: Final[tuple[IncidentStatus, ...]] = ("new", "acknowledged", "dispatched")
# What the bot writes; `status` only when it creates the incident.
BOT_FIELDS: Final = (
    "call_id",
    "line",
    "category",
    "priority",
    "location_text",
    "callback_number",
    "caller_name",
    "injured",
    "details",
)
_UNAUDITED: Final = frozenset({"acknowledged_at", "dispatched_at", "closed_at"})
# Detail keys that dispatchers' actions add and the bot's later writes must keep.
_KEPT_DETAILS: Final = ("merged_from",)


@dataclass(frozen=True, slots=True)
class Transition:
    """One lifecycle step: the statuses it starts from and the columns it sets."""

    to: IncidentStatus
    allowed_from: tuple[IncidentStatus, ...]
    values: Mapping[str, object]


def acknowledge_step(dispatcher: str, at: datetime) -> Transition:
    return Transition(
        "acknowledged", ("new",), {"acknowledged_by": dispatcher, "acknowledged_at": at}
    )


def dispatch_step(units: Sequence[str], at: datetime) -> Transition:
    return Transition("dispatched", ("acknowledged",), {"units": list(units), "dispatched_at": at})


def close_step(dispatcher: str, outcome: str, at: datetime) -> Transition:
    return Transition(
        "closed",
        ("acknowledged", "dispatched"),
        {"outcome": outcome, "closed_by": dispatcher, "closed_at": at},
    )


def transition(
    engine: Engine,
    incident_id: str,
    actor: str,
    step: Transition,
    expected_version: int | None,
    announce: Announce = announce_nothing,
) -> IncidentView:
    """Move an incident one step along its lifecycle, or raise and change nothing."""
    for _ in range(_ATTEMPTS):
        with engine.begin() as conn:
            row = _read_current(conn, incident_id, expected_version)
            status = row["status"]
            if status not in step.allowed_from:
                if step.to == "acknowledged" and status in ("acknowledged", "dispatched"):
                    raise AlreadyClaimed(
                        f"incident {incident_id!r} was already acknowledged by "
                        f"{row['acknowledged_by']}"
                    )
                raise InvalidTransition(
                    f"incident {incident_id!r} is {status}: cannot make it {step.to} "
                    f"(only from {' or '.join(step.allowed_from)})"
                )
            changes: dict[str, object] = {"status": step.to, **step.values}
            version = _swap(conn, row, changes)
            if version is None:
                continue  # another writer came first (SQLite): read again
            _audit(conn, incident_id, version, actor, row, changes)
            announce(conn, StoreChange("incident", incident_id=incident_id, version=version))
            return _view_in(conn, incident_id)
    raise StoreUnavailable(f"incident {incident_id!r}: too much contention, try again")


def upsert(
    engine: Engine, incident: IncidentData, actor: str, announce: Announce = announce_nothing
) -> StoreChange | None:
    """Create or update an incident from what the bot knows; never moves its status.

    A write identical to what is stored changes nothing (no new version, no
    audit) and answers None; otherwise the change made.
    """
    values = incident_values(incident)
    for _ in range(_ATTEMPTS):
        change: StoreChange | None = None
        with engine.begin() as conn:
            row = _read(conn, incident.id)
            if row is None:
                if not _insert(conn, {**values, "status": incident_status(incident.status)}):
                    continue  # created concurrently: update it instead
                created = {
                    name: value
                    for name, value in values.items()
                    if name in (*BOT_FIELDS, "status") and value not in (None, {}, [])
                }
                created["status"] = incident_status(incident.status)
                _audit(conn, incident.id, 1, actor, None, created)
                change = StoreChange("incident", incident_id=incident.id, version=1, created=True)
            else:
                details = _keep_details(incident, row)
                wanted = {**values, "details": details}
                for name in _human_confirmed(details):  # a person's word beats the bot's
                    wanted[name] = row[name]
                changed = {name: wanted[name] for name in BOT_FIELDS if row[name] != wanted[name]}
                if changed:
                    version = _swap(conn, row, changed)
                    if version is None:
                        continue
                    _audit(conn, incident.id, version, actor, row, changed)
                    change = StoreChange("incident", incident_id=incident.id, version=version)
            if incident.call_id is not None:
                conn.execute(
                    update(CallRecord)
                    .where(CallRecord.id == incident.call_id)
                    .values(
                        incident_id=incident.id,
                        category=incident.category,
                        priority=incident.priority,
                    )
                )
            if change is not None:
                announce(conn, change)
            return change
    raise StoreUnavailable(f"incident {incident.id!r}: too much contention, try again")


def merge(
    engine: Engine,
    incident_id: str,
    into_id: str,
    actor: str,
    expected_version: int | None,
    announce: Announce = announce_nothing,
) -> IncidentView:
    """Merge a duplicate into another open incident: it becomes `merged` (pointing at
    `into_id`) and the survivor lists it in `details["merged_from"]`; both audited.

    Both rows are locked in id order (PostgreSQL), so two merges of the same pair in
    opposite directions cannot deadlock, and the second finds the first's result.
    """
    if incident_id == into_id:
        raise InvalidTransition("an incident cannot be merged into itself")
    for _ in range(_ATTEMPTS):
        try:
            return _merge_once(
                engine=engine,
                incident_id=incident_id,
                into_id=into_id,
                actor=actor,
                expected_version=expected_version,
                announce=announce,
            )
        except _Contention:
            continue
    raise StoreUnavailable(f"incident {incident_id!r}: too much contention, try again")


class _Contention(Exception):
    """Another writer changed a row between our read and our write (SQLite): retry."""


def _merge_once(
    engine: Engine,
    incident_id: str,
    into_id: str,
    actor: str,
    expected_version: int | None,
    announce: Announce,
) -> IncidentView:
    with engine.begin() as conn:
        rows: dict[str, RowMapping] = {}
        for key in sorted((incident_id, into_id)):
            found = _read(conn, key)
            if found is None:
                raise UnknownIncident(f"no incident {key!r} in the store")
            rows[key] = found
        source, target = rows[incident_id], rows[into_id]
        if expected_version is not None and source["version"] != expected_version:
            raise StaleVersion(
                f"incident {incident_id!r} is at version {source['version']}, "
                f"not {expected_version}: read it again"
            )
        for row in (source, target):
            if row["status"] not in MERGEABLE:
                raise InvalidTransition(
                    f"incident {row['id']!r} is {row['status']}: only open incidents can be merged"
                )
        source_changes: dict[str, object] = {"status": "merged", "merged_into": into_id}
        source_version = _swap(conn, source, source_changes)
        if source_version is None:
            raise _Contention
        details = dict(target["details"] or {})
        merged_from = details.get("merged_from")
        earlier = [str(item) for item in merged_from] if isinstance(merged_from, list) else []
        details["merged_from"] = [*earlier, incident_id]
        target_version = _swap(conn, target, {"details": details})
        if target_version is None:
            raise _Contention  # rolls back the source's change too
        _audit(conn, incident_id, source_version, actor, source, source_changes)
        _audit(conn, into_id, target_version, actor, target, {"details": details})
        announce(conn, StoreChange("incident", incident_id=incident_id, version=source_version))
        announce(conn, StoreChange("incident", incident_id=into_id, version=target_version))
        return _view_in(conn, into_id)


CORRECTABLE: Final = {
    "category": str,
    "priority": int,
    "location_text": str,
    "callback_number": str,
    "caller_name": str,
    "injured": int,
}


def correct(
    engine: Engine,
    incident_id: str,
    field: str,
    value: JsonValue,
    actor: str,
    expected_version: int | None,
    announce: Announce = announce_nothing,
) -> IncidentView:
    """Set a field the bot filled to what a human says it is, and mark the field's
    evidence as confirmed by that human; audited under `actor`. Any status."""
    kind = CORRECTABLE.get(field)
    if kind is None:
        raise ValueError(f"{field!r} cannot be corrected; one of {', '.join(CORRECTABLE)}")
    if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
        raise ValueError(f"{field} must be {kind.__name__} or null")
    if field == "priority" and isinstance(value, int) and not 1 <= value <= 9:
        raise ValueError("priority must be 1-9")
    for _ in range(_ATTEMPTS):
        with engine.begin() as conn:
            row = _read_current(conn, incident_id, expected_version)
            details = dict(row["details"] or {})
            evidence = stored_evidence(details)
            entry = evidence.get(field)
            entry = dict(entry) if isinstance(entry, dict) else {}
            entry.update({"confirmed_by_human": True, "confirmed_by": actor, "human_value": value})
            evidence[field] = entry
            details["evidence"] = evidence
            changes: dict[str, object] = {field: value, "details": details}
            version = _swap(conn, row, changes)
            if version is None:
                continue
            _audit(conn, incident_id, version, actor, row, {field: value})
            announce(conn, StoreChange("incident", incident_id=incident_id, version=version))
            return _view_in(conn, incident_id)
    raise StoreUnavailable(f"incident {incident_id!r}: too much contention, try again")


def recent_open(
    engine: Engine, line: str, around: datetime, window: timedelta
) -> list[IncidentView]:
    """Open incidents of `line` created within `window` of `around` (at most 500)."""
    query = (
        _joined()
        .where(
            _INCIDENTS.c.status.in_(list(MERGEABLE)),
            _INCIDENTS.c.line == Line(line).value,
            _INCIDENTS.c.created_at >= around - window,
            _INCIDENTS.c.created_at <= around + window,
        )
        .order_by(_INCIDENTS.c.created_at.desc())
        .limit(500)
    )
    with engine.connect() as conn:
        return [incident_view(row) for row in conn.execute(query).mappings()]


def get(engine: Engine, incident_id: str) -> IncidentView | None:
    with engine.connect() as conn:
        found = conn.execute(_joined().where(_INCIDENTS.c.id == incident_id)).mappings().first()
    return None if found is None else incident_view(found)


def queue(
    engine: Engine,
    statuses: Sequence[IncidentStatus],
    *,
    line: Line | None,
    category: str | None,
    priority: int | None,
    since: datetime | None,
    limit: int,
    offset: int,
) -> list[IncidentView]:
    """Incidents in `statuses`, most urgent (priority 1) first, then oldest first."""
    query = _joined().where(_INCIDENTS.c.status.in_(list(statuses)))
    if line is not None:
        query = query.where(_INCIDENTS.c.line == Line(line).value)
    if category is not None:
        query = query.where(_INCIDENTS.c.category == category)
    if priority is not None:
        query = query.where(_INCIDENTS.c.priority == priority)
    if since is not None:
        query = query.where(_INCIDENTS.c.created_at >= since)
    query = query.order_by(
        _INCIDENTS.c.priority.asc().nulls_last(), _INCIDENTS.c.created_at, _INCIDENTS.c.id
    )
    with engine.connect() as conn:
        rows = conn.execute(query.limit(limit).offset(offset)).mappings().all()
    return [incident_view(row) for row in rows]


def open_counts(engine: Engine) -> dict[str, int]:
    table = IncidentRecord.__table__
    with engine.connect() as conn:
        rows = conn.execute(
            select(table.c.status, func.count())
            .where(table.c.status.in_(list(OPEN_STATUSES)))
            .group_by(table.c.status)
        ).all()
    counts: dict[str, int] = dict.fromkeys(OPEN_STATUSES, 0)
    counts.update({str(status): int(count) for status, count in rows})
    return counts


def audit_trail(engine: Engine, incident_id: str) -> list[AuditEntry]:
    """Every recorded change of an incident, oldest first."""
    audit = IncidentAuditRecord.__table__
    with engine.connect() as conn:
        rows = conn.execute(
            select(audit)
            .where(audit.c.incident_id == incident_id)
            .order_by(audit.c.version, audit.c.id)
        ).mappings()
        return [
            AuditEntry(
                incident_id=row["incident_id"],
                version=row["version"],
                at=row["at"],
                actor=row["actor"],
                field=row["field"],
                old=row["old"],
                new=row["new"],
            )
            for row in rows
        ]


# -- helpers ------------------------------------------------------------------------


def _keep_details(incident: IncidentData, row: RowMapping) -> dict[str, JsonValue]:
    """The bot's details, plus what people added: a dispatcher's `merged_from`, and
    the evidence of fields a human corrected or confirmed."""
    stored: Mapping[str, JsonValue] = row["details"] or {}
    kept = {key: stored[key] for key in _KEPT_DETAILS if key in stored}
    details = {**incident.details, **kept}
    confirmed = {name: stored_evidence(stored)[name] for name in _human_confirmed(stored)}
    if confirmed:
        details["evidence"] = {**stored_evidence(details), **confirmed}
    return details


def stored_evidence(details: Mapping[str, JsonValue]) -> dict[str, JsonValue]:
    evidence = details.get("evidence")
    return dict(evidence) if isinstance(evidence, dict) else {}


def _human_confirmed(details: Mapping[str, JsonValue]) -> list[str]:
    """Incident fields whose value a human set or confirmed."""
    return [
        name
        for name, entry in stored_evidence(details).items()
        if name in CORRECTABLE and isinstance(entry, dict) and entry.get("confirmed_by_human")
    ]


def _joined() -> Select[tuple[object, ...]]:
    """Incidents with the status of the call that reported them."""
    return select(_INCIDENTS, _CALLS.c.status.label("call_status")).outerjoin(
        _CALLS, _CALLS.c.id == _INCIDENTS.c.call_id
    )


def _view_in(conn: Connection, incident_id: str) -> IncidentView:
    row = conn.execute(_joined().where(_INCIDENTS.c.id == incident_id)).mappings().first()
    if row is None:
        raise UnknownIncident(f"no incident {incident_id!r} in the store")
    return incident_view(row)


def _read_current(conn: Connection, incident_id: str, expected_version: int | None) -> RowMapping:
    """The row (locked on PostgreSQL), checked to exist and to be at `expected_version`."""
    row = _read(conn, incident_id)
    if row is None:
        raise UnknownIncident(f"no incident {incident_id!r} in the store")
    if expected_version is not None and row["version"] != expected_version:
        raise StaleVersion(
            f"incident {incident_id!r} is at version {row['version']}, "
            f"not {expected_version}: read it again"
        )
    return row


def _read(conn: Connection, incident_id: str) -> RowMapping | None:
    query = select(_INCIDENTS).where(_INCIDENTS.c.id == incident_id)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    return conn.execute(query).mappings().first()


def _insert(conn: Connection, values: Mapping[str, object]) -> bool:
    now = utcnow()
    row = {**values, "version": 1, "created_at": now, "updated_at": now}
    if conn.dialect.name == "postgresql":
        pg = postgresql.insert(IncidentRecord).values(row).on_conflict_do_nothing()
        return conn.execute(pg.returning(IncidentRecord.id)).first() is not None
    lite = sqlite.insert(IncidentRecord).values(row).on_conflict_do_nothing()
    return conn.execute(lite.returning(IncidentRecord.id)).first() is not None


def _swap(conn: Connection, row: RowMapping, changes: Mapping[str, object]) -> int | None:
    """Apply `changes` if the row is still as read; the new version, or None if not."""
    version = int(row["version"]) + 1
    result = conn.execute(
        update(IncidentRecord)
        .where(
            IncidentRecord.id == row["id"],
            IncidentRecord.version == row["version"],
            IncidentRecord.status == row["status"],
        )
        .values({**changes, "version": version, "updated_at": utcnow()})
    )
    return version if result.rowcount == 1 else None


def _audit(
    conn: Connection,
    incident_id: str,
    version: int,
    actor: str,
    before: RowMapping | None,
    changes: Mapping[str, object],
) -> None:
    at = utcnow()
    rows = [
        {
            "incident_id": incident_id,
            "version": version,
            "at": at,
            "actor": actor,
            "field": name,
            "old": None if before is None else _json(before[name]),
            "new": _json(value),
        }
        for name, value in changes.items()
        if name not in _UNAUDITED
    ]
    if rows:
        conn.execute(insert(IncidentAuditRecord), rows)


def _json(value: object) -> JsonValue:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(key): _json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json(item) for item in value]
    return str(value)


def incident_values(incident: IncidentData) -> dict[str, object]:
    """The columns the bot writes (not `status`)."""
    return {
        "id": incident.id,
        "call_id": incident.call_id,
        "line": Line(incident.line).value,
        "category": incident.category,
        "priority": incident.priority,
        "location_text": incident.location_text,
        "callback_number": incident.callback_number,
        "caller_name": incident.caller_name,
        "injured": incident.injured,
        "details": dict(incident.details),
    }


def incident_view(row: RowMapping) -> IncidentView:
    details: dict[str, JsonValue] = dict(row["details"] or {})
    incident = IncidentData(
        id=row["id"],
        line=Line(row["line"]),
        call_id=row["call_id"],
        category=row["category"],
        priority=row["priority"],
        status=row["status"],
        location_text=row["location_text"],
        callback_number=row["callback_number"],
        caller_name=row["caller_name"],
        injured=row["injured"],
        details=details,
    )
    lifecycle = Lifecycle(
        acknowledged_at=row["acknowledged_at"],
        acknowledged_by=row["acknowledged_by"],
        dispatched_at=row["dispatched_at"],
        units=tuple(row["units"] or ()),
        closed_at=row["closed_at"],
        closed_by=row["closed_by"],
        outcome=row["outcome"],
        merged_into=row["merged_into"],
    )
    found_call_status = row.get("call_status")
    return IncidentView(
        incident=incident,
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        version=int(row["version"]),
        lifecycle=lifecycle,
        call_status=None if found_call_status is None else call_status(found_call_status),
    )
