"""SIP calls at rising concurrency, placed with sipp and measured on the wire. Not a test.

    python -m bench.bench_sip --url http://127.0.0.1:8080   # a running service
    python -m bench.bench_sip --start                       # starts one (tests' start_service)
        [--levels 1,2,5,10,15] [--log PATH] [--json PATH]

At each level N, one sipp places N calls at once (within a second), each the
`tests/sipp/uac_speech.xml` caller: English, hears the greeting, says a
recorded sentence (espeak-ng, G.711 A-law RTP replayed from a pcap), waits
for the reply, hangs up. A packet capture on the loopback interface
(`tests/sipp/rtp_capture.py`, kernel timestamps) records the SIP answers and
both RTP directions, from which, per level:

- answered / refused: 200 / 486 or 503 answers to the INVITEs;
- greeting: the call's 200 OK -> the first audible RTP packet from the service;
- turn latency: the caller's last audible packet -> the first audible packet of
  the reply (after at least 200 ms of the bot's silence);
- audio gaps, two ways: (1) on the wire, RTP packets from the service more than
  40 ms apart (pjsip sends one every 20 ms, silence included, so a gap means
  its media clock stalled) and sequence numbers lost; (2) in the bot's speech,
  the gateway's own count of frames that ran dry mid-utterance (`underruns`,
  from its "SIP call closed" log lines, when the service log is readable);
- CPU and peak RSS of the service process and, apart, of its children (Rasa),
  from /proc, over the level.

JSON on stdout (or --json PATH), a table on stderr; exits 0 whatever the
figures (2 only when no service can be reached). Loopback addresses only.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.stats import emit, is_loopback, percentile, table
from tests.sipp.rtp_capture import (
    RtpCapture,
    RtpPacket,
    SipDatagram,
    arrival_gaps_ms,
    capture_available,
    lost_packets,
)
from tests.sipp.rtp_pcap import make_speech_pcap
from tests.sipp.sipp_run import free_udp_port, run_sipp

CALLER_WORDS = "There is a fire on the third floor of my building and people are inside"
DEFAULT_LEVELS = (1, 2, 5, 10, 15)
MAX_LEVEL = 30
GAP_MS = 40.0
_CLOSED_LINE = re.compile(r"SIP call closed .*\((\d+) underruns\)")


# ----- the service process, from /proc ---------------------------------------
def _ticks_and_rss(pid: int) -> tuple[int, int] | None:
    """(utime + stime in clock ticks, RSS in kB) of one process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    rss = next(
        (int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0
    )
    return ticks, rss


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found, stack = [], [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


@dataclass
class ProcessLoad:
    """CPU share and peak RSS of a process and of its children while it runs."""

    pid: int
    interval_s: float = 0.5
    peak_rss_kb: int = 0
    peak_children_rss_kb: int = 0
    _start: dict[int, int] = field(default_factory=dict)
    _last: dict[int, int] = field(default_factory=dict)
    _started_at: float = 0.0
    _stopped_at: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> ProcessLoad:
        self._started_at = time.monotonic()
        self._sample(first=True)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self._sample()
        self._stopped_at = time.monotonic()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def _sample(self, first: bool = False) -> None:
        children_rss = 0
        for pid in [self.pid, *_descendants(self.pid)]:
            sample = _ticks_and_rss(pid)
            if sample is None:
                continue
            ticks, rss = sample
            if first:
                self._start[pid] = ticks
            self._start.setdefault(pid, ticks)
            self._last[pid] = ticks
            if pid == self.pid:
                self.peak_rss_kb = max(self.peak_rss_kb, rss)
            else:
                children_rss += rss
        self.peak_children_rss_kb = max(self.peak_children_rss_kb, children_rss)

    def cpu_percent(self, children: bool = False) -> float:
        """Share of one core over the run (200 % = both cores of this machine)."""
        wall_s = max(1e-6, self._stopped_at - self._started_at)
        pids = [p for p in self._last if (p != self.pid) == children]
        ticks = sum(self._last[p] - self._start[p] for p in pids)
        return round(100.0 * ticks / os.sysconf("SC_CLK_TCK") / wall_s, 1)


# ----- one level ------------------------------------------------------------
@dataclass
class CallMeasures:
    answered_at: float
    greeting_ms: float | None
    turn_ms: float | None
    bot_packets: int
    gaps: list[float]
    lost: int


def _analyse_call(
    answered_at: float, bot: list[RtpPacket], caller: list[RtpPacket]
) -> CallMeasures:
    greeting = next((p.at_s for p in bot if p.voiced and p.at_s >= answered_at), None)
    speech_end = next((p.at_s for p in reversed(caller) if p.voiced), None)
    turn_at = None
    if speech_end is not None:
        silent_run = 0
        for packet in bot:
            if packet.at_s <= speech_end:
                continue
            if packet.voiced and silent_run >= 10:  # 200 ms of quiet before the reply
                turn_at = packet.at_s
                break
            silent_run = 0 if packet.voiced else silent_run + 1
    return CallMeasures(
        answered_at=answered_at,
        greeting_ms=None if greeting is None else (greeting - answered_at) * 1000,
        turn_ms=None if turn_at is None or speech_end is None else (turn_at - speech_end) * 1000,
        bot_packets=len(bot),
        gaps=arrival_gaps_ms(bot, GAP_MS),
        lost=lost_packets(bot),
    )


def _answers(sip: list[SipDatagram], sip_port: int) -> tuple[list[SipDatagram], int]:
    """The service's 200 OKs to INVITEs (first of each call) and how many INVITEs it refused."""
    answered: dict[str, SipDatagram] = {}
    refused: set[str] = set()
    for datagram in sip:
        if datagram.src[1] != sip_port or "INVITE" not in (datagram.header("CSeq") or ""):
            continue
        call_id = datagram.header("Call-ID") or datagram.header("i") or ""
        status = datagram.first_line
        if status.startswith("SIP/2.0 200") and call_id not in answered:
            answered[call_id] = datagram
        elif status.startswith(("SIP/2.0 486", "SIP/2.0 503")):
            refused.add(call_id)
    return list(answered.values()), len(refused)


def _ms_summary(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"n": 0, "median_ms": None, "p95_ms": None, "max_ms": None}
    return {
        "n": len(values),
        "median_ms": round(statistics.median(values), 1),
        "p95_ms": round(percentile(values, 0.95), 1),
        "max_ms": round(max(values), 1),
    }


def run_level(
    level: int,
    target: tuple[str, int],
    pid: int,
    pcap: Path,
    workdir: Path,
    log_path: Path | None,
    greeting_ms: int,
    reply_ms: int,
) -> dict[str, object]:
    media_port = free_udp_port(even=True)
    log_offset = log_path.stat().st_size if log_path is not None else 0
    with ProcessLoad(pid) as load, RtpCapture([media_port], sip_ports=[target[1]]) as capture:
        result = run_sipp(
            "uac_speech.xml",
            target,
            workdir,
            service="114",
            media_port=media_port,
            calls=level,
            concurrent=level,
            rate_per_s=max(1, level),
            variables={"caller": "0900000000", "greeting_ms": str(greeting_ms),
                       "reply_ms": str(reply_ms)},
            files={"caller.pcap": pcap},
            timeout_s=(greeting_ms + reply_ms) / 1000 + 30,
        )  # fmt: skip
        time.sleep(1.0)  # the last BYEs and log lines
    answers, refused = _answers(capture.sip, target[1])
    calls: list[CallMeasures] = []
    for answer in answers:
        port = answer.audio_port
        bot = [p for p in capture.packets if p.src[1] == port and p.dst[1] == media_port]
        caller = [p for p in capture.packets if p.src[1] == media_port and p.dst[1] == port]
        calls.append(_analyse_call(answer.at_s, bot, caller))
    underruns: int | None = None
    if log_path is not None:
        with log_path.open(errors="replace") as log_file:
            log_file.seek(log_offset)
            underruns = sum(int(m.group(1)) for m in _CLOSED_LINE.finditer(log_file.read()))
    gaps = [gap for call in calls for gap in call.gaps]
    return {
        "level": level,
        "calls_placed": level,
        "answered": len(answers),
        "refused": refused,
        "sipp_exit": result.returncode,
        "greeting": _ms_summary([c.greeting_ms for c in calls if c.greeting_ms is not None]),
        "turn_latency": _ms_summary([c.turn_ms for c in calls if c.turn_ms is not None]),
        "bot_rtp_packets": sum(c.bot_packets for c in calls),
        "rtp_gaps_over_40ms": len(gaps),
        "rtp_max_gap_ms": round(max(gaps), 1) if gaps else None,
        "rtp_lost": sum(c.lost for c in calls),
        "speech_underruns": underruns,
        "cpu_service_pct": load.cpu_percent(),
        "cpu_children_pct": load.cpu_percent(children=True),
        "rss_service_mb": round(load.peak_rss_kb / 1024, 1),
        "rss_children_mb": round(load.peak_children_rss_kb / 1024, 1),
    }


# ----- main -----------------------------------------------------------------
def _health(url: str) -> dict[str, object]:
    return dict(httpx.get(f"{url}/health", timeout=5.0).json())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--url", help="a running service's HTTP base, e.g. http://127.0.0.1:8080")
    where.add_argument("--start", action="store_true", help="start a service for the run")
    parser.add_argument("--levels", default=",".join(map(str, DEFAULT_LEVELS)))
    parser.add_argument("--log", type=Path, help="the service log, for the underrun counts")
    parser.add_argument("--greeting-ms", type=int, default=6000)
    parser.add_argument("--reply-ms", type=int, default=15000)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    args = parser.parse_args()
    levels = [min(MAX_LEVEL, max(1, int(v))) for v in args.levels.split(",") if v.strip()]
    if not capture_available():
        print("the packet capture needs root or CAP_NET_RAW", file=sys.stderr)
        return 2

    service = None
    tmp = Path(tempfile.mkdtemp(prefix="bench-sip-"))
    try:
        if args.start:
            from tests.e2e.conftest import start_service

            service = start_service(tmp / "service")
            url, log_path = service.base_url, service.log_path
        else:
            url, log_path = args.url.rstrip("/"), args.log
            if not is_loopback(url):
                print("benchmarks run against loopback addresses only", file=sys.stderr)
                return 2
        try:
            health = _health(url)
        except httpx.HTTPError as exc:
            print(f"no service at {url}: {exc}", file=sys.stderr)
            return 2
        sip = str(dict(health["gateways"])["sip"])  # type: ignore[call-overload]
        host, _, port = sip.split()[-1].rpartition(":")
        target, pid = (host, int(port)), int(health["pid"])  # type: ignore[call-overload]
        pcap = tmp / "caller.pcap"
        speech_s = make_speech_pcap(pcap, CALLER_WORDS, "pcma")
        report: dict[str, object] = {
            "sip": f"{target[0]}:{target[1]}",
            "caller_speech_s": round(speech_s, 2),
            "load_average_before": [round(v, 2) for v in os.getloadavg()],
            "cpus": os.cpu_count(),
            "levels": [],
        }
        results: list[dict[str, object]] = []
        for level in levels:
            print(f"level {level}: placing {level} calls ...", file=sys.stderr)
            results.append(
                run_level(level, target, pid, pcap, tmp / f"level-{level}", log_path,
                          args.greeting_ms, args.reply_ms)
            )  # fmt: skip
            time.sleep(3.0)  # let the service close the calls
        report["levels"] = results
        report["load_average_after"] = [round(v, 2) for v in os.getloadavg()]
        emit(report, args.json)
        print(_table(results), file=sys.stderr)
        return 0
    finally:
        if service is not None:
            from tests.e2e.conftest import stop_service

            stop_service(service)
        if args.keep:
            print(f"work directory kept: {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def _table(results: list[dict[str, object]]) -> str:
    rows = []
    for r in results:
        turn = r["turn_latency"]
        greeting = r["greeting"]
        assert isinstance(turn, dict) and isinstance(greeting, dict)
        rows.append(
            [
                r["level"],
                f"{r['answered']}/{r['calls_placed']}",
                r["refused"],
                greeting["median_ms"],
                turn["median_ms"],
                turn["p95_ms"],
                r["rtp_gaps_over_40ms"],
                r["rtp_lost"],
                r["speech_underruns"],
                r["cpu_service_pct"],
                r["cpu_children_pct"],
                r["rss_service_mb"],
            ]
        )
    return table(
        [
            "level",
            "answered",
            "486/503",
            "greeting ms",
            "turn med ms",
            "turn p95 ms",
            "gaps>40ms",
            "lost",
            "underruns",
            "cpu svc %",
            "cpu rasa %",
            "rss MB",
        ],
        rows,
    )


if __name__ == "__main__":
    sys.exit(main())
