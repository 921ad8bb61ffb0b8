"""Turn latency of a running service, measured from a caller on the media stream.

    python -m bench.bench_turns --url ws://127.0.0.1:8080/calls/media-stream \
        [--lang en|vi] [--band full|phone] [--calls N] [--json PATH]

One call at a time: wait for the greeting to be played, say a recorded caller
turn (English: espeak-ng turns from `bench.corpus`; Vietnamese: the real vieneu
clips), wait until the bot's answer has been played (its mark), say the next.
Measures the time to greeting (`start` sent -> first bot audio) and, per turn,
the end of caller speech -> first reply audio. Prints JSON on stdout (or to
--json PATH) and a table on stderr. Exits 0 whatever the figures; 2 only when
the service cannot be reached.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx

from bench.stats import emit, is_loopback, summarize_ms, table
from callcenter.audio import write_wav
from callcenter.media_client import MediaStreamCall, MediaStreamError
from callcenter.scripted_caller import TurnTiming, play_turns

log = logging.getLogger("bench.bench_turns")

MAX_CALLS = 50
MAX_TURNS = 12
TARGETS_MS = {"turn_median": 800, "turn_p95": 1500, "greeting": 300}


@dataclass
class CallOutcome:
    index: int
    connected: bool = False
    greeting_s: float | None = None
    turns: list[TurnTiming] = field(default_factory=list)
    close_code: int | None = None
    clears: int = 0
    error: str | None = None


# ---------------------------------------------------------------- inputs


def load_turns(lang: str, band: str, clips_dir: Path | None, max_turns: int) -> list[bytes]:
    """The caller's recorded turns, 16 kHz int16 PCM, optionally phone-band filtered."""
    from bench import corpus

    if lang == "en":
        turns = corpus.ENGLISH_CALLER_TURNS[:max_turns]
        pcms = [corpus.espeak_pcm(turn.text, voice="en") for turn in turns]
    else:
        clips = corpus.vieneu_clips(clips_dir)  # None: $CALLBOT_TEST_AUDIO_DIR/vieneu
        if not clips:
            raise SystemExit("no Vietnamese clips: run scripts/setup.sh --test or pass --clips")
        pcms = [corpus.read_wav_16k(path) for path, _ in clips[:max_turns]]
    if band == "phone":
        pcms = [corpus.phone_band(pcm) for pcm in pcms]
    return pcms


def health_url(ws_url: str) -> str:
    parts = urlsplit(ws_url)
    scheme = "https" if parts.scheme == "wss" else "http"
    return urlunsplit((scheme, parts.netloc, "/health", "", ""))


async def fetch_health(url: str, timeout_s: float = 3.0) -> dict[str, object] | None:
    try:
        async with httpx.AsyncClient(timeout=timeout_s, trust_env=False) as client:
            response = await client.get(url)
            body = response.json()
    except (httpx.HTTPError, ValueError):
        return None
    return body if isinstance(body, dict) else None


async def wait_ready(url: str, timeout_s: float) -> dict[str, object] | None:
    """Poll /health until it says ok/degraded (or stops answering "starting")."""
    deadline = time.monotonic() + timeout_s
    body = await fetch_health(url)
    while body is not None and body.get("status") == "starting" and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        body = await fetch_health(url)
    return body


# ---------------------------------------------------------------- calls


async def one_call(
    index: int,
    args: argparse.Namespace,
    turns: list[bytes],
) -> CallOutcome:
    outcome = CallOutcome(index)
    call = MediaStreamCall(
        args.url, line=args.line, lang=args.lang, caller_number=args.caller_number
    )
    try:
        async with call:
            outcome.connected = True
            try:
                outcome.turns = await play_turns(
                    call,
                    turns,
                    greeting_timeout_s=args.greeting_timeout,
                    reply_timeout_s=args.reply_timeout,
                )
            except MediaStreamError as exc:
                outcome.error = str(exc)
            outcome.greeting_s = call.time_to_greeting_s()
            outcome.clears = len(call.record.clears)
        outcome.close_code = call.record.close_code
        if args.save_audio is not None:
            args.save_audio.mkdir(parents=True, exist_ok=True)
            write_wav(args.save_audio / f"call-{index:02d}-bot.wav", call.bot_audio_pcm16k())
    except MediaStreamError as exc:
        outcome.error = str(exc)
    return outcome


def answer_kind(mark: str | None) -> str:
    if mark is None:
        return "timeout"
    return mark.split("-", 1)[0]  # reply-3 -> reply, reprompt-1 -> reprompt


