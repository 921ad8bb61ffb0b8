"""Nothing lost while the database is away: a write journal in front of the store.

`JournaledStore` is a `CallStore`. A write that raises `StoreUnavailable` is
appended to `journal.jsonl` in its directory (one JSON object a line, flushed
and fsync'd before the write returns) and the caller carries on. While anything
is journaled, later writes go to the journal too, so that they keep their order.
`replay()` applies the journal in order once the database answers and records
the number of the last applied entry in `applied` (written atomically), so a
restart resumes where it stopped; `run_replayer()` retries with back-off.

Writes are idempotent by key (call id, `(call_id, seq)`, incident id), and turns
are journaled with an explicit `seq`, so applying an entry twice (a crash
between applying it and recording it) changes nothing. The one exception is a
turn whose number could not be known (a call neither started on this node nor
seen before, with the database down): it is journaled without `seq` and
numbered at replay.

Reads and dispatcher actions are not journaled: they need the database's answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from callcenter.events import CallInfo, Language, Line
from dispatch.errors import DispatchError, StoreUnavailable
from dispatch.records import (
    CallStatus,
    CallSummary,
    CallView,
    IncidentData,
    IncidentView,
    TurnData,
    call_status,
    speaker,
)
from dispatch.store import SqlCallStore

logger = logging.getLogger(__name__)

JOURNAL_FILE: Final = "journal.jsonl"
APPLIED_FILE: Final = "applied"
REJECTED_FILE: Final = "rejected.jsonl"

_Entry = dict[str, Any]  # one journal line, as parsed (module-internal)


class JournaledStore:
    """A `CallStore` over `SqlCallStore` that journals writes the database refuses to take.

    The constructor reads `directory` (creating it), so make it at start-up.
    """

    def __init__(
        self,
        store: SqlCallStore,
        directory: Path,
        *,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 30.0,
    ) -> None:
        if retry_initial_s <= 0 or retry_max_s < retry_initial_s:
            raise ValueError("need 0 < retry_initial_s <= retry_max_s")
        self.store = store
        self._dir = directory
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._lock = asyncio.Lock()  # appends, and the replayer's final check
        self._replaying = asyncio.Lock()
        self._wake = asyncio.Event()
        directory.mkdir(parents=True, exist_ok=True)
        applied = self._read_applied()
        entries = self._read_entries()
        self._next_n = max([applied, *(int(e["n"]) for e in entries)]) + 1
        self._pending = any(int(e["n"]) > applied for e in entries)
        if self._pending:
            self._wake.set()

    @property
    def pending(self) -> bool:
        """Whether journaled writes wait for the database."""
        return self._pending

    # -- CallStore: writes --------------------------------------------------------

    async def start_call(self, info: CallInfo, started_at: datetime) -> None:
        args = {"info": _info_json(info), "started_at": _time(started_at)}
        journaled = await self._write(
            "start_call", args, lambda: self.store.start_call(info, started_at)
        )
        if journaled:
            self.store.note_new_call(info.call_id)

    async def mark_answered(self, call_id: str, at: datetime) -> None:
        args = {"call_id": call_id, "at": _time(at)}
        await self._write("mark_answered", args, lambda: self.store.mark_answered(call_id, at))

    async def add_turn(self, call_id: str, turn: TurnData, *, seq: int | None = None) -> None:
        if seq is None and self._pending:  # the database may lag the journal: count here
            seq = await self.store.allocate_known_seq(call_id)
        elif seq is None:
            with contextlib.suppress(StoreUnavailable):  # else numbered at replay
                seq = await self.store.allocate_seq(call_id)
        args = {"call_id": call_id, "seq": seq, "turn": _turn_json(turn)}
        number = seq
        await self._write("add_turn", args, lambda: self.store.add_turn(call_id, turn, seq=number))

    async def end_call(
        self,
        call_id: str,
        status: CallStatus,
        end_reason: str,
        at: datetime,
        handoff_reason: str | None = None,
    ) -> None:
        args = {
            "call_id": call_id,
            "status": call_status(status),
            "end_reason": end_reason,
            "at": _time(at),
            "handoff_reason": handoff_reason,
        }
        await self._write(
            "end_call",
            args,
            lambda: self.store.end_call(call_id, status, end_reason, at, handoff_reason),
        )

    async def set_recording(self, call_id: str, path: str, duration_s: float) -> None:
        args = {"call_id": call_id, "path": path, "duration_s": duration_s}
        await self._write(
            "set_recording", args, lambda: self.store.set_recording(call_id, path, duration_s)
        )

    async def upsert_incident(self, incident: IncidentData, *, actor: str = "bot") -> None:
        args = {"incident": _incident_json(incident), "actor": actor}
        await self._write(
            "upsert_incident", args, lambda: self.store.upsert_incident(incident, actor=actor)
        )

    # -- CallStore: reads (never journaled) ------------------------------------------

    async def get_call(self, call_id: str) -> CallView | None:
        return await self.store.get_call(call_id)

    async def list_calls(self, limit: int = 50) -> list[CallSummary]:
        return await self.store.list_calls(limit)

    async def get_incident(self, incident_id: str) -> IncidentView | None:
        return await self.store.get_incident(incident_id)

    async def close(self) -> None:
        await self.store.close()

    # -- replay ---------------------------------------------------------------------

    async def replay(self) -> int:
        """Apply every journaled write in order; how many were applied.

        Raises `StoreUnavailable` (keeping the rest) if the database is still away.
        A write the database refuses (e.g. a turn of a call it never saw) is moved
        to `rejected.jsonl` and logged, so that one bad entry cannot stop the rest.
        """
        async with self._replaying:
            applied = 0
            while True:
                done = await asyncio.to_thread(self._read_applied)
                entries = [
                    e for e in await asyncio.to_thread(self._read_entries) if int(e["n"]) > done
                ]
                if not entries:
                    async with self._lock:
                        if self._next_n - 1 <= done:  # nothing appended meanwhile
                            await asyncio.to_thread(self._clear)
                            self._pending = False
                            self._wake.clear()
                            return applied
                    continue
                for entry in entries:
                    try:
                        await self._apply(entry)
                    except StoreUnavailable:
                        raise
                    except (DispatchError, ValueError, KeyError, TypeError) as exc:
                        logger.error(
                            "journal entry %s (%s) refused: %r", entry["n"], entry["op"], exc
                        )
                        await asyncio.to_thread(self._append_line, REJECTED_FILE, entry)
                    await asyncio.to_thread(self._write_applied, int(entry["n"]))
                    applied += 1

    async def run_replayer(self) -> None:
        """Replay whenever something is journaled, backing off while the database is away.

        Runs until cancelled; start it in the service's task group.
        """
        delay_s = self._retry_initial_s
        while True:
            await self._wake.wait()
            try:
                count = await self.replay()
            except StoreUnavailable as exc:
                logger.warning("journal replay waits %.1f s: %s", delay_s, exc)
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, self._retry_max_s)
                continue
            delay_s = self._retry_initial_s
            if count:
                logger.info("journal replayed: %d writes", count)

    # -- internals ------------------------------------------------------------------

    async def _write(
        self, op: str, args: Mapping[str, object], apply: Callable[[], Awaitable[None]]
    ) -> bool:
        """Apply a write, or journal it; whether it was journaled."""
        if not self._pending:
            try:
                await apply()
                return False
            except StoreUnavailable as exc:
                logger.warning("%s journaled: %s", op, exc)
        async with self._lock:
            entry: _Entry = {"n": self._next_n, "op": op, "args": dict(args)}
            await asyncio.to_thread(self._append_line, JOURNAL_FILE, entry)
            self._next_n += 1
            self._pending = True
            self._wake.set()
        return True

    async def _apply(self, entry: _Entry) -> None:
        op, args = entry["op"], entry["args"]
        if op == "start_call":
            await self.store.start_call(_info_from(args["info"]), _parse_time(args["started_at"]))
        elif op == "mark_answered":
            await self.store.mark_answered(args["call_id"], _parse_time(args["at"]))
        elif op == "add_turn":
            turn = _turn_from(args["turn"])
            await self.store.add_turn(args["call_id"], turn, seq=args["seq"])
        elif op == "end_call":
            await self.store.end_call(
                args["call_id"],
                call_status(args["status"]),
                args["end_reason"],
                _parse_time(args["at"]),
                args["handoff_reason"],
            )
        elif op == "set_recording":
            await self.store.set_recording(args["call_id"], args["path"], args["duration_s"])
        elif op == "upsert_incident":
            incident = _incident_from(args["incident"])
            await self.store.upsert_incident(incident, actor=args["actor"])
        else:
            raise ValueError(f"unknown journal operation {op!r}")

    # blocking file work (worker threads, or the constructor)

    def _append_line(self, name: str, entry: _Entry) -> None:
        path = self._dir / name
        line = json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n"
        with path.open("a", encoding="utf-8") as file:
            file.write(line)
            file.flush()
            os.fsync(file.fileno())

    def _read_entries(self) -> list[_Entry]:
        path = self._dir / JOURNAL_FILE
        if not path.exists():
            return []
        entries: list[_Entry] = []
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:  # a line cut short by a crash
                logger.warning("journal line %d unreadable, skipped", number)
                continue
            if isinstance(entry, dict) and "n" in entry:
                entries.append(entry)
        return entries

    def _read_applied(self) -> int:
        try:
            return int((self._dir / APPLIED_FILE).read_text(encoding="ascii").strip() or 0)
        except FileNotFoundError:
            return 0

    def _write_applied(self, n: int) -> None:
        tmp = self._dir / (APPLIED_FILE + ".tmp")
        with tmp.open("w", encoding="ascii") as file:
            file.write(str(n))
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, self._dir / APPLIED_FILE)
        self._sync_dir()

    def _clear(self) -> None:
        """Drop the applied journal; `applied` stays, so entry numbers keep rising."""
        with contextlib.suppress(FileNotFoundError):
            (self._dir / JOURNAL_FILE).unlink()
        self._sync_dir()

    def _sync_dir(self) -> None:
        fd = os.open(self._dir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# -- (de)serialisation ----------------------------------------------------------------


def _time(at: datetime) -> str:
    if at.tzinfo is None:
        raise ValueError("naive datetime: pass a timezone-aware time (UTC)")
    return at.isoformat()


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _info_json(info: CallInfo) -> dict[str, object]:
    return {
        "call_id": info.call_id,
        "line": info.line.value,
        "language": info.language.value,
        "caller_number": info.caller_number,
        "channel": info.channel,
    }


def _info_from(data: _Entry) -> CallInfo:
    return CallInfo(
        call_id=data["call_id"],
        line=Line(data["line"]),
        language=Language(data["language"]),
        caller_number=data["caller_number"],
        channel=data["channel"],
    )


def _turn_json(turn: TurnData) -> dict[str, object]:
    data = asdict(turn)
    data["slots"] = dict(turn.slots)
    return data


def _turn_from(data: _Entry) -> TurnData:
    return TurnData(**{**data, "speaker": speaker(data["speaker"])})


def _incident_json(incident: IncidentData) -> dict[str, object]:
    data = asdict(incident)
    data["line"] = Line(incident.line).value
    data["details"] = dict(incident.details)
    return data


def _incident_from(data: _Entry) -> IncidentData:
    return IncidentData(**{**data, "line": Line(data["line"])})
