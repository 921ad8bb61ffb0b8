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

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from bench.dispatch_incidents import expected_audit, incident_pair
from bench.dispatch_page import bench_page
from bench.dispatch_report import print_table
from bench.stats import emit, is_loopback, summarize_ms
from callcenter.events import CallInfo, Language
from dispatch.errors import AlreadyClaimed, DispatchError
from dispatch.records import IncidentData
from dispatch.store import SqlCallStore

log = logging.getLogger("bench.bench_dispatch")

DEFAULT_PG_URL = os.environ.get(
    "CALLBOT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)

TARGET_PAGE_P95_MS = 300.0
TARGET_INCIDENTS = 1000
TARGET_WRITERS = 20
LIMITS = {
    "incidents": (1, 20_000),
    "writers": (1, 200),
    "dispatchers": (1, 100),
    "claims": (1, 2000),
    "page_incidents": (1, 200),
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


# ---------------------------------------------------------------- report


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
