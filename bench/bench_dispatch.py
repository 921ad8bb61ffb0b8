"""The dispatch queue under load: store write and claim rates, and write -> page latency.

    python -m bench.bench_dispatch [--json PATH] [--postgres-url URL] [--skip-browser] \
        [--incidents 1000] [--writers 20] [--dispatchers 20] [--claims 200] \
        [--page-incidents 30] [--page-rate 2] [--max-seconds 120]

For SQLite (a temp file) and PostgreSQL (a fresh schema, dropped afterwards;
skipped with the reason when the server does not answer):

1. writes: N incidents through `SqlCallStore.upsert_incident` by W concurrent
   writers (asyncio tasks), each incident created and then updated once, as
   the bot does when a detail arrives; then a check that nothing was lost or
   duplicated (rows, ids, versions, audit rows), and a retry round in which
   every incident's last write is sent again (no new rows, no new versions);
2. claims: D dispatchers each try to acknowledge every one of 200 new
   incidents, in their own shuffled order; exactly one may win each.

Then, in a real browser (Debian's Chromium, headless, via Playwright): the real
service is started, a dispatcher logs in to /dispatch, incidents are reported
through the chat API, and a MutationObserver in the page notes when each row
appears: the chat answer returned -> the row is in the page.

Prints JSON on stdout (or to --json PATH) and a table on stderr. Exits 0
whatever the figures; 2 only when something needed cannot be reached (the
service does not start, or an address is not loopback).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from bench.stats import emit, fmt, is_loopback, summarize_ms, table
from callcenter.events import CallInfo, Language, Line
from dispatch.errors import AlreadyClaimed, DispatchError
from dispatch.records import IncidentData, JsonValue
from dispatch.store import SqlCallStore

log = logging.getLogger("bench.bench_dispatch")

DEFAULT_PG_URL = os.environ.get(
    "CALLBOT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [  # as tests/e2e/test_dispatch_console.py
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DISPATCHER = "bench"
PASSWORD = "a long benchmark dispatcher password"

TARGET_PAGE_P95_MS = 300.0
TARGET_INCIDENTS = 1000
TARGET_WRITERS = 20
NEVER_SHOWN_AFTER_MS = 5000.0
LIMITS = {
    "incidents": (1, 20_000),
    "writers": (1, 200),
    "dispatchers": (1, 100),
    "claims": (1, 2000),
    "page_incidents": (1, 200),
}

# What the bot writes and the store audits (dispatch.incidents.BOT_FIELDS), kept
# apart here so that the expected audit rows are not computed by the code under test.
AUDITED = (
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
KINDS: tuple[tuple[Line, str, int], ...] = (
    (Line.FIRE, "fire", 1),
    (Line.POLICE, "robbery", 2),
    (Line.POLICE, "traffic_accident", 2),
    (Line.FIRE, "explosion_gas_leak", 1),
    (Line.POLICE, "theft", 3),
    (Line.POLICE, "assault", 2),
    (Line.FIRE, "other_rescue", 2),
)
STREETS = (
    "phố Huế",
    "Hàng Bài",
    "ngõ 105 Láng Hạ",
    "Kim Mã",
    "Nguyễn Trãi",
    "Giải Phóng",
    "Trần Duy Hưng",
    "Cầu Giấy",
)
NAMES = ("Nguyễn Văn An", "Trần Thị Bích", "Lê Minh Châu", "Phạm Quốc Dũng", "Hoàng Thu Hà")


# ---------------------------------------------------------------- incidents


def incident_pair(prefix: str, index: int) -> tuple[IncidentData, IncidentData]:
    """An incident as the bot first writes it, and after one more detail arrived."""
    line, category, priority = KINDS[index % len(KINDS)]
    street = STREETS[(index // len(KINDS)) % len(STREETS)]
    location = f"số {index % 300 + 1} {street}"
    number = f"09{index:08d}"
    details: dict[str, JsonValue] = {
        "incident_location": location,
        "callback_number": number,
    }
    if priority == 1:
        details["red_flags"] = ["people_trapped"]
    first = IncidentData(
        id=f"{prefix}-{index:05d}",
        line=line,
        call_id=f"{prefix}-call-{index:05d}",
        category=category,
        priority=priority,
        location_text=location,
        callback_number=number,
        details=details,
    )
    name = NAMES[index % len(NAMES)]
    injured = index % 3
    second = replace(
        first,
        caller_name=name,
        injured=injured,
        details={**details, "caller_name": name, "injured": str(injured)},
    )
    return first, second


def audited_fields(incident: IncidentData) -> dict[str, object]:
    values = {name: getattr(incident, name) for name in AUDITED}
    values["line"] = str(incident.line)
    values["details"] = dict(incident.details)
    return values


def expected_audit(first: IncidentData, second: IncidentData) -> dict[int, int]:
    """Audit rows per version: every non-empty field and the status at creation,
    then every field the update changed."""
    created = audited_fields(first)
    updated = audited_fields(second)
    return {
        1: sum(1 for value in created.values() if value not in (None, {}, [])) + 1,
        2: sum(1 for name in AUDITED if created[name] != updated[name]),
    }


# ---------------------------------------------------------------- timing logs


@dataclass
class WriteLog:
    latency_s: dict[str, list[float]] = field(default_factory=lambda: {"create": [], "update": []})
    attempted: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    truncated: bool = False


@dataclass
class ClaimLog:
    latency_s: list[float] = field(default_factory=list)
    win_latency_s: list[float] = field(default_factory=list)
    wins: list[tuple[str, str, float]] = field(default_factory=list)  # id, name, monotonic
    already_claimed: int = 0
    errors: list[str] = field(default_factory=list)
    truncated: bool = False


def rate(count: int, seconds: float) -> float | None:
    return round(count / seconds, 1) if seconds > 0 else None


# ---------------------------------------------------------------- writes


async def writer(
    store: SqlCallStore,
    items: Sequence[tuple[IncidentData, ...]],
    deadline: float,
    out: WriteLog,
) -> None:
    for writes in items:
        if time.monotonic() > deadline:
            out.truncated = True
            return
        out.attempted.append(writes[0].id)
        for kind, incident in zip(("create", "update"), writes, strict=False):
            started = time.perf_counter()
            try:
                await store.upsert_incident(incident, actor="bot:bench")
            except DispatchError as exc:
                out.errors.append(f"{incident.id} {kind}: {exc}")
                continue
            out.latency_s[kind].append(time.perf_counter() - started)


async def run_writers(
    store: SqlCallStore,
    items: Sequence[tuple[IncidentData, ...]],
    writers: int,
    max_seconds: float,
) -> tuple[WriteLog, float]:
    """Each writer takes every `writers`-th item; the wall time of them all."""
    logs = [WriteLog() for _ in range(writers)]
    deadline = time.monotonic() + max_seconds
    started = time.perf_counter()
    await asyncio.gather(
        *(writer(store, items[w::writers], deadline, logs[w]) for w in range(writers))
    )
    wall_s = time.perf_counter() - started
    merged = WriteLog()
    for one in logs:
        for kind, values in one.latency_s.items():
            merged.latency_s[kind].extend(values)
        merged.attempted.extend(one.attempted)
        merged.errors.extend(one.errors)
        merged.truncated = merged.truncated or one.truncated
    return merged, wall_s


async def start_calls(store: SqlCallStore, incidents: Sequence[IncidentData], tasks: int) -> None:
    """The calls the incidents come from (untimed), so that each upsert links its call."""
    at = datetime.now(UTC)

    async def one_task(share: Sequence[IncidentData]) -> None:
        for incident in share:
            assert incident.call_id is not None
            info = CallInfo(incident.call_id, incident.line, Language.VI, "0912345678", "chat")
            await store.start_call(info, at)

    await asyncio.gather(*(one_task(incidents[t::tasks]) for t in range(tasks)))


def check_writes(
    url: str, prefix: str, expected: dict[str, dict[int, int]], attempted: Sequence[str]
) -> dict[str, Any]:
    """Rows, ids, versions and audit rows of the written incidents, from the database."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            pattern = {"p": f"{prefix}-%"}
            rows = conn.execute(
                text("SELECT id, version FROM incidents WHERE id LIKE :p"), pattern
            ).all()
            counted = conn.execute(text("SELECT count(*) FROM incidents WHERE id LIKE :p"), pattern)
            row_count = int(counted.scalar_one())
            audit = conn.execute(
                text(
                    "SELECT incident_id, version, count(*) FROM incident_audit "
                    "WHERE incident_id LIKE :p GROUP BY incident_id, version"
                ),
                pattern,
            ).all()
    finally:
        engine.dispose()
    ids = Counter(str(row[0]) for row in rows)
    versions = {str(row[0]): int(row[1]) for row in rows}
    stored_audit: dict[str, dict[int, int]] = {}
    for incident_id, version, count in audit:
        stored_audit.setdefault(str(incident_id), {})[int(version)] = int(count)
    wanted = set(attempted)
    lost = sorted(wanted - set(ids))
    duplicated = sorted(incident_id for incident_id, n in ids.items() if n > 1)
    unexpected = sorted(set(ids) - wanted)
    off_version = sorted(i for i in wanted if i in versions and versions[i] != 2)
    audit_off = sorted(i for i in wanted if stored_audit.get(i, {}) != expected[i])
    audit_rows = sum(sum(per.values()) for per in stored_audit.values())
    audit_expected = sum(sum(expected[i].values()) for i in wanted)
    return {
        "expected_rows": len(wanted),
        "rows": row_count,
        "lost": len(lost),
        "duplicated": len(duplicated),
        "unexpected": len(unexpected),
        "not_at_version_2": len(off_version),
        "audit_rows": audit_rows,
        "audit_rows_expected": audit_expected,
        "audit_mismatched_incidents": len(audit_off),
        "examples": {
            "lost": lost[:5],
            "duplicated": duplicated[:5],
            "not_at_version_2": off_version[:5],
            "audit_mismatched": audit_off[:5],
        },
        "version_sum": sum(versions.values()),
        "ok": row_count == len(wanted)
        and not lost
        and not duplicated
        and not unexpected
        and not off_version
        and not audit_off,
    }


