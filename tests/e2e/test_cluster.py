"""Two service nodes behind Kamailio, sharing one PostgreSQL queue and one Rasa.

The topology comes from scripts/cluster.sh (the same as docker/compose.yaml),
on free loopback ports, with a database of its own that is dropped at the end.
sipp calls Kamailio, which spreads calls round-robin over the nodes and probes
them with OPTIONS. Which node answered a call is read from the nodes' logs:
every log line of a call carries its call id, and each node logs to its own
file (the call records do not name the node).
"""

from __future__ import annotations

import concurrent.futures
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
from sqlalchemy.engine import make_url

from tests.sipp.rtp_capture import capture_available
from tests.sipp.rtp_pcap import make_speech_pcap
from tests.sipp.sipp_run import SippResult, free_udp_port, run_sipp

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "cluster.sh"
POSTGRES_URL = os.environ.get(
    "CALLBOT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
CALLER_WORDS = "There is a fire in my kitchen and the smoke is everywhere"
NODES = ("node1", "node2")

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.timeout(400),
    pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp (sip-tester) is not installed"),
]


@dataclass(frozen=True)
class Cluster:
    directory: Path
    env: dict[str, str]
    sip: tuple[str, int]  # Kamailio: where callers call
    http_ports: tuple[int, ...]
    node_sip_ports: tuple[int, ...]
    conninfo: str  # the cluster's PostgreSQL database, for psycopg
    database_url: str  # the same, as CALLBOT_DATABASE_URL

    def base_url(self, node: int) -> str:
        return f"http://127.0.0.1:{self.http_ports[node]}"

    def node_log(self, name: str) -> str:
        return (self.directory / "logs" / f"{name}.log").read_text(errors="replace")

    def node_pid(self, name: str) -> int:
        return int((self.directory / "pids" / f"{name}.pid").read_text())

    def answered_by(self, call_ids: list[str]) -> dict[str, str]:
        """call id -> the node whose log shows the call ringing there."""
        found: dict[str, str] = {}
        for name in NODES:
            log = self.node_log(name)
            for call_id in call_ids:
                if f"[{call_id}] SIP call ringing" in log:
                    assert call_id not in found, f"{call_id} rang on two nodes"
                    found[call_id] = name
        return found

    def script(self, *args: str, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(SCRIPT), *args],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )

    def logs_tail(self, lines: int = 40) -> str:
        parts = []
        for path in sorted((self.directory / "logs").glob("*.log")):
            tail = path.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {path.name} ---\n" + "\n".join(tail))
        return "\n".join(parts)


@dataclass(frozen=True)
class CallRow:
    call_id: str
    channel: str
    line: str
    status: str
    answered: bool
    end_reason: str | None


def _calls_of(cluster: Cluster, caller: str) -> list[CallRow]:
    with psycopg.connect(cluster.conninfo, connect_timeout=5) as db:
        rows = db.execute(
            "SELECT id, channel, line, status, answered_at IS NOT NULL, end_reason "
            "FROM calls WHERE caller_number = %s ORDER BY started_at",
            (caller,),
        ).fetchall()
    return [CallRow(*row) for row in rows]


def _ended_calls(cluster: Cluster, caller: str, count: int, wait_s: float = 15) -> list[CallRow]:
    """The caller's call records once `count` of them have ended."""
    deadline = time.monotonic() + wait_s
    while True:
        calls = _calls_of(cluster, caller)
        if sum(c.end_reason is not None for c in calls) >= count or time.monotonic() > deadline:
            return calls
        time.sleep(0.25)


def _caller_number() -> str:
    return "09" + str(uuid.uuid4().int)[:8]


