"""Simultaneous calls on one node, ramped up, over the media-stream WebSocket. Not a test.

    python -m bench.bench_load --start [--levels 1,2,5,8,10,12] [--lang en|vi] [--json PATH]
    python -m bench.bench_load --url ws://127.0.0.1:8080/calls/media-stream ...

At each level N, N callers dial within a second (100 ms apart) and each says
the same recorded turns, one after each bot reply (English: espeak-ng turns in
the telephone band; Vietnamese: the real vieneu clips). Per level:

- answered: calls that heard the greeting; queued: calls that first heard
  "all lines busy" (the node's `CALLBOT_MAX_CONCURRENT_CALLS`), and how long
  until that prompt;
- turn latency: end of the caller's speech -> first audio of the reply,
  median and p95 over all turns of all calls;
- audio gaps: inside one bot utterance (between two marks or barge-ins), bot media that
  arrived 60 ms to 1.5 s after the previous chunk (the service paces 20 ms
  chunks at most 100 ms ahead, so such a gap means it fell behind real time;
  longer silences are taken as pauses between utterances);
- ASR queue wait: how long the level's speech-recognition jobs (viet-asr's
  streaming chunks, Whisper's utterances) waited for a free worker, from the
  service's `callbot_asr_queue_wait_seconds` histogram (read from /metrics
  before and after the level): the mean, and the p95 as the upper edge of the
  bucket that holds it;
- CPU of the service process and its children (Rasa, action server) over the
  level, as a share of one core, and the service's peak RSS, from /proc.

JSON on stdout (or --json PATH) and a table on stderr; exits 0 whatever the
figures, 2 only when the service cannot be reached. Loopback addresses only,
bounded in calls (at most 30 per level) and time.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.bench_turns import fetch_health, health_url, load_turns, wait_ready
from bench.stats import emit, is_loopback, percentile, table
from callcenter.media_client import MediaStreamCall, MediaStreamError
from callcenter.scripted_caller import play_turns

MAX_LEVEL = 30
GAP_S = 0.060
PAUSE_S = 1.5  # longer silences are pauses between utterances, not stalls
TARGETS = {"calls": 10, "turn_p95_ms": 2500, "busy_prompt_ms": 1000}


@dataclass
class CallResult:
    answered: bool = False
    queued: bool = False
    busy_prompt_s: float | None = None
    latencies_s: list[float] = field(default_factory=list)
    gaps: int = 0
    worst_gap_s: float = 0.0
    error: str | None = None


def utterance_gaps(call: MediaStreamCall) -> tuple[int, float]:
    """Gaps over GAP_S between bot audio chunks of one utterance (no mark, and no
    barge-in `clear`, between them)."""
    marks = sorted(
        [mark.received_s for mark in call.record.marks]
        + [clear.received_s for clear in call.record.clears]
    )
    gaps, worst = 0, 0.0
    media = call.record.media
    for before, after in itertools.pairwise(media):
        gap = after.received_s - before.received_s
        if gap <= GAP_S or gap > PAUSE_S:
            continue
        if any(before.received_s <= m <= after.received_s for m in marks):
            continue
        gaps += 1
        worst = max(worst, gap)
    return gaps, worst


async def one_call(url: str, lang: str, turns: list[bytes], timeout_s: float) -> CallResult:
    result = CallResult()
    call = MediaStreamCall(url, line="114", lang=lang, caller_number="0900000000")
    try:
        async with call:
            opened = time.monotonic()
            first = await call.wait_for_media(opened, timeout_s=timeout_s)
            result.busy_prompt_s = first - opened
            timings = await play_turns(
                call, turns, greeting_timeout_s=timeout_s * 6, reply_timeout_s=timeout_s
            )
            result.queued = any(mark.name == "busy" for mark in call.record.marks)
            result.answered = any(mark.name == "greeting" for mark in call.record.marks)
            result.latencies_s = [t.latency_s for t in timings if t.latency_s is not None]
            result.gaps, result.worst_gap_s = utterance_gaps(call)
            await call.hangup()
    except MediaStreamError as exc:
        result.error = str(exc)
    return result


def cpu_ticks(pid: int) -> int:
    """CPU ticks of `pid` and its direct children."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry.name) == pid or int(fields[1]) == pid:
            total += int(fields[11]) + int(fields[12])
    return total


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


QUEUE_WAIT = "callbot_asr_queue_wait_seconds"


async def queue_wait_histogram(url: str) -> dict[str, float]:
    """The ASR queue-wait histogram's series (`le` edge, "sum", "count") from /metrics."""
    found: dict[str, float] = {}
    try:
        async with httpx.AsyncClient(timeout=3.0, trust_env=False) as client:
            text = (await client.get(url)).text
    except httpx.HTTPError:
        return found
    for line in text.splitlines():
        if not line.startswith(QUEUE_WAIT):
            continue
        name, _, number = line.rpartition(" ")
        if name.startswith(f"{QUEUE_WAIT}_bucket"):
            found[name.split('le="')[1].split('"')[0]] = float(number)
        elif name in (f"{QUEUE_WAIT}_sum", f"{QUEUE_WAIT}_count"):
            found[name.rsplit("_", 1)[1]] = float(number)
    return found


def queue_wait_figures(before: dict[str, float], after: dict[str, float]) -> dict[str, object]:
    """Jobs, mean wait and p95 (a bucket's upper edge) between two histogram readings."""
    jobs = after.get("count", 0.0) - before.get("count", 0.0)
    if jobs <= 0:
        return {"asr_jobs": 0, "asr_wait_mean_ms": None, "asr_wait_p95_ms_at_most": None}
    mean_s = (after.get("sum", 0.0) - before.get("sum", 0.0)) / jobs
    edges = sorted((float(le), le) for le in after if le not in ("sum", "count"))
    p95 = None
    for edge, le in edges:
        if after[le] - before.get(le, 0.0) >= 0.95 * jobs:
            p95 = None if edge == float("inf") else round(edge * 1000, 1)
            break
    return {
        "asr_jobs": int(jobs),
        "asr_wait_mean_ms": round(mean_s * 1000, 2),
        "asr_wait_p95_ms_at_most": p95,
    }