async def bench_writes(
    store: SqlCallStore, url: str, args: argparse.Namespace
) -> tuple[dict[str, object], dict[str, object]]:
    prefix = "bench-w"
    pairs = [incident_pair(prefix, i) for i in range(args.incidents)]
    expected = {first.id: expected_audit(first, second) for first, second in pairs}
    await start_calls(store, [first for first, _ in pairs], args.writers)

    done, wall_s = await run_writers(store, pairs, args.writers, args.max_seconds)
    creates, updates = done.latency_s["create"], done.latency_s["update"]
    check = await asyncio.to_thread(check_writes, url, prefix, expected, done.attempted)
    writes: dict[str, object] = {
        "incidents": args.incidents,
        "writers": args.writers,
        "incidents_written": len(done.attempted),
        "writes": len(creates) + len(updates),
        "wall_s": round(wall_s, 2),
        "incidents_per_s": rate(len(done.attempted), wall_s),
        "writes_per_s": rate(len(creates) + len(updates), wall_s),
        "write_latency": summarize_ms(creates + updates),
        "create_latency": summarize_ms(creates),
        "update_latency": summarize_ms(updates),
        "errors": len(done.errors),
        "error_examples": done.errors[:5],
        "truncated": done.truncated,
        "check": check,
    }

    # Retry round: every incident's last write again. (An upsert carries the whole
    # state, so replaying the creation after the update would rightly revert it.)
    written = set(done.attempted)
    retries = [(second,) for _, second in pairs if second.id in written]
    again, retry_wall_s = await run_writers(store, retries, args.writers, args.max_seconds)
    replayed = again.latency_s["create"]  # each single write is logged as "create"
    after = await asyncio.to_thread(check_writes, url, prefix, expected, done.attempted)
    retry: dict[str, object] = {
        "writes": len(replayed),
        "wall_s": round(retry_wall_s, 2),
        "writes_per_s": rate(len(replayed), retry_wall_s),
        "write_latency": summarize_ms(replayed),
        "errors": len(again.errors),
        "error_examples": again.errors[:5],
        "truncated": again.truncated,
        "check": {
            "rows": after["rows"],
            "expected_rows": after["expected_rows"],
            "new_versions": after["version_sum"] - check["version_sum"],
            "audit_rows_added": after["audit_rows"] - check["audit_rows"],
            "ok": after["rows"] == check["rows"]
            and after["version_sum"] == check["version_sum"]
            and after["audit_rows"] == check["audit_rows"]
            and not again.errors,
        },
    }
    return writes, retry


