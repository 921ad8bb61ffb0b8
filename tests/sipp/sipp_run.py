"""Run a sipp scenario from this directory against a SIP address, bounded in time.

The scenario is copied into a working directory next to the pcap files it
replays (sipp looks for them beside the scenario), and sipp runs there with
its error trace, so a failure comes with sipp's own account of it.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

SCENARIOS = Path(__file__).resolve().parent
SIPP = shutil.which("sipp")


@dataclass(frozen=True)
class SippResult:
    returncode: int  # 0: every call succeeded; 1: some failed; other: sipp itself failed
    output: str
    errors: str  # sipp's -trace_err log
    logs: str  # lines written by <log> actions (-trace_logs)
    messages: str  # the SIP messages (-trace_msg), when asked for

    def describe(self) -> str:
        return (
            f"sipp exited {self.returncode}\n--- errors ---\n{self.errors[-3000:]}"
            f"\n--- output ---\n{self.output[-2000:]}"
        )


def free_udp_port(even: bool = False) -> int:
    """A UDP port nobody uses on 127.0.0.1 now (even, for RTP, if asked)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if not even or port % 2 == 0:
            return port
    raise RuntimeError("no free even UDP port found")


def run_sipp(
    scenario: str,
    target: tuple[str, int],
    workdir: Path,
    *,
    service: str = "114",
    sip_port: int | None = None,
    media_port: int | None = None,
    calls: int = 1,
    concurrent: int = 1,
    rate_per_s: float | None = None,
    variables: Mapping[str, str] | None = None,
    files: Mapping[str, Path] | None = None,
    timeout_s: float = 20.0,
    trace_messages: bool = False,
    extra_args: tuple[str, ...] = (),
) -> SippResult:
    """Run `scenario` (a file name in tests/sipp) for `calls` calls; wait for sipp to exit.

    `files` are copied into `workdir` under the given names (e.g. the pcap the
    scenario replays). sipp gives up after `timeout_s` (-timeout_error).
    """
    if SIPP is None:
        raise RuntimeError("sipp is not installed (apt-get install sip-tester)")
    workdir.mkdir(parents=True, exist_ok=True)
    for name, source in (files or {}).items():
        shutil.copyfile(source, workdir / name)
    scenario_path = workdir / scenario
    shutil.copyfile(SCENARIOS / scenario, scenario_path)
    sip_port = sip_port or free_udp_port()
    media_port = media_port or free_udp_port(even=True)
    args = [
        SIPP, "-sf", str(scenario_path), f"{target[0]}:{target[1]}",
        "-s", service,
        "-i", "127.0.0.1", "-mi", "127.0.0.1",
        "-p", str(sip_port), "-mp", str(media_port),
        "-m", str(calls), "-l", str(concurrent),
        "-timeout", f"{timeout_s:g}s", "-timeout_error",
        "-trace_err", "-error_file", str(workdir / "errors.log"),
        "-trace_logs", "-log_file", str(workdir / "logs.log"),
        "-nostdin",
    ]  # fmt: skip
    if rate_per_s is not None:
        args += ["-r", f"{rate_per_s:g}"]
    if trace_messages:
        args += ["-trace_msg", "-message_file", str(workdir / "messages.log")]
    for name, value in (variables or {}).items():
        args += ["-set", name, value]
    args += list(extra_args)
    try:
        done = subprocess.run(
            args,
            cwd=workdir,
            capture_output=True,
            text=True,
            timeout=timeout_s + 15,
            errors="replace",
        )
        returncode, output = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired as exc:
        returncode, output = -9, f"sipp did not exit: {exc}"
    return SippResult(
        returncode,
        output,
        _read(workdir / "errors.log"),
        _read(workdir / "logs.log"),
        _read(workdir / "messages.log"),
    )


def start_sipp(
    scenario: str,
    workdir: Path,
    *,
    sip_port: int,
    media_port: int | None = None,
    calls: int = 1,
    files: Mapping[str, Path] | None = None,
    timeout_s: float = 30.0,
) -> subprocess.Popen[str]:
    """Start a server (UAS) scenario listening on `sip_port`; wait on it with `finish_sipp`."""
    if SIPP is None:
        raise RuntimeError("sipp is not installed (apt-get install sip-tester)")
    workdir.mkdir(parents=True, exist_ok=True)
    for name, source in (files or {}).items():
        shutil.copyfile(source, workdir / name)
    scenario_path = workdir / scenario
    shutil.copyfile(SCENARIOS / scenario, scenario_path)
    args = [
        SIPP, "-sf", str(scenario_path),
        "-i", "127.0.0.1", "-mi", "127.0.0.1",
        "-p", str(sip_port), "-mp", str(media_port or free_udp_port(even=True)),
        "-m", str(calls),
        "-timeout", f"{timeout_s:g}s", "-timeout_error",
        "-trace_err", "-error_file", str(workdir / "errors.log"),
        "-trace_msg", "-message_file", str(workdir / "messages.log"),
        "-nostdin",
    ]  # fmt: skip
    return subprocess.Popen(
        args,
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
    )


def finish_sipp(process: subprocess.Popen[str], workdir: Path, timeout_s: float) -> SippResult:
    """Wait for a sipp started with `start_sipp` (killed after `timeout_s`)."""
    try:
        output, _ = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
    return SippResult(
        process.returncode,
        output or "",
        _read(workdir / "errors.log"),
        _read(workdir / "logs.log"),
        _read(workdir / "messages.log"),
    )


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""
