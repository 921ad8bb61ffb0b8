"""What a SIP call costs a node in CPU and memory, measured on a running cluster. Not a test.

    CLUSTER_HTTP_PORTS=8081 CLUSTER_NODE_SIP_PORTS=5061 scripts/cluster.sh start   # one node
    .venv/bin/python -m tests.cluster.call_cost [--calls 1,4] [--json PATH]

Reads the pids under CLUSTER_DIR (default var/cluster) and places calls through
Kamailio (CLUSTER_SIP_PORT, default 5060) with sipp, N at once, for each kind:

- `silent`: the caller says nothing for 20 s (the bot greets and re-prompts):
  the cost of carrying a call (RTP both ways, endpointing, prompts, records);
- `en`: an English caller (espeak-ng, Whisper base decodes the turn);
- `vi`: a Vietnamese caller (a real recording from var/test-audio/vieneu;
  viet-asr decodes it while it is spoken).

For each run: the CPU seconds (user + system, from /proc) that each part
(the nodes, Rasa, the action server, Kamailio) used, less what it uses idle
over the same time, divided by the seconds of call carried: the cores one
call keeps busy. Also each node's resident memory before and after (from
/health). JSON on stdout (or --json PATH), a table on stderr. Loopback only;
at most 10 calls at once; sipp gives up after 60 s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from callcenter.audio import alaw_encode, read_wav, resample
from tests.sipp.rtp_pcap import make_speech_pcap, rtp_packets, write_rtp_pcap
from tests.sipp.sipp_run import SCENARIOS, free_udp_port

REPO = Path(__file__).resolve().parents[2]
TICKS_PER_S = os.sysconf("SC_CLK_TCK")
IDLE_S = 10.0
GREETING_MS = 3000
REPLY_MS = 10000
SILENT_HOLD_MS = 20000
EN_WORDS = "There is a fire in my kitchen and the smoke is everywhere"
MAX_CALLS = 10


class PartDied(RuntimeError):
    pass


def cpu_s(pid: int) -> float:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        raise PartDied(f"process {pid} is gone") from None
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_S  # utime, stime


def parts(cluster_dir: Path) -> dict[str, int]:
    pids = {}
    for path in sorted((cluster_dir / "pids").glob("*.pid")):
        pid = int(path.read_text())
        if Path(f"/proc/{pid}").exists():
            pids[path.stem] = pid
    return pids


def cpu_all(pids: dict[str, int]) -> dict[str, float]:
    return {name: cpu_s(pid) for name, pid in pids.items()}


def node_rss_mb(ports: list[int]) -> list[float]:
    return [
        float(httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).json()["rss_mb"])
        for port in ports
    ]


def vi_pcap(path: Path) -> None:
    clip = sorted((REPO / "var" / "test-audio" / "vieneu").glob("*.wav"))[0]
    samples, rate = read_wav(clip)
    line = resample(samples, rate, 8000)
    write_rtp_pcap(path, rtp_packets(alaw_encode(line), "pcma", trail_silence_ms=500))


def scenario(kind: str, workdir: Path) -> Path:
    if kind == "silent":
        text = (SCENARIOS / "uac_short_call.xml").read_text()
    else:
        text = (SCENARIOS / "uac_speech.xml").read_text()
        if kind == "vi":  # no language header: the call is taken in Vietnamese
            text = "".join(
                line for line in text.splitlines(keepends=True) if "X-Callbot-Lang" not in line
            )
    path = workdir / f"{kind}.xml"
    path.write_text(text)
    return path


def place_calls(kind: str, calls: int, target: str, workdir: Path) -> tuple[float, int]:
    """Run `calls` calls at once; (wall seconds, sipp's exit status: 0 when all succeeded)."""
    workdir.mkdir(parents=True, exist_ok=True)
    if kind == "en":
        make_speech_pcap(workdir / "caller.pcap", EN_WORDS, "pcma")
    elif kind == "vi":
        vi_pcap(workdir / "caller.pcap")
    variables = {"caller": "09" + str(uuid.uuid4().int)[:8]}
    if kind == "silent":
        variables["hold_ms"] = str(SILENT_HOLD_MS)
    else:
        variables |= {"greeting_ms": str(GREETING_MS), "reply_ms": str(REPLY_MS)}
    args = [
        "sipp", "-sf", str(scenario(kind, workdir)), target, "-s", "114",
        "-i", "127.0.0.1", "-mi", "127.0.0.1",
        "-p", str(free_udp_port()), "-mp", str(free_udp_port(even=True)),
        "-m", str(calls), "-l", str(calls), "-r", str(calls),
        "-timeout", "60s", "-timeout_error", "-nostdin",
        ]  # fmt: skip
    for name, value in variables.items():
        args += ["-set", name, value]
    started = time.monotonic()
    done = subprocess.run(args, cwd=workdir, capture_output=True, text=True, timeout=90)
    if done.returncode != 0:
        print(
            f"sipp exited {done.returncode}: {done.stdout[-1500:]}{done.stderr[-1500:]}",
            file=sys.stderr,
        )
    return time.monotonic() - started, done.returncode


def call_seconds(kind: str) -> float:
    if kind == "silent":
        return SILENT_HOLD_MS / 1000
    return (GREETING_MS + REPLY_MS) / 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", default="1,4", help="calls at once, per run")
    parser.add_argument("--kinds", default="silent,vi,en")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if shutil.which("sipp") is None:
        print("sipp is not installed", file=sys.stderr)
        return 2
    cluster_dir = Path(os.environ.get("CLUSTER_DIR", REPO / "var" / "cluster")).resolve()
    target = f"127.0.0.1:{os.environ.get('CLUSTER_SIP_PORT', '5060')}"
    http_ports = [int(p) for p in os.environ.get("CLUSTER_HTTP_PORTS", "8081 8082").split()]
    pids = parts(cluster_dir)
    if not pids:
        print(f"no cluster running under {cluster_dir}", file=sys.stderr)
        return 2
    http_ports = http_ports[: len([n for n in pids if n.startswith("node")])]

    before = cpu_all(pids)
    time.sleep(IDLE_S)
    idle = {name: (cpu - before[name]) / IDLE_S for name, cpu in cpu_all(pids).items()}
    results: dict[str, object] = {
        "load_average": os.getloadavg(),
        "idle_cores": idle,
        "node_rss_mb_start": node_rss_mb(http_ports),
        "runs": [],
    }
    runs: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.kinds.split(","):
            if "died" in results:
                break
            for calls in [min(MAX_CALLS, int(c)) for c in args.calls.split(",")]:
                rss_before = node_rss_mb(http_ports)
                start = cpu_all(pids)
                wall, sipp_status = place_calls(kind, calls, target, Path(tmp) / f"{kind}-{calls}")
                time.sleep(2)  # the last turn's records
                wall += 2
                try:
                    end = cpu_all(pids)
                except PartDied as exc:
                    results["died"] = f"during {kind} x{calls}: {exc}"
                    print(
                        f"stopping: a part of the cluster died {results['died']}", file=sys.stderr
                    )
                    break
                used = {name: cpu - start[name] - idle[name] * wall for name, cpu in end.items()}
                carried_s = calls * call_seconds(kind)
                runs.append(
                    {
                        "kind": kind,
                        "calls": calls,
                        "sipp_status": sipp_status,
                        "wall_s": round(wall, 1),
                        "call_s": carried_s,
                        "cpu_s_over_idle": {k: round(v, 2) for k, v in used.items()},
                        "cores_per_call": {k: round(v / carried_s, 4) for k, v in used.items()},
                        "node_rss_mb": [rss_before, node_rss_mb(http_ports)],
                    }
                )
                print(json.dumps(runs[-1]), file=sys.stderr)
    results["runs"] = runs
    results["load_average_end"] = os.getloadavg()
    text = json.dumps(results, indent=2)
    if args.json:
        args.json.write_text(text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
