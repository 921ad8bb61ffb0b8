"""The call and incident store: SQLite (WAL) by default, PostgreSQL at scale.

Every public method is a coroutine that runs the blocking SQLAlchemy work in a
worker thread under a timeout, so the event loop never waits on the database.
A timed-out operation raises `StoreUnavailable`; its thread may still finish
the write later, which is why every write is idempotent: calls and incidents
are keyed by id, turns by `(call_id, seq)`.

Turn numbers (`seq`, from 1) are handed out in the order `add_turn` is called,
by this store instance, seeded from the database the first time a call is
seen (or at 1 when `start_call` created it). A call lives on one node, so one
instance numbers its turns.

Incidents move new -> acknowledged -> dispatched -> closed through
`acknowledge_incident`, `dispatch_incident` and `close_incident`; every change,
the bot's included, bumps the incident's `version` and appends to its audit
trail (see `dispatch.incidents`).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from datetime import datetime
from functools import partial
from typing import Protocol, TypeVar

from sqlalchemy import (
    Connection,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, NoSuchModuleError, SQLAlchemyError

from callcenter.events import CallInfo, Line
from dispatch import call_reads, duplicates, incidents, privacy
from dispatch.engine import create_database_engine, normalise_url
from dispatch.errors import DispatchError, StoreUnavailable, UnknownCall, UnknownIncident
from dispatch.feed import CHANNEL, ChangeFeed, encode
from dispatch.models import AccessLogRecord, Base, CallRecord, TurnRecord, utcnow
from dispatch.records import (
    OPEN_STATUSES,
    AccessEntry,
    AuditEntry,
    CallStatus,
    CallSummary,
    CallView,
    IncidentData,
    IncidentStatus,
    IncidentView,
    JsonValue,
    Speaker,
    StoreChange,
    TurnData,
    TurnView,
    call_status,
    incident_status,
)
from dispatch.review import SqlReviewStore
from dispatch.rows import (
    aware,
    person_name,
    reason,
    turn_values,
)
from dispatch.schema import migrate
from dispatch.turn_numbers import TurnNumbers

__all__ = [
    "CallStatus",
    "CallStore",
    "CallSummary",
    "CallView",
    "IncidentData",
    "IncidentView",
    "Speaker",
    "SqlCallStore",
    "TurnData",
    "TurnView",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

_MAX_LIST_LIMIT = 1000


class CallStore(Protocol):
    """What the call-centre needs from a store of calls, turns and incidents."""

    async def start_call(self, info: CallInfo, started_at: datetime) -> None: ...
    async def mark_answered(self, call_id: str, at: datetime) -> None: ...
    async def add_turn(self, call_id: str, turn: TurnData, *, seq: int | None = None) -> None: ...
    async def end_call(
        self,
        call_id: str,
        status: CallStatus,
        end_reason: str,
        at: datetime,
        handoff_reason: str | None = None,
    ) -> None: ...
    async def upsert_incident(self, incident: IncidentData, *, actor: str = "bot") -> None: ...
    async def set_recording(self, call_id: str, path: str, duration_s: float) -> None: ...
    async def get_call(self, call_id: str) -> CallView | None: ...
    async def list_calls(self, limit: int = 50) -> list[CallSummary]: ...
    async def get_incident(self, incident_id: str) -> IncidentView | None: ...
    async def close(self) -> None: ...


class SqlCallStore:
    """`CallStore` on SQLAlchemy 2: `sqlite:///path.db` or `postgresql+psycopg://...`.

    Construction connects to nothing; `create_schema()` is the first contact.
    `timeout_s` bounds every operation; `busy_timeout_s` is how long SQLite
    waits for a concurrent writer. Every change to an incident or a call's
    turns is published to `feed` once committed (and, on PostgreSQL, NOTIFYed
    to the other nodes in the same transaction; see `dispatch.feed`).
    """

    def __init__(
        self,
        database_url: str,
        *,
        timeout_s: float = 5.0,
        busy_timeout_s: float = 3.0,
        pool_size: int = 5,
        feed: ChangeFeed | None = None,
        node: str | None = None,
    ) -> None:
        if timeout_s <= 0 or busy_timeout_s <= 0:
            raise ValueError("timeouts must be positive")
        self.feed = feed or ChangeFeed()
        self.node = node  # written on every call this store starts
        self._timeout_s = timeout_s
        self._turn_numbers = TurnNumbers()
        try:
            url = normalise_url(make_url(database_url))
            self._where = url.render_as_string(hide_password=True)
            self._engine = create_database_engine(url, timeout_s, busy_timeout_s, pool_size)
        except (ArgumentError, NoSuchModuleError, ImportError, ValueError) as exc:
            raise StoreUnavailable(f"cannot use database URL: {exc}") from exc
        # SQLite has one writer at a time, and its busy handler is not fair: with
        # many threads waiting for the write lock, some waited over a second.
        # Writes therefore queue for one thread here; reads run beside them (WAL).
        self._writer = (
            ThreadPoolExecutor(1, thread_name_prefix="sqlite-write")
            if self.dialect == "sqlite"
            else None
        )

    @property
    def review(self) -> SqlReviewStore:
        """Supervisor review: search, quality results, reviews, annotations."""
        return SqlReviewStore(self._engine, self._run)

    @property
    def dialect(self) -> str:
        """The SQLAlchemy dialect name: sqlite or postgresql."""
        return self._engine.dialect.name

    async def create_schema(self) -> None:
        """Migrate the database to the newest schema (idempotent; see `dispatch.schema`)."""
        await self._run("create_schema", partial(migrate, self._engine))
        logger.info("dispatch store ready: %s", self._where)

    async def close(self) -> None:
        await self._run("close", self._engine.dispose)
        if self._writer is not None:
            self._writer.shutdown(wait=False)

    # -- writes -------------------------------------------------------------------

    async def start_call(self, info: CallInfo, started_at: datetime) -> None:
        """Record a new call; a retry with the same call id changes nothing."""
        values = {
            "id": info.call_id,
            "line": info.line.value,
            "language": info.language.value,
            "channel": info.channel,
            "node": self.node,
            "caller_number": info.caller_number,
            "status": "in_progress",
            "started_at": aware(started_at),
            "handoff": False,
        }
        created = await self._write(
            "start_call", partial(self._insert_ignore, CallRecord, values, ["id"])
        )
        if created:
            self.note_new_call(info.call_id)

    def note_new_call(self, call_id: str) -> None:
        """`call_id` is brand new: its turns start at 1, no need to ask the database.

        (`start_call` does this when it creates the call; a journaling wrapper does
        it for a call started while the database was away.)"""
        self._turn_numbers.note_new_call(call_id)

    async def mark_answered(self, call_id: str, at: datetime) -> None:
        values = {"answered_at": aware(at)}
        await self._write("mark_answered", partial(self._update_call, call_id, values, False))

    async def add_turn(self, call_id: str, turn: TurnData, *, seq: int | None = None) -> None:
        """Append a turn. Without `seq` the store numbers turns in call order;
        with one, a retry of the same `(call_id, seq)` is ignored."""
        if seq is None:
            seq = await self.allocate_seq(call_id)
        elif seq < 1:
            raise ValueError(f"seq must be >= 1, got {seq}")
        else:
            self._turn_numbers.note_written(call_id, seq)
        values = turn_values(call_id, seq, turn)
        change = StoreChange("turn", call_id=call_id, seq=seq)
        inserted = await self._write(
            "add_turn",
            partial(self._insert_ignore, TurnRecord, values, ["call_id", "seq"], change),
        )
        if inserted:
            self.feed.publish(change)

    async def end_call(
        self,
        call_id: str,
        status: CallStatus,
        end_reason: str,
        at: datetime,
        handoff_reason: str | None = None,
    ) -> None:
        status = call_status(status)
        values = {
            "status": status,
            "end_reason": end_reason,
            "ended_at": aware(at),
            "handoff": status == "handed_off" or handoff_reason is not None,
            "handoff_reason": handoff_reason,
        }
        incident_id = await self._write("end_call", partial(self._update_call, call_id, values))
        if incident_id is not None:  # its call is no longer live
            self.feed.publish(StoreChange("incident", incident_id=incident_id))
        self.feed.publish(StoreChange("call", call_id=call_id))

    async def set_recording(self, call_id: str, path: str, duration_s: float) -> None:
        """Note where the call's recording is kept (a path under the recordings directory)."""
        values = {"recording": path, "recording_s": round(duration_s, 2)}
        await self._write("set_recording", partial(self._update_call, call_id, values, False))

    async def close_orphaned_calls(self, started_before: datetime, reason: str) -> list[str]:
        """Calls this node left "in progress" when it died: handed to a human
        (a dispatcher calls them back), with `reason`. The ids closed."""
        if self.node is None:
            return []
        work = partial(
            privacy.close_orphans, self._engine, self.node, aware(started_before), reason
        )
        closed: list[tuple[str, str | None]] = await self._write("close_orphaned_calls", work)
        for call_id, incident_id in closed:
            if incident_id is not None:
                self.feed.publish(StoreChange("incident", incident_id=incident_id))
            self.feed.publish(StoreChange("call", call_id=call_id))
        return [call_id for call_id, _ in closed]

    async def purge_transcripts(self, ended_before: datetime, actor: str) -> list[str]:
        """Delete the turns and the caller's number of calls that ended before
        `ended_before`; each purge is written to the access log. The purged call ids."""
        work = partial(privacy.purge_transcripts, self._engine, aware(ended_before), actor)
        return await self._write("purge_transcripts", work)

    async def forget_recordings(self, paths: Sequence[str], actor: str) -> int:
        """Clear the recording of calls whose files were purged, writing each to the
        access log; how many calls."""
        if not paths:
            return 0
        work = partial(privacy.forget_recordings, self._engine, list(paths), actor)
        return await self._write("forget_recordings", work)

    async def upsert_incident(self, incident: IncidentData, *, actor: str = "bot") -> None:
        """Insert or update an incident by id, and link its call to it.

        Changed fields bump the version and are audited as `actor` (e.g. "bot:rasa");
        an identical retry changes nothing; the status never moves (only a new
        incident takes `incident.status`).
        """
        change = await self._write(
            "upsert_incident",
            partial(incidents.upsert, self._engine, incident, actor, self._announce),
        )
        if change is not None:
            self.feed.publish(change)

    async def acknowledge_incident(
        self, incident_id: str, dispatcher: str, expected_version: int | None = None
    ) -> IncidentView:
        """Claim a new incident for `dispatcher`; `AlreadyClaimed` if another was first."""
        step = incidents.acknowledge_step(person_name(dispatcher), utcnow())
        return await self._transition(incident_id, dispatcher, step, expected_version)

    async def dispatch_incident(
        self,
        incident_id: str,
        dispatcher: str,
        units: Sequence[str],
        expected_version: int | None = None,
    ) -> IncidentView:
        """Note the units sent to an acknowledged incident."""
        if not units or any(not unit.strip() for unit in units):
            raise ValueError("dispatch needs at least one unit, each named")
        step = incidents.dispatch_step([unit.strip() for unit in units], utcnow())
        return await self._transition(incident_id, dispatcher, step, expected_version)

    async def close_incident(
        self,
        incident_id: str,
        dispatcher: str,
        outcome: str,
        expected_version: int | None = None,
    ) -> IncidentView:
        """Close an acknowledged or dispatched incident with its outcome."""
        if not outcome.strip():
            raise ValueError("closing an incident needs an outcome")
        step = incidents.close_step(person_name(dispatcher), outcome.strip(), utcnow())
        return await self._transition(incident_id, dispatcher, step, expected_version)

    # -- reads --------------------------------------------------------------------

    async def get_call(self, call_id: str) -> CallView | None:
        return await self._run("get_call", partial(call_reads.get_call, self._engine, call_id))

    async def list_calls(self, limit: int = 50) -> list[CallSummary]:
        """The most recent calls first."""
        if not 1 <= limit <= _MAX_LIST_LIMIT:
            raise ValueError(f"limit must be in 1..{_MAX_LIST_LIMIT}, got {limit}")
        return await self._run("list_calls", partial(call_reads.list_calls, self._engine, limit))

    async def get_incident(self, incident_id: str) -> IncidentView | None:
        return await self._run("get_incident", partial(incidents.get, self._engine, incident_id))

    async def queue(
        self,
        *,
        status: IncidentStatus | Sequence[IncidentStatus] = OPEN_STATUSES,
        line: Line | None = None,
        category: str | None = None,
        priority: int | None = None,
        since: datetime | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[IncidentView]:
        """Incidents in `status` (default: not closed), priority 1 first, then oldest first."""
        if not 1 <= limit <= _MAX_LIST_LIMIT:
            raise ValueError(f"limit must be in 1..{_MAX_LIST_LIMIT}, got {limit}")
        if offset < 0:
            raise ValueError(f"offset must be >= 0, got {offset}")
        wanted = [status] if isinstance(status, str) else list(status)
        statuses = [incident_status(value) for value in wanted]
        work = partial(
            incidents.queue,
            self._engine,
            statuses,
            line=line,
            category=category,
            priority=priority,
            since=None if since is None else aware(since),
            limit=limit,
            offset=offset,
        )
        return await self._run("queue", work)

    async def open_counts(self) -> dict[str, int]:
        """How many incidents are in each open status (the queue's depth)."""
        return await self._run("open_counts", partial(incidents.open_counts, self._engine))

    async def audit_trail(self, incident_id: str) -> list[AuditEntry]:
        """Every change of an incident, oldest first (empty for an unknown id)."""
        return await self._run(
            "audit_trail", partial(incidents.audit_trail, self._engine, incident_id)
        )

    async def _transition(
        self,
        incident_id: str,
        dispatcher: str,
        step: incidents.Transition,
        expected_version: int | None,
    ) -> IncidentView:
        actor = f"dispatcher:{person_name(dispatcher)}"
        work = partial(
            incidents.transition,
            self._engine,
            incident_id,
            actor,
            step,
            expected_version,
            self._announce,
        )
        view = await self._write(step.to, work)
        self.feed.publish(StoreChange("incident", incident_id=incident_id, version=view.version))
        return view

    async def merge_incident(
        self,
        incident_id: str,
        into_id: str,
        dispatcher: str,
        expected_version: int | None = None,
    ) -> IncidentView:
        """Merge the duplicate `incident_id` into `into_id`; answers the survivor."""
        actor = f"dispatcher:{person_name(dispatcher)}"
        work = partial(
            incidents.merge,
            self._engine,
            incident_id,
            into_id,
            actor,
            expected_version,
            self._announce,
        )
        survivor = await self._write("merge", work)
        self.feed.publish(StoreChange("incident", incident_id=incident_id))
        self.feed.publish(StoreChange("incident", incident_id=into_id, version=survivor.version))
        return survivor

    async def correct_incident(
        self,
        incident_id: str,
        field: str,
        value: JsonValue,
        reviewer: str,
        expected_version: int | None = None,
    ) -> IncidentView:
        """A human corrects (or confirms) a field the bot filled; audited as theirs."""
        actor = f"reviewer:{person_name(reviewer)}"
        work = partial(
            incidents.correct,
            self._engine,
            incident_id,
            field,
            value,
            actor,
            expected_version,
            self._announce,
        )
        view = await self._write("correct", work)
        self.feed.publish(StoreChange("incident", incident_id=incident_id, version=view.version))
        return view

    async def duplicate_candidates(self, incident_id: str) -> list[duplicates.Candidate]:
        """Open incidents that may report the same emergency as `incident_id`."""
        incident = await self.get_incident(incident_id)
        if incident is None:
            raise UnknownIncident(f"no incident {incident_id!r} in the store")
        work = partial(
            incidents.recent_open,
            self._engine,
            incident.incident.line,
            incident.created_at,
            duplicates.WINDOW,
        )
        return duplicates.candidates(incident, await self._run("duplicates", work))

    # -- the access log -----------------------------------------------------------

    async def record_access(self, actor: str, role: str, action: str, subject: str) -> None:
        """Write down that `actor` read personal data (before it is shown)."""
        row = {
            "at": utcnow(),
            "actor": actor[:160],
            "role": role[:32],
            "action": action[:64],
            "subject": subject[:160],
        }
        await self._write(
            "record_access", partial(privacy.insert_row, self._engine, AccessLogRecord, row)
        )

    async def access_log(
        self, *, subject: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[AccessEntry]:
        """Reads of personal data, newest first (optionally of one subject)."""
        if not 1 <= limit <= _MAX_LIST_LIMIT:
            raise ValueError(f"limit must be in 1..{_MAX_LIST_LIMIT}, got {limit}")
        if offset < 0:
            raise ValueError(f"offset must be >= 0, got {offset}")
        return await self._run(
            "access_log", partial(privacy.access_log, self._engine, subject, limit, offset)
        )

    # -- turn numbering -----------------------------------------------------------

    async def allocate_seq(self, call_id: str) -> int:
        """The next turn number of `call_id` (what `add_turn` uses without a seq)."""

        async def highest_stored() -> int:
            return await self._run("add_turn", partial(call_reads.max_seq, self._engine, call_id))

        return await self._turn_numbers.allocate(call_id, highest_stored)

    async def allocate_known_seq(self, call_id: str) -> int | None:
        """Like `allocate_seq` without asking the database: None if the call's numbering
        is not known here yet (used while writes are journaled)."""
        return await self._turn_numbers.allocate_known(call_id)

    # -- blocking work (runs in a worker thread) ----------------------------------

    async def _write(self, what: str, work: Callable[[], T]) -> T:
        """`_run` for a write: on SQLite, in the store's one writer thread."""
        return await self._run(what, work, self._writer)

    async def _run(
        self, what: str, work: Callable[[], T], executor: Executor | None = None
    ) -> T:
        loop = asyncio.get_running_loop()
        in_context = partial(contextvars.copy_context().run, work)  # keeps the call id
        try:
            return await asyncio.wait_for(
                loop.run_in_executor(executor, in_context), self._timeout_s
            )
        except TimeoutError:
            raise StoreUnavailable(
                f"{what}: database {self._where} did not answer within {self._timeout_s} s"
            ) from None
        except IntegrityError as exc:
            raise DispatchError(f"{what}: refused by the database: {reason(exc)}") from exc
        except SQLAlchemyError as exc:
            raise StoreUnavailable(f"{what}: database {self._where} failed: {reason(exc)}") from exc

    def _insert_ignore(
        self,
        model: type[Base],
        values: Mapping[str, object],
        keys: list[str],
        change: StoreChange | None = None,
    ) -> bool:
        """Insert a row unless its key exists; whether it was inserted (then `change`
        is announced)."""
        key = getattr(model, keys[0])
        with self._engine.begin() as conn:
            if self.dialect == "postgresql":
                pg = postgresql.insert(model).values(values)
                inserted = conn.execute(
                    pg.on_conflict_do_nothing(index_elements=keys).returning(key)
                )
            else:
                lite = sqlite.insert(model).values(values)
                inserted = conn.execute(
                    lite.on_conflict_do_nothing(index_elements=keys).returning(key)
                )
            created = inserted.first() is not None
            if created and change is not None:
                self._announce(conn, change)
            return created

    def _announce(self, conn: Connection, change: StoreChange) -> None:
        """Tell the other nodes, in the writing transaction (PostgreSQL only)."""
        if conn.dialect.name == "postgresql":
            conn.execute(
                text("SELECT pg_notify(:channel, :payload)"),
                {"channel": CHANNEL, "payload": encode(change, self.feed.node_id)},
            )

    def _update_call(
        self, call_id: str, values: Mapping[str, object], announce: bool = True
    ) -> str | None:
        """Update a call; the id of its incident, if it has one (announced as changed)."""
        with self._engine.begin() as conn:
            result = conn.execute(
                update(CallRecord)
                .where(CallRecord.id == call_id)
                .values(values)
                .returning(CallRecord.incident_id)
            )
            found = result.first()
            if found is None:
                raise UnknownCall(f"no call {call_id!r} in the store")
            incident_id: str | None = found[0]
            if announce and incident_id is not None:
                self._announce(conn, StoreChange("incident", incident_id=incident_id))
            return incident_id