# ---------------------------------------------------------------- claims


async def dispatcher(
    store: SqlCallStore,
    name: str,
    ids: Sequence[str],
    seed: int,
    deadline: float,
    out: ClaimLog,
) -> None:
    order = list(ids)
    random.Random(seed).shuffle(order)
    for incident_id in order:
        if time.monotonic() > deadline:
            out.truncated = True
            return
        started = time.perf_counter()
        try:
            await store.acknowledge_incident(incident_id, name)
        except AlreadyClaimed:
            out.already_claimed += 1
        except DispatchError as exc:
            out.errors.append(f"{incident_id} by {name}: {exc}")
            continue
        else:
            elapsed = time.perf_counter() - started
            out.wins.append((incident_id, name, time.monotonic()))
            out.win_latency_s.append(elapsed)
        out.latency_s.append(time.perf_counter() - started)


def check_claims(url: str, winners: dict[str, list[str]], ids: Sequence[str]) -> dict[str, object]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT id, status, acknowledged_by FROM incidents WHERE id LIKE :p"),
                {"p": "bench-c-%"},
            ).all()
    finally:
        engine.dispose()
    stored = {str(row[0]): (str(row[1]), row[2]) for row in rows}
    no_winner = [i for i in ids if not winners.get(i)]
    several = [i for i in ids if len(winners.get(i, [])) > 1]
    mismatch = [
        i
        for i in ids
        if len(winners.get(i, [])) == 1 and stored.get(i) != ("acknowledged", winners[i][0])
    ]
    return {
        "incidents": len(ids),
        "incidents_without_winner": len(no_winner),
        "incidents_with_several_winners": len(several),
        "acknowledged_by_mismatch": len(mismatch),
        "examples": {"no_winner": no_winner[:5], "several": several[:5], "mismatch": mismatch[:5]},
        "ok": not no_winner and not several and not mismatch,
    }