def build_report(
    args: argparse.Namespace,
    outcomes: list[CallOutcome],
    health_before: dict[str, object] | None,
    health_after: dict[str, object] | None,
    turn_count: int,
    wall_s: float,
) -> dict[str, object]:
    greetings = [o.greeting_s for o in outcomes if o.greeting_s is not None]
    latencies = [t.latency_s for o in outcomes for t in o.turns if t.latency_s is not None]
    answers = Counter(answer_kind(t.mark) for o in outcomes for t in o.turns)
    turn_summary = summarize_ms(latencies)
    greeting_summary = summarize_ms(greetings)

    def under(value: object, limit: int) -> bool | None:
        return None if not isinstance(value, int | float) else value < limit

    return {
        "bench": "turns",
        "url": args.url,
        "lang": args.lang,
        "band": args.band,
        "line": args.line,
        "calls_requested": args.calls,
        "calls_connected": sum(1 for o in outcomes if o.connected),
        "turns_per_call": turn_count,
        "greeting": greeting_summary,
        "turn_latency": turn_summary,
        "answers": dict(answers),
        "barge_in_clears": sum(o.clears for o in outcomes),
        "targets_ms": TARGETS_MS,
        "meets_targets": {
            "turn_median": under(turn_summary["median_ms"], TARGETS_MS["turn_median"]),
            "turn_p95": under(turn_summary["p95_ms"], TARGETS_MS["turn_p95"]),
            "greeting_median": under(greeting_summary["median_ms"], TARGETS_MS["greeting"]),
        },
        "service_rss_mb": {
            "before": None if health_before is None else health_before.get("rss_mb"),
            "after": None if health_after is None else health_after.get("rss_mb"),
        },
        "health_after": health_after,
        "calls": [
            {
                "call": o.index,
                "greeting_ms": None if o.greeting_s is None else round(o.greeting_s * 1000, 1),
                "turns": [
                    {
                        "turn": t.index,
                        "latency_ms": None if t.latency_s is None else round(t.latency_s * 1000, 1),
                        "answer": t.mark,
                    }
                    for t in o.turns
                ],
                "close_code": o.close_code,
                "error": o.error,
            }
            for o in outcomes
        ],
        "wall_s": round(wall_s, 1),
    }


def print_table(report: dict[str, object]) -> None:
    rows = []
    for label, key, target in (
        ("time to greeting", "greeting", "< 300 median"),
        ("end of speech -> reply audio", "turn_latency", "< 800 median, < 1500 p95"),
    ):
        s = report[key]
        assert isinstance(s, dict)
        rows.append([label, s["n"], s["median_ms"], s["p95_ms"], s["min_ms"], s["max_ms"], target])
    rss = report["service_rss_mb"]
    assert isinstance(rss, dict)
    sys.stderr.write(
        f"\nturn latency, {report['lang']} ({report['band']} band), "
        f"{report['calls_connected']}/{report['calls_requested']} calls, {report['url']}\n"
        + table(["figure", "n", "median ms", "p95 ms", "min ms", "max ms", "target (ms)"], rows)
        + f"\nanswers: {report['answers']}  service RSS: {rss['before']} -> {rss['after']} MB\n"
    )


# ---------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_turns", description=__doc__)
    parser.add_argument("--url", default="ws://127.0.0.1:8080/calls/media-stream")
    parser.add_argument("--lang", choices=("en", "vi"), default="en")
    parser.add_argument("--band", choices=("full", "phone"), default="full")
    parser.add_argument("--line", choices=("113", "114"), default="114")
    parser.add_argument("--caller-number", default="0912345678")
    parser.add_argument("--calls", type=int, default=3, help=f"1..{MAX_CALLS}")
    parser.add_argument("--max-turns", type=int, default=6, help=f"per call, 1..{MAX_TURNS}")
    parser.add_argument(
        "--clips", type=Path, default=None, help="vieneu clips (default: var/test-audio/vieneu)"
    )
    parser.add_argument("--greeting-timeout", type=float, default=10.0)
    parser.add_argument("--reply-timeout", type=float, default=15.0)
    parser.add_argument("--ready-timeout", type=float, default=30.0)
    parser.add_argument("--max-seconds", type=float, default=600.0, help="start no call after")
    parser.add_argument("--save-audio", type=Path, default=None, help="bot audio WAVs here")
    parser.add_argument("--json", type=Path, default=None, help="write JSON here, not stdout")
    args = parser.parse_args(argv)
    args.calls = min(max(args.calls, 1), MAX_CALLS)
    args.max_turns = min(max(args.max_turns, 1), MAX_TURNS)
    return args


async def run(args: argparse.Namespace) -> int:
    if not is_loopback(args.url):
        sys.stderr.write(f"refusing {args.url}: the benchmark drives loopback services only\n")
        return 2
    turns = load_turns(args.lang, args.band, args.clips, args.max_turns)
    health = health_url(args.url)
    health_before = await wait_ready(health, args.ready_timeout)
    started = time.monotonic()
    outcomes: list[CallOutcome] = []
    for index in range(1, args.calls + 1):
        if time.monotonic() - started > args.max_seconds:
            break
        outcome = await one_call(index, args, turns)
        outcomes.append(outcome)
        if outcome.error:
            log.warning("call %d: %s", index, outcome.error)
        if not outcome.connected:
            break  # unreachable: no point in trying again
        await asyncio.sleep(0.5)  # let the service close the call before the next
    connected = any(o.connected for o in outcomes)
    if health_before is None and not connected:
        sys.stderr.write(f"the service at {args.url} is unreachable\n")
        return 2
    health_after = await fetch_health(health)
    report = build_report(
        args, outcomes, health_before, health_after, len(turns), time.monotonic() - started
    )
    emit(report, args.json)
    print_table(report)
    return 0 if connected else 2


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return asyncio.run(run(parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
