"""Runs the real service as a child process for end-to-end tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.e2e.browser import REPO, launched_chromium

if TYPE_CHECKING:
    from playwright.sync_api import Browser

_READY_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class RunningService:
    base_url: str
    ws_url: str
    data_dir: Path
    log_path: Path
    process: subprocess.Popen[bytes]

    def gateway_address(self, name: str) -> tuple[str, int]:
        """(host, port) of a gateway, from /health (e.g. "udp 127.0.0.1:5062")."""
        where = str(httpx.get(f"{self.base_url}/health", timeout=5.0).json()["gateways"][name])
        host, _, port = where.split()[-1].rpartition(":")
        return host, int(port)

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_service(data_dir: Path, *, expect: str = "ok", **env: str) -> RunningService:
    """Start the service and wait until /health reports `expect` ("ok" or "degraded")."""
    port = _free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    environment = {
        **os.environ,
        "CALLBOT_HTTP_PORT": str(port),
        "CALLBOT_DATA_DIR": str(data_dir),
        "CALLBOT_LOG_LEVEL": "INFO",
        **env,
    }
    # The models that `make test` prepared under the repository's data dir.
    data = Path(os.environ.get("CALLBOT_DATA_DIR", REPO / "var")).resolve()
    shared_model = data / "models" / "whisper-base"
    if (shared_model / "model.bin").exists():
        environment.setdefault("CALLBOT_WHISPER_MODEL_DIR", str(shared_model))
    environment.setdefault("CALLBOT_RASA_MODEL", str(data / "rasa" / "models" / "callbot.tar.gz"))
    environment.setdefault("CALLBOT_RASA_VENV", str(REPO / ".venv-rasa"))
    environment.setdefault("CALLBOT_RASA_PORT", "0")
    environment.setdefault("CALLBOT_RASA_ACTION_PORT", "0")
    # gateways on free ports; /health says which (`gateway_address`)
    environment.setdefault("CALLBOT_SIP_PORT", "0")
    environment.setdefault("CALLBOT_AUDIOSOCKET_PORT", "0")
    log_path = data_dir / "service.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "callcenter.cli", "serve"],
            cwd=REPO,
            env=environment,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # signals the tests send reach the service alone
        )
    service = RunningService(
        f"http://127.0.0.1:{port}",
        f"ws://127.0.0.1:{port}/calls/media-stream",
        data_dir,
        log_path,
        process,
    )
    deadline = time.monotonic() + _READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"service exited with {process.returncode}:\n{service.log_tail()}")
        try:
            health = httpx.get(f"{service.base_url}/health", timeout=1.0).json()
            if health["status"] == expect:
                return service
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.25)
    stop_service(service)
    raise RuntimeError(f"service not ready in {_READY_TIMEOUT_S} s:\n{service.log_tail()}")


def stop_service(service: RunningService) -> None:
    service.process.terminate()
    try:
        service.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        service.process.kill()
        service.process.wait()


@pytest.fixture(scope="session")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    running = start_service(tmp_path_factory.mktemp("service"))
    try:
        yield running
    finally:
        stop_service(running)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Chromium (Debian's), for one test module."""
    yield from launched_chromium()