async def bench_claims(
    store: SqlCallStore, url: str, args: argparse.Namespace
) -> dict[str, object]:
    incidents = [incident_pair("bench-c", i)[0] for i in range(args.claims)]
    ids = [incident.id for incident in incidents]
    for incident in incidents:  # untimed: the new incidents in the queue
        await store.upsert_incident(replace(incident, call_id=None), actor="bot:bench")
    logs = [ClaimLog() for _ in range(args.dispatchers)]
    deadline = time.monotonic() + args.max_seconds
    started_mono = time.monotonic()
    started = time.perf_counter()
    await asyncio.gather(
        *(
            dispatcher(store, f"dispatcher{d:02d}", ids, 1000 + d, deadline, logs[d])
            for d in range(args.dispatchers)
        )
    )
    wall_s = time.perf_counter() - started
    attempts = [s for one in logs for s in one.latency_s]
    wins = [win for one in logs for win in one.wins]
    errors = [e for one in logs for e in one.errors]
    winners: dict[str, list[str]] = {}
    for incident_id, name, _ in wins:
        winners.setdefault(incident_id, []).append(name)
    last_win_s = max((at for _, _, at in wins), default=started_mono) - started_mono
    check = await asyncio.to_thread(check_claims, url, winners, ids)
    return {
        "incidents": args.claims,
        "dispatchers": args.dispatchers,
        "attempts": len(attempts) + len(errors),
        "wall_s": round(wall_s, 2),
        "attempts_per_s": rate(len(attempts) + len(errors), wall_s),
        "claims": len(wins),
        "claims_per_s": rate(len(wins), wall_s),
        "all_claimed_after_s": round(last_win_s, 2),
        "claims_per_s_until_all_claimed": rate(len(wins), last_win_s),
        "already_claimed": sum(one.already_claimed for one in logs),
        "errors": len(errors),
        "error_examples": errors[:5],
        "attempt_latency": summarize_ms(attempts),
        "winning_claim_latency": summarize_ms([s for one in logs for s in one.win_latency_s]),
        "truncated": any(one.truncated for one in logs),
        "check": check,
    }


# ---------------------------------------------------------------- stores


async def bench_store(url: str, args: argparse.Namespace) -> dict[str, object]:
    store = SqlCallStore(url)
    try:
        await store.create_schema()
        writes, retries = await bench_writes(store, url, args)
        claims = await bench_claims(store, url, args)
    except (DispatchError, SQLAlchemyError) as exc:
        return {"error": str(exc)[:500]}
    finally:
        await store.close()
    return {"writes": writes, "retries": retries, "claims": claims}


async def bench_sqlite(args: argparse.Namespace) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="bench-dispatch-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'callbot.db'}"
        return {"url": "sqlite:///<temp>/callbot.db", **await bench_store(url, args)}