def metrics_url(ws_url: str) -> str:
    return health_url(ws_url).removesuffix("/health") + "/metrics"


async def run_level(
    args: argparse.Namespace, pid: int | None, n: int, turns: list[bytes]
) -> dict[str, object]:
    waits_before = await queue_wait_histogram(metrics_url(args.url))
    ticks_before, started = (cpu_ticks(pid) if pid else 0), time.monotonic()
    peak_rss: list[float] = []

    async def watch_rss() -> None:
        while pid:
            value = rss_mb(pid)
            if value is not None:
                peak_rss.append(value)
            await asyncio.sleep(0.5)

    watcher = asyncio.create_task(watch_rss())
    tasks = []
    for _ in range(n):
        tasks.append(asyncio.create_task(one_call(args.url, args.lang, turns, args.reply_timeout)))
        await asyncio.sleep(0.1)
    results = await asyncio.wait_for(asyncio.gather(*tasks), args.level_timeout)
    watcher.cancel()
    elapsed = time.monotonic() - started
    cpu = (cpu_ticks(pid) - ticks_before) / os.sysconf("SC_CLK_TCK") / elapsed if pid else None
    latencies = [s * 1000 for r in results for s in r.latencies_s]
    waits = queue_wait_figures(waits_before, await queue_wait_histogram(metrics_url(args.url)))
    busy = [r.busy_prompt_s * 1000 for r in results if r.queued and r.busy_prompt_s is not None]
    return {
        "calls": n,
        "answered": sum(r.answered for r in results),
        "queued_first": sum(r.queued for r in results),
        "busy_prompt_ms_max": round(max(busy), 1) if busy else None,
        "errors": [r.error for r in results if r.error],
        "turns": len(latencies),
        "turn_median_ms": round(percentile(latencies, 0.5), 1) if latencies else None,
        "turn_p95_ms": round(percentile(latencies, 0.95), 1) if latencies else None,
        "audio_gaps": sum(r.gaps for r in results),
        "worst_gap_ms": round(max((r.worst_gap_s for r in results), default=0) * 1000, 1),
        **waits,
        "cpu_cores": None if cpu is None else round(cpu, 2),
        "rss_mb_peak": max(peak_rss) if peak_rss else None,
        "seconds": round(elapsed, 1),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench_load", description=__doc__.split("\n")[0])
    parser.add_argument("--url", default="ws://127.0.0.1:8080/calls/media-stream")
    parser.add_argument("--start", action="store_true", help="start a service for the run")
    parser.add_argument("--levels", default="1,2,5,8,10,12")
    parser.add_argument("--lang", choices=["en", "vi"], default="en")
    parser.add_argument("--turns", type=int, default=2)
    parser.add_argument("--reply-timeout", type=float, default=30.0)
    parser.add_argument("--level-timeout", type=float, default=240.0)
    parser.add_argument("--json", type=Path, default=None)
    return parser.parse_args(argv)


async def run(args: argparse.Namespace) -> int:
    levels = [min(MAX_LEVEL, int(level)) for level in args.levels.split(",") if level.strip()]
    service = None
    if args.start:
        from tests.e2e.conftest import start_service

        service = start_service(Path(tempfile.mkdtemp(prefix="bench-load-")))
        args.url = service.ws_url
    if not is_loopback(args.url):
        print("bench_load talks to loopback addresses only", file=sys.stderr)
        return 2
    try:
        health = await wait_ready(health_url(args.url), 120.0)
        if health is None:
            print(f"no service answers at {args.url}", file=sys.stderr)
            return 2
        pid = health.get("pid")
        turns = load_turns(args.lang, "phone", None, args.turns)
        load_before = os.getloadavg()
        rows = []
        for n in levels:
            rows.append(await run_level(args, int(pid) if isinstance(pid, int) else None, n, turns))
            await asyncio.sleep(2.0)
        after = await fetch_health(health_url(args.url))
        report: dict[str, object] = {
            "bench": "load",
            "date": time.strftime("%Y-%m-%d %H:%M"),
            "cpus": os.cpu_count(),
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
            "lang": args.lang,
            "max_concurrent_calls": (after or {}).get("max_concurrent_calls"),
            "targets": TARGETS,
            "levels": rows,
        }
        emit(report, args.json)
        headers = [
            "calls",
            "answered",
            "queued",
            "busy ms",
            "turn med",
            "turn p95",
            "gaps",
            "worst gap",
            "ASR wait mean",
            "ASR wait p95 <=",
            "CPU cores",
            "RSS MB",
        ]
        print(
            table(
                headers,
                [
                    [
                        r["calls"],
                        r["answered"],
                        r["queued_first"],
                        r["busy_prompt_ms_max"],
                        r["turn_median_ms"],
                        r["turn_p95_ms"],
                        r["audio_gaps"],
                        r["worst_gap_ms"],
                        r["asr_wait_mean_ms"],
                        r["asr_wait_p95_ms_at_most"],
                        r["cpu_cores"],
                        r["rss_mb_peak"],
                    ]
                    for r in rows
                ],
            ),
            file=sys.stderr,
        )
        return 0
    finally:
        if service is not None:
            from tests.e2e.conftest import stop_service

            stop_service(service)


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(run(parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