def _free_tcp_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ensure_kamailio() -> str | None:
    """Kamailio's path; installed through the script (apt-get) when missing and root."""
    found = shutil.which("kamailio") or shutil.which("kamailio", path="/usr/sbin:/sbin")
    if found is None and os.geteuid() == 0:
        subprocess.run(["bash", str(SCRIPT), "deps"], cwd=REPO, capture_output=True, timeout=600)
        found = shutil.which("kamailio") or shutil.which("kamailio", path="/usr/sbin:/sbin")
    return found


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if _ensure_kamailio() is None:
        pytest.skip("kamailio is not installed and could not be (apt-get install kamailio)")
    server = make_url(POSTGRES_URL)
    admin = (
        f"host={server.host or '127.0.0.1'} port={server.port or 5432} "
        f"user={server.username or 'postgres'} dbname={server.database or 'postgres'}"
    )
    if server.password:
        admin += f" password={server.password}"
    try:
        psycopg.connect(admin, connect_timeout=3).close()
    except psycopg.Error as exc:
        pytest.skip(f"PostgreSQL at {server.host}:{server.port} does not answer: {exc}")

    directory = tmp_path_factory.mktemp("cluster")
    database = f"callbot_cluster_test_{uuid.uuid4().hex[:8]}"
    http_ports = (_free_tcp_port(), _free_tcp_port())
    node_sip_ports = (free_udp_port(), free_udp_port())
    sip_port = free_udp_port()
    env = {
        **os.environ,
        "PATH": os.environ.get("PATH", "") + ":/usr/sbin:/sbin",
        "CLUSTER_DIR": str(directory),
        "CLUSTER_DB": database,
        "CLUSTER_SIP_PORT": str(sip_port),
        "CLUSTER_HTTP_PORTS": " ".join(map(str, http_ports)),
        "CLUSTER_NODE_SIP_PORTS": " ".join(map(str, node_sip_ports)),
        "CLUSTER_RASA_PORT": str(_free_tcp_port()),
        "CLUSTER_ACTION_PORT": str(_free_tcp_port()),
        "CLUSTER_PG_HOST": server.host or "127.0.0.1",
        "CLUSTER_PG_PORT": str(server.port or 5432),
        "CLUSTER_PG_USER": server.username or "postgres",
        "CLUSTER_PG_PASSWORD": server.password or "",
        "CLUSTER_PG_ADMIN_DB": server.database or "postgres",
        "CLUSTER_PING_S": "1",
        "CLUSTER_START_TIMEOUT_S": "150",
    }
    conninfo = admin.replace(f"dbname={server.database or 'postgres'}", f"dbname={database}")
    database_url = server.set(drivername="postgresql+psycopg", database=database)
    running = Cluster(
        directory,
        env,
        ("127.0.0.1", sip_port),
        http_ports,
        node_sip_ports,
        conninfo,
        database_url.render_as_string(hide_password=False),
    )
    started = running.script("start", timeout_s=200)
    try:
        assert started.returncode == 0, (
            f"cluster.sh start failed:\n{started.stderr[-3000:]}\n{running.logs_tail()}"
        )
        yield running
    finally:
        stopped = running.script("stop", "--drop", timeout_s=90)
        assert stopped.returncode == 0, stopped.stderr
        leftover = running.script("status")
        assert leftover.returncode == 3, f"something still runs:\n{leftover.stdout}"