def postgres_unreachable(url: str) -> str | None:
    try:
        engine = create_engine(url, connect_args={"connect_timeout": 2})
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        finally:
            engine.dispose()
    except Exception as exc:  # any failure means: no server to measure
        return f"PostgreSQL at {make_url(url).render_as_string()} unreachable: {exc!r}"[:300]
    return None


@contextlib.contextmanager
def postgres_schema(url: str) -> Iterator[str]:
    """A fresh schema for the run (dropped afterwards); the URL that uses it."""
    schema = f"bench_dispatch_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url, connect_args={"connect_timeout": 2})
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        joiner = "&" if "?" in url else "?"
        try:
            yield f"{url}{joiner}options={quote(f'-csearch_path={schema}')}"
        finally:
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        admin.dispose()


async def bench_postgres(args: argparse.Namespace) -> dict[str, object]:
    shown = make_url(args.postgres_url).render_as_string()
    reason = await asyncio.to_thread(postgres_unreachable, args.postgres_url)
    if reason is not None:
        return {"url": shown, "skipped": reason}
    try:
        with postgres_schema(args.postgres_url) as url:
            return {"url": shown, **await bench_store(url, args)}
    except SQLAlchemyError as exc:  # e.g. no right to create a schema
        return {"url": shown, "error": f"schema set-up failed: {exc}"[:500]}


# ---------------------------------------------------------------- the page

OBSERVER_JS = """
() => {
  window.__seen = {};
  window.__frame = {};
  const body = document.querySelector("#queue-body");
  const note = (node) => {
    if (!(node instanceof HTMLTableRowElement) || !node.classList.contains("incident")) return;
    const id = node.dataset.id;
    if (!id || id in window.__seen) return;
    window.__seen[id] = Date.now();
    requestAnimationFrame(() => { window.__frame[id] = Date.now(); });
  };
  for (const tr of body.querySelectorAll("tr.incident")) window.__seen[tr.dataset.id] = 0;
  new MutationObserver((records) => {
    for (const record of records) for (const node of record.addedNodes) note(node);
  }).observe(body, { childList: true });
  return body.querySelectorAll("tr.incident").length;
}
"""

SEEN_JS = "() => ({ seen: window.__seen, frame: window.__frame })"


def page_message(index: int) -> tuple[Line, str]:
    """A resident's first message reporting an emergency, varied."""
    n = 3 + index * 7 % 190
    messages = (
        (Line.FIRE, f"cháy nhà ở số {n} phố Huế"),
        (Line.POLICE, f"có cướp ở ngõ {n} Láng Hạ"),
        (Line.FIRE, f"cháy nhà ở số {n} Hàng Bài, có người bị kẹt trên tầng hai"),
        (Line.POLICE, f"tôi vừa bị cướp điện thoại ở số {n} Kim Mã"),
        (Line.FIRE, f"có đám cháy lớn ở số {n} Nguyễn Trãi, khói rất nhiều"),
        (Line.POLICE, f"có cướp giật túi xách ở ngõ {n} Cầu Giấy"),
    )
    return messages[index % len(messages)]


@dataclass
class PageSample:
    index: int
    line: str
    text: str
    incident_id: str | None = None
    post_start_ms: float | None = None
    post_end_ms: float | None = None
    error: str | None = None


def report_incident(client: httpx.Client, sample: PageSample, number: str) -> None:
    try:
        opened = client.post(
            "/api/v1/chat/sessions", json={"line": sample.line, "lang": "vi", "from": number}
        )
        opened.raise_for_status()
        session_id = opened.json()["session_id"]
        sample.post_start_ms = time.time() * 1000.0
        reply = client.post(
            f"/api/v1/chat/sessions/{session_id}/messages", json={"text": sample.text}
        )
        sample.post_end_ms = time.time() * 1000.0
        reply.raise_for_status()
        incident_id = reply.json()["state"]["incident_id"]
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        sample.error = repr(exc)[:200]
        return
    sample.incident_id = None if incident_id is None else str(incident_id)


def create_dispatcher(data_dir: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "callcenter.cli",
            "users",
            "create",
            DISPATCHER,
            "--role",
            "dispatcher",
        ],
        input=PASSWORD + "\n",
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
        env={"CALLBOT_DATA_DIR": str(data_dir), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        timeout=60,
    )


def page_latencies(
    samples: Sequence[PageSample], seen: dict[str, Any], frame: dict[str, Any]
) -> dict[str, object]:
    from_end: list[float] = []
    from_start: list[float] = []
    to_frame: list[float] = []
    never = 0
    rows = []
    for s in samples:
        if s.incident_id is None or s.post_end_ms is None or s.post_start_ms is None:
            continue
        shown = seen.get(s.incident_id)
        painted = frame.get(s.incident_id)
        late = shown is None or float(shown) - s.post_end_ms > NEVER_SHOWN_AFTER_MS
        if late:
            never += 1
        if shown is not None and not late:
            from_end.append((float(shown) - s.post_end_ms) / 1000.0)
            from_start.append((float(shown) - s.post_start_ms) / 1000.0)
            if painted is not None:
                to_frame.append((float(painted) - s.post_end_ms) / 1000.0)
        rows.append(
            {
                "incident_id": s.incident_id,
                "post_ms": round(s.post_end_ms - s.post_start_ms, 1),
                "shown_after_answer_ms": None
                if shown is None
                else round(float(shown) - s.post_end_ms, 1),
            }
        )
    return {
        "from_answer": summarize_ms(from_end),
        "from_post_start": summarize_ms(from_start),
        "next_frame_from_answer": summarize_ms(to_frame),
        "never_shown_within_5s": never,
        "shown_before_answer": sum(1 for v in from_end if v < 0),
        "samples": rows,
    }


def bench_page(args: argparse.Namespace) -> dict[str, object]:
    """Write -> page latency in headless Chromium, against the real service."""
    if args.skip_browser:
        return {"skipped": "--skip-browser"}
    if not CHROMIUM.exists():
        return {"skipped": f"{CHROMIUM} is not installed (apt-get install chromium)"}
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    from tests.e2e.conftest import start_service, stop_service

    with tempfile.TemporaryDirectory(prefix="bench-dispatch-page-") as tmp:
        data_dir = Path(tmp) / "service"
        started = time.monotonic()
        try:
            service = start_service(
                data_dir, CALLBOT_DATABASE_URL=f"sqlite:///{data_dir / 'callbot.db'}"
            )
        except RuntimeError as exc:
            return {"unreachable": True, "error": f"the service did not start: {exc}"[-2000:]}
        startup_s = time.monotonic() - started
        if not is_loopback(service.base_url):
            stop_service(service)
            return {"unreachable": True, "error": f"not loopback: {service.base_url}"}
        try:
            create_dispatcher(data_dir)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
                )
                try:
                    return measure_page(browser, service.base_url, args) | {
                        "service_start_s": round(startup_s, 1)
                    }
                finally:
                    browser.close()
        except (subprocess.SubprocessError, PlaywrightError) as exc:
            return {"error": repr(exc)[:500], "service_log": service.log_tail(20)}
        finally:
            stop_service(service)


def measure_page(browser: Any, base_url: str, args: argparse.Namespace) -> dict[str, object]:
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{base_url}/dispatch")
    page.wait_for_url("**/login**", timeout=10_000)
    page.fill("#username", DISPATCHER)
    page.fill("#password", PASSWORD)
    page.click("#login-button")
    page.wait_for_url(f"{base_url}/dispatch", timeout=10_000)
    page.wait_for_selector('body[data-live="1"]', state="attached", timeout=10_000)
    page.evaluate(OBSERVER_JS)

    samples = []
    for index in range(args.page_incidents):
        line, message = page_message(index)
        samples.append(PageSample(index, str(line), message))
    started = time.monotonic()
    with httpx.Client(base_url=base_url, timeout=10.0, trust_env=False) as client:
        for sample in samples:
            wait_s = started + sample.index / args.page_rate - time.monotonic()
            if wait_s > 0:
                time.sleep(wait_s)
            report_incident(client, sample, f"09{sample.index + 1:08d}")
    wanted = {s.incident_id for s in samples if s.incident_id is not None}
    last_end = max((s.post_end_ms or 0.0 for s in samples), default=time.time() * 1000.0)
    while True:  # until every row is there, or 5 s after the last answer
        found = page.evaluate(SEEN_JS)
        if wanted <= set(found["seen"]) or time.time() * 1000.0 > last_end + NEVER_SHOWN_AFTER_MS:
            break
        time.sleep(0.2)
    time.sleep(0.1)  # let the last frames run
    found = page.evaluate(SEEN_JS)
    context.close()
    posts = [
        (s.post_end_ms - s.post_start_ms) / 1000.0
        for s in samples
        if s.post_end_ms is not None and s.post_start_ms is not None
    ]
    return {
        "incidents_requested": args.page_incidents,
        "rate_per_s": args.page_rate,
        "reported": len(wanted),
        "no_incident_id": sum(1 for s in samples if s.incident_id is None and s.error is None),
        "errors": [f"#{s.index}: {s.error}" for s in samples if s.error][:5],
        "chat_message_latency": summarize_ms(posts),
        **page_latencies(samples, found["seen"], found["frame"]),
    }