@pytest.fixture(scope="module")
def token(cluster: Cluster) -> str:
    """A dispatcher's API token, created in the cluster's database."""
    env = {**cluster.env, "CALLBOT_DATABASE_URL": cluster.database_url}
    created = subprocess.run(
        [sys.executable, "-m", "callcenter.cli", "token", "create",
         "--name", "cluster-test", "--role", "dispatcher"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    return created.stdout.strip()


def _speech_call(cluster: Cluster, workdir: Path, caller: str, pcap: Path) -> SippResult:
    """A caller who reports a fire, then listens; the long wait leaves room for a
    slow recogniser on a busy machine (the incident is written on the reply)."""
    return run_sipp(
        "uac_speech.xml",
        cluster.sip,
        workdir,
        service="114",
        variables={"caller": caller, "greeting_ms": "3000", "reply_ms": "15000"},
        files={"caller.pcap": pcap},
        timeout_s=45,
    )


def _queue(cluster: Cluster, node: int, token: str) -> dict[str, str]:
    """call id -> incident id, for the open incidents in `node`'s queue."""
    answer = httpx.get(
        f"{cluster.base_url(node)}/api/v1/incidents",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    return {item["call_id"]: item["id"] for item in answer.json()["items"] if item["call_id"]}


@pytest.mark.skipif(
    not capture_available(), reason="sipp's pcap replay of the caller's speech needs CAP_NET_RAW"
)
def test_calls_through_kamailio_reach_both_nodes_and_one_queue(
    cluster: Cluster, token: str, tmp_path: Path
) -> None:
    pcap = tmp_path / "caller.pcap"
    make_speech_pcap(pcap, CALLER_WORDS, "pcma")
    # Two callers at once: round-robin gives each node one of them.
    callers = [_caller_number() for _ in NODES]
    with concurrent.futures.ThreadPoolExecutor(len(callers)) as pool:
        futures = []
        for n, caller in enumerate(callers):
            futures.append(pool.submit(_speech_call, cluster, tmp_path / f"call{n}", caller, pcap))
            time.sleep(0.3)
        results = [f.result(timeout=90) for f in futures]
    for result in results:
        assert result.returncode == 0, result.describe()

    calls = [call for caller in callers for call in _ended_calls(cluster, caller, 1)]
    assert len(calls) == len(callers), calls
    assert all(c.channel == "sip" and c.line == "114" and c.answered for c in calls), calls
    assert all(c.end_reason == "caller hung up" for c in calls), calls
    nodes = cluster.answered_by([c.call_id for c in calls])
    assert sorted(nodes) == sorted(c.call_id for c in calls), nodes
    assert set(nodes.values()) == set(NODES), f"round-robin sent both calls to one node: {nodes}"

    # One queue: node 1's API lists the incidents of the calls both nodes answered.
    deadline = time.monotonic() + 20
    while True:
        queued = _queue(cluster, 0, token)
        from_nodes = {nodes[call_id] for call_id in queued if call_id in nodes}
        if from_nodes == set(NODES) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert from_nodes == set(NODES), (
        f"node1's queue holds incidents from {from_nodes or 'no node'}; calls: {nodes}; "
        f"queue: {queued}\n{cluster.logs_tail()}"
    )
    assert set(_queue(cluster, 1, token)) >= set(nodes), "node2's queue differs"


def _short_calls(
    cluster: Cluster, workdir: Path, caller: str, *, calls: int, rate_per_s: float, hold_ms: int
) -> SippResult:
    return run_sipp(
        "uac_short_call.xml",
        cluster.sip,
        workdir,
        service="113",
        calls=calls,
        concurrent=calls,
        rate_per_s=rate_per_s,
        variables={"caller": caller, "hold_ms": str(hold_ms)},
        timeout_s=30,
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _kamailio_flags(cluster: Cluster, sip_port: int) -> str | None:
    """Kamailio's flags for a node ("AP" active, "IP" inactive), from cluster.sh status."""
    status = cluster.script("status").stdout
    found = re.search(rf"sip:127\.0\.0\.1:{sip_port} (\S+)", status)
    return found.group(1) if found else None


# Last in this module: it kills node 2.
def test_a_killed_node_is_taken_out_and_calls_go_on(cluster: Cluster, tmp_path: Path) -> None:
    for name in NODES:
        assert _alive(cluster.node_pid(name)), f"{name} died:\n{cluster.logs_tail()}"
    assert _kamailio_flags(cluster, cluster.node_sip_ports[1]) == "AP"
    during, after = _caller_number(), _caller_number()
    # Loads stay within what one node takes at once (4 SIP calls with the
    # pjsua2 wheel as built), since node 1 ends up with all of them.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        # calls in progress on both nodes when node 2 dies
        load = pool.submit(
            _short_calls, cluster, tmp_path / "during", during,
            calls=3, rate_per_s=2, hold_ms=2500,
        )  # fmt: skip
        time.sleep(1.3)
        os.kill(cluster.node_pid("node2"), signal.SIGKILL)
        killed_at = time.monotonic()
        # New calls, one a second, starting at once: none may be lost.
        result = _short_calls(
            cluster, tmp_path / "after", after, calls=5, rate_per_s=1, hold_ms=500
        )
        load.result(timeout=60)
    assert result.returncode == 0, result.describe()
    assert result.logs.count("answered") == 5, result.logs

    # Kamailio's OPTIONS probes (every second here) keep node 2 out.
    flags = _kamailio_flags(cluster, cluster.node_sip_ports[1])
    assert flags is not None and flags.startswith("I"), f"node 2 is still {flags}"
    assert _kamailio_flags(cluster, cluster.node_sip_ports[0]) == "AP"
    assert time.monotonic() - killed_at < 30

    calls = _ended_calls(cluster, after, 5)
    assert len(calls) == 5 and all(c.end_reason == "caller hung up" for c in calls), calls
    nodes = cluster.answered_by([c.call_id for c in calls])
    assert set(nodes.values()) == {"node1"}, nodes
    health = httpx.get(f"{cluster.base_url(0)}/health", timeout=5).json()
    assert health["status"] == "ok", health