# ---------------------------------------------------------------- report


def store_rows(name: str, result: dict[str, Any]) -> list[list[object]]:
    if "skipped" in result or "error" in result:
        what = "skipped" if "skipped" in result else "error"
        reason = str(result[what]).splitlines()[0]
        return [[name, what, "", "", "", "", "", reason[:110]]]
    writes, retries, claims = result["writes"], result["retries"], result["claims"]
    wc, rc, cc = writes["check"], retries["check"], claims["check"]
    return [
        [
            name,
            "write (create + update)",
            writes["writes"],
            writes["writes_per_s"],
            writes["write_latency"]["median_ms"],
            writes["write_latency"]["p95_ms"],
            writes["write_latency"]["max_ms"],
            f"{writes['incidents_per_s']} incidents/s; rows {wc['rows']}/{wc['expected_rows']}, "
            f"lost {wc['lost']}, dup {wc['duplicated']}, v!=2 {wc['not_at_version_2']}, "
            f"audit {wc['audit_rows']}/{wc['audit_rows_expected']}, errors {writes['errors']}",
        ],
        [
            name,
            "retry (same last write)",
            retries["writes"],
            retries["writes_per_s"],
            retries["write_latency"]["median_ms"],
            retries["write_latency"]["p95_ms"],
            retries["write_latency"]["max_ms"],
            f"rows {rc['rows']}, new versions {rc['new_versions']}, "
            f"new audit rows {rc['audit_rows_added']}, errors {retries['errors']}",
        ],
        [
            name,
            "claim attempts",
            claims["attempts"],
            claims["attempts_per_s"],
            claims["attempt_latency"]["median_ms"],
            claims["attempt_latency"]["p95_ms"],
            claims["attempt_latency"]["max_ms"],
            f"{claims['claims']} won ({claims['claims_per_s']}/s; all claimed after "
            f"{claims['all_claimed_after_s']} s), "
            f"{claims['already_claimed']} AlreadyClaimed, errors {claims['errors']}; "
            f"one winner each: {'yes' if cc['ok'] else 'NO'}",
        ],
    ]


def writes_meet_target(result: dict[str, Any], args: argparse.Namespace) -> bool | None:
    if "writes" not in result:
        return None
    writes = result["writes"]
    check = writes["check"]
    return bool(
        writes["incidents_written"] >= TARGET_INCIDENTS
        and args.writers >= TARGET_WRITERS
        and check["ok"]
        and not writes["errors"]
    )


def print_table(report: dict[str, Any]) -> None:
    stores = report["stores"]
    rows: list[list[object]] = []
    for name in ("sqlite", "postgresql"):
        rows.extend(store_rows(name, stores[name]))
    params = report["params"]
    out = [
        f"\ndispatch store: {params['incidents']} incidents by {params['writers']} writers; "
        f"{params['dispatchers']} dispatchers on {params['claims']} incidents\n",
        table(
            ["store", "figure", "n", "per s", "median ms", "p95 ms", "max ms", "check"],
            rows,
        ),
    ]
    page = report["page"]
    if "from_answer" in page:
        prow = []
        for label, key in (
            ("answer returned -> row in page", "from_answer"),
            ("POST sent -> row in page", "from_post_start"),
            ("answer returned -> next frame", "next_frame_from_answer"),
            ("chat message POST", "chat_message_latency"),
        ):
            s = page[key]
            prow.append([label, s["n"], s["median_ms"], s["p95_ms"], s["max_ms"]])
        out.append(
            f"\n\nwrite -> page in headless Chromium: {page['reported']} incidents reported "
            f"at {page['rate_per_s']}/s, {page['never_shown_within_5s']} not shown within 5 s\n"
        )
        out.append(table(["figure", "n", "median ms", "p95 ms", "max ms"], prow))
    else:
        out.append(f"\n\nwrite -> page: {page.get('skipped') or page.get('error')}")
    met = report["meets_targets"]

    def verdict(value: object) -> str:
        return "-" if value is None else ("yes" if value else "NO")

    page_p95 = page.get("from_answer", {}).get("p95_ms") if "from_answer" in page else None
    target_rows: list[list[object]] = [
        ["write -> page p95 < 300 ms", fmt(page_p95, " ms"), verdict(met["write_to_page_p95"])],
    ]
    for name in ("sqlite", "postgresql"):
        result = stores[name]
        if "writes" in result:
            check = result["writes"]["check"]
            measured = (
                f"{result['writes']['incidents_written']} incidents, {check['lost']} lost, "
                f"{check['duplicated']} duplicated"
            )
        else:
            measured = "skipped" if "skipped" in result else "error"
        target_rows.append(
            [
                f"{name}: 1,000 incidents by 20 writers, 0 lost, 0 duplicated",
                measured,
                verdict(met[f"writes_{name}"]),
            ]
        )
    out.append("\n\ntargets\n")
    out.append(table(["target", "measured", "met"], target_rows))
    out.append(
        f"\nload average {report['loadavg_before']} -> {report['loadavg_after']}, "
        f"{report['cpu_count']} CPUs, {report['wall_s']} s\n"
    )
    sys.stderr.write("".join(out))


# ---------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_dispatch", description=__doc__)
    parser.add_argument("--json", type=Path, default=None, help="write JSON here, not stdout")
    parser.add_argument("--postgres-url", default=DEFAULT_PG_URL)
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--skip-browser", action="store_true")
    parser.add_argument("--incidents", type=int, default=1000)
    parser.add_argument("--writers", type=int, default=20)
    parser.add_argument("--dispatchers", type=int, default=20)
    parser.add_argument("--claims", type=int, default=200, help="incidents to claim")
    parser.add_argument("--page-incidents", type=int, default=30)
    parser.add_argument("--page-rate", type=float, default=2.0, help="incidents per second")
    parser.add_argument(
        "--max-seconds", type=float, default=120.0, help="per timed phase; no write after it"
    )
    args = parser.parse_args(argv)
    for name, (low, high) in LIMITS.items():
        setattr(args, name, min(max(getattr(args, name), low), high))
    args.page_rate = min(max(args.page_rate, 0.1), 10.0)
    args.max_seconds = min(max(args.max_seconds, 1.0), 600.0)
    return args


async def run_stores(args: argparse.Namespace) -> dict[str, dict[str, object]]:
    sqlite_result = await bench_sqlite(args)
    if args.skip_postgres:
        postgres_result: dict[str, object] = {"skipped": "--skip-postgres"}
    else:
        postgres_result = await bench_postgres(args)
    return {"sqlite": sqlite_result, "postgresql": postgres_result}


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    if not args.skip_postgres and not is_loopback(args.postgres_url):
        sys.stderr.write(f"refusing {args.postgres_url}: the benchmark uses loopback only\n")
        return 2
    load_before = [round(v, 2) for v in os.getloadavg()]
    started = time.monotonic()
    stores = asyncio.run(run_stores(args))
    page = bench_page(args)
    load_after = [round(v, 2) for v in os.getloadavg()]
    from_answer = page.get("from_answer")
    page_p95 = from_answer.get("p95_ms") if isinstance(from_answer, dict) else None
    report: dict[str, Any] = {
        "bench": "dispatch",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "loadavg_before": load_before,
        "loadavg_after": load_after,
        "params": {
            "incidents": args.incidents,
            "writers": args.writers,
            "dispatchers": args.dispatchers,
            "claims": args.claims,
            "page_incidents": args.page_incidents,
            "page_rate_per_s": args.page_rate,
            "max_seconds": args.max_seconds,
        },
        "stores": stores,
        "page": page,
        "targets": {
            "write_to_page_p95_ms": TARGET_PAGE_P95_MS,
            "writes": f"{TARGET_INCIDENTS} incidents by {TARGET_WRITERS} writers, "
            "0 lost, 0 duplicated",
        },
        "meets_targets": {
            "write_to_page_p95": None
            if not isinstance(page_p95, int | float)
            else page_p95 < TARGET_PAGE_P95_MS,
            "writes_sqlite": writes_meet_target(stores["sqlite"], args),
            "writes_postgresql": writes_meet_target(stores["postgresql"], args),
        },
        "wall_s": round(time.monotonic() - started, 1),
    }
    emit(report, args.json)
    print_table(report)
    return 2 if page.get("unreachable") else 0


if __name__ == "__main__":
    raise SystemExit(main())
